"""The jobs' edge to a month's facts: the settings are read here (the configured lake,
``[source]``'s URLs, the month's source format, the probe policy) and passed to the plain
functions of the lake and source layers (``pipeline.lake.month_facts``,
``pipeline.source.month_source``). No task is built to ask the lake or the source a
question, so status, catch-up, refresh and progress read the lake as the tasks'
completeness does, by the same functions, without luigi's task graph.
"""

from __future__ import annotations

from datetime import date

from pipeline import config
from pipeline.core.datasets import SERVICES
from pipeline.core.manifest import Manifest, SourceIdentity
from pipeline.lake.month_facts import (
    LakeFacts,
    MonthFiles,
    month_files,
    read_manifest,
)
from pipeline.source.month_source import MonthSource, month_source
from pipeline.source.policies import probe_policy
from pipeline.tasks import completeness
from pipeline.tasks.storage import lake


def lake_facts(service: str, month: date, *, check_parquet: bool = True) -> LakeFacts:
    """What the configured lake holds of the month (see ``LakeFacts``): the facts the
    tasks' completeness reads (``pipeline.tasks.completeness``)."""
    return completeness.lake_facts(SERVICES[service], month, check_parquet=check_parquet)


def manifest_of(service: str, month: date) -> Manifest | None:
    """The month's manifest in the configured lake, as stored (None without one)."""
    return read_manifest(lake(), SERVICES[service], month)


def lake_files(service: str, month: date) -> MonthFiles:
    """The month's files in the configured lake."""
    return month_files(lake(), SERVICES[service], month, config.source().format_of(month))


def source_of(service: str, month: date) -> MonthSource:
    """Where the source publishes the month, as ``[source]`` says."""
    s = config.source()
    return month_source(SERVICES[service], month, s.format_of(month), base_url=s.base_url,
                        parquet_base_url=s.parquet_base_url)


def published(service: str, month: date) -> SourceIdentity:
    """What the source says the month's file is now (a HEAD request); NotPublished when it
    has no such file."""
    return source_of(service, month).published(probe_policy(config.source()))
