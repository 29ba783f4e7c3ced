"""One alert per batch job that ends with failures, by e-mail and to a webhook.

Luigi's own notifications come one per event: an e-mail for each failed attempt of each
task, and one from the scheduler for each task it disables, so a single unpublished month
made four e-mails. The batch jobs switch those off (``[worker] send_failure_email``, and
``BackoffScheduler`` sends none) and send this instead, once, when the job is over: every
failed task with its one-line reason. Every line goes through ``redact``: no credentials.

- **E-mail** through luigi's settings: ``[email] receiver`` (comma-separated; empty = no
  e-mail), ``sender``, ``prefix``, ``format``, ``method``, ``force_send`` and ``[smtp]``
  host, port, ssl, no_tls, username, password, timeout. As luigi does, nothing is sent
  when the job runs on a terminal (a person is watching) unless ``[email] force_send``.
  For ``method = smtp`` the message is sent here (luigi's own SMTP function swallows a
  refused connection, so an alert that was lost could not be told from one that was
  sent); the other methods (ses, sendgrid, sns) go through luigi's.
- **Webhook**: ``[notify] webhook_url`` gets a JSON POST ``{"text": ...}``, the form Slack
  and Mattermost incoming webhooks accept, within ``[notify] webhook_timeout`` seconds.

A receiver that cannot be reached costs one line on stderr and nothing else: the job's exit
code is its own.
"""

from __future__ import annotations

import re
import smtplib
import socket
import sys
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import luigi.notifications as luigi_mail
import requests

from pipeline import config
from pipeline.core.text import one_line, redact

# Slack truncates longer messages; the e-mail always carries every line.
WEBHOOK_CHARS = 35_000
_OS_ERROR = re.compile(r"\[Errno -?\d+\][^'\")\]]*")


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str


def failure_alert(job: str, failed: list[str], exit_code: int) -> Alert:
    """The alert of a job that exits ``exit_code`` with the ``failed`` tasks' lines."""
    host = socket.gethostname()
    count = f"{len(failed)} task(s) failed" if failed else "no task failed in this process"
    subject = f"taxi-pipeline: {job} failed on {host}: {count}"
    lines = [f"{job} ended with exit code {exit_code} on {host}: {count}.", *failed]
    if not failed:
        lines.append("What it asked for is not complete (see the job's log).")
    return Alert(redact(one_line(subject)), "\n".join(redact(one_line(line, 1000))
                                                     for line in lines))


def send(alert: Alert) -> None:
    """Send ``alert`` to every configured receiver; report each outcome on one line."""
    for deliver in (_email, _webhook):
        outcome = deliver(alert)
        if outcome:
            print(f"alert: {outcome}", file=sys.stderr, flush=True)


def _email(alert: Alert) -> str | None:
    settings = luigi_mail.email()
    recipients = [a.strip() for a in settings.receiver.split(",") if a.strip()]
    if not recipients:
        return None
    if settings.format == "none":
        return "e-mail not sent: [email] format is none"
    if not settings.force_send and sys.stdout.isatty():
        return "e-mail not sent: running on a terminal ([email] force_send = true sends anyway)"
    subject = f"{settings.prefix} {alert.subject}" if settings.prefix else alert.subject
    to = ", ".join(recipients)
    if settings.method != "smtp":
        try:
            luigi_mail.send_email(alert.subject, _body(alert, settings.format), settings.sender,
                                  recipients)
        except Exception as e:  # any failure of a notifier is reported, never raised
            return f"e-mail to {to} via {settings.method} not sent: {one_line(e)}"
        return f"e-mail handed to {settings.method} for {to}"
    with warnings.catch_warnings():
        # luigi's own defaults (None) for unset username and password warn on every read.
        warnings.simplefilter("ignore", UserWarning)
        server = luigi_mail.smtp()
    where = f"{server.host}:{server.port or (465 if server.ssl else 25)}"
    try:
        _send_smtp(server, settings.sender, recipients,
                   luigi_mail.generate_email(settings.sender, subject,
                                             _body(alert, settings.format), recipients, None))
    except (OSError, smtplib.SMTPException) as e:
        return f"e-mail to {to} not sent: SMTP server {where}: {one_line(e)}"
    return f"e-mail sent to {to} via {where}"


def _send_smtp(server: luigi_mail.smtp, sender: str, recipients: list[str],
               message: object) -> None:
    """luigi's ``[smtp]`` settings, applied as luigi applies them; errors are raised."""
    kind = smtplib.SMTP_SSL if server.ssl else smtplib.SMTP
    with kind(host=server.host, port=server.port, local_hostname=server.local_hostname,
              timeout=server.timeout or socket.getdefaulttimeout()) as conn:
        conn.ehlo_or_helo_if_needed()
        if conn.has_extn("starttls") and not server.no_tls:
            conn.starttls()
            conn.ehlo()
        if server.username and server.password:
            conn.login(server.username, server.password)
        conn.sendmail(sender, recipients, message.as_string())  # type: ignore[attr-defined]


def _body(alert: Alert, kind: str) -> str:
    if kind != "html":
        return alert.text + "\n"
    import html

    return f"<pre>{html.escape(alert.text)}</pre>"


def _webhook(alert: Alert) -> str | None:
    settings = config.notify()
    url = settings.webhook_url.strip()
    if not url:
        return None
    where = _origin(url)
    text = alert.text
    if len(text) > WEBHOOK_CHARS:
        shown = text[:WEBHOOK_CHARS].rsplit("\n", 1)[0]
        text = f"{shown}\n… and {text.count(chr(10)) - shown.count(chr(10))} more lines"
    try:
        answer = requests.post(url, json={"text": text}, timeout=settings.webhook_timeout,
                               allow_redirects=False)
    except requests.Timeout:
        return f"webhook {where} not reached: no answer within {settings.webhook_timeout:g} s"
    except requests.RequestException as e:
        # Not the exception's own text: it names the hook's path, which is its secret.
        return f"webhook {where} not reached: {_reason(e)}"
    if not answer.ok:
        return f"webhook {where} answered HTTP {answer.status_code}: not delivered"
    return f"webhook {where} accepted it (HTTP {answer.status_code})"


def _reason(error: Exception) -> str:
    """``[Errno 111] Connection refused`` and the like, or the exception's class name."""
    found = _OS_ERROR.search(str(error))
    return found.group(0).strip() if found else type(error).__name__


def _origin(url: str) -> str:
    """scheme://host[:port] of a webhook URL: its path and query are its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
