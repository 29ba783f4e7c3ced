"""How hard to ask the source: a ``RetryPolicy`` for a download and a cheaper one for a
question (an HTTP HEAD). Built from ``[source]`` settings the task layer hands in."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import config


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: timeouts in seconds, attempts including the first, back-off."""

    timeout: float = 60.0
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0


def download_policy(s: config.source) -> RetryPolicy:
    """A month's download: ``[source] timeout``, ``retries``, ``backoff``, ``backoff_max``."""
    return RetryPolicy(timeout=s.timeout, attempts=s.retries, backoff=s.backoff,
                       backoff_max=s.backoff_max)


def probe_policy(s: config.source) -> RetryPolicy:
    """A question to the source (HEAD) is cheap and asked of many months at once (status,
    catch-up, refresh): at most 10 s each and two attempts, so a source that does not
    answer stops a job in seconds, not in minutes."""
    return RetryPolicy(timeout=min(10.0, s.timeout), attempts=min(2, s.retries),
                       backoff=s.backoff, backoff_max=min(10.0, s.backoff_max))
