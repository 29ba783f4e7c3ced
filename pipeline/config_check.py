"""luigi.cfg checked before anything runs: every section and key is one the pipeline or luigi
reads, every value parses and lies in its range, and no message shows a secret.

luigi itself ignores a section it does not know (``[duckbd]``: the warehouse silently goes
to the default path) and only warns about an unknown key, printing its value (a user's
``[postgres] password = ...`` ended up in the log). ``check_settings`` refuses both on one
line naming the section or key and the nearest known name, and never a value under a key
that can hold a secret. It runs once per configuration: from ``taxi-pipeline`` before a job
starts and from the tasks' constructors (``luigi --module pipeline ...``).

Known names come from luigi's registry: every ``luigi.Config`` class (the pipeline's and
luigi's own ``[core]``, ``[worker]``, ``[scheduler]``, ``[retcode]``, ``[email]``...) and every
task family, whose section may set its parameters (``[DownloadMonth]``).
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import luigi
import luigi.batch_notifier
import luigi.configuration
import luigi.execution_summary
import luigi.interface
import luigi.notifications
import luigi.retcodes
import luigi.scheduler
import luigi.worker
from luigi.parameter import UnconsumedParameterWarning
from luigi.task_register import Register

from pipeline import config
from pipeline.core.errors import SettingsError
from pipeline.core.months import month_key
from pipeline.core.text import redact

# Keys luigi reads without a Config parameter (luigi.configuration.get_config().get...).
LUIGI_PLAIN_KEYS: dict[str, frozenset[str]] = {
    "core": frozenset({"autoload_range", "no_configure_logging", "logging_conf_file",
                       "rpc_connect_timeout", "rpc_retry_attempts", "rpc_retry_wait",
                       "rpc_log_retries", "tmp_dir", "history_filename"}),
    "task_history": frozenset({"db_connection"}),
    # luigid's web server (luigi.server.cors, not imported by a batch job).
    "cors": frozenset({"enabled", "allowed_origins", "allow_any_origin", "allow_null_origin",
                       "max_age", "allowed_methods", "allowed_headers", "exposed_headers",
                       "allow_credentials"}),
}
# Sections whose keys are free: [resources] names resources, [logging] is a dictConfig;
# the others belong to luigi.contrib modules (the pipeline uses none; luigi accepts them).
FREE_SECTIONS = frozenset({
    "resources", "logging", "hadoop", "hdfs", "hive", "spark", "pig", "scalding",
    "redshift", "mysql", "mssql", "sqlalchemy", "elasticsearch", "salesforce",
    "pyspark_runner", "s3", "kubernetes", "batch-notifier", "webhdfs",
})
# A key whose value may be a secret: its value is never shown.
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|url|webhook|auth", re.IGNORECASE)


@dataclass(frozen=True)
class Range:
    """A bound a numeric setting must honour, and how to say it."""

    ok: Callable[[float], bool]
    says: str


_AT_LEAST_1 = Range(lambda v: v >= 1, "at least 1")
_POSITIVE = Range(lambda v: v > 0, "more than 0")
_NOT_NEGATIVE = Range(lambda v: v >= 0, "0 or more")
RANGES: dict[tuple[str, str], Range] = {
    ("source", "timeout"): _POSITIVE,
    ("source", "retries"): _AT_LEAST_1,
    ("source", "backoff"): _NOT_NEGATIVE,
    ("source", "backoff_max"): _NOT_NEGATIVE,
    ("duckdb", "threads"): _AT_LEAST_1,
    ("duckdb", "lock_timeout"): _NOT_NEGATIVE,
    ("postgres", "connect_timeout"): _AT_LEAST_1,
    ("gcs", "chunk_mib"): _POSITIVE,
    ("gcs", "timeout"): _POSITIVE,
    ("retry_backoff", "max_delay"): _NOT_NEGATIVE,
    ("notify", "webhook_timeout"): _POSITIVE,
    ("scheduler", "retry_count"): _AT_LEAST_1,
    ("scheduler", "retry_delay"): _NOT_NEGATIVE,
    ("worker", "wait_interval"): _NOT_NEGATIVE,
}
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B|bytes|%)?\s*$", re.IGNORECASE)

_checked: set[int] = set()
# Unknown keys are refused by check_settings; luigi's own warning about them prints their
# value (a password), and may come before the check (luigi reads [core] first).
warnings.filterwarnings("ignore", category=UnconsumedParameterWarning)


def check_settings() -> None:
    """Refuse (SettingsError, one line) an unknown section or key, a value that does not
    parse, or one out of range. Checked once per loaded configuration."""
    parser = luigi.configuration.get_config()
    if id(parser) in _checked:
        return
    if not hasattr(parser, "sections"):  # luigi.toml (LUIGI_CONFIG_PARSER=toml): not checked
        _checked.add(id(parser))
        return
    known, free = known_settings()
    for section in parser.sections():
        if section in free:
            continue
        keys = known.get(section)
        if keys is None:
            raise SettingsError(f"luigi.cfg: unknown section [{section}]"
                                f"{_nearest(section, known, '[{}]')}")
        for key in parser.options(section):
            if key.replace("-", "_") not in keys and key not in keys:
                raise SettingsError(f"luigi.cfg: unknown key {key!r} in [{section}]"
                                    f"{_nearest(key, keys, '{}')}")
    _check_values(parser)
    workers = luigi.interface.core().workers  # `luigi ... --workers 0` would wait forever
    if workers < 1:
        raise SettingsError(f"--workers {workers}: a job needs at least 1 worker process")
    _checked.add(id(parser))


def known_settings() -> tuple[dict[str, set[str]], frozenset[str]]:
    """Section -> the keys luigi or the pipeline reads there, and the free sections."""
    known: dict[str, set[str]] = {s: set(k) for s, k in LUIGI_PLAIN_KEYS.items()}
    for cls in Register._reg:
        family = cls.get_task_family()
        names = known.setdefault(family, set())
        names.update(getattr(cls, "ignore_unconsumed", ()))
        for name, param in cls.get_params():
            names.add(name)
            alias = getattr(param, "_config_path", None)
            if alias:
                known.setdefault(alias["section"], set()).add(alias["name"].replace("-", "_"))
    return known, FREE_SECTIONS


def _nearest(name: str, candidates: object, form: str) -> str:
    found = difflib.get_close_matches(name.replace("-", "_"), list(candidates),  # type: ignore[call-overload]
                                      n=1, cutoff=0.6)
    return f" (did you mean {form.format(found[0])}?)" if found else ""


def _shown(section: str, key: str, value: str) -> str:
    """A configured value as a message may show it: never under a key that may be secret."""
    return "(value not shown)" if _SECRET_KEY.search(key) and key not in (
        "base_url", "parquet_base_url", "zones_url") else repr(redact(value))


def _check_values(parser: luigi.configuration.LuigiConfigParser) -> None:
    """Each pipeline setting parses (types, choices) and lies in its range."""
    for name in ("pipeline", "source", "lake", "duckdb", "postgres", "gcs", "bigquery",
                 "retry_backoff", "luigid", "quality", "notify"):
        cls = getattr(config, name, None)
        if cls is None:
            continue
        for key, param in cls.get_params():
            if not parser.has_option(name, key):
                continue
            raw = parser.get(name, key)
            _parse(param, name, key, raw)
    luigi_sections = {"scheduler": luigi.scheduler.scheduler, "worker": luigi.worker.worker}
    for section, cls in luigi_sections.items():
        for key, param in cls.get_params():
            if parser.has_option(section, key):
                _parse(param, section, key, parser.get(section, key))
    for (section, key), bound in RANGES.items():
        if parser.has_option(section, key):
            value = float(parser.get(section, key))
            if not bound.ok(value):
                raise SettingsError(f"luigi.cfg: [{section}] {key} = {value:g} must be "
                                    f"{bound.says}")
    if parser.has_option("duckdb", "memory_limit") and not _MEMORY.match(
            parser.get("duckdb", "memory_limit")):
        raise SettingsError(f"luigi.cfg: [duckdb] memory_limit = "
                            f"{parser.get('duckdb', 'memory_limit')!r} is not a size "
                            "(e.g. 300MB, 1GB)")
    for key in ("csv_first_month", "csv_last_month"):
        if parser.has_option("source", key):
            _month(parser.get("source", key), f"[source] {key}")
    config.quality().blocking_checks()


def _month(text: str, setting: str) -> None:
    from datetime import datetime

    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise SettingsError(f"luigi.cfg: {setting} = {text!r} is not a month (YYYY-MM)") from None
    month_key(parsed)


def _parse(param: luigi.Parameter, section: str, key: str, raw: str) -> None:
    """``raw`` as ``param`` reads it, or a SettingsError saying what it should be."""
    try:
        param.normalize(param.parse(raw))
    except Exception:  # luigi raises ValueError, KeyError, TypeError...: one line each
        raise SettingsError(f"luigi.cfg: [{section}] {key} = {_shown(section, key, raw)} "
                            f"is not {_expected(param)}") from None


def _expected(param: luigi.Parameter) -> str:
    if isinstance(param, luigi.ChoiceParameter):
        return "one of " + ", ".join(sorted(map(str, param._choices)))
    if isinstance(param, luigi.BoolParameter):
        return "true or false"
    if isinstance(param, luigi.IntParameter):
        return "a whole number"
    if isinstance(param, luigi.FloatParameter):
        return "a number"
    if isinstance(param, luigi.parameter.TimeDeltaParameter):
        return "a duration"
    return "a value this setting takes"
