"""A month's source file -> the registry's canonical Parquet: CSV.gz (the mirror) and TLC
Parquet, both through one month writer.
"""
