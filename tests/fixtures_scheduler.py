"""A real central scheduler for a test: `taxi-pipeline scheduler` on a free port, with its
state, history and logs in the test's directory."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, Env
from tests.ports import free_port
from tests.waiting import wait_until


@dataclass
class Luigid:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def history_db(self) -> Path:
        return self.directory / "history.sqlite"

    def api(self, method: str, **data: object) -> dict:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=10) as answer:
            return json.loads(answer.read())["response"]

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()

    def events(self, event: str = "RUNNING") -> dict[str, int]:
        """How many times each task (by luigi task id) had ``event``, from the history DB."""
        with sqlite3.connect(self.history_db) as db:
            rows = db.execute(
                "SELECT t.task_id, count(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
                "WHERE e.event_name = ? GROUP BY t.task_id", (event,)).fetchall()
        return dict(rows)

    def answers(self) -> bool:
        """luigid answers its API (it has started)."""
        try:
            self.api("task_list", status="", upstream_status="")
        except OSError:
            return False
        return True

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def luigid(env: Env) -> Iterator[Luigid]:
    port = free_port()
    directory = env.tmp / "scheduler"
    env.configure(
        core={"scheduler_host": "127.0.0.1", "scheduler_port": str(port)},
        scheduler={"state_path": str(directory / "state.pickle"), "record_task_history": "true",
                   "retry_delay": "0.5", "retry_count": "3", "prune_on_get_work": "true"},
        task_history={"db_connection": f"sqlite:///{directory / 'history.sqlite'}"},
        luigid={"logdir": str(directory / "logs")},
    )
    process = subprocess.Popen([str(BIN / "taxi-pipeline"), "scheduler", "--port", str(port)],
                               cwd=env.tmp, env=env.env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    server = Luigid(port, process, directory)
    try:
        wait_until(server.answers, 30, "luigid answering", process=process, interval=0.1)
    except AssertionError as e:
        raise RuntimeError(f"luigid did not start: {e}; {process.stderr.read()!r}") from None
    yield server
    if process.poll() is None:
        server.stop()
