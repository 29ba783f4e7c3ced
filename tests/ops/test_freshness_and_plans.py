"""Freshness, plans and quiet output (issue 27), against a real local server laid out like
TLC's CloudFront whose files carry their Last-Modified: ``status --stale-after DAYS`` and
catch-up's ``[notify] stale_after_days`` fail and alert (a real webhook receiver) only for
a month published longer ago than DAYS and still not complete; ``--dry-run`` of catch-up
and refresh lists what would run, in status's words, and downloads nothing; off a terminal
luigi's own log is quiet unless --verbose."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from pipeline.demo import samples
from tests import tlc_samples
from tests.conftest import Env
from tests.mirror import ReleaseMirror
from tests.ops.test_notify import Hook, _hook_server
from tests.ports import free_port
from tests.tlc_history import era_of

ROWS = 400
MONTHS = ("2026-03", "2026-04", "2026-05", "2026-06")
OLD = ("2026-03", "2026-04")  # published 90 days ago; the others 5 days ago
DAY = 86_400


def tlc_file(root: Path, key: str) -> Path:
    return root / f"yellow_tripdata_{key}.parquet"


@pytest.fixture
def source(env: Env, tmp_path: Path) -> Iterator[tuple[ReleaseMirror, Path, Hook]]:
    release, tlc = tmp_path / "release", tmp_path / "tlc"
    samples.write_zones(release / "misc" / "taxi_zone_lookup.csv")
    now = time.time()
    for key in MONTHS:
        path = tlc_file(tlc, key)
        tlc_samples.write_era_month(path, era_of("yellow", date(int(key[:4]), int(key[5:]), 1)),
                                    ROWS)
        age = 90 * DAY if key in OLD else 5 * DAY
        os.utime(path, (now - age, now - age))
    hook = Hook()
    receiver = _hook_server(hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with ReleaseMirror(release, tlc_root=tlc) as server:
        env.configure(source={"kind": "parquet", "parquet_base_url": server.parquet_base_url,
                              "zones_url": server.zones_url},
                      scheduler={"retry_count": "1"},
                      notify={"webhook_url": f"http://127.0.0.1:{receiver.server_address[1]}/h"})
        yield server, tlc, hook
    receiver.shutdown()


def gets(server: ReleaseMirror) -> list[str]:
    return [s.path for s in server.served if s.method == "GET" and "tripdata" in s.path]


def test_status_is_stale_only_for_months_published_longer_ago_than_the_limit(
        env: Env, source: tuple[ReleaseMirror, Path, Hook]) -> None:
    _, _, hook = source
    first = env.command("taxi-pipeline", "backfill", "--start", "2026-03", "--end", "2026-03",
                        "--services", "yellow", "--local-scheduler")
    assert first.returncode == 0, first.stderr[-2000:]
    args = ("taxi-pipeline", "status", "--start", "2026-03", "--end", "2026-07",
            "--services", "yellow")
    plain = env.command(*args)
    assert plain.returncode == 1  # three months published and not ingested
    assert hook.posts == []
    stale = env.command(*args, "--stale-after", "30")
    assert stale.returncode == 1, stale.stdout
    lines = [line for line in stale.stderr.splitlines() if "STALE" in line]
    assert len(lines) == 1 and lines[0].startswith("status: STALE yellow 2026-04: not ingested, "
                                                   "published "), stale.stderr
    assert len(hook.posts) == 1
    assert "STALE yellow 2026-04" in hook.posts[0][1]["text"]
    assert "2026-05" not in hook.posts[0][1]["text"]
    # Every month not complete was published less than 100 days ago: nothing stale.
    fresh = env.command(*args, "--stale-after", "100")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert len(hook.posts) == 1
    # The table says what to do in words: not published yet is no problem.
    rows = {line.split()[0]: line for line in plain.stdout.splitlines()[1:]}
    assert rows["2026-04"].endswith("not ingested: not downloaded")
    assert rows["2026-07"].endswith("not published yet: not published")
    bad = env.command(*args, "--stale-after", "-1")
    assert bad.returncode == 40
    assert bad.stderr.strip().splitlines() == [
        "error: --stale-after takes a number of days, 0 or more"]


def test_catch_up_alerts_about_a_month_long_published_that_keeps_failing(
        env: Env, source: tuple[ReleaseMirror, Path, Hook]) -> None:
    _, tlc, hook = source
    # TLC's 2026-04 is broken (not Parquet), and has been for 90 days.
    broken = tlc_file(tlc, "2026-04")
    stamp = broken.stat().st_mtime
    broken.write_bytes(b"not a parquet file" * 100)
    os.utime(broken, (stamp, stamp))
    env.configure(notify={"stale_after_days": "30"})
    run = env.command("taxi-pipeline", "catch-up", "--start", "2026-03", "--services",
                      "yellow", "--local-scheduler")
    assert run.returncode == 30, run.stderr[-3000:]
    stale = [line for line in run.stderr.splitlines() if "STALE" in line]
    assert len(stale) == 1 and stale[0].startswith("catch-up: STALE yellow 2026-04: "), \
        run.stderr[-3000:]
    texts = [body["text"] for _, body in hook.posts]
    assert any("STALE yellow 2026-04" in text for text in texts)  # the freshness alert
    assert len(texts) == 2  # and the failure alert of the run itself


def test_dry_runs_list_what_would_run_and_download_nothing(
        env: Env, source: tuple[ReleaseMirror, Path, Hook]) -> None:
    server, tlc, _ = source
    dry = env.command("taxi-pipeline", "catch-up", "--start", "2026-03", "--services",
                      "yellow", "--dry-run", "--local-scheduler")
    assert dry.returncode == 0, dry.stderr
    assert "catch-up: yellow: not ingested: 2026-03 .. 2026-06 (4 months)" in dry.stderr
    assert "catch-up: dry run: nothing was run" in dry.stderr
    assert gets(server) == []
    run = env.command("taxi-pipeline", "catch-up", "--start", "2026-03", "--services",
                      "yellow", "--local-scheduler")
    assert run.returncode == 0, run.stderr[-3000:]
    # Off a terminal, no luigi chatter: the plan, a line per month done, the summary.
    assert not [line for line in run.stderr.splitlines() if " INFO " in line
                or "DEBUG" in line or "Luigi Execution Summary" in line]
    assert len(run.stderr.splitlines()) <= 2 * len(MONTHS) + 8, run.stderr
    fetched = len(gets(server))

    # TLC re-writes 2026-05.
    tlc_samples.write_era_month(tlc_file(tlc, "2026-05"), era_of("yellow", date(2026, 5, 1)),
                                ROWS, seed=7)
    refresh = env.command("taxi-pipeline", "refresh", "--start", "2026-03", "--end", "2026-06",
                          "--services", "yellow", "--dry-run", "--local-scheduler")
    assert refresh.returncode == 0, refresh.stderr
    assert "refresh: yellow 2026-05 re-published upstream (ETag " in refresh.stderr
    assert "refresh: 1 of the 4 months the lake holds were re-published upstream" \
        in refresh.stderr
    assert "refresh: dry run: nothing was run" in refresh.stderr
    assert len(gets(server)) == fetched
    # --verbose gives luigi's own log back.
    verbose = env.command("taxi-pipeline", "refresh", "--start", "2026-05", "--end", "2026-05",
                          "--services", "yellow", "--local-scheduler", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert " INFO " in verbose.stderr or "DEBUG" in verbose.stderr
    assert len(gets(server)) == fetched + 1


def test_status_could_not_tell_when_a_warehouse_does_not_answer(
        env: Env, source: tuple[ReleaseMirror, Path, Hook]) -> None:
    closed = free_port()  # nothing listens there
    env.configure(pipeline={"sinks": "duckdb,postgres"},
                  postgres={"url": f"postgresql://taxi@127.0.0.1:{closed}/taxi",
                            "connect_timeout": "2"})
    run = env.command("taxi-pipeline", "status", "--start", "2026-03", "--end", "2026-04",
                      "--services", "yellow")
    assert run.returncode == 3, run.stdout + run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("status: could not tell: ") and f"127.0.0.1:{closed}" in line
