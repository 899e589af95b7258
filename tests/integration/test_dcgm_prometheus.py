"""GPU telemetry from DCGM through a real Prometheus: Debian's ``prometheus`` on 127.0.0.1
scrapes a stand-in dcgm-exporter every second; the harness's reader asks Prometheus's HTTP
API and writes the ``gpuN`` rows of telemetry.csv, which the scorer turns into utilization,
idle GPU-seconds and XIDs."""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.scoring.gpu import gpu_figures, read_telemetry
from harness.telemetry.dcgm import DcgmReader
from harness.telemetry.sampler import TelemetrySampler
from tests.support.dcgm_exporter import Exporter, dcgm_exporter
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

PROMETHEUS = shutil.which("prometheus")


class NoReplicas:
    """A platform with nothing to sample but the GPUs (what the sampler reads)."""

    def nodes(self) -> list[str]:
        return []

    def replicas(self) -> list[object]:
        return []


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Exporter]]:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed: sudo apt-get install -y prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    with dcgm_exporter() as (exporter, exporter_port):
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: dcgm\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{exporter_port}']\n",
            encoding="utf-8",
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        log = tmp / "prometheus.log"
        with running(cmd, log_path=log) as proc:
            wait_http_ready(proc, f"{url}/-/ready", timeout_s=60, name="prometheus", log=log)
            reader = DcgmReader(url)

            def has_both_gpus() -> bool:
                names = {labels.get("gpu") for labels, _ in reader.fetch()}
                return names == {"0", "1"}

            deadline = time.monotonic() + 30
            while not has_both_gpus():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield url, exporter


def test_dcgm_series_become_gpu_rows(prometheus: tuple[str, Exporter]) -> None:
    url, _ = prometheus
    rows = DcgmReader(url).rows()
    got = {(source, metric): value for source, metric, value in rows}
    assert got[("gpu0", "utilization_pct")] == 87.0 and got[("gpu1", "utilization_pct")] == 21.0
    assert got[("gpu0", "memory_used_mib")] == 61440.0
    assert got[("gpu0", "memory_total_mib")] == 61440.0 + 19456.0 + 559.0  # used+free+reserved
    assert got[("gpu0", "power_w")] == 612.5 and got[("gpu1", "temperature_c")] == 41.0
    assert got[("gpu0", "sm_clock_mhz")] == 1980.0 and got[("gpu1", "throttle_reasons")] == 4.0
    assert not [r for r in rows if r[1] == "xid"]  # a zero XID field is no event


def test_a_new_xid_is_one_event_and_the_scorecard_sees_utilization(
    prometheus: tuple[str, Exporter], tmp_path: Path
) -> None:
    url, exporter = prometheus
    path = tmp_path / "telemetry.csv"
    sampler = TelemetrySampler(NoReplicas(), path, interval_s=0.5, dcgm=DcgmReader(url))
    t0 = time.time()
    sampler.start()
    try:
        deadline = time.monotonic() + 20
        while sampler.samples < 2:  # the first reading is the XID baseline
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with exporter.lock:
            exporter.values["1"]["DCGM_FI_DEV_XID_ERRORS"] = 79.0  # GPU fallen off the bus
        while ("gpu1", "xid") not in sampler.latest:
            assert time.monotonic() < deadline + 10, "the XID never showed"
            time.sleep(0.1)
        samples_at_xid = sampler.samples
        while sampler.samples < samples_at_xid + 2:  # the XID field stays 79: no new event
            time.sleep(0.1)
    finally:
        sampler.stop()
    t1 = time.time()
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    xids = [(r["source"], float(r["value"])) for r in rows if r["metric"] == "xid"]
    assert xids == [("gpu1", 79.0)]
    figures = gpu_figures(read_telemetry(path), t0, t1, price_per_gpu_hour=2.0)
    assert figures["gpus"] == 2
    assert figures["per_gpu_utilization_pct"] == {"gpu0": 87.0, "gpu1": 21.0}
    assert figures["utilization_pct"] == pytest.approx(54.0)
    assert figures["idle_gpu_s"] == pytest.approx((t1 - t0) * (0.13 + 0.79))
    assert "under 60%" in figures["note"]


def test_a_selector_narrows_the_query(prometheus: tuple[str, Exporter]) -> None:
    url, _ = prometheus
    assert DcgmReader(url, selector='gpu="1"').rows()[0][0] == "gpu1"  # keeps its own index
    assert DcgmReader(url, selector='Hostname="elsewhere"').rows() == []
    with httpx.Client() as client:  # the query the reader sends is plain PromQL
        answer = client.get(f"{url}/api/v1/query", params={"query": "DCGM_FI_DEV_GPU_UTIL"})
    assert len(answer.json()["data"]["result"]) == 2


def test_an_unreachable_prometheus_gives_no_rows() -> None:
    reader = DcgmReader(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    assert reader.rows() == [] and reader.errors == 1
