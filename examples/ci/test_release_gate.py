"""A release gate in your own repository: copy this file and node-loss-gate.yaml.

With gpuchaos installed, pytest has the ``gpuchaos`` fixture (a plugin, loaded on its own):

    pytest examples/ci/test_release_gate.py --gpuchaos-out gate-runs

runs a GPU node loss during a traffic spike, fails the job when an SLO is missed or the
service recovered too slowly, and keeps the run folders in ``gate-runs/`` (upload it as an
artifact; a failed test names its folder). Run twice with the same ``--gpuchaos-out``
and the second run is also compared with the last passing one.

``RELEASE_GATE_VARS`` adds ``--var`` values from the CI job, e.g.
``RELEASE_GATE_VARS="slo_p99_ms=500 node_down_s=30"``; ``RELEASE_GATE_FULL=1`` runs the
experiment at its full length (90 s of load) instead of the short CPU run.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.pytest_plugin import GpuChaos  # the fixture's type

EXPERIMENT = Path(__file__).with_name("node-loss-gate.yaml")

#: About 40 s of load: enough for the fault and the recovery on a CPU runner.
SHORT = {
    "duration_s": 40,
    "warmup_s": 5,
    "baseline_users": 3,
    "spike_start_s": 8,
    "spike_duration_s": 20,
    "fault_delay_s": 5,
    "node_down_s": 8,
    "recovery_wait_s": 8,
}

#: The release's own limits, on top of the experiment's SLOs.
MAX_TIME_TO_RECOVER_S = 20.0
MAX_P99_MS = 5000.0


def gate_vars() -> dict[str, str]:
    """The run's ``--var`` values: the short run unless ``RELEASE_GATE_FULL=1``, then
    ``RELEASE_GATE_VARS`` (``NAME=VALUE`` separated by spaces)."""
    chosen: dict[str, object] = {} if os.environ.get("RELEASE_GATE_FULL") == "1" else {**SHORT}
    extra = dict(p.split("=", 1) for p in os.environ.get("RELEASE_GATE_VARS", "").split())
    return {k: str(v) for k, v in {**chosen, **extra}.items()}


def test_service_survives_gpu_node_loss(gpuchaos: GpuChaos) -> None:
    card = gpuchaos.run(EXPERIMENT, **gate_vars())

    # every SLO of the experiment: one line each, measured against its objective
    card.assert_slos()

    rec = card.recovery
    assert rec.recovered, f"the service did not recover ({card.run_dir})"
    assert rec.time_to_recover_s is not None
    assert rec.time_to_recover_s <= MAX_TIME_TO_RECOVER_S, (
        f"time to recover {rec.time_to_recover_s} s > {MAX_TIME_TO_RECOVER_S} s ({card.run_dir})"
    )
    p99 = card.slo("p99_latency_ms")  # after recovery: the experiment's window for it
    assert p99.measured is not None and p99.measured <= MAX_P99_MS, p99.describe()

    # with --gpuchaos-out, the last passing run is the baseline: nothing may get 50% worse
    baseline = card.last_pass()
    if baseline is not None:
        assert card.regressions(baseline, max_regression=["50"]) == [], baseline.run_dir
