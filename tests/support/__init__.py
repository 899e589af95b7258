"""Code shared by the tests: ports (:mod:`tests.support.ports`) and child processes
(:mod:`tests.support.procs`), one copy of each, so every test binds, starts, waits and cleans
up the same way (the pytest fixtures built on them live in ``tests/conftest.py``); and
``toy/``, the toy platform and fault that tests/integration/test_extending.py extends
gpuchaos with."""
