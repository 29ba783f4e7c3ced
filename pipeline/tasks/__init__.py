"""The Luigi tasks: download, convert, upload and load a month, and the wrapper tasks
that fan out over services, sinks and months.
"""
