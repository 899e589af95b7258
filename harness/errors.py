"""One exception tree for the whole harness.

The CLI turns any :class:`HarnessError` into one line on stderr and its ``exit_code``.
Exit codes: 0 all SLOs met, 1 an SLO missed (not an exception), 2 the harness could not
run the experiment.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 2


class ConfigError(HarnessError):
    """An input file or option is invalid: names the file, the field and what was expected."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(f"{where}{problem}")


class PlatformError(HarnessError):
    """The platform could not bring the workload up, reach it or tear it down."""


class WorkloadNotReady(PlatformError):
    """The workload never became Ready (it exited early or timed out)."""


class LoadError(HarnessError):
    """The load generator could not start or died."""


class ChaosError(HarnessError):
    """A Chaos Toolkit activity or the experiment itself failed."""


class FaultNoEffect(ChaosError):
    """A fault was injected but the check that it took hold failed."""

    def __init__(self, fault: str, checked: str) -> None:
        super().__init__(f"fault had no effect: {fault}: {checked}")


class RunAborted(HarnessError):
    """The run was interrupted (Ctrl-C, SIGTERM) or stopped by an abort guard."""


class ScoringError(HarnessError):
    """A run folder could not be scored (missing or unreadable files)."""


class ReportError(HarnessError):
    """A report (report.html, junit.xml, summary.md) could not be written from a run folder."""
