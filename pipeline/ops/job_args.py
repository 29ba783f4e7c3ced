"""What every sub-command's body reads from its parsed arguments, and how it refuses them:
``--services`` (default ``[pipeline] services``), ``--verbose``, a bad input (one line, exit
code ``[retcode] unhandled_exception``: 40), a source that could not be asked (one line,
``[retcode] task_failed``: 30)."""

from __future__ import annotations

import argparse
import sys

import luigi.retcodes

from pipeline.core.errors import PipelineError

# ``backfill --end latest``: per service, the newest month the source publishes.
LATEST = "latest"


def bad_input(error: PipelineError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return luigi.retcodes.retcode().unhandled_exception


def source_failed(error: PipelineError) -> int:
    """The source could not be asked (unreachable, an unexpected answer): one line, 30."""
    print(f"error: {error}", file=sys.stderr)
    return luigi.retcodes.retcode().task_failed or 1


def services_of(text: str | None) -> tuple[str, ...]:
    from pipeline.core.datasets import SERVICES
    from pipeline.core.months import parse_names
    from pipeline.tasks.flows import configured_services

    return parse_names(text, SERVICES, "services") if text else configured_services()


def verbose(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False))

