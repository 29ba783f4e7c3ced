"""What both parts of ``bench_scheduler.py`` use: the backfill they schedule (its months,
its services, its luigi arguments), the settings of its lake and warehouse, and a luigid
of its own (``taxi-pipeline scheduler``) with its state, history and logs in a directory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from servers import free_port, wait_for, write_config

BIN = Path(sys.executable).parent
SERVICES = ("yellow", "green", "fhv")
Json = dict[str, Any]
Span = tuple[str, str]  # the first and the last month of a backfill, YYYY-MM


def months(start: str, end: str) -> list[date]:
    """Every month from ``start`` to ``end`` (YYYY-MM, both included)."""
    first, last = date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01")
    out = []
    while first <= last:
        out.append(first)
        first = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return out


def backfill_args(start: str, end: str) -> list[str]:
    return ["--module", "pipeline", "Backfill", "--start", start, "--end", end,
            "--services", ",".join(SERVICES)]


def scheduler_settings(port: int, directory: Path) -> dict[str, dict[str, str]]:
    """[core]/[scheduler]/[task_history]/[luigid] for a luigid with its files in ``directory``."""
    return {
        "core": {"scheduler_host": "127.0.0.1", "scheduler_port": str(port)},
        "scheduler": {"state_path": str(directory / "state.pickle")},
        "task_history": {"db_connection": f"sqlite:///{directory / 'history.sqlite'}"},
        "luigid": {"logdir": str(directory / "logs")},
    }


def env_for(config: Path) -> dict[str, str]:
    return {**os.environ, "LUIGI_CONFIG_PATH": str(config)}


# --------------------------------------------------------------------------- luigid


class Luigid:
    """``taxi-pipeline scheduler --port P`` with its state, history and logs in a directory."""

    def __init__(self, directory: Path, config: Path, port: int) -> None:
        self.directory, self.config, self.port = directory, config, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = directory / "stderr.log"
        directory.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "taxi-pipeline"), "scheduler", "--port", str(port)],
                cwd=directory, env=env_for(config), stdout=subprocess.DEVNULL, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(f"{self.url}/api/task_list?data=%7B%7D", self.process, self.log)
        except SystemExit:
            self.stop()
            raise

    def api(self, method: str, **data: object) -> Any:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=30) as answer:
            return json.loads(answer.read())["response"]

    def count(self, status: str) -> int:
        """Tasks with ``status``: luigid answers a bare count when it exceeds max_shown_tasks."""
        answer = self.api("task_list", status=status, upstream_status="", max_shown_tasks=1)
        return int(answer["num_tasks"]) if "num_tasks" in answer else len(answer)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def luigid(directory: Path, settings: dict[str, dict[str, str]]) -> Iterator[Luigid]:
    """A fresh luigid (empty state); its config, ``.config``, is the workers' too."""
    shutil.rmtree(directory, ignore_errors=True)
    port = free_port()
    merged = {section: dict(values) for section, values in settings.items()}
    for section, values in scheduler_settings(port, directory).items():
        merged.setdefault(section, {}).update(values)
    config = write_config(directory / "luigi.cfg", merged)
    server = Luigid(directory, config, port)
    try:
        yield server
    finally:
        server.stop()



def lake_settings(state: Path, base_url: str, zones_url: str) -> dict[str, dict[str, str]]:
    return {
        # Every month of the range is served as the mirror's CSV, 2021-08 on included.
        "source": {"base_url": base_url, "zones_url": zones_url, "kind": "csv",
                   "timeout": "10", "retries": "1"},
        "lake": {"root": str(state / "lake")},
        "duckdb": {"path": str(state / "warehouse.duckdb")},
        "pipeline": {"sinks": "duckdb"},
    }
