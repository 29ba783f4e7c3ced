"""Expected failures in one line: luigi logs a worker's failure with its traceback; for a
PipelineError (a 404, a truncated file, a bad header) the traceback says nothing the
message does not, so it is replaced by the message. Any other exception keeps its trace.
"""

from __future__ import annotations

import logging

from pipeline.core.errors import PipelineError


class OneLineFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PipelineError):
            record.msg = f"{record.getMessage()}: {error}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineFailures) for f in logger.filters):
        logger.addFilter(OneLineFailures())
