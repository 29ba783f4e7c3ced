"""`taxi-pipeline scheduler` serves Prometheus metrics at /metrics (luigi's collector): a real
luigid, a month run through it by a real worker process, the page scraped and parsed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Env, Release
from tests.fixtures_scheduler import Luigid

MONTH_TASKS = ("DownloadMonth", "ParquetizeMonth", "LoadDuckDB", "Zones", "LoadDuckDBZones")


def scrape(luigid: Luigid) -> dict[str, dict[str, float]]:
    """Counter name -> {task family: value}."""
    status, page = luigid.get("/metrics")
    assert status == 200
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name.endswith("_total") and "family" in sample.labels:
                found.setdefault(sample.name, {})[sample.labels["family"]] = sample.value
    return found


def test_luigid_counts_the_tasks_of_a_month_at_metrics(env: Env, luigid: Luigid,
                                                       release: Release) -> None:
    run = env.command("taxi-pipeline", "ingest", "--month", "2021-01", "--services", "green")
    assert run.returncode == 0, run.stderr[-2000:]
    counters = scrape(luigid)
    started = counters["luigi_task_started_total"]
    done = counters["luigi_task_done_total"]
    assert {family: started.get(family) for family in MONTH_TASKS} == dict.fromkeys(
        MONTH_TASKS, 1.0)
    assert {family: done.get(family) for family in (*MONTH_TASKS, "IngestMonth")} == dict.fromkeys(
        (*MONTH_TASKS, "IngestMonth"), 1.0)
    assert "luigi_task_failed_total" not in counters

    # A month that is not published: three attempts (retry_count), the last one disables it.
    failed = env.command("taxi-pipeline", "ingest", "--month", "2030-01", "--services", "green")
    assert failed.returncode == 30
    counters = scrape(luigid)
    assert counters["luigi_task_started_total"]["DownloadMonth"] == 1.0 + 3
    assert counters["luigi_task_failed_total"] == {"DownloadMonth": 2.0}
    assert counters["luigi_task_disabled_total"] == {"DownloadMonth": 1.0}
    # The first month, already complete, was not run again.
    assert counters["luigi_task_started_total"]["ParquetizeMonth"] == 1.0
