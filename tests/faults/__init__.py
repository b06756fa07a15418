"""Fault-injection suite: the real stack under kills, restarts and bad input.

A package, so its conftest is imported as `faults.conftest` and never shadows `tests/conftest.py`
(both would otherwise be the top-level module `conftest`).
"""
