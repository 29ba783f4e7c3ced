"""A job stopped by SIGTERM (systemd, kill) or SIGINT (Ctrl-C): its task processes end
within seconds, it prints one line, and it exits 128 + the signal's number (143, 130).

luigi's worker leaves its forked task processes running when the job's own process ends,
and prints a traceback for Ctrl-C. Here the job's process ends every process it started
(SIGTERM, then SIGKILL after ``GRACE`` seconds), then itself. What a killed task was
writing is never under a final name (every output is written atomically), so the next run
of the month does it again and finishes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

# Seconds a task process gets to end after SIGTERM before it is killed.
GRACE = 5.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)

_job_pid: int | None = None
_job = "taxi-pipeline"
# Called with the signal's name once the task processes have ended (e.g. telling the
# central scheduler that what this job was running stopped); each is best-effort.
_hooks: list[Callable[[str], None]] = []


def on_stop(hook: Callable[[str], None]) -> None:
    """Call ``hook(signal name)`` when the job is stopped by a signal."""
    _hooks.append(hook)


def install(job: str) -> None:
    """Handle SIGTERM and SIGINT in this (the job's) process and the task processes it forks."""
    global _job_pid, _job
    _job_pid, _job = os.getpid(), job
    for signum in SIGNALS:
        signal.signal(signum, _stop)


def _stop(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _job_pid:
        # A forked task process: end as the signal's default would, now.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for other in SIGNALS:  # a second signal while stopping changes nothing
        signal.signal(other, signal.SIG_IGN)
    ended = end_processes(descendants(os.getpid()))
    name = signal.Signals(signum).name
    for hook in _hooks:
        with contextlib.suppress(Exception):
            hook(name)
    print(f"{_job}: stopped by {name}: {ended} task process(es) ended; nothing half-written "
          "is kept, run it again to finish", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop(0)
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def end_processes(pids: list[int]) -> int:
    """SIGTERM to each of ``pids``, SIGKILL to those alive after GRACE; how many there were."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    for pid in pids:
        _alive(pid)  # reaps the job's own children
    return len(pids)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of another parent counts as ended
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False
