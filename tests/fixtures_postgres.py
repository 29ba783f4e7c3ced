"""Fixtures for the postgres tests (registered in conftest.py)."""
