"""Step, ramp, diurnal and trace shapes; seeded lengths and open-loop arrivals; config checks."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.config import (
    DiurnalShape,
    HarnessSpec,
    LengthDistribution,
    LoadSpec,
    RampShape,
    StepShape,
    TraceShape,
    WorkloadSpec,
)
from harness.load.sampling import arrivals, draw_length, v2_payload
from harness.load.shapes import (
    level_at,
    next_change,
    peak_level,
    phase_at,
    phase_schedule,
    users_at,
)


def test_step_shape() -> None:
    shape = StepShape(kind="step", duration_s=10, start=2, increment=3, step_s=4, max_level=6)
    assert [level_at(shape, t) for t in (0, 3.9, 4, 8, 9.9)] == [2, 2, 5, 6, 6]
    assert level_at(shape, 10) is None
    assert phase_at(shape, 5) == "step-1"
    assert phase_schedule(shape) == [(0.0, "step-0"), (4.0, "step-1"), (8.0, "step-2")]
    assert next_change(shape, 4.5) == 8.0


def test_ramp_and_diurnal_shapes() -> None:
    ramp = RampShape(kind="ramp", duration_s=20, start=0, end=10, ramp_s=10)
    assert [level_at(ramp, t) for t in (0, 5, 10, 15)] == [0, 5, 10, 10]
    assert users_at(ramp, 5.2) == 5
    assert phase_schedule(ramp) == [(0.0, "ramp"), (10.0, "hold")]
    assert next_change(ramp, 2.5) == 3.0
    day = DiurnalShape(kind="diurnal", duration_s=40, mean=5, amplitude=5, period_s=40)
    assert level_at(day, 10) == pytest.approx(10)
    assert level_at(day, 30) == pytest.approx(0, abs=1e-9)
    assert phase_at(day, 5) == "rising" and phase_at(day, 15) == "falling"
    assert peak_level(day) == pytest.approx(10)
    with pytest.raises(ValidationError):
        RampShape(kind="ramp", duration_s=5, start=0, end=1, ramp_s=10)


def test_trace_shape(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("time_s,level\n0,2\n5,8\n10,0\n12,1\n")
    shape = TraceShape(kind="trace", path=str(path), scale=0.5)
    assert shape.length_s == 12
    assert [level_at(shape, t) for t in (0, 4.9, 5, 11)] == [1, 1, 4, 0]
    assert next_change(shape, 1) == 5
    assert peak_level(shape) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,level\n0,1\n0,2\n")
    with pytest.raises(ValidationError, match="times must rise"):
        TraceShape(kind="trace", path=str(bad))


def test_shape_kind_defaults_to_spike_and_unknown_kinds_fail() -> None:
    spec = LoadSpec.model_validate(
        {"shape": {"duration_s": 5, "baseline_users": 1, "spike_start_s": 0, "spike_duration_s": 0}}
    )
    assert spec.shape.kind == "spike"
    with pytest.raises(ValidationError):
        LoadSpec.model_validate({"shape": {"kind": "zigzag", "duration_s": 5}})


def test_lengths_are_seeded_and_clamped() -> None:
    dist = LengthDistribution(dist="lognormal", min=2, max=50, mean=10, std=1.0)
    a = [draw_length(dist, random.Random(7)) for _ in range(3)]
    b = [draw_length(dist, random.Random(7)) for _ in range(3)]
    assert a == b
    draws = [draw_length(dist, random.Random(i)) for i in range(500)]
    assert min(draws) >= 2 and max(draws) <= 50
    assert draw_length(12, random.Random(0)) == 12
    with pytest.raises(ValidationError, match="needs mean and std"):
        LengthDistribution(dist="normal", max=10)


def test_open_loop_arrivals_hold_the_rate() -> None:
    shape = StepShape(kind="step", duration_s=20, start=10, increment=10, step_s=10)
    times = list(arrivals(shape, poisson=True, rng=random.Random(1)))
    first = sum(1 for t in times if t < 10)
    second = sum(1 for t in times if t >= 10)
    assert 70 <= first <= 130 and 160 <= second <= 240  # 100 and 200 expected
    even = list(arrivals(shape, poisson=False, rng=random.Random(1)))
    assert even[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert all(b > a for a, b in itertools.pairwise(times))


def test_v2_payload_follows_metadata() -> None:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 2, 2]}]
    doc = v2_payload(inputs, random.Random(0))
    (tensor,) = doc["inputs"]
    assert tensor["shape"] == [1, 3, 2, 2] and len(tensor["data"]) == 12
    with pytest.raises(ValueError, match="BYTES"):
        v2_payload([{"name": "x", "datatype": "BYTES", "shape": [1]}], random.Random(0))


def test_workload_spec_kinds_and_args() -> None:
    spec = WorkloadSpec(kind="classifier", model="tiny", max_batch_delay_ms=3)
    assert spec.module == "workloads.classifier"
    assert "--max-batch-delay-ms" in spec.server_args()
    llm = WorkloadSpec(kv_cache="on-demand", cuda_graphs=False)
    args = llm.server_args()
    assert args[args.index("--kv-cache") + 1] == "on-demand" and "--no-cuda-graphs" in args
    with pytest.raises(ValidationError, match="not a classifier model"):
        WorkloadSpec(kind="classifier", model="gpt2-small")


def test_platform_or_endpoint() -> None:
    load = {
        "shape": {"duration_s": 5, "baseline_users": 1, "spike_start_s": 0, "spike_duration_s": 0}
    }
    spec = HarnessSpec.model_validate(
        {"name": "gpuchaos", "endpoint": {"url": "http://10.0.0.5:8000"}, "load": load}
    )
    assert spec.platform is None
    with pytest.raises(ValidationError, match="exactly one"):
        HarnessSpec.model_validate({"name": "gpuchaos", "load": load})


def test_validate_rejects_node_faults_with_an_external_endpoint(tmp_path: Path) -> None:
    import yaml

    from harness.errors import ConfigError
    from harness.experiment import load_experiment

    doc = yaml.safe_load(Path("experiments/gpu-node-loss.yaml").read_text())
    ext = doc["extensions"][0]
    del ext["platform"], ext["workload"]
    ext["endpoint"] = {"url": "http://127.0.0.1:9"}
    path = tmp_path / "external.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert "method[0]" in str(err.value) or "method[1]" in str(err.value)
    assert "external endpoint" in str(err.value)
    doc["method"] = [
        {"type": "probe", "name": "slos", "provider": {"type": "python",
         "module": "harness.chaos.probes", "func": "slos_hold"}}
    ]  # fmt: skip
    doc.pop("rollbacks")
    path.write_text(yaml.safe_dump(doc))
    assert load_experiment(path).spec.endpoint is not None
