"""What a batch job checks before anything runs: every setting (``pipeline.config_check``),
the sinks and services it names, and the paths it will write: the lake's root and scratch
must be directories it can write, the DuckDB warehouse a file in one.

Each refusal is a SettingsError: one line naming the setting and the path, exit 40. Paths
that do not exist yet are fine when the nearest existing folder above them is writable (the
pipeline makes them).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline import config
from pipeline.config_check import check_settings
from pipeline.core.errors import SettingsError
from pipeline.tasks.flows import configured_services
from pipeline.tasks.sinks import parse_sinks
from pipeline.tasks.storage import lake


def check_job(*, writes: bool = True) -> None:
    """Refuse, before any task is scheduled, a setting or path the job cannot honour.
    ``writes``: the job writes (ingest, backfill...), not only reads (status)."""
    check_settings()
    configured_services()
    sinks = parse_sinks(config.pipeline().sinks)
    the_lake = lake()
    if not the_lake.in_bucket:
        _directory(Path(the_lake.url_root), "[lake] root", writes)
    _directory(the_lake.scratch.directory, "[lake] scratch", writes)
    if "duckdb" in sinks:
        _file(Path(config.duckdb().path).absolute(), "[duckdb] path", writes)


def _directory(path: Path, setting: str, writes: bool) -> None:
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{setting} {path} is a file, not a directory")
    if writes:
        _writable(path, setting)


def _file(path: Path, setting: str, writes: bool) -> None:
    if path.is_dir():
        raise SettingsError(f"{setting} {path} is a directory, not a DuckDB file")
    if writes:
        if path.exists() and not os.access(path, os.W_OK):
            raise SettingsError(f"{setting} {path} cannot be written (read-only)")
        _writable(path.parent, setting)


def _writable(path: Path, setting: str) -> None:
    """``path``, or the nearest existing folder above it, is a directory this process may
    write in (os.access also answers False on a read-only file system)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SettingsError(f"{setting} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing} is read-only)"
        raise SettingsError(f"{setting} {path} is read-only: it cannot be written{where}")
