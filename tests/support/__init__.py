"""Helpers shared by every test tier: ports (:mod:`tests.support.ports`) and child processes
(:mod:`tests.support.procs`). One copy of each, so every test binds, starts, waits and cleans
up the same way; the pytest fixtures built on them live in ``tests/conftest.py``."""
