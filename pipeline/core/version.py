"""The pipeline's version, recorded in every manifest and load log; nothing here imports
the task graph, so any layer can read it."""

__version__ = "0.1.0"
