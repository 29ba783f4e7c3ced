"""The shipped schedule runs the whole job (issue 27): the cron line and the systemd unit's
ExecStart, parsed from deploy/ and run as they stand (this checkout for /srv/nyc-taxi)
against a real local server publishing the first months of every service's calendar. A
first run on an empty lake takes every configured service from its first month; a later
one takes exactly the month published since."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PROJECT, Env
from tests.mirror import ReleaseMirror
from tests.ops.test_whole_history import FILE, asked
from tests.tlc_history import era_of, write_history
from tests.tlc_samples import write_era_month

DEPLOY = PROJECT / "deploy"
ROWS = 300
# The first months of each service's calendar: nothing newer is published (403).
NEWEST = {"yellow": date(2009, 2, 1), "green": date(2013, 9, 1), "fhv": date(2015, 2, 1),
          "fhvhv": date(2019, 3, 1)}


def cron_command() -> str:
    lines = [line for line in (DEPLOY / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    return lines[0].split(maxsplit=5)[5]


def systemd_service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read_string((DEPLOY / "taxi-pipeline-catch-up.service").read_text())
    return unit["Service"]


@pytest.fixture
def first_months(env: Env, tmp_path: Path) -> Iterator[ReleaseMirror]:
    root = tmp_path / "source"
    write_history(root, date(2009, 1, 1), NEWEST, ROWS)
    with ReleaseMirror(root / "release", tlc_root=root / "tlc") as server:
        env.configure(source={"kind": "auto", "base_url": server.base_url,
                              "parquet_base_url": server.parquet_base_url,
                              "zones_url": server.zones_url},
                      pipeline={"services": "yellow,green,fhv,fhvhv"})
        yield server


def months_in(env: Env) -> set[tuple[str, str]]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()]
        return {(t.removesuffix("_tripdata"), f"{m:%Y-%m}") for t in tables
                if t.endswith("_tripdata")
                for (m,) in con.execute(f"SELECT DISTINCT source_month FROM {t}").fetchall()}


def test_the_cron_line_and_the_systemd_unit_run_the_catch_up_of_every_service(
        env: Env, first_months: ReleaseMirror, tmp_path: Path) -> None:
    # cron: the line as cron runs it (sh -c), its log where the line sends it.
    logs = tmp_path / "logs"
    logs.mkdir()
    command = cron_command().replace("/srv/nyc-taxi", str(PROJECT)).replace(
        "/var/log/taxi-pipeline", str(logs))
    run = subprocess.run(["/bin/sh", "-c", command], env=env.env(), timeout=600, check=False)
    log = (logs / "catch-up.log").read_text()
    assert run.returncode == 0, log[-3000:]
    expected = {("yellow", "2009-01"), ("yellow", "2009-02"), ("green", "2013-08"),
                ("green", "2013-09"), ("fhv", "2015-01"), ("fhv", "2015-02"),
                ("fhvhv", "2019-02"), ("fhvhv", "2019-03")}
    assert months_in(env) == expected
    for service, first in (("green", "2013-08"), ("fhv", "2015-01"), ("fhvhv", "2019-02")):
        assert f"catch-up: {service}: none complete yet, newest published " in log
        assert f"ingesting {first} .. " in log
    # Nothing asked before a service began.
    for service, month in asked(first_months):
        assert month >= f"{min(m for s, m in expected if s == service)}", (service, month)

    # TLC publishes yellow 2009-03; the systemd unit's ExecStart takes it, and only it.
    write_era_month(Path(first_months.tlc_root or "") / "yellow_tripdata_2009-03.parquet",
                    era_of("yellow", date(2009, 3, 1)), ROWS)
    service = systemd_service()
    argv = shlex.split(service["ExecStart"].replace("/srv/nyc-taxi", str(PROJECT)))
    workdir = service["WorkingDirectory"].replace("/srv/nyc-taxi", str(PROJECT))
    gets = len([s for s in first_months.served if s.method == "GET" and FILE.search(s.path)])
    unit = subprocess.run(argv, cwd=workdir, env=env.env(), capture_output=True, text=True,
                          timeout=600, check=False)
    assert unit.returncode == 0, unit.stderr[-3000:]
    assert "catch-up: yellow: last complete 2009-02, newest published 2009-03: ingesting " \
           "2009-03 .. 2009-03" in unit.stderr
    assert re.search(r"catch-up: green: last complete 2013-09, newest published 2013-09: "
                     r"up to date", unit.stderr)
    assert months_in(env) == expected | {("yellow", "2009-03")}
    downloads = [s.path for s in first_months.served if s.method == "GET"
                 and FILE.search(s.path)]
    assert len(downloads) == gets + 1 and downloads[-1].endswith("yellow_tripdata_2009-03.parquet")

