"""The project's one producer/consumer pair: items handed in order from one thread to
another through a bounded queue (``Handoff``), and the helper thread that runs one side
(``Worker``), with one model for stopping and for errors:

- the producer ``put``\\s items (waiting while ``depth`` are queued) and ``end``\\s the
  stream, or hands the consumer its error with ``fail`` (raised where the consumer
  iterates);
- a ``Worker`` keeps the exception its target raised (``error``, raised by ``result()``)
  and may ``stop`` the hand-over on it, so the other side never waits for it;
- ``stop()`` (either side, or whoever owns both) ends every wait at once: a waiting ``put``
  or iteration raises ``Stopped``, and nothing more is handed over.

Users: the download's body check (``pipeline.source.checks.BackgroundCheck``), the CSV
conversion's inflate thread and its stream entry (``pipeline.convert.parquetize``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How often a waiting side looks whether the hand-over was stopped. A put or get that can
# go ahead does so at once; this only bounds how long a stop takes to be seen.
_POLL = 0.1


class Stopped(Exception):
    """The hand-over was stopped: nothing more is handed over."""


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Handoff(Generic[T]):
    """Items of type ``T`` from a producer to a consumer, in order, at most ``depth``
    waiting. Iterating (once, on the consumer's thread) yields them until ``end()``."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[T | _End | _Failed] = queue.Queue(depth)
        self._stop = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def put(self, item: T) -> None:
        """Queue ``item``, waiting for room; Stopped once the hand-over is stopped."""
        self._put(item)

    def end(self) -> None:
        """No more items: the consumer's iteration ends (nothing to do once stopped)."""
        self._put_unless_stopped(_End())

    def fail(self, error: BaseException) -> None:
        """Hand ``error`` to the consumer instead of more items."""
        self._put_unless_stopped(_Failed(error))

    def __iter__(self) -> Iterator[T]:
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _put(self, item: T | _End | _Failed) -> None:
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _put_unless_stopped(self, item: _End | _Failed) -> None:
        with contextlib.suppress(Stopped):
            self._put(item)


class Worker(Generic[R]):
    """``target`` on a helper (daemon) thread, started at once. Its exception is kept
    (``error``) and raised by ``result()``; ``on_error`` runs on the helper thread when it
    fails (typically ``Handoff.stop``, so the other side stops waiting)."""

    def __init__(self, target: Callable[[], R], name: str,
                 on_error: Callable[[], None] | None = None) -> None:
        self.error: BaseException | None = None
        self._target, self._on_error = target, on_error
        self._result: R | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._target()
        except BaseException as e:  # handed to whoever asks: raise_error(), result()
            self.error = e
            if self._on_error:
                self._on_error()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def result(self) -> R:
        """Wait for the target; its value, or its exception raised here."""
        self.join()
        self.raise_error()
        return self._result  # type: ignore[return-value]
