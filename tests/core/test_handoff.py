"""The one producer/consumer pair (``pipeline.core.handoff``): order, bounded waiting, and
one stop and error model whichever side fails."""

from __future__ import annotations

import threading

import pytest

from pipeline.core.handoff import Handoff, Stopped, Worker
from tests.waiting import wait_until


def test_items_arrive_in_order_and_the_stream_ends() -> None:
    pipe: Handoff[int] = Handoff(2)
    consumer = Worker(lambda: list(pipe), "consumer")
    for i in range(50):
        pipe.put(i)
    pipe.end()
    assert consumer.result() == list(range(50))


def test_a_producer_error_is_raised_where_the_consumer_iterates() -> None:
    pipe: Handoff[int] = Handoff(2)
    consumer = Worker(lambda: list(pipe), "consumer")
    pipe.put(1)
    pipe.fail(ValueError("bad gzip"))
    with pytest.raises(ValueError, match="bad gzip"):
        consumer.result()


def test_a_consumer_error_stops_a_producer_waiting_for_room() -> None:
    pipe: Handoff[int] = Handoff(1)
    seen: list[int] = []

    def consume() -> None:
        for item in pipe:
            seen.append(item)
            if item == 3:
                raise RuntimeError("refused at 3")

    consumer = Worker(consume, "consumer", on_error=pipe.stop)
    with pytest.raises(Stopped):
        for i in range(1, 1000):
            pipe.put(i)  # blocks on a full queue until the consumer's failure stops it
    consumer.join()
    assert seen == [1, 2, 3]
    with pytest.raises(RuntimeError, match="refused at 3"):
        consumer.result()
    pipe.end()  # nothing to end once stopped: returns at once


def test_stop_ends_a_consumer_waiting_for_items() -> None:
    pipe: Handoff[int] = Handoff(1)
    started = threading.Event()

    def consume() -> list[int]:
        started.set()
        return list(pipe)

    consumer = Worker(consume, "consumer")
    wait_until(started.is_set, 5, "the consumer started")
    pipe.stop()
    consumer.join()
    assert isinstance(consumer.error, Stopped)
    with pytest.raises(Stopped):
        pipe.put(1)
