"""luigid's task history, a page at a time (``pipeline/ops/history_page.py``), through a
real luigid with task history on: tasks are reported to it by luigi's own RPC (``add_task``,
as workers do), so the rows are what luigid itself records."""

from __future__ import annotations

import re
import urllib.error

import pytest

from tests.fixtures_scheduler import Luigid

ROW = re.compile(r'<a href="/history/by_id/(\d+)">(\w+)</a>')
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


def report(luigid: Luigid, family: str, first: int, count: int,
           events: tuple[str, ...] = ("PENDING", "DONE")) -> None:
    """``count`` tasks of ``family``, each with ``events`` (scheduled, then done), in order."""
    for status in events:
        for n in range(first, first + count):
            luigid.api("add_task", worker="history-test", task_id=f"{family}_{n:04d}",
                       status=status, family=family, params={"n": str(n)})


def rows(page: str) -> list[tuple[int, str]]:
    return [(int(i), name) for i, name in ROW.findall(page)]


def next_link(page: str) -> str | None:
    found = NEXT.search(page)
    return found.group(1).replace("&amp;", "&") if found else None


def walk(luigid: Luigid, path: str) -> list[list[tuple[int, str]]]:
    """Every page from ``path`` on, following the next links."""
    pages: list[list[tuple[int, str]]] = []
    link: str | None = path
    while link:
        status, page = luigid.get(link)
        assert status == 200
        pages.append(rows(page))
        link = next_link(page)
        assert len(pages) < 50, "the next links do not end"
    return pages


def test_history_is_served_a_bounded_page_at_a_time(luigid: Luigid) -> None:
    report(luigid, "FamilyA", 0, 120)
    status, first = luigid.get("/history")
    assert status == 200
    page = rows(first)
    # The default page: 100 tasks, one row each (luigi's showed a row per event), the one
    # done last first, and a link to the next page.
    assert len(page) == 100 and len(set(page)) == 100
    assert page[0][1] == "FamilyA" and page[0][0] > page[-1][0]
    assert next_link(first) == "/history?limit=100&offset=100"
    assert "tasks 1 to 100, newest first" in first
    small = luigid.get("/history?limit=50")[1]

    report(luigid, "FamilyB", 0, 150, ("DONE",))
    # A page's size does not grow with the history behind it.
    again = luigid.get("/history?limit=50")[1]
    assert len(rows(again)) == 50
    assert abs(len(again) - len(small)) < 0.1 * len(small), (len(small), len(again))
    assert {name for _, name in rows(again)} == {"FamilyB"}  # the newest first

    pages = walk(luigid, "/history?limit=200")
    assert [len(p) for p in pages] == [200, 70]
    everything = [row for p in pages for row in p]
    assert len(set(everything)) == 270
    ids = [i for i, _ in everything]
    assert ids == sorted(ids, reverse=True)  # reported in order: newest is the highest id
    second = luigid.get("/history?limit=200&offset=200")[1]
    assert '<a href="/history?limit=200&amp;offset=0" rel="prev">' in second

    # A family's history, paged the same way (luigi's: every event of it in one page).
    by_name = walk(luigid, "/history/by_name/FamilyA?limit=50")
    assert [len(p) for p in by_name] == [50, 50, 20]
    assert {name for p in by_name for _, name in p} == {"FamilyA"}
    status, one = luigid.get('/history/by_params/FamilyB?data={"n":"7"}')
    assert status == 200 and len(rows(one)) == 1 and next_link(one) is None

    # A page out of bounds is refused, saying which.
    for query in ("limit=0", "limit=1001", "limit=ten", "offset=-1", "offset=1.5"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            luigid.get(f"/history?{query}")
        assert refused.value.code == 400, query
        assert "must be a whole number" in str(refused.value.reason), query
