"""gpuchaos: a chaos and load-testing harness for GPU inference workloads."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpuchaos")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
