"""Where each (service, month) lives in the lake: the one place its layout is spelled.

Every path in the pipeline comes from the key functions here, never from string formatting
elsewhere. Keys are relative (``raw/yellow/yellow_tripdata_2021-01.csv.gz``) and resolve under
a lake root (``pipeline.lake.root.Lake``): a local directory or ``gs://bucket/prefix``, with
the same layout. The inverse functions (``raw_month``, ``manifest_month``) read a month back
from a key by building the key again, so they can never disagree with the layout.
"""

from __future__ import annotations

import re
from datetime import date

from pipeline.core.datasets import ZONES
from pipeline.core.months import month_key
from pipeline.core.service import Service

MANIFEST_NAME = "_manifest.json"
RAW_PREFIX = "raw/"
PARQUET_PREFIX = "parquet/"
RAW_SUFFIX = {"csv": ".csv.gz", "parquet": ".parquet"}
_YEAR_MONTH = re.compile(r"(\d{4})\D{1,8}(\d{2})")


def raw_key(service: Service, month: date, source_format: str = "csv") -> str:
    """The month's download as published: ``.csv.gz`` from the mirror, ``.parquet`` from TLC."""
    return f"{raw_prefix(service)}{service.file_stem(month_key(month))}{RAW_SUFFIX[source_format]}"


def raw_prefix(service: Service) -> str:
    return f"{RAW_PREFIX}{service.name}/"


def parquet_prefix(service: Service) -> str:
    return f"{PARQUET_PREFIX}{service.name}/"


def source_record_key(service: Service, month: date, source_format: str = "csv") -> str:
    """What the source said the raw file was when it was fetched (ETag, Last-Modified,
    length): ``raw/{service}/{file}.source.json``, written just after the raw file."""
    return f"{raw_key(service, month, source_format)}.source.json"


def parquet_dir_key(service: Service, month: date) -> str:
    return f"{parquet_prefix(service)}year={month:%Y}/month={month:%m}"


def parquet_key(service: Service, month: date) -> str:
    return f"{parquet_dir_key(service, month)}/{service.file_stem(month_key(month))}.parquet"


def manifest_key(service: Service, month: date) -> str:
    return f"{parquet_dir_key(service, month)}/{MANIFEST_NAME}"


def zones_key() -> str:
    return f"{RAW_PREFIX}zones/{ZONES.file_name}"


def _month_in(key: str) -> date | None:
    match = _YEAR_MONTH.search(key)
    if not match or not 1 <= int(match[2]) <= 12:
        return None
    return date(int(match[1]), int(match[2]), 1)


def raw_month(service: Service, key: str) -> date | None:
    """The month whose raw file ``key`` is (either source format), else None."""
    month = _month_in(key.removeprefix(raw_prefix(service)))
    if month and any(raw_key(service, month, kind) == key for kind in RAW_SUFFIX):
        return month
    return None


def manifest_month(service: Service, key: str) -> date | None:
    """The month whose manifest ``key`` is, else None."""
    month = _month_in(key.removeprefix(parquet_prefix(service)))
    return month if month and manifest_key(service, month) == key else None


def partition_root(url: str) -> str:
    """The URL of a service's Parquet folder, from the URL of one of its month files: the
    part before the ``year=YYYY/month=MM/`` folders (BigQuery's hive-partitioning prefix)."""
    folder, found, _ = url.partition("/year=")
    if not found:
        raise ValueError(f"{url} is not in a year=YYYY/month=MM folder of the lake")
    return folder


def check_key(key: str) -> str:
    """A relative key of the lake: no leading slash, no empty, ``.`` or ``..`` segment."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) \
            or parts[-1] in (".", ".."):
        raise ValueError(f"lake key {key!r} is not a relative path inside the lake")
    return key
