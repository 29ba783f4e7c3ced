"""TLC Parquet -> the registry's canonical Parquet, streaming by record batch.

TLC's own files drift from year to year: ids as int32 or as doubles (``passenger_count``
1.0), nanosecond timestamps, ``Airport_fee`` or ``airport_fee``, fee columns that appear
in later years, the 2009-2010 yellow column set. Every month is written with the one
schema of the registry, as the CSV months are, by these rules:

- names match case-insensitively, then through the service's aliases (2009 yellow's
  ``Trip_Pickup_DateTime``...); a registry column the file lacks is all null (only the
  service's ``optional`` columns may be lacking); known legacy columns with no canonical
  place (2009-2010 coordinates) and writer artefacts (``__index_level_0__``) are dropped
  and named in the manifest;
- a column the registry does not know (TLC adds some: ``request_source`` in 2026) follows
  the source contract ``new_columns``: ``keep-raw`` writes the month with the registry's
  columns and names the new one (source type, non-null rows) for the manifest, the raw
  file keeping it; ``refuse`` fails the month on one line;
- casts are exact: a double id of 1.0 becomes 1; a value that is not a whole number, or a
  timestamp with a sub-microsecond part, stops the month with one line naming the month,
  the column and how many rows hold such values (counted over the whole file), and nothing
  is written. NaN in a double id is a missing value (pandas' way of writing one) and
  becomes null;
- text codes of old files (``vendor_name`` CMT, ``Payment_Type`` CASH) map through the
  registry's tables; an unknown text value is refused the same way.

Memory stays bounded: batches are read ~130 thousand rows at a time, gathered
into row groups of 262,144 rows, and written by a helper thread while the next
group is read (``pipeline.convert.month_writer``, as for the CSV months).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.convert.month_writer import ROW_GROUP_ROWS, MonthWriter, all_null
from pipeline.convert.result import ConversionError, ParquetStats, show_invisible
from pipeline.core.checksums import file_sha256
from pipeline.core.manifest import NewColumn
from pipeline.core.months import month_key
from pipeline.core.service import NEW_COLUMNS, HeaderMismatch, Service, SourcePlan
from pipeline.core.text import Progress, one_line

# Rows decoded at a time: larger batches cost memory, smaller ones allocator churn.
BATCH_ROWS = 1 << 17
READ_BUFFER = 1 << 20
NOT_WHOLE = "values that are not whole numbers"
SUB_MICROSECOND = "timestamps with a sub-microsecond part"



class _Inexact(Exception):
    """A batch holds values that have no exact canonical form; the caller counts them."""

    def __init__(self, source: str, what: str, example: str) -> None:
        super().__init__(what)
        self.source, self.what, self.example = source, what, example


def normalize(
    service: Service,
    month: date,
    raw: Path,
    out: Path,
    *,
    new_columns: str = "keep-raw",
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> ParquetStats:
    """Convert one month's TLC Parquet at ``raw`` into canonical Parquet at ``out``;
    ``new_columns`` (one of ``NEW_COLUMNS``) says what to do with columns the registry does
    not know."""
    if new_columns not in NEW_COLUMNS:
        raise ValueError(f"new_columns is {new_columns!r}: expected one of {NEW_COLUMNS}")
    label = f"{service.name} {month_key(month)}"
    try:
        # Column chunks are read in pieces, not whole: less memory, same speed.
        source = pq.ParquetFile(raw, pre_buffer=False, buffer_size=READ_BUFFER)
    except (OSError, pa.ArrowException) as e:
        raise ConversionError(f"{label}: {raw.name} is not a readable Parquet file: "
                              f"{one_line(e, 160)}") from None
    try:
        plan = service.source_plan(source.schema_arrow.names)
    except HeaderMismatch as e:
        raise ConversionError(f"{label}: {show_invisible(str(e))}") from None
    if plan.new and new_columns == "refuse":
        raise ConversionError(
            f"{label}: the file has columns the registry does not know: "
            f"{', '.join(n[:40] for n in plan.new[:5])}; nothing was published "
            "([source] new_columns = refuse)")
    non_null = dict.fromkeys(plan.new, 0)
    total_rows = source.metadata.num_rows
    with ThreadPoolExecutor(1, "hash-source") as helper:
        hashing = helper.submit(file_sha256, raw)
        try:
            # Decoding is light next to writing, which sets the pace: gathering a whole
            # group ahead would gain nothing and hold ~120 MB more.
            with MonthWriter(service, month, out, row_group_rows, ahead=0.25) as writer:
                batches = source.iter_batches(batch_size=batch_rows,
                                              columns=[*plan.feeds.values(), *plan.new],
                                              use_threads=True)
                for batch in batches:
                    try:
                        writer.add(conform(service, plan, batch))
                    except _Inexact as e:
                        raise _refusal(label, source, e) from None
                    for name in plan.new:
                        non_null[name] += batch.num_rows - batch.column(name).null_count
                    if progress:
                        progress(writer.rows, total_rows)
                written = writer.finish()
        finally:
            source.close()
        source_bytes, source_sha256 = hashing.result()
    kinds = source.schema_arrow
    return written.stats(
        source_bytes, source_sha256, dropped_columns=plan.dropped,
        new_columns=tuple(NewColumn(name, str(kinds.field(name).type), non_null[name])
                          for name in plan.new))


def conform(service: Service, plan: SourcePlan, batch: pa.RecordBatch) -> pa.Table:
    """One batch of the source file as a table of the canonical schema."""
    n = batch.num_rows
    arrays = []
    for f in service.schema:
        name = plan.feeds.get(f.name)
        if name is None:
            arrays.append(all_null(n, f.type))
            continue
        alias = service.aliases.get(name.strip().casefold())
        values = alias.values if alias and alias.column == f.name else None
        renamed = name.strip().casefold() != f.name.casefold()
        arrays.append(cast_exactly(batch.column(name), f.type, name, values, renamed))
    return pa.Table.from_arrays(arrays, schema=service.schema)


def cast_exactly(column: pa.Array, target: pa.DataType, name: str,
                 values: dict[str, int | str] | None = None, renamed: bool = False) -> pa.Array:
    """``column`` as ``target`` without losing anything; raises _Inexact otherwise.

    ``values`` (an old file's codes) applies to a column under an old name, and to one
    under the canonical name whose kind differs (text codes for an integer column, numbers
    for a text flag); a canonical column of the canonical kind is taken as it is.
    """
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_null(kind):
        return all_null(len(column), target)
    text_codes = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if values is not None and (renamed or text_codes != pa.types.is_string(target)
                               or (text_codes and not _canonical_text(column, values))):
        # Codes written as text (``CASH``), flags written as numbers (1.0 -> ``Y``) or as
        # other text (2010's ``0``/``1`` -> ``N``/``Y``).
        return _mapped(column, target, name, values)
    if kind == target:
        return column
    if pa.types.is_integer(target):
        if pa.types.is_floating(kind):
            return _whole(column, name)
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            return _safe_cast(column, target, name, "values that do not fit int64")
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return _safe_cast(column, target, name, "values that are not integers")
    elif pa.types.is_floating(target):
        if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
            return _safe_cast(column, target, name, "values that are not numbers")
    elif pa.types.is_timestamp(target):
        if pa.types.is_timestamp(kind):
            return _timestamp(column, target, name)
        if pa.types.is_date(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return _safe_cast(column, target, name, "values that are not timestamps")
    elif pa.types.is_string(target):
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return column.cast(target)
        if pa.types.is_floating(kind):
            return _whole(column, name).cast(target)
        if pa.types.is_integer(kind):
            return column.cast(target)
    raise _Inexact(name, f"{kind} values, which have no exact {target} form", "")


def _canonical_text(column: pa.Array, values: dict[str, int | str]) -> bool:
    """True when every value of a text column is already one of the canonical codes the
    value map gives (``N``/``Y``): it is then taken as it is."""
    canonical = sorted({v for v in values.values() if isinstance(v, str)})
    if not canonical:
        return False
    other = pc.invert(pc.is_in(column.cast(pa.string()), value_set=pa.array(canonical)))
    return not pc.any(pc.and_(pc.is_valid(column), other)).as_py()


def _safe_cast(column: pa.Array, target: pa.DataType, name: str, what: str) -> pa.Array:
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Inexact(name, what, "") from None


def _whole(column: pa.Array, name: str) -> pa.Array:
    """A double column as int64: whole numbers only; NaN is a missing value."""
    try:
        return column.cast(pa.int64(), safe=True)  # the usual case, in one pass
    except pa.ArrowInvalid:
        pass  # a NaN, a fraction or a value too large: find out which
    column = pc.if_else(pc.is_nan(column), None, column)
    bad = _not_whole(column)
    if pc.any(bad).as_py():
        example = pc.filter(column, bad)[0].as_py()
        raise _Inexact(name, NOT_WHOLE, repr(example))
    return column.cast(pa.int64(), safe=False)


def _not_whole(column: pa.Array) -> pa.Array:
    """Which doubles (NaN already null) have no exact int64 form: fractions, huge values."""
    return pc.or_(pc.not_equal(pc.trunc(column), column),
                  pc.greater(pc.abs(column), 2.0 ** 63 - 1024))


def _sub_microsecond(column: pa.Array) -> pa.Array:
    """Which nanosecond timestamps have a part finer than a microsecond."""
    ticks = column.cast(pa.int64())
    return pc.not_equal(pc.subtract(ticks, pc.multiply(pc.divide(ticks, 1000), 1000)), 0)


def _timestamp(column: pa.Array, target: pa.TimestampType, name: str) -> pa.Array:
    """Timestamps in microseconds. A finer value with a sub-microsecond part is refused:
    truncating would change it, and TLC's nanosecond files hold whole seconds."""
    if column.type.tz is not None:
        raise _Inexact(name, f"timestamps with the time zone {column.type.tz}", "")
    try:
        return column.cast(target, safe=True)  # refuses to drop a sub-microsecond part
    except pa.ArrowInvalid:
        pass
    if column.type.unit != "ns":
        raise _Inexact(name, "timestamps out of range", "")
    example = pc.filter(column, _sub_microsecond(column))[0].as_py()
    raise _Inexact(name, SUB_MICROSECOND, str(example))


def _mapped(column: pa.Array, target: pa.DataType, name: str,
            values: dict[str, int | str]) -> pa.Array:
    """Text (or numeric) codes of old files mapped through the registry's table."""
    kind = column.type
    if pa.types.is_floating(kind):
        column = _whole(column, name)
    text = column.cast(pa.string())
    folded = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    keys = pa.array(list(values), pa.string())
    index = pc.index_in(folded, value_set=keys)
    bad = pc.and_(pc.is_valid(folded), pc.is_null(index))
    if pc.any(bad).as_py():
        raise _Inexact(name, "values the registry cannot map",
                       repr(pc.filter(text, bad)[0].as_py()))
    return pc.take(pa.array(list(values.values()), target), index)


def _refusal(label: str, source: pq.ParquetFile, inexact: _Inexact) -> ConversionError:
    """One line naming month, column and how many rows of the whole file are affected."""
    count = _count_rows(source, inexact)
    where = f" in {count:,} row{'' if count == 1 else 's'}" if count is not None else ""
    example = f" (e.g. {inexact.example})" if inexact.example else ""
    return ConversionError(f"{label}: column {inexact.source} holds {inexact.what}{where}"
                           f"{example}; nothing was published")


def _count_rows(source: pq.ParquetFile, inexact: _Inexact) -> int | None:
    """Rows of the whole file whose value of the column cannot be cast (that column alone)."""
    count = 0
    for batch in source.iter_batches(batch_size=1 << 20, columns=[inexact.source]):
        column = batch.column(0)
        if pa.types.is_floating(column.type) and inexact.what == NOT_WHOLE:
            column = pc.if_else(pc.is_nan(column), None, column)
            count += pc.sum(_not_whole(column)).as_py() or 0
        elif inexact.what == SUB_MICROSECOND:
            count += pc.sum(_sub_microsecond(column)).as_py() or 0
        else:
            return None
    return count

