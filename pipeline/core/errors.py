"""The pipeline's expected failures: bad input, an unusable source, a warehouse conflict.

Each carries a one-line message that names the month and the problem. They are shown
without a traceback (see ``pipeline.ops.logs``); anything else is a bug and keeps its trace.
"""


class PipelineError(Exception):
    """An expected failure with a one-line message."""


class SettingsError(PipelineError, ValueError):
    """A setting the chosen sinks or lake need is missing or cannot be honoured."""
