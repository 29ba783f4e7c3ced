"""Shared fixtures: a generated release served by a real local HTTP server, and for each
test its own lake, warehouse and luigi config file (in-process and for subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import luigi
import luigi.configuration
import pytest
from luigi.configuration.cfg_parser import LuigiConfigParser
from luigi.task_register import Register

from pipeline.demo import samples
from pipeline.ops import hooks
from tests.luigi_config import write_config
from tests.mirror import ReleaseMirror

# The tests run the pipeline's tasks in this process too, as `luigi --module pipeline` does:
# with the same changes to luigi and logging (importing a submodule installs none).
hooks.install()

# Fixtures of each area live in their own module.
pytest_plugins = ["tests.fixtures_postgres", "tests.fixtures_cloud", "tests.fixtures_scheduler"]

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The months every test can use, and their sizes: small, but with every quirk of the real
# files (pipeline/demo/samples.py lists them).
MONTHS = {
    "yellow": [date(2020, 12, 1), date(2021, 1, 1)],
    "green": [date(2019, 12, 1), date(2020, 1, 1), date(2021, 1, 1)],
    "fhv": [date(2019, 1, 1), date(2020, 1, 1)],
}
ROWS = {"yellow": 30_000, "green": 8_000, "fhv": 12_000}


@dataclass
class Release:
    root: Path
    facts: dict[tuple[str, str], samples.SampleFacts]

    def of(self, service: str, month: str) -> samples.SampleFacts:
        return self.facts[(service, month)]


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("release")
    facts = samples.write_release(root, MONTHS, ROWS)
    return Release(root, {(f.service, f.month): f for f in facts})


def release_mirror(scope: Literal["function", "module"] = "function") -> object:
    """The ``mirror`` fixture: the release on a real local HTTP server, for each test; a
    module whose tests share what a run made from it takes it with ``scope="module"``
    (source records hold the mirror's URL, port included)."""
    @pytest.fixture(scope=scope, name="mirror")
    def mirror(release: Release) -> Iterator[ReleaseMirror]:
        with ReleaseMirror(release.root) as server:
            yield server
    return mirror


mirror = release_mirror()


def csv_and_tlc_mirror(release_fixture: str) -> object:
    """A module's own ``mirror`` fixture (it overrides the one above): the CSV months and
    TLC's Parquet layout of the release the fixture ``release_fixture`` gives (its
    ``csv_root`` and ``tlc_root``), on one local server."""
    @pytest.fixture
    def mirror(request: pytest.FixtureRequest) -> Iterator[ReleaseMirror]:
        served = request.getfixturevalue(release_fixture)
        with ReleaseMirror(served.csv_root, tlc_root=served.tlc_root) as server:
            yield server
    return mirror


@dataclass
class Env:
    """One test's lake, warehouse and config; runs luigi in-process or as a command."""

    tmp: Path
    config_file: Path
    settings: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def lake(self) -> Path:
        return Path(self.settings["lake"]["root"])

    @property
    def duckdb_path(self) -> Path:
        return Path(self.settings["duckdb"]["path"])

    def configure(self, **sections: dict[str, str]) -> None:
        """Change settings (``source={"retries": "1"}``) for both in-process and commands."""
        for section, values in sections.items():
            self.settings.setdefault(section, {}).update(values)
        write_config(self.config_file, self.settings)
        reset_luigi([str(self.config_file)])

    def build(self, *tasks: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
        return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True,
                           workers=workers, log_level="WARNING")

    def command(self, *args: str, timeout: float = 300,
                **popen: object) -> subprocess.CompletedProcess[str]:
        """Run a console command (``luigi``, ``taxi-pipeline``) against this test's config."""
        return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=self.tmp, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False,
                              **popen)  # type: ignore[call-overload]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LUIGI_CONFIG_PATH": str(self.config_file)}

    def lake_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.lake)) for p in self.lake.rglob("*") if p.is_file())


def reset_luigi(config_paths: list[str]) -> None:
    LuigiConfigParser._config_paths = config_paths
    LuigiConfigParser._instance = None
    Register.clear_instance_cache()


@pytest.fixture
def env(tmp_path: Path, mirror: ReleaseMirror) -> Iterator[Env]:
    with configured_env(tmp_path, mirror) as e:
        yield e


@contextmanager
def configured_env(tmp_path: Path, mirror: ReleaseMirror) -> Iterator[Env]:
    """The ``env`` fixture's lake, warehouse and config under ``tmp_path``, for a fixture
    of a wider scope (a module's run that its tests then copy)."""
    original = list(LuigiConfigParser._config_paths)
    e = Env(tmp=tmp_path, config_file=tmp_path / "luigi.cfg")
    e.configure(
        # The suites written for the CSV mirror keep it for every month (2030-01 must be a
        # 404 of the mirror); tests of TLC's Parquet source choose their kind.
        source={"base_url": mirror.base_url, "zones_url": mirror.zones_url, "kind": "csv",
                "parquet_base_url": mirror.parquet_base_url, "timeout": "5",
                "retries": "4", "backoff": "0.01", "backoff_max": "0.2"},
        lake={"root": str(tmp_path / "lake")},
        duckdb={"path": str(tmp_path / "warehouse.duckdb")},
        pipeline={"services": "yellow,green", "sinks": "duckdb"},
        # In-run retries come quickly in tests; the count stays as in luigi.cfg.
        scheduler={"retry_delay": "0.2"},
        # In-process runs keep tasks in this process, so tests can watch their events.
        worker={"wait_interval": "0.1", "wait_jitter": "0.05", "force_multiprocessing": "false"},
    )
    yield e
    reset_luigi(original)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """For `make reliability`: how many fault cases and kill trials ran, and how many ended
    with nothing lost (the test's assertions held)."""
    kinds = {"fault_case": "fault cases", "kill_trial": "kill trials"}
    ran = dict.fromkeys(kinds, 0)
    held = dict.fromkeys(kinds, 0)
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if report.when != "call" and outcome != "error":
                continue
            for kind in kinds:
                if kind in getattr(report, "keywords", {}):  # collection errors have none
                    ran[kind] += 1
                    held[kind] += outcome == "passed"
    if any(ran.values()):
        terminalreporter.write_line("reliability: " + ", ".join(
            f"{ran[k]} {name} ran, {held[k]} ended with nothing lost" for k, name in kinds.items()))
    # Files a test made for people to look at (the coverage page's screenshot).
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for key, value in getattr(report, "user_properties", ()):
                if key == "screenshot":
                    terminalreporter.write_line(f"screenshot ({report.nodeid}): {value}")
    # A kill can hit two tasks at once (with two workers): each counts for its stage.
    stages = Counter(stage for outcome in ("passed", "failed")
                     for report in terminalreporter.stats.get(outcome, [])
                     for key, value in getattr(report, "user_properties", ())
                     if key == "kill_stage" for stage in str(value).split("+"))
    if stages:
        terminalreporter.write_line("kill trials, by the stage each kill hit: " + ", ".join(
            f"{stage} {count}" for stage, count in sorted(stages.items())))
