"""The toy platform's Chaos Toolkit module: experiments name ``tests.support.toy.chaos``
and the functions of the toy faults (generated from the registry)."""

from harness.chaos.adapter import export

__all__ = export(globals(), __name__, "toy")
