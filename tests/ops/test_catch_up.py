"""Catching up to the newest month published (issue 12): ``backfill --end latest`` and the
``catch-up`` job probe forward with HEAD requests until a month is not published (TLC's
host answers 403 AccessDenied for it), against a real local server laid out like TLC's
CloudFront; a month not published reads the same whichever way the host says so; the
cron line and the systemd units in deploy/ run and verify."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.demo import samples
from pipeline.ops.cli import parser
from tests import tlc_samples
from tests.conftest import PROJECT, Env
from tests.mirror import ReleaseMirror
from tests.ports import free_port

ROWS = 400
PUBLISHED = {"yellow": ["2026-03", "2026-04", "2026-05", "2026-06", "2026-07"],
             "green": ["2026-03", "2026-04", "2026-05"]}
DEPLOY = PROJECT / "deploy"


def month(key: str) -> date:
    return date(int(key[:4]), int(key[5:]), 1)


def publish(root: Path, service: str, key: str) -> None:
    era = next(e for e in tlc_samples.ERAS if e.key == f"{service}-2026-06")
    table = tlc_samples.era_month(era, ROWS, seed=month(key).month).source
    # The values of the era's month, under this month's name (its pickups fall in June:
    # counted as outside the month, which is allowed).
    pq.write_table(table, root / f"{service}_tripdata_{key}.parquet")


@pytest.fixture
def tlc(tmp_path: Path) -> Iterator[tuple[ReleaseMirror, Path]]:
    release, tlc_root = tmp_path / "release", tmp_path / "tlc"
    samples.write_zones(release / "misc" / "taxi_zone_lookup.csv")
    tlc_root.mkdir()
    for service, keys in PUBLISHED.items():
        for key in keys:
            publish(tlc_root, service, key)
    with ReleaseMirror(release, tlc_root=tlc_root) as server:
        yield server, tlc_root


@pytest.fixture
def tlc_env(env: Env, tlc: tuple[ReleaseMirror, Path]) -> Env:
    server, _ = tlc
    env.configure(source={"kind": "parquet", "parquet_base_url": server.parquet_base_url,
                          "zones_url": server.zones_url},
                  scheduler={"retry_count": "1"})
    return env


def months_in(env: Env, service: str) -> list[str]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        if (f"{service}_tripdata",) not in tables:
            return []
        found = con.execute(f"SELECT DISTINCT source_month FROM {service}_tripdata "
                            "ORDER BY 1").fetchall()
    return [f"{m:%Y-%m}" for (m,) in found]


def test_backfill_to_latest_stops_at_the_last_published_month(
        tlc_env: Env, tlc: tuple[ReleaseMirror, Path]) -> None:
    server, _ = tlc
    run = tlc_env.command("taxi-pipeline", "backfill", "--start", "2026-04", "--end", "latest",
                          "--services", "yellow,green", "--local-scheduler")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "backfill: yellow: none complete yet, newest published 2026-07: ingesting " \
           "2026-04 .. 2026-07" in run.stderr
    assert "backfill: green: none complete yet, newest published 2026-05: ingesting " \
           "2026-04 .. 2026-05" in run.stderr
    assert months_in(tlc_env, "yellow") == ["2026-04", "2026-05", "2026-06", "2026-07"]
    assert months_in(tlc_env, "green") == ["2026-04", "2026-05"]
    # The probe asked (HEAD) for the first month not published, and no further.
    for service, first_missing, beyond in (("yellow", "2026-08", "2026-09"),
                                           ("green", "2026-06", "2026-07")):
        asked = server.requests_for(f"{service}_tripdata_{first_missing}.parquet")
        assert [(s.method, s.status) for s in asked] == [("HEAD", 403)]
        assert server.requests_for(f"{service}_tripdata_{beyond}.parquet") == []
    # Nothing before --start was fetched.
    assert server.requests_for("yellow_tripdata_2026-03.parquet", "GET") == []


def test_catch_up_starts_after_the_last_complete_month(
        tlc_env: Env, tlc: tuple[ReleaseMirror, Path]) -> None:
    server, tlc_root = tlc
    empty = tlc_env.command("taxi-pipeline", "catch-up", "--services", "yellow",
                            "--local-scheduler")
    # With nothing in the lake, a catch-up starts at the service's first month (yellow
    # 2009-01), which this source does not publish: nothing to ingest.
    assert empty.returncode == 0, empty.stderr[-3000:]
    assert "catch-up: yellow: none complete yet, nothing published from 2009-01: up to date" \
        in empty.stderr
    first = tlc_env.command("taxi-pipeline", "catch-up", "--services", "yellow", "--start",
                            "2026-06", "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    assert months_in(tlc_env, "yellow") == ["2026-06", "2026-07"]
    # TLC publishes the next month; the daily job takes it, and only it.
    publish(tlc_root, "yellow", "2026-08")
    before = len(server.requests_for("yellow_tripdata_2026-07.parquet", "GET"))
    nightly = tlc_env.command("taxi-pipeline", "catch-up", "--services", "yellow",
                              "--local-scheduler")
    assert nightly.returncode == 0, nightly.stderr[-3000:]
    assert "catch-up: yellow: last complete 2026-07, newest published 2026-08: ingesting " \
           "2026-08 .. 2026-08" in nightly.stderr
    assert months_in(tlc_env, "yellow") == ["2026-06", "2026-07", "2026-08"]
    assert len(server.requests_for("yellow_tripdata_2026-07.parquet", "GET")) == before
    # Up to date: nothing to run, exit 0.
    again = tlc_env.command("taxi-pipeline", "catch-up", "--services", "yellow",
                            "--local-scheduler")
    assert again.returncode == 0
    assert "catch-up: yellow: last complete 2026-08, newest published 2026-08: up to date" \
        in again.stderr
    assert len(server.requests_for("yellow_tripdata_2026-08.parquet", "GET")) == 1


def test_not_published_reads_the_same_from_403_and_404(
        tlc_env: Env, tlc: tuple[ReleaseMirror, Path], mirror: ReleaseMirror) -> None:
    server, _ = tlc
    tlc_run = tlc_env.command("taxi-pipeline", "ingest", "--month", "2026-08", "--services",
                              "fhv", "--local-scheduler")
    tlc_env.configure(source={"kind": "csv", "base_url": mirror.base_url})
    csv_run = tlc_env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services",
                              "yellow", "--local-scheduler")
    assert tlc_run.returncode == csv_run.returncode == 30
    url = f"{server.parquet_base_url}/fhv_tripdata_2026-08.parquet"
    assert (f"DISABLED DownloadMonth(service=fhv, month=2026-08): NotPublished: fhv 2026-08 is "
            f"not published at {url} (HTTP 403 AccessDenied)") in tlc_run.stderr
    assert re.search(r"NotPublished: yellow 2030-01 is not published at http://127\.0\.0\.1:\d+"
                     r"/\S+/yellow_tripdata_2030-01\.csv\.gz \(HTTP 404\)", csv_run.stderr)
    for run in (tlc_run, csv_run):
        assert "Traceback" not in run.stderr and "Forbidden" not in run.stderr
    # status says "not published yet" for both: not a problem (exit 0).
    csv_status = tlc_env.command("taxi-pipeline", "status", "--start", "2030-01", "--end",
                                 "2030-01", "--services", "yellow", "--format", "json")
    tlc_env.configure(source={"kind": "parquet"})
    tlc_status = tlc_env.command("taxi-pipeline", "status", "--start", "2026-08", "--end",
                                 "2026-08", "--services", "fhv", "--format", "json")
    for status in (csv_status, tlc_status):
        assert status.returncode == 0
        assert '"state": "not published yet"' in status.stdout, status.stdout


def test_the_cron_line_runs_the_catch_up(tlc_env: Env, tmp_path: Path) -> None:
    lines = [line for line in (DEPLOY / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    minute, hour, day, month_field, weekday, command = lines[0].split(maxsplit=5)
    assert (int(minute), int(hour), day, month_field, weekday) == (15, 6, "*", "*", "*")
    job = re.search(r"\.venv/bin/taxi-pipeline (.*?) >>", command)
    assert job and parser().parse_args(job.group(1).split()).func.__name__ == "catch_up"
    # The line as cron runs it, with this checkout for /srv/nyc-taxi.
    logs = tmp_path / "logs"
    logs.mkdir()
    command = command.replace("/srv/nyc-taxi", str(PROJECT)).replace(
        "/var/log/taxi-pipeline", str(logs)).replace(
        "taxi-pipeline catch-up", "taxi-pipeline catch-up --start 2026-07")
    run = subprocess.run(["/bin/sh", "-c", command], env=tlc_env.env(), timeout=300,
                         check=False)
    log = (logs / "catch-up.log").read_text()
    assert run.returncode == 0, log[-3000:]
    assert months_in(tlc_env, "yellow") == ["2026-07"]
    assert months_in(tlc_env, "green") == []  # green 2026-07 is not published
    assert "green: none complete yet, nothing published from 2026-07: up to date" in log


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    service = (DEPLOY / "taxi-pipeline-catch-up.service").read_text()
    timer = (DEPLOY / "taxi-pipeline-catch-up.timer").read_text()
    assert "ExecStart=/srv/nyc-taxi/.venv/bin/taxi-pipeline catch-up" in service
    assert "Type=oneshot" in service and "Persistent=true" in timer
    # As installed on this host: this checkout, this user.
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                     text=True, check=True).stdout.strip()
    (tmp_path / "taxi-pipeline-catch-up.service").write_text(
        service.replace("/srv/nyc-taxi", str(PROJECT)).replace("User=taxi", f"User={user}"))
    (tmp_path / "taxi-pipeline-catch-up.timer").write_text(timer)
    verify = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "taxi-pipeline-catch-up.service"),
         str(tmp_path / "taxi-pipeline-catch-up.timer")],
        capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stderr
    # A broken timer is caught, so the check above can fail.
    (tmp_path / "taxi-pipeline-catch-up.timer").write_text(
        timer.replace("OnCalendar=*-*-* 06:15:00", "OnCalendar=every morning"))
    broken = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "taxi-pipeline-catch-up.service"),
         str(tmp_path / "taxi-pipeline-catch-up.timer")],
        capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode != 0
    calendar = subprocess.run([analyze, "calendar", "*-*-* 06:15:00"], capture_output=True,
                              text=True, timeout=30, check=False)
    assert calendar.returncode == 0 and "06:15:00" in calendar.stdout


def test_a_source_that_does_not_answer_stops_the_job_on_one_line(tlc_env: Env) -> None:
    closed = f"http://127.0.0.1:{free_port()}/trip-data"  # nothing listens there
    tlc_env.configure(source={"parquet_base_url": closed, "backoff": "0.01"})
    run = tlc_env.command("taxi-pipeline", "catch-up", "--services", "yellow", "--start",
                          "2026-06", "--local-scheduler", timeout=120)
    assert run.returncode == 30
    assert run.stderr.strip().splitlines() == [
        f"error: yellow 2026-06: HEAD {closed}/yellow_tripdata_2026-06.parquet failed: "
        "connection failed (ConnectionError)"]
    status = tlc_env.command("taxi-pipeline", "status", "--start", "2026-06", "--end",
                             "2026-06", "--services", "yellow", "--format", "json")
    assert status.returncode == 3  # could not tell
    assert '"state": "could not tell"' in status.stdout
    assert '"detail": "not downloaded (source unreachable)"' in status.stdout
