"""The pytest plugin: a release gate is a pytest file in a team's own repository.

Installed with the package (entry point ``pytest11``, name ``gpuchaos``), so any pytest run
in an environment with gpuchaos has:

- the ``gpuchaos`` fixture: ``gpuchaos.run(experiment, **vars)`` runs an experiment and
  returns a :class:`~harness.scorecard_model.Scorecard` (``assert_slos()``, ``slo(name)``,
  ``regressions(baseline)``, the recovery figures, the run folder);
- ``--gpuchaos-out DIR``: keep the run folders there (default: a temporary folder per test,
  which pytest prunes); ``scorecard.regressions("last-pass")`` finds its baseline there;
- the run folders of a failed test in its report (a "gpuchaos run folders" section, and a
  ``gpuchaos_run`` property in JUnit XML), so CI logs say which folder to open.

Why a subprocess (``python -m harness run``) rather than calling the runner: Locust and
gevent must never be imported into the test process (gevent's monkey-patching would change
every test after it), and the runner installs SIGINT/SIGTERM handlers for the whole process.
The harness's own imports wait for the first run, so loading the plugin costs nothing in
test sessions that never use it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.scorecard_model import Scorecard

log = logging.getLogger(__name__)

#: The run folders a test made, for its report.
_RUNS = pytest.StashKey[list[Path]]()

#: How long one run may take before it is stopped (SIGTERM: faults reverted, children
#: stopped), unless ``gpuchaos.timeout_s`` says otherwise.
DEFAULT_TIMEOUT_S = 1800.0
#: After SIGTERM, how long the harness gets to revert faults and stop its children.
_STOP_GRACE_S = 90.0


class RunFailed(HarnessError):
    """The harness could not run the experiment (exit 2: bad input, the workload never came
    up, an aborted or incomplete run): the CLI's one-line error, and the run folder if any."""

    def __init__(self, message: str, run_dir: Path | None, output: str) -> None:
        where = f" (run folder: {run_dir})" if run_dir is not None else ""
        super().__init__(f"{message}{where}")
        self.run_dir = run_dir
        self.output = output


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpuchaos", "gpuchaos release gates")
    group.addoption(
        "--gpuchaos-out",
        metavar="DIR",
        default=None,
        help="keep the run folders of the gpuchaos fixture in DIR (default: a temporary "
        "folder per test); scorecard.regressions('last-pass') looks for its baseline there",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    out = config.getoption("gpuchaos_out", None)
    return f"gpuchaos: run folders in {_out_root(config, out)}" if out else None


def _out_root(config: pytest.Config, out: str) -> Path:
    return (config.invocation_params.dir / out).resolve()


def _cli_value(value: object) -> str:
    """A ``--var`` value as the experiment loader reads it (YAML scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _new_run_dir(root: Path, experiment: Path) -> Path:
    """``<root>/<UTC time>-<experiment>``, like ``results/``; not created (the CLI does)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = root / f"{stamp}-{experiment.stem}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{experiment.stem}-{n}"
    return path


def _error_line(output: str) -> str:
    """The CLI's one-line error (its last ``gpuchaos: error:`` line)."""
    lines = [ln for ln in output.splitlines() if ln.startswith("gpuchaos: error:")]
    if lines:
        return lines[-1]
    tail = [ln for ln in output.splitlines() if ln.strip()]
    return "gpuchaos: error: " + (tail[-1] if tail else "the run printed nothing")


class GpuChaos:
    """The ``gpuchaos`` fixture. ``allow_modules`` (``--allow-module``), ``timeout_s`` and
    ``env`` (extra environment for the harness) may be set before :meth:`run`."""

    def __init__(self, out_root: Path, cwd: Path, runs: list[Path]) -> None:
        self.out_root = out_root
        self.cwd = cwd
        self.runs = runs
        self.allow_modules: list[str] = []
        self.timeout_s = DEFAULT_TIMEOUT_S
        self.env: dict[str, str] = {}

    def command(self, experiment: str | Path, run_dir: Path, **vars: Any) -> list[str]:
        """The ``gpuchaos run`` command line :meth:`run` starts."""
        cmd = [sys.executable, "-m", "harness", "run", str(experiment), "--out", str(run_dir)]
        for name, value in vars.items():
            cmd += ["--var", f"{name}={_cli_value(value)}"]
        for module in self.allow_modules:
            cmd += ["--allow-module", module]
        return cmd

    def run(self, experiment: str | Path, /, **vars: Any) -> Scorecard:
        """Run ``experiment`` (a path; relative to where pytest was started) with its
        configuration ``vars`` overridden (``--var NAME=VALUE``); the scorecard of the run,
        whether it passed or missed SLOs. Raises :class:`RunFailed` when the harness could
        not run it (exit 2), with the CLI's one line."""
        from harness.scorecard_model import Scorecard

        __tracebackhide__ = True
        exp = (self.cwd / experiment).resolve()
        self.out_root.mkdir(parents=True, exist_ok=True)
        run_dir = _new_run_dir(self.out_root, exp)
        code, output = self._execute(self.command(exp, run_dir, **vars))
        made = run_dir.is_dir()
        if made:
            self.runs.append(run_dir)
        sys.stdout.write(output)  # pytest shows it with a failed test
        if code not in (0, 1) or not (run_dir / "scorecard.json").is_file():
            raise RunFailed(_error_line(output), run_dir if made else None, output)
        return Scorecard.load(run_dir)

    def _execute(self, cmd: list[str]) -> tuple[int, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log.info("gpuchaos: %s", " ".join(cmd))
        # a session of its own: Ctrl-C on pytest reaches the harness once, from here
        proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            output = _stop(proc)
            return 2, output + f"\ngpuchaos: error: run stopped after {self.timeout_s:g} s\n"
        except BaseException:  # Ctrl-C on pytest: the harness reverts its faults first
            _stop(proc)
            raise
        return proc.returncode, output


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM (the harness reverts faults and stops its children), SIGKILL after a grace."""
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
        output, _ = proc.communicate()
    return output or ""


@pytest.fixture
def gpuchaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GpuChaos]:
    """Runs experiments: ``card = gpuchaos.run("experiments/x.yaml", duration_s=40)``."""
    out = request.config.getoption("gpuchaos_out", None)
    root = _out_root(request.config, out) if out else tmp_path / "gpuchaos"
    runs = request.node.stash.setdefault(_RUNS, [])
    yield GpuChaos(root, request.config.invocation_params.dir, runs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test, name its run folders in the report (and in JUnit XML)."""
    report = yield
    runs = item.stash.get(_RUNS, [])
    if report.failed and runs:
        report.sections.append(("gpuchaos run folders", "\n".join(map(str, runs))))
        for prop in (("gpuchaos_run", str(path)) for path in runs):
            if prop not in item.user_properties:  # JUnit XML takes them from the teardown
                item.user_properties.append(prop)
    return report
