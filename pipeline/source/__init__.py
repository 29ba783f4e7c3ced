"""Getting a source file: HTTP fetch (streaming, resumable, retried) and the checks that the
bytes are the file (length, gzip stream, Parquet magic and footer, not HTML).
"""
