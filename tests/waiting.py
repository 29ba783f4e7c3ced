"""Waiting on a fact with a deadline, the one way tests and fixtures wait: never a fixed
sleep that decides an outcome."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
TAIL_CHARS = 2000


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *,
               process: subprocess.Popen | None = None, log: Path | None = None,
               interval: float = 0.05) -> T:
    """Ask ``predicate`` until it answers something true, and return that answer.

    Fails (AssertionError naming ``what``) once ``timeout`` seconds have passed, or as soon
    as ``process`` has ended, since what it was to bring about can no longer come; the
    failure quotes the tail of ``log`` when given."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if answer:
            return answer
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process ended (exit {process.returncode}) "
                                 f"first{_tail(log)}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not so after {timeout:g} s{_tail(log)}")
        time.sleep(interval)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "; log:\n" + log.read_text(errors="replace")[-TAIL_CHARS:]
