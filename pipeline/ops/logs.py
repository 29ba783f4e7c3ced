"""Expected failures in one line: luigi logs a worker's failure with its traceback; for a
PipelineError (a 404, a truncated file, a bad header) the traceback says nothing the
message does not, so it is replaced by the message. So is an anticipated fault of the
machine (a full disk, a read-only or wrong-type path), whatever raised it. Any other
exception keeps its trace, and ``--verbose`` (``show_tracebacks``) keeps every one.
"""

from __future__ import annotations

import errno
import logging

from pipeline.core.errors import PipelineError

# Faults of the host, not of the code: each names its path in its message.
ANTICIPATED_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                errno.EPERM, errno.ENOTDIR, errno.EISDIR})
# Libraries that wrap them (DuckDB's IOException) keep only the words.
ANTICIPATED_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system",
                     "Permission denied", "Not a directory", "Is a directory")

_verbose = False


def show_tracebacks(verbose: bool = True) -> None:
    """``--verbose``: log every failure with its traceback."""
    global _verbose
    _verbose = verbose


def anticipated(error: BaseException | None) -> bool:
    """An expected failure: a PipelineError, or a fault of the host's disks and paths."""
    if error is None:
        return False
    if isinstance(error, PipelineError):
        return True
    if isinstance(error, OSError) and error.errno in ANTICIPATED_ERRNOS:
        return True
    return any(words in str(error) for words in ANTICIPATED_WORDS)


class OneLineFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not _verbose and anticipated(error):
            shown = (error if isinstance(error, PipelineError)
                     else f"{type(error).__name__}: {error}")
            record.msg = f"{record.getMessage()}: {' '.join(str(shown).split())}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineFailures) for f in logger.filters):
        logger.addFilter(OneLineFailures())
