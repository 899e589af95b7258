"""The built-in faults, one module per fault family; every module here is imported by the
registry (:mod:`harness.faults.registry`), so a new fault is one new module."""
