"""The whole history in one command (issue 27): every month of every service's calendar,
served small in each era's schema by a real local server (CSV mirror months as the course's
release has them, every other month as TLC's CloudFront: 403 for a month not published),
ingested through a real luigid. Exact rows for every month, nothing asked before a service
began, about one line per month, a second run that does nothing, a status that exits 0, and
a --dry-run that lists exactly what the run then did.

The default suite runs a short history that crosses fhvhv's first month (and green's,
with an explicit end); the full calendar (605 service-months) is marked slow.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.core.datasets import SERVICES
from pipeline.core.months import month_key, months_between
from tests.conftest import Env
from tests.fixtures_scheduler import Luigid
from tests.mirror import ReleaseMirror
from tests.tlc_history import write_history

ROWS = 500
ALL = "yellow,green,fhv,fhvhv"
# The real calendar as of this writing: TLC's newest months (fhv lags: 2026-08 is missing).
NEWEST = {"yellow": date(2026, 10, 1), "green": date(2026, 10, 1), "fhv": date(2026, 7, 1),
          "fhvhv": date(2026, 10, 1)}
FILE = re.compile(r"(yellow|green|fhv|fhvhv)_tripdata_(\d{4}-\d{2})\.")


class History:
    def __init__(self, root: Path, start: date, newest: dict[str, date]) -> None:
        self.rows = write_history(root, start, newest, ROWS)
        self.mirror = ReleaseMirror(root / "release", tlc_root=root / "tlc").start()

    def asked(self, method: str | None = None) -> set[tuple[str, str]]:
        return asked(self.mirror, method)


def asked(mirror: ReleaseMirror, method: str | None = None) -> set[tuple[str, str]]:
    """(service, YYYY-MM) of every month the source was asked about (``method`` only)."""
    found = set()
    for served in mirror.served:
        match = FILE.search(served.path)
        if match and method in (None, served.method):
            found.add((match.group(1), match.group(2)))
    return found


def serve(env: Env, root: Path, start: date, newest: dict[str, date]) -> Iterator[History]:
    history = History(root, start, newest)
    env.configure(source={"kind": "auto", "base_url": history.mirror.base_url,
                          "parquet_base_url": history.mirror.parquet_base_url,
                          "zones_url": history.mirror.zones_url},
                  pipeline={"services": ALL})
    yield history
    history.mirror.stop()


@pytest.fixture
def short_history(env: Env, tmp_path: Path) -> Iterator[History]:
    """2018-12 .. 2019-03 of every service (fhvhv from 2019-02); nothing newer published."""
    newest = dict.fromkeys(SERVICES, date(2019, 3, 1))
    yield from serve(env, tmp_path / "source", date(2018, 12, 1), newest)


def in_warehouse(env: Env) -> dict[tuple[str, str], int]:
    found = {}
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        tables = {name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        for service in SERVICES:
            if f"{service}_tripdata" not in tables:
                continue
            for month, rows in con.execute(
                    f"SELECT source_month, count(*) FROM {service}_tripdata GROUP BY 1").fetchall():
                found[(service, month_key(month))] = rows
    return found


def planned(stderr: str, job: str) -> set[tuple[str, str]]:
    """The months a --dry-run lists: ``backfill: yellow: not ingested: 2018-11 .. 2019-03,
    2019-05 (6 months)``."""
    found = set()
    for service, spans in re.findall(rf"^{job}: (\w+): not ingested: (.*) \(\d+ months?\)$",
                                     stderr, re.MULTILINE):
        for span in spans.split(", "):
            first, _, last = span.partition(" .. ")
            start = date(int(first[:4]), int(first[5:]), 1)
            end = date(int(last[:4]), int(last[5:]), 1) if last else start
            found |= {(service, month_key(m)) for m in months_between(start, end)}
    return found


def check_whole_history(env: Env, luigid: Luigid, history: History, start: str,
                        end_of_status: str) -> None:
    command = ("taxi-pipeline", "backfill", "--start", start, "--end", "latest",
               "--services", ALL, "--workers", "2")
    dry = env.command(*command, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "backfill: dry run: nothing was run" in dry.stderr
    assert history.asked("GET") == set()  # a plan downloads nothing
    plan = planned(dry.stderr, "backfill")
    assert plan == set(history.rows)

    run = env.command(*command, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    # Exact rows for every month of every service, and nothing else.
    assert in_warehouse(env) == history.rows
    # The plan was exactly what the run did: each month downloaded once, no other.
    downloads = [m for s in history.mirror.served if s.method == "GET"
                 and (m := FILE.search(s.path))]
    assert sorted((m.group(1), m.group(2)) for m in downloads) == sorted(plan)
    # Nothing asked, not even a HEAD, before a service began.
    for service, month in history.asked():
        assert month >= f"{SERVICES[service].first_month:%Y-%m}", (service, month)
    # About one line per month (its "done" line), no DEBUG, no scheduling chatter.
    lines = run.stderr.splitlines()
    assert len(lines) <= 2 * len(history.rows) + 20, "\n".join(lines[:80])
    assert not [line for line in lines if "DEBUG" in line or "INFO" in line]
    done = [line for line in lines
            if re.fullmatch(r"progress: \d+/\d+ months done, [\d,]+ rows: \w+ [\d-]+ done",
                            line)]
    assert len(done) == len(history.rows), run.stderr[-3000:]
    for service in ("green", "fhv", "fhvhv"):
        first = SERVICES[service].first_month
        if date(int(start[:4]), int(start[5:]), 1) < first:
            assert f"backfill: {service}: begins {first:%Y-%m}: " in run.stderr

    again = env.command(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "backfill: every month of the range that exists is complete: nothing to run" \
        in again.stderr
    assert len(downloads) == len([s for s in history.mirror.served if s.method == "GET"
                                  and FILE.search(s.path)])

    status = env.command("taxi-pipeline", "status", "--start", start, "--end", end_of_status,
                         "--services", ALL)
    assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-2000:]


def test_the_whole_history_command_on_a_short_history(env: Env, luigid: Luigid,
                                                      short_history: History) -> None:
    check_whole_history(env, luigid, short_history, "2018-12", "2019-06")


def test_an_explicit_range_is_clipped_to_each_service_calendar(env: Env,
                                                               tmp_path: Path) -> None:
    newest = {"green": date(2013, 9, 1), "fhv": date(2015, 1, 1)}
    for history in serve(env, tmp_path / "source", date(2013, 6, 1), newest):
        args = ("taxi-pipeline", "backfill", "--start", "2013-06", "--end", "2013-09",
                "--services", "green,fhv", "--local-scheduler")
        dry = env.command(*args, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "backfill: green: begins 2013-08: 2013-06 .. 2013-07 skipped (before the " \
               "service began)" in dry.stderr
        assert "backfill: fhv: 2013-06 .. 2013-09 is before the service began (2015-01): " \
               "nothing to do" in dry.stderr
        assert planned(dry.stderr, "backfill") == {("green", "2013-08"), ("green", "2013-09")}
        run = env.command(*args)
        assert run.returncode == 0, run.stderr[-3000:]
        assert in_warehouse(env) == {("green", "2013-08"): ROWS, ("green", "2013-09"): ROWS}
        assert history.asked() == {("green", "2013-08"), ("green", "2013-09")}
        # status: the months before a service began are no problem (and not in the table).
        status = env.command("taxi-pipeline", "status", "--start", "2013-06", "--end",
                             "2013-09", "--services", "green,fhv")
        assert status.returncode == 0, status.stdout
        assert [line.split()[:2] for line in status.stdout.splitlines()[1:]] == [
            ["2013-08", "green"], ["2013-09", "green"]]
        assert "status: fhv: 2013-06 .. 2013-09 is before the service began" in status.stderr
        refresh = env.command("taxi-pipeline", "refresh", "--start", "2013-06", "--end",
                              "2013-09", "--services", "green,fhv", "--dry-run",
                              "--local-scheduler")
        assert refresh.returncode == 0, refresh.stderr
        assert "refresh: green: begins 2013-08: 2013-06 .. 2013-07 skipped (before the " \
               "service began)" in refresh.stderr
        assert "refresh: 0 of the 2 months the lake holds were re-published upstream" \
            in refresh.stderr
        assert history.asked() == {("green", "2013-08"), ("green", "2013-09")}


@pytest.mark.slow
def test_the_whole_history_command_on_the_real_calendar(env: Env, luigid: Luigid,
                                                        tmp_path: Path) -> None:
    for history in serve(env, tmp_path / "source", date(2009, 1, 1), NEWEST):
        assert len(history.rows) == 605
        check_whole_history(env, luigid, history, "2009-01", "2026-10")
        by_service = defaultdict(int)
        for service, _ in history.rows:
            by_service[service] += 1
        assert by_service == {"yellow": 214, "green": 159, "fhv": 139, "fhvhv": 93}


def test_the_newest_month_is_probed_a_year_at_a_time_and_stops_at_a_gap(
        env: Env, tmp_path: Path) -> None:
    from pipeline.ops.upstream import newest_published

    until = date(2026, 12, 1)
    for history in serve(env, tmp_path / "source", date(2013, 8, 1),
                         {"green": date(2016, 3, 1)}):
        assert newest_published("green", date(2009, 1, 1), until) == date(2016, 3, 1)
        heads = [s for s in history.mirror.served if s.method == "HEAD"]
        # Its first month and each December (14), then 2016's months: not ~40 one by one.
        assert len(heads) == 14 + 12
        assert min(month for _, month in history.asked()) == "2013-08"
        # A year whose December is missing is probed month by month: the probe ends at the
        # first month not published, as a forward probe does. (A gap inside an older year
        # whose December is published is not probed: the run fails that month on one line.)
        (tmp_path / "source" / "tlc" / "green_tripdata_2014-12.parquet").unlink()
        (tmp_path / "source" / "tlc" / "green_tripdata_2015-12.parquet").unlink()
        assert newest_published("green", date(2013, 8, 1), until) == date(2014, 11, 1)
