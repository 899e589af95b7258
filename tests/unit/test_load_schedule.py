"""The open-loop schedule the Locust processes send and the harness counts, and the load
config's t0 (fixed, or written by the Locust process that owns the shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import LoadSpec, SpikeShape, StepShape
from harness.load.lifecycle import scheduled_arrivals
from harness.load.loadconfig import read_load_config, read_t0, write_load_config, write_t0
from harness.load.sampling import schedule, scheduled_count


def _open(duration_s: float, rate: float, arrivals: str = "uniform") -> LoadSpec:
    shape = StepShape(kind="step", duration_s=duration_s, start=rate, increment=0, step_s=1)
    return LoadSpec(shape=shape, mode="open", arrivals=arrivals)  # type: ignore[arg-type]


@pytest.mark.parametrize(("duration_s", "rate"), [(10, 40), (6, 40), (7, 3), (60, 1000)])
def test_uniform_arrivals_are_rate_times_duration(duration_s: float, rate: float) -> None:
    # multiplied, not summed: no rounding drift drops the last arrival
    spec = _open(duration_s, rate)
    offsets = list(schedule(spec))
    assert len(offsets) == scheduled_count(spec) == round(duration_s * rate)
    assert offsets[0] == pytest.approx(1 / rate) and offsets[-1] == pytest.approx(duration_s)
    assert offsets == sorted(offsets)


def test_the_schedule_is_deterministic_and_counted_up_to_a_stop() -> None:
    spec = _open(20, 25, "poisson")
    assert list(schedule(spec)) == list(schedule(spec))
    offsets = list(schedule(spec))
    assert scheduled_count(spec, until=7.5) == sum(1 for o in offsets if o <= 7.5)
    # load_end's scheduled: all, those due by an early stop, none before t0, none closed
    assert scheduled_arrivals(spec, 1000.0, None) == len(offsets)
    assert scheduled_arrivals(spec, 1000.0, 1007.5) == scheduled_count(spec, until=7.5)
    assert scheduled_arrivals(spec, 1000.0, 999.0) == 0
    assert scheduled_arrivals(spec, None, None) is None
    shape = SpikeShape(duration_s=5, baseline_users=2, spike_start_s=0, spike_duration_s=0)
    closed = LoadSpec(shape=shape)
    assert scheduled_arrivals(closed, 1000.0, None) is None


def test_load_config_t0_fixed_or_from_the_file(tmp_path: Path) -> None:
    spec = _open(5, 10)
    fixed = tmp_path / "fixed.json"
    write_load_config(fixed, spec, tmp_path / "requests.csv", 123.5)
    config = read_load_config(fixed)
    assert (config.t0, config.t0_path) == (123.5, None)

    picked = tmp_path / "load.json"
    t0_path = tmp_path / "load_t0.json"
    write_load_config(picked, spec, tmp_path / "requests.csv", None, t0_path)
    config = read_load_config(picked)
    assert (config.t0, config.t0_path) == (None, t0_path)
    assert read_t0(t0_path) is None  # not ready yet
    write_t0(t0_path, 456.25)
    assert read_t0(t0_path) == 456.25
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    with pytest.raises(ValueError, match="needs t0"):
        write_load_config(picked, spec, tmp_path / "requests.csv", None)
