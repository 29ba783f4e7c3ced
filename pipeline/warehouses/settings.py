"""What each engine is told by the tasks that use it: its settings, read from luigi.cfg
at the task's edge (``pipeline.tasks.load``) and passed in, as the lake's are. No
warehouse module reads configuration itself.

Here, not in the engine modules, so building them never imports an engine's driver.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DuckDBSettings:
    """``[duckdb]``: the warehouse file, the bounds of a load, the tables' schema."""

    path: str
    memory_limit: str
    threads: int
    lock_timeout: float
    schema: str


@dataclass(frozen=True)
class PostgresSettings:
    """``[postgres]``: the server (a URL that may carry a password: never shown), the
    connection timeout, the tables' schema."""

    url: str
    connect_timeout: int
    schema: str

    def __repr__(self) -> str:  # the url may carry a password
        return f"PostgresSettings(schema={self.schema!r})"


@dataclass(frozen=True)
class BigQuerySettings:
    """``[bigquery]``: the project and dataset of the tables, their location, the API's
    endpoint (an emulator's in tests)."""

    project: str
    dataset: str
    location: str = ""
    endpoint: str = ""
