"""`python -m harness` is the same as the `gpuchaos` console script."""

from harness.cli import main

raise SystemExit(main())
