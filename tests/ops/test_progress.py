"""Progress of a batch job as a user sees it: plain lines when the output is not a
terminal (cron, CI), one live line drawn by rich on a terminal (a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from tests.conftest import BIN, Env, Release


def test_without_a_terminal_each_month_done_is_one_plain_line(env: Env,
                                                               release: Release) -> None:
    run = env.command("taxi-pipeline", "backfill", "--start", "2020-12", "--end", "2021-01",
                      "--services", "yellow", "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("progress: ")]
    rows = release.of("yellow", "2020-12").rows + release.of("yellow", "2021-01").rows
    assert lines[0] == "progress: 0/2 months to check or ingest"
    assert "progress: 1/2 months done" in lines[1]
    assert lines[-1] == f"progress: 2/2 months done, {rows:,} rows"
    assert "\x1b[" not in run.stderr  # no terminal control codes in a log file


def test_on_a_terminal_a_live_line_shows_months_rows_and_the_running_task(
        env: Env, release: Release) -> None:
    controller, terminal = pty.openpty()
    run = subprocess.Popen(
        [str(BIN / "taxi-pipeline"), "ingest", "--month", "2021-01", "--services", "yellow",
         "--local-scheduler"],
        cwd=env.tmp, env={**env.env(), "COLUMNS": "160", "TERM": "xterm"},
        stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the job closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif run.poll() is not None:
            break
    assert run.wait(timeout=30) == 0
    os.close(controller)
    text = screen.decode("utf-8", "replace")
    rows = release.of("yellow", "2021-01").rows
    assert "\x1b[" in text  # drawn live: the line is redrawn in place
    assert "1/1 months" in text
    assert f"{rows:,} rows" in text
    assert "progress: 1/1 months done" in text  # the closing summary line
