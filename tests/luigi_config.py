"""A luigi config for a run: the project's ``luigi.cfg`` with settings on top. One writer for
the tests (``conftest.Env``, ``fixtures_hosts``) and the benchmarks (``bench/servers.py``).
Standard library only: a benchmark's own process stays small."""

from __future__ import annotations

import configparser
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
Settings = dict[str, dict[str, str]]


def write_config(path: Path, settings: Settings) -> Path:
    """The project's luigi.cfg with ``settings`` (section -> key -> value) on top, at
    ``path``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(PROJECT / "luigi.cfg")
    parser.read_dict(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        parser.write(f)
    return path
