"""What every benchmark script shares: measured child processes, child functions, summaries.

A script runs each contender in a fresh interpreter: ``python bench/bench_x.py _child NAME
ARGS_JSON RESULT_FILE`` calls the child function registered as ``NAME`` with the JSON
arguments, and writes the JSON it returns to ``RESULT_FILE``. The parent times the process
with ``os.wait4``, which also gives the child's peak RSS (``ru_maxrss``, KiB on Linux,
including any process it ran and waited for).

This module imports only the standard library, and so must the scripts' own processes: on
Linux a child's ``ru_maxrss`` starts at its parent's RSS (the high-water mark survives
``exec``), so a parent holding pyarrow would inflate every child's figure.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn

PROJECT = Path(__file__).resolve().parent.parent
# The benchmarks use the tests' data generators and scriptable mirror (tests/): one copy of
# each, importable here and in every child a benchmark starts (they import this module).
if str(PROJECT) not in sys.path:
    sys.path.insert(1, str(PROJECT))
PYTHON = sys.executable
CHILD = "_child"
TAIL_CHARS = 2000
TIMES = "\N{MULTIPLICATION SIGN}"

Args = dict[str, Any]
ChildFunction = Callable[[Args], Args]

_children: dict[str, ChildFunction] = {}


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Measured:
    """One finished process: wall seconds, its peak RSS in MB, its exit code, and the CPU
    seconds (user + system) it and the processes it waited for used."""

    wall_s: float
    peak_rss_mb: float
    exit_code: int
    cpu_s: float = 0.0


def log_tail(log: Path, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log, or a note that there is none."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return f"(no log at {log})"


def fail(what: str, exit_code: int, log: Path) -> NoReturn:
    """Stop the benchmark: what failed, its exit code and the tail of its log."""
    raise SystemExit(f"{what} failed (exit {exit_code}), log {log}:\n{log_tail(log)}")


def measure(argv: Sequence[str], log: Path, cwd: Path | None = None,
            env: dict[str, str] | None = None, *, check: bool = True,
            timeout: float | None = None, what: str | None = None) -> Measured:
    """Run ``argv`` to completion with its output in ``log``; its wall time and peak RSS.

    With ``check`` a non-zero exit stops the benchmark (``fail``, named ``what`` or the log's
    stem). A process still running after ``timeout`` seconds is killed (exit -9)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill) if timeout is not None else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    measured = Measured(wall, usage.ru_maxrss / 1024, proc.returncode,  # KiB on Linux
                        usage.ru_utime + usage.ru_stime)
    if check and measured.exit_code != 0:
        fail(what or log.stem, measured.exit_code, log)
    return measured


def own_peak_rss_mb() -> float:
    """This process's peak RSS so far, in MB (``ru_maxrss``, KiB on Linux): what a child
    holds once its imports are done, or what a script's own process came to."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- children


def child(name: str) -> Callable[[ChildFunction], ChildFunction]:
    """Register the decorated function as the child function ``name`` of this script."""
    def register(function: ChildFunction) -> ChildFunction:
        if _children.get(name, function) is not function:
            raise ValueError(f"two child functions named {name!r}")
        _children[name] = function
        return function
    return register


def timed(function: ChildFunction) -> ChildFunction:
    """The child's own seconds (its imports included) added to its result as ``seconds``."""
    @wraps(function)
    def run(a: Args) -> Args:
        started = time.perf_counter()
        return {**function(a), "seconds": time.perf_counter() - started}
    return run


def is_child(argv: Sequence[str]) -> bool:
    """Whether this process was started as a child (``_child NAME ARGS RESULT``)."""
    return list(argv[:1]) == [CHILD]


def child_main(argv: Sequence[str]) -> int:
    """``NAME ARGS_JSON RESULT_FILE``: run the registered child, write its JSON result."""
    name, args_json, result_file = argv
    result = _children[name](json.loads(args_json))
    Path(result_file).write_text(json.dumps(result))
    return 0


def child_argv(script: str | Path, name: str, args: Args, result: Path) -> list[str]:
    """The command that runs child function ``name`` of ``script`` in a fresh interpreter."""
    return [PYTHON, str(Path(script).resolve()), CHILD, name, json.dumps(args), str(result)]


def run_child(script: str | Path, name: str, args: Args, log: Path,
              cwd: Path | None = PROJECT, env: dict[str, str] | None = None, *,
              timeout: float | None = None) -> tuple[Measured, Args]:
    """Run child function ``name`` of ``script``, measured; its result is ``log`` + ``.json``.

    Fails loudly with the log's tail when the child exits non-zero, writes no result, or
    answers ``"ok": false``."""
    result_file = log.with_suffix(".json")
    result_file.unlink(missing_ok=True)
    measured = measure(child_argv(script, name, args, result_file), log, cwd, env,
                       timeout=timeout, what=f"child {log.stem}")
    if not result_file.exists():
        fail(f"child {log.stem} (no result)", measured.exit_code, log)
    result = json.loads(result_file.read_text())
    if "ok" in result and not result["ok"]:
        raise SystemExit(f"child {log.stem} did not do its work: {result}")
    return measured, result


# --------------------------------------------------------------------------- summaries


def best(values: Sequence[float]) -> float:
    """The best (lowest) of repeated times: the run least disturbed by other work."""
    return min(values)


def median(values: Sequence[float]) -> float:
    """The median of repeated times."""
    return statistics.median(values)


def ratio(project: float, peer: float) -> float:
    """The project's figure over its peer's: below 1 the project is faster (or smaller)."""
    return project / peer


def ratio_text(value: float, sign: str = TIMES) -> str:
    """A ratio at two decimals followed by ``sign``: 0.72 and the multiplication sign by
    default, ``0.72 x`` with ``sign=" x"``, the bare ``0.72`` with ``sign=""``."""
    return f"{value:.2f}{sign}"


def stats(values: Sequence[float]) -> Args:
    """Best, median and worst of repeated figures, and the figures themselves."""
    return {"best": best(values), "median": median(values), "worst": max(values),
            "runs": list(values)}
