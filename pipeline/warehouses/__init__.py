"""One module per warehouse engine (DuckDB, PostgreSQL, BigQuery): its tables, its month
load and its row counts, on a shared base (load log, row check).
"""
