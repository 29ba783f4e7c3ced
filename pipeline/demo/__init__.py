"""The offline demo (``taxi-pipeline demo``): sample months and a local HTTP mirror laid out
like the real release, ingested end to end. Not part of a production run; the tests' and
benchmarks' own data generators and fault injection live under ``tests/``.
"""
