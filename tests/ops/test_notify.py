"""One alert per failed batch job, through real receivers the test starts on 127.0.0.1: an
SMTP server (aiosmtpd) and an HTTP server standing in for a Slack/Mattermost webhook."""

from __future__ import annotations

import email
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Env
from tests.fixtures_scheduler import Luigid
from tests.mirror import ReleaseMirror
from tests.ports import free_port

HOOK_PATH = "/hooks/T0001/B0002/hook-secret-token"
MIRROR_PASSWORD = "mirror-pass-s3cret"
FAILED_TASK = "DownloadMonth(service=green, month=2030-01)"


class _Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        self.recipients.append(list(envelope.rcpt_tos))  # type: ignore[attr-defined]
        return "250 OK"


@dataclass
class Hook:
    """A webhook receiver: every POST's path and JSON body; answers ``status``."""

    posts: list[tuple[str, dict]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@dataclass
class Receivers:
    smtp_port: int
    inbox: _Inbox
    hook_port: int
    hook: Hook

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.hook_port}{HOOK_PATH}"


def _hook_server(hook: Hook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.posts.append((self.path, json.loads(body)))
            time.sleep(hook.delay)
            self.send_response(hook.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture
def receivers(env: Env, mirror: ReleaseMirror) -> Iterator[Receivers]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    hook = Hook()
    server = _hook_server(hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found = Receivers(controller.port, inbox, server.server_address[1], hook)
    # A source URL with a password in it: the alert must not show it.
    base_url = mirror.base_url.replace("http://", f"http://taxi:{MIRROR_PASSWORD}@")
    env.configure(
        source={"base_url": base_url},
        email={"receiver": "ops@example.org, oncall@example.org", "sender": "taxi@example.org",
               "force_send": "false"},
        smtp={"host": "127.0.0.1", "port": str(controller.port), "timeout": "5"},
        notify={"webhook_url": found.hook_url, "webhook_timeout": "5"},
    )
    yield found
    server.shutdown()
    controller.stop()


def alert_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("alert: ")]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert MIRROR_PASSWORD not in text
        assert "hook-secret-token" not in text


def failed_job(env: Env) -> subprocess.CompletedProcess[str]:
    """An ingest whose month is not published: its exit code is 30, checked here."""
    run = env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 30, run.stderr[-2000:]
    return run


def test_a_failed_job_sends_one_mail_and_one_post_naming_each_failure(
        env: Env, receivers: Receivers) -> None:
    run = failed_job(env)
    # luigi would have mailed each of the 3 failed attempts and the disable: one mail here.
    assert len(receivers.inbox.messages) == 1
    mail = receivers.inbox.messages[0]
    assert receivers.inbox.recipients == [["ops@example.org", "oncall@example.org"]]
    assert mail["From"] == "taxi@example.org"
    assert mail["Subject"].startswith(
        "taxi-pipeline: IngestMonth(month=2030-01, services=green) failed on ")
    assert mail["Subject"].endswith(": 1 task(s) failed")
    body = mail.get_payload()[0].get_payload(decode=True).decode()
    failed = [line for line in body.splitlines() if line.startswith("DISABLED")]
    assert failed == [
        f"DISABLED {FAILED_TASK}: NotPublished: green 2030-01 is not published at "
        f"{env.settings['source']['base_url'].replace(f'taxi:{MIRROR_PASSWORD}@', '')}"
        "/green/green_tripdata_2030-01.csv.gz (HTTP 404)"]
    assert "exit code 30" in body

    assert len(receivers.hook.posts) == 1
    path, payload = receivers.hook.posts[0]
    assert path == HOOK_PATH and list(payload) == ["text"]
    assert payload["text"] == body.rstrip("\n")
    assert_no_secret(body, mail["Subject"], payload["text"], run.stderr)
    assert alert_lines(run.stderr) == [
        f"alert: e-mail sent to ops@example.org, oncall@example.org via "
        f"127.0.0.1:{receivers.smtp_port}",
        f"alert: webhook http://127.0.0.1:{receivers.hook_port} accepted it (HTTP 200)"]


def test_a_job_that_succeeds_sends_nothing(env: Env, receivers: Receivers) -> None:
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green",
                      "--local-scheduler")
    assert run.returncode == 0, run.stderr[-2000:]
    assert receivers.inbox.messages == []
    assert receivers.hook.posts == []
    assert alert_lines(run.stderr) == []


def test_unreachable_receivers_cost_one_line_each_and_not_the_exit_code(
        env: Env, receivers: Receivers) -> None:
    closed = free_port()  # nothing listens there
    env.configure(smtp={"port": str(closed)},
                  notify={"webhook_url": f"http://127.0.0.1:{closed}{HOOK_PATH}"})
    run = failed_job(env)
    assert alert_lines(run.stderr) == [
        "alert: e-mail to ops@example.org, oncall@example.org not sent: SMTP server "
        f"127.0.0.1:{closed}: [Errno 111] Connection refused",
        f"alert: webhook http://127.0.0.1:{closed} not reached: [Errno 111] Connection refused"]
    assert_no_secret(run.stderr)

    # A webhook that answers an error, and one that does not answer in time.
    env.configure(smtp={"port": str(receivers.smtp_port)},
                  notify={"webhook_url": receivers.hook_url})
    receivers.hook.status = 500
    run = failed_job(env)
    assert alert_lines(run.stderr)[1] == (
        f"alert: webhook http://127.0.0.1:{receivers.hook_port} answered HTTP 500: "
        "not delivered")
    receivers.hook.status, receivers.hook.delay = 200, 3.0
    env.configure(notify={"webhook_timeout": "0.5"})
    run = failed_job(env)
    assert alert_lines(run.stderr)[1] == (
        f"alert: webhook http://127.0.0.1:{receivers.hook_port} not reached: no answer "
        "within 0.5 s")
    assert len(receivers.inbox.messages) == 2  # the mail server was up for these two


def test_with_the_central_scheduler_luigid_sends_no_mail_of_its_own(
        env: Env, receivers: Receivers, luigid: Luigid) -> None:
    # luigid reads the same [email] settings; luigi's scheduler mails each task it disables.
    run = env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services", "green")
    assert run.returncode == 30, run.stderr[-2000:]
    assert "scheduler: central luigid" in run.stderr
    # luigi's scheduler mails a disable inside the add_task call that disables the task
    # (SimpleTaskState.set_status, luigi 3.8), before it answers; the job waited for that
    # answer before it exited. So what luigid would have sent is in the inbox by now.
    assert luigid.api("task_list", status="DISABLED", upstream_status="")
    assert len(receivers.inbox.messages) == 1
    assert len(receivers.hook.posts) == 1
    assert FAILED_TASK in receivers.hook.posts[0][1]["text"]
