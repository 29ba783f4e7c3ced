"""Fixtures for the scheduler tests (registered in conftest.py)."""
