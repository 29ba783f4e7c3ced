"""`taxi-pipeline status --html FILE` in a real browser: Debian's chromium, headless, driven
over the DevTools protocol (a websocket on 127.0.0.1). The page is loaded from disk, its DOM
checked (cells, states, legend counts), a cell hovered and clicked with real mouse events,
and a screenshot saved for the report. Skipped, saying why, where chromium is missing."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
import websocket

from pipeline.ops.coverage import render
from pipeline.tasks.download import DownloadMonth
from pipeline.tasks.flows import IngestMonth
from tests.conftest import Env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless chromium and one of its pages, spoken to over CDP."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1400,1000", "--no-first-run",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.loads(answer.read()) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict] = []

    def _port(self) -> int:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("chromium did not open its DevTools port")

    def send(self, method: str, **params: object) -> dict:
        call = next(self._ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            assert time.monotonic() < deadline, f"no {event}"
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))

    def open(self, path: Path) -> None:
        self.events.clear()
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Page.navigate", url=path.as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  clickCount=1 if kind != "mouseMoved" else 0)

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        self.ws.close()
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (`make system-deps` installs Debian's)")
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def cells(browser: Browser) -> dict[str, str]:
    return browser.js("Object.fromEntries([...document.querySelectorAll('td.cell')]"
                      ".map(td => [td.dataset.key, td.dataset.state]))")  # type: ignore[return-value]


def test_the_coverage_page_shows_every_state_in_a_real_browser(
        env: Env, browser: Browser, tmp_path: Path,
        record_property: pytest.RecordProperty) -> None:
    for month, service in ((date(2019, 12, 1), "green"), (date(2020, 12, 1), "yellow"),
                           (date(2021, 1, 1), "yellow")):
        assert env.build(IngestMonth(month=month, services=(service,))).scheduling_succeeded
    assert env.build(DownloadMonth(service="green", month=date(2020, 1, 1))).scheduling_succeeded
    with duckdb.connect(str(env.duckdb_path)) as con:
        con.execute("DELETE FROM yellow_tripdata WHERE source_month = DATE '2021-01-01' "
                    "AND VendorID = 1")
    # A stricter null-id threshold than the default: 2020 on, 7 % of sample rows have none.
    env.configure(quality={"null_id": "0.05"})
    page = tmp_path / "coverage.html"
    run = env.command("taxi-pipeline", "status", "--start", "2019-12", "--end", "2021-01",
                      "--services", "yellow,green", "--html", str(page))
    assert run.returncode == 1, run.stderr[-2000:]  # not every month is complete
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched

    browser.open(page)
    states = cells(browser)
    assert len(states) == 14 * 2
    assert {k: v for k, v in states.items() if v != "not-published"} == {
        "2019-12 green": "complete", "2020-12 yellow": "quality", "2021-01 yellow": "mismatch",
        "2020-01 green": "missing", "2021-01 green": "not-ingested"}
    assert browser.js("[...document.querySelectorAll('[data-count]')].map(b => "
                      "[b.dataset.count, Number(b.textContent)])") == [
        ["unknown", 0], ["republished", 0], ["mismatch", 1], ["missing", 1],
        ["not-ingested", 1], ["not-published", 23], ["quality", 1], ["complete", 1],
        ["before", 0]]
    # Colours as the browser computed them: each state its own.
    colours = browser.js("Object.fromEntries([...document.querySelectorAll('td.cell')].map("
                         "td => [td.dataset.state, getComputedStyle(td).backgroundColor]))")
    assert len(set(colours.values())) == len(colours) == 6  # type: ignore[union-attr]

    # Hover a cell with the mouse: its rows per stage and its quality counts appear.
    def centre(key: str) -> tuple[float, float]:
        box = browser.js(f"(() => {{ const r = document.querySelector('td[data-key=\"{key}\"]')"
                         ".getBoundingClientRect(); return [r.x + r.width / 2, "
                         "r.y + r.height / 2]; })()")
        return box[0], box[1]  # type: ignore[index]

    browser.mouse("mouseMoved", *centre("2020-12 yellow"))
    detail = browser.js("document.getElementById('detail').innerText")
    records = {f"{r['month']} {r['service']}": r for r in json.loads(env.command(
        "taxi-pipeline", "status", "--start", "2019-12", "--end", "2021-01", "--services",
        "yellow,green", "--format", "json").stdout)}
    dec = records["2020-12 yellow"]
    assert "2020-12 yellow" in detail and "complete" in detail  # type: ignore[operator]
    assert f"parquet rows\t{dec['parquet_rows']:,}" in detail  # type: ignore[operator]
    assert f"duckdb rows\t{dec['sinks']['duckdb']:,}" in detail  # type: ignore[operator]
    assert (f"null id (vendor, base or licence)\t{dec['quality']['null_id']:,}"
            in detail)  # type: ignore[operator]
    assert browser.js("[...document.querySelectorAll('#detail tr.warn td:first-child')]"
                      ".map(td => td.textContent)") == ["null id (vendor, base or licence)"]

    # A click pins a cell: moving over another one no longer changes the panel.
    browser.mouse("mousePressed", *centre("2021-01 yellow"))
    browser.mouse("mouseReleased", *centre("2021-01 yellow"))
    browser.mouse("mouseMoved", *centre("2019-12 green"))
    pinned = browser.js("document.getElementById('detail').dataset.key")
    assert pinned == "2021-01 yellow"
    assert "MISMATCH duckdb" in browser.js(  # type: ignore[operator]
        "document.querySelector('#detail .state').textContent")
    assert browser.js("document.querySelector('td.pinned').dataset.key") == "2021-01 yellow"

    shot = tmp_path / "coverage.png"
    shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", format="png")
                                      ["data"]))
    assert shot.stat().st_size > 10_000
    record_property("screenshot", str(shot))
    print(f"coverage page screenshot: {shot}")
    assert [url for url in browser.requests() if not url.startswith("file:")] == []


def test_a_re_published_month_has_its_own_colour(browser: Browser, tmp_path: Path) -> None:
    def record(month: str, state: str) -> dict:
        return {"month": month, "service": "yellow", "raw_bytes": 10, "parquet_rows": 5,
                "sinks": {"duckdb": 5}, "state": state, "quality": None,
                "quality_warnings": [], "complete": state == "complete"}

    page = tmp_path / "page.html"
    page.write_text(render([record("2021-01", "complete"),
                            record("2021-02", "re-published upstream"),
                            record("2021-03", "<script>alert(1)</script>")]))
    browser.open(page)
    # States are values: one the page does not know reads as "could not tell".
    assert cells(browser) == {"2021-01 yellow": "complete", "2021-02 yellow": "republished",
                              "2021-03 yellow": "unknown"}
    # Text from the records is text, never markup.
    assert browser.js("document.querySelectorAll('script').length") == 3
