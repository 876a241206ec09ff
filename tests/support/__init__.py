"""Helpers shared by the tests: tiny corpora, temporary projects, clean environments, servers.

Test modules import from here (and get fixtures from `tests/conftest.py`), never from each other.
"""
