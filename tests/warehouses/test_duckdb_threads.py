"""``[duckdb] threads``: auto gives each of a run's workers its share of the cores; a value
the pipeline cannot use is refused before anything is scheduled."""

from __future__ import annotations

import os

import pytest

from pipeline import config
from pipeline.core.errors import SettingsError
from tests.conftest import Env

CORES = len(os.sched_getaffinity(0))


def test_auto_divides_the_cores_among_the_runs_workers(env: Env) -> None:
    assert config.duckdb().threads == "auto"
    assert config.duckdb().load_threads() == CORES  # one worker
    env.configure(core={"workers": str(CORES)})
    assert config.duckdb().load_threads() == 1
    env.configure(core={"workers": str(CORES * 4)})
    assert config.duckdb().load_threads() == 1  # never 0


def test_a_whole_number_is_taken_as_it_is(env: Env) -> None:
    env.configure(duckdb={"threads": "3"}, core={"workers": "2"})
    assert config.duckdb().load_threads() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_a_value_that_is_no_thread_count_is_refused(env: Env, value: str) -> None:
    env.configure(duckdb={"threads": value})
    with pytest.raises(SettingsError, match=r"\[duckdb\] threads is"):
        config.duckdb().load_threads()


def test_the_refusal_reaches_the_operator_before_anything_runs(env: Env) -> None:
    env.configure(duckdb={"threads": "many"})
    done = env.command("luigi", "--module", "pipeline", "IngestMonth", "--month", "2021-01",
                       "--local-scheduler")
    assert done.returncode != 0
    assert "[duckdb] threads is 'many'" in done.stdout + done.stderr
    assert not env.lake.exists() or not any(env.lake.rglob("*.parquet"))
    assert not env.duckdb_path.exists()
