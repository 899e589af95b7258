"""DCGM exporter series -> telemetry rows (harness.telemetry.dcgm), without Prometheus."""

from __future__ import annotations

import json

import pytest

from harness.config import TelemetrySpec
from harness.telemetry.dcgm import (
    ASKED,
    GpuNames,
    XidTracker,
    dcgm_reader,
    parse_vector,
    query,
    to_rows,
)


def _s(
    name: str, value: float, gpu: str = "0", host: str = "node-a", **extra: str
) -> tuple[dict[str, str], float]:
    labels = {"__name__": name, "gpu": gpu, "UUID": f"GPU-{host}-{gpu}", "Hostname": host, **extra}
    return labels, value


def test_each_series_maps_to_its_metric() -> None:
    samples = [
        _s("DCGM_FI_DEV_GPU_UTIL", 75),
        _s("DCGM_FI_DEV_FB_USED", 1000),
        _s("DCGM_FI_DEV_FB_FREE", 3000),
        _s("DCGM_FI_DEV_FB_RESERVED", 96),
        _s("DCGM_FI_DEV_POWER_USAGE", 300.5),
        _s("DCGM_FI_DEV_GPU_TEMP", 70),
        _s("DCGM_FI_DEV_SM_CLOCK", 1410),
        _s("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", 32),
        _s("DCGM_FI_DEV_XID_ERRORS", 0),
    ]
    rows = to_rows(samples, GpuNames(), XidTracker())
    assert sorted(rows) == sorted(
        [
            ("gpu0", "utilization_pct", 75.0),
            ("gpu0", "memory_used_mib", 1000.0),
            ("gpu0", "memory_total_mib", 4096.0),
            ("gpu0", "power_w", 300.5),
            ("gpu0", "temperature_c", 70.0),
            ("gpu0", "sm_clock_mhz", 1410.0),
            ("gpu0", "throttle_reasons", 32.0),
        ]
    )


def test_profiling_activity_stands_in_only_without_gpu_util() -> None:
    alone = to_rows([_s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.42)], GpuNames(), XidTracker())
    assert alone == [("gpu0", "utilization_pct", pytest.approx(42.0))]
    both = [_s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.42), _s("DCGM_FI_DEV_GPU_UTIL", 50)]
    assert to_rows(both, GpuNames(), XidTracker()) == [("gpu0", "utilization_pct", 50.0)]
    newer = [_s("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", 8)]
    assert to_rows(newer, GpuNames(), XidTracker()) == [("gpu0", "throttle_reasons", 8.0)]


def test_memory_total_needs_used_and_free() -> None:
    rows = to_rows([_s("DCGM_FI_DEV_FB_USED", 10)], GpuNames(), XidTracker())
    assert rows == [("gpu0", "memory_used_mib", 10.0)]


def test_gpu_numbers_follow_the_gpu_label_and_stay_fixed() -> None:
    names = GpuNames()
    one = [_s("DCGM_FI_DEV_GPU_UTIL", 1, gpu="3"), _s("DCGM_FI_DEV_GPU_UTIL", 2, gpu="1")]
    assert sorted(to_rows(one, names, XidTracker())) == [
        ("gpu1", "utilization_pct", 2.0),
        ("gpu3", "utilization_pct", 1.0),
    ]
    # a second node's gpu 1 is another GPU: it gets the next free number, for the run
    two = [_s("DCGM_FI_DEV_GPU_UTIL", 5, gpu="1", host="node-b"), *one]
    rows = to_rows(two, names, XidTracker())
    assert ("gpu4", "utilization_pct", 5.0) in rows and ("gpu1", "utilization_pct", 2.0) in rows
    assert names.name(("node-b", "1", "GPU-node-b-1")) == "gpu4"


def test_a_node_label_stands_in_for_hostname() -> None:
    labels = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "node": "n1", "UUID": "u"}
    assert to_rows([(labels, 9.0)], GpuNames(), XidTracker()) == [("gpu0", "utilization_pct", 9.0)]


def test_an_xid_is_an_event_when_it_changes_and_the_first_reading_is_a_baseline() -> None:
    names, xids = GpuNames(), XidTracker()

    def xid_rows(value: float) -> list[tuple[str, str, float]]:
        rows = to_rows([_s("DCGM_FI_DEV_XID_ERRORS", value)], names, xids)
        return [r for r in rows if r[1] == "xid"]

    assert xid_rows(13) == []  # from before the run: logged, not counted
    assert xid_rows(13) == []
    assert xid_rows(79) == [("gpu0", "xid", 79.0)]
    assert xid_rows(79) == []  # the field keeps the last XID: no second event
    assert xid_rows(0) == []
    assert xid_rows(48) == [("gpu0", "xid", 48.0)]


def test_non_finite_values_are_dropped() -> None:
    rows = to_rows([_s("DCGM_FI_DEV_GPU_UTIL", float("nan"))], GpuNames(), XidTracker())
    assert rows == []


def test_query_asks_for_every_series_with_the_selector() -> None:
    q = query('Hostname=~"gpu-.*"')
    assert q.startswith('{__name__=~"') and q.endswith(',Hostname=~"gpu-.*"}')
    assert all(name in q for name in ASKED)
    assert query("   ") == query("") and "," not in query("")  # no empty matcher


def test_parse_vector() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0"}, "value": [1.0, "12"]},
                {"metric": {"gpu": "1"}, "value": [1.0, "not a number"]},
            ],
        },
    }
    assert parse_vector(json.dumps(body).encode()) == [
        ({"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0"}, 12.0)
    ]
    with pytest.raises(ValueError, match="vector"):
        parse_vector(b'{"status": "error", "error": "bad query"}')


def test_the_reader_only_with_a_prometheus_url() -> None:
    assert dcgm_reader(TelemetrySpec()) is None
    reader = dcgm_reader(TelemetrySpec(prometheus_url="http://prom:9090/", dcgm_selector='a="b"'))
    assert reader is not None and reader.url == "http://prom:9090" and reader.selector == 'a="b"'


@pytest.mark.parametrize(
    "bad",
    [
        {"prometheus_url": "prom:9090"},
        {"prometheus_url": "http://prom:99999"},
        {"dcgm_selector": '{gpu="0"}'},
        {"prometheus_timeout_s": 0},
        {"unknown": 1},
    ],
)
def test_bad_telemetry_blocks_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TelemetrySpec.model_validate(bad)
