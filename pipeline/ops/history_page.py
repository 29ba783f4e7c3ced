"""luigid's task history pages, a page at a time: ``/history?limit=N&offset=K``.

luigi 3.8's ``/history`` renders every task of the last 24 hours in one page, one row per
event (a task that ran shows three times), and loads each row's events and parameters with
queries of their own: 846 KB and 1.3 s at 8k rows, growing with the history. The pages
here show one row per task, newest first, ``limit`` tasks (default 100, at most 1,000) from
``offset``, their events and parameters loaded in two queries, with links to the next and
the newer page. ``/history/by_name/NAME`` and ``/history/by_params/NAME?data={...}`` are
paged the same way (all of a task's history, not only the last 24 hours, as luigi's are).
``/history/by_id`` and ``/history/by_task_id`` show one task and are left as they are.

Installed by ``ops.hooks.install_scheduler``, which replaces the three handler classes in
``luigi.server`` (``app()`` reads them when luigid builds its routes).
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from pathlib import Path
from typing import Any

import luigi.server
import sqlalchemy
import sqlalchemy.orm
import tornado.template
import tornado.web
from luigi.db_task_history import TaskEvent, TaskParameter, TaskRecord

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RECENT = datetime.timedelta(days=1)  # what luigi's /history shows: the last 24 hours

PAGE = """{% extends "layout.html" %}
{% block content %}
<h2>Luigi Task History</h2>
<p class="lead">{{ caption }}: tasks {{ first }} to {{ last }}, newest first</p>
<table class="table table-striped table-bordered">
  <thead><tr><th>Name</th><th>Host</th><th>Last Action</th><th>Status</th><th>Parameters</th>
  </tr></thead>
  <tbody>
  {% for task in tasks %}
    <tr>
      <td><a href="/history/by_id/{{ task.id }}">{{ task.name }}</a></td>
      <td>{{ task.host }}</td>
      <td>{{ task.events[0].ts if task.events else "" }}</td>
      <td>{{ task.events[0].event_name if task.events else "" }}</td>
      <td>{% for name, param in task.parameters.items() %}<table class="table-condensed"><tr>
        <td>{{ name }}</td><td>{{ param.value }}</td></tr></table>{% end %}</td>
    </tr>
  {% end %}
  </tbody>
</table>
<ul class="pager">
  {% if newer %}<li><a href="{{ newer }}" rel="prev">newer</a></li>{% end %}
  {% if older %}<li><a href="{{ older }}" rel="next">next page</a></li>{% end %}
</ul>
{% end %}
"""
# Not luigi's own templates directory: tornado keeps one template loader per directory
# for every handler, and luigi's other pages must keep theirs.
TEMPLATES = "pipeline-history-pages"


def page_of_tasks(session: sqlalchemy.orm.Session, limit: int, offset: int, *,
                  since: datetime.datetime | None = None, name: str | None = None,
                  parameters: dict[str, str] | None = None) -> list[Any]:
    """Tasks ordered by their latest event, newest first: ``limit`` + 1 of them from
    ``offset`` (the one more tells whether a next page exists), with their events and
    parameters loaded."""
    latest = sqlalchemy.select(TaskEvent.task_id, sqlalchemy.func.max(TaskEvent.ts).label("ts"))
    if since is not None:
        latest = latest.where(TaskEvent.ts >= since)
    newest = latest.group_by(TaskEvent.task_id).subquery()
    query = session.query(TaskRecord).join(newest, TaskRecord.id == newest.c.task_id)
    if name is not None:
        query = query.filter(TaskRecord.name == name)
    for key, value in (parameters or {}).items():
        parameter = sqlalchemy.orm.aliased(TaskParameter)
        query = query.join(parameter, parameter.task_id == TaskRecord.id).filter(
            parameter.name == key, parameter.value == str(value))
    return (query.options(sqlalchemy.orm.selectinload(TaskRecord.events),
                          sqlalchemy.orm.selectinload(TaskRecord.parameters))
            .order_by(newest.c.ts.desc(), TaskRecord.id.desc())
            .offset(offset).limit(limit + 1).all())


class PagedHistoryHandler(luigi.server.BaseTaskHistoryHandler):
    """One page of the task history; subclasses say which tasks."""

    _loader: tornado.template.BaseLoader | None = None

    def get_template_path(self) -> str:
        return TEMPLATES

    def create_template_loader(self, template_path: str) -> tornado.template.BaseLoader:
        if PagedHistoryHandler._loader is None:
            layout = Path(luigi.server.__file__).with_name("templates") / "layout.html"
            PagedHistoryHandler._loader = tornado.template.DictLoader(
                {"layout.html": layout.read_text(), "history_page.html": PAGE})
        return PagedHistoryHandler._loader

    def _number(self, key: str, default: int, most: int | None = None) -> int:
        text = self.get_argument(key, str(default))
        if not text.isdigit() or (most is not None and not 1 <= int(text) <= most):
            bound = f"1 .. {most}" if most is not None else "0 or more"
            raise tornado.web.HTTPError(400, reason=f"{key} must be a whole number, {bound}")
        return int(text)

    def _page(self, caption: str, **which: Any) -> None:
        limit = self._number("limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = self._number("offset", 0)
        history = self._scheduler.task_history
        with history._session(None) as session:
            tasks = page_of_tasks(session, limit, offset, **which)
            shown = tasks[:limit]
            self.render("history_page.html", tasks=shown, caption=caption, first=offset + 1,
                        last=offset + len(shown),
                        newer=self._link(limit, max(0, offset - limit)) if offset else "",
                        older=self._link(limit, offset + limit) if len(tasks) > limit else "")

    def _link(self, limit: int, offset: int) -> str:
        """This page's address with another offset (other arguments, ``data``, kept)."""
        arguments = {k: self.get_argument(k) for k in self.request.arguments}
        arguments.update(limit=str(limit), offset=str(offset))
        return f"{self.request.path}?{urllib.parse.urlencode(arguments)}"


class RecentRunHandler(PagedHistoryHandler):
    """``/history``: tasks with an event in the last 24 hours."""

    def get(self) -> None:
        self._page("the last 24 hours", since=datetime.datetime.now() - RECENT)


class ByNameHandler(PagedHistoryHandler):
    """``/history/by_name/NAME``: every task of a family."""

    def get(self, name: str) -> None:
        self._page(name, name=name)


class ByParamsHandler(PagedHistoryHandler):
    """``/history/by_params/NAME?data={"month": "2021-01"}``: a family's tasks with those
    parameters."""

    def get(self, name: str) -> None:
        try:
            parameters = json.loads(self.get_argument("data", "{}"))
        except ValueError:
            raise tornado.web.HTTPError(400, reason="data must be a JSON object") from None
        if not isinstance(parameters, dict):
            raise tornado.web.HTTPError(400, reason="data must be a JSON object")
        self._page(name, name=name, parameters=parameters)


def install() -> None:
    """Serve the pages above instead of luigi's own (luigi 3.8.1 ``server.app``)."""
    luigi.server.RecentRunHandler = RecentRunHandler  # type: ignore[misc]
    luigi.server.ByNameHandler = ByNameHandler  # type: ignore[misc]
    luigi.server.ByParamsHandler = ByParamsHandler  # type: ignore[misc]
