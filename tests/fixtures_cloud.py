"""Fixtures for the cloud tests (registered in conftest.py)."""
