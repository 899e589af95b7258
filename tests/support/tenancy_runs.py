"""Synthetic tenancy run folders with known answers, laid out as the run writes them
(/tmp contract: one timeline, one telemetry file, ``tenants/<name>/requests.csv`` and
``tenants/<name>/experiment.yaml``), for the tenancy scoring and report tests.

The run (``T0`` = load start, 40 s of load):

- teama and teamb, one replica each on pool node ``node-a`` (cores 0-3); exclusive adds
  ``node-b`` (cores 4-7) so each has a GPU of its own.
- teama's replica is Ready from before the load until a VPA-style recreate at +30 s, and Ready
  again at +32 s: 38 s Ready. teamb's is Ready all 40 s.
- teamb's ``spike_neighbour_memory`` from +10 s to +20 s; 37 of teama's 100 requests that end
  in that window fail (HTTP 500), none before; teamb's requests all succeed.
- teama's autoscaler is refused by its quota at +5 s (wants 3, quota 2) and +25 s (wants 4):
  1 x 20 s + 2 x 15 s = 50 replica-seconds denied. teamb has 2 admission denials.
- Telemetry each second: teama's replica busy 50% of a core, teamb's 100%.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from harness.config import EXTENSION_NAME, HarnessSpec
from harness.config.tenancy_layout import tenant_document
from harness.records import RecordWriter
from harness.rundir import RunDir
from harness.scoring.tenancy_view import tenant_dir
from harness.timeline import Timeline

T0 = 1_700_000_000.0
SECONDS = 40
RATE = 10  # requests per second per tenant
FAILED = 37  # teama's failures in the fault window
TIMEOUT_S = 2.0

#: Each tenant's replica id per sharing mode.
REPLICAS = {
    "time-slicing": {"teama": "teama-node-a-0", "teamb": "teamb-node-a-0"},
    "mps": {"teama": "teama-node-a-0", "teamb": "teamb-node-a-0"},
    "mig": {"teama": "teama-node-a-s0-0", "teamb": "teamb-node-a-s1-0"},
    "exclusive": {"teama": "teama-node-a-0", "teamb": "teamb-node-b-0"},
}


def experiment(sharing: str) -> dict[str, Any]:
    """The tenancy experiment document of the synthetic run."""
    nodes: list[dict[str, Any]] = [{"name": "node-a", "device": "cpu", "cpus": [0, 1, 2, 3]}]
    if sharing == "exclusive":
        nodes.append({"name": "node-b", "device": "cpu", "cpus": [4, 5, 6, 7]})
    shape = {"kind": "step", "duration_s": SECONDS, "start": 1, "increment": 0, "step_s": 10}
    load = {"shape": shape, "request_timeout_s": TIMEOUT_S}
    tenants = [
        {
            "name": "teama",
            "load": load,
            "slos": {
                "p99_latency_ms": 500,
                "error_rate": 0.05,
                "gpu_min_utilization_pct": 60,
                "price_per_gpu_hour": 3.6,
            },
            "contract": {"gpu_share": 0.5, "replicas": 1, "quota": 2},
        },
        {
            "name": "teamb",
            "load": load,
            "slos": {"p99_latency_ms": 500, "error_rate": 0.01},
            "contract": {"gpu_share": 0.5, "replicas": 1},
        },
    ]
    tenancy = {"sharing": sharing, "mig_slices": 4, "tenants": tenants}
    return {
        "title": f"two tenants, {sharing}",
        "description": "synthetic tenancy run",
        "method": [],
        "extensions": [
            {
                "name": EXTENSION_NAME,
                "platform": {"kind": "local", "nodes": nodes},
                "tenancy": tenancy,
            }
        ],
    }


def _events(tl: Timeline, sharing: str) -> None:
    ids = REPLICAS[sharing]
    a, b = ids["teama"], ids["teamb"]
    node = {r: r.rsplit("-", 1)[0] for r in (a, b)}
    tl.emit("run_start", "two-tenants", {"harness_version": "test"}, at=T0 - 5)
    for name, rid in ids.items():
        tl.emit("replica_ready", rid, {"tenant": name, "node": node[rid], "pid": 1}, at=T0 - 2)
    for name in ids:
        tl.emit("load_start", "locust", {"tenant": name, "duration_s": SECONDS}, at=T0)
    quota = {"tenant": "teama", "quota": 2, "replicas": 2, "reason": "quota"}
    tl.emit("quota_refused", "teama", {**quota, "wanted": 3}, at=T0 + 5)
    args = {"tenant": "teamb", "duration_s": 10}
    start = {"fault": "spike_neighbour_memory", "activity": "spike", "arguments": args}
    tl.emit("fault_start", "teamb", start, at=T0 + 10)
    effect = {"fault": "spike_neighbour_memory", "tenant": "teamb", "affected": [b]}
    tl.emit("fault_effect", "teamb", effect, at=T0 + 10.5)
    for i in range(2):
        deny = {"tenant": "teamb", "rule": "memory-cap", "reason": "no memory cap"}
        tl.emit("admission_denied", "teamb-node-a-1", deny, at=T0 + 12 + i)
    tl.emit("fault_end", "teamb", {"fault": "spike_neighbour_memory"}, at=T0 + 20)
    tl.emit("quota_refused", "teama", {**quota, "wanted": 4}, at=T0 + 25)
    recreate = {"tenant": "teama", "memory_mib": 512, "old_pid": 10, "new_pid": 11}
    tl.emit("replica_recreated", a, recreate, at=T0 + 30)
    tl.emit("replica_ready", a, {"tenant": "teama", "node": node[a], "pid": 11}, at=T0 + 32)
    for name in ids:
        tl.emit("load_end", "locust", {"tenant": name}, at=T0 + SECONDS)
    tl.emit("run_end", "two-tenants", at=T0 + SECONDS + 1)


def _requests(path: Path, tenant: str) -> None:
    writer = RecordWriter(path)
    for i in range(RATE * SECONDS):
        start = T0 + i / RATE
        failed = tenant == "teama" and 100 <= i < 100 + FAILED
        writer.write(
            {
                "start": f"{start:.3f}",
                "end": f"{start + 0.05:.3f}",
                "latency_ms": 100.0 if failed else (50.0 if tenant == "teama" else 20.0),
                "ttft_ms": "",
                "output_tokens": 1,
                "status": 500 if failed else 200,
                "error": "HTTP 500" if failed else "",
                "replica": f"{tenant}-node-a-0",
                "phase": "baseline",
            }
        )
    writer.close()


def make_tenancy_run(path: Path, sharing: str = "time-slicing") -> Path:
    """Write the synthetic run (see module) into ``path`` and return it."""
    path.mkdir(parents=True)
    paths = RunDir(path)
    doc = experiment(sharing)
    paths.experiment.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    spec = HarnessSpec.model_validate(doc["extensions"][0])
    tl = Timeline(paths.timeline)
    _events(tl, sharing)
    tl.close()
    for name in ("teama", "teamb"):
        own = tenant_dir(path, name)
        own.mkdir(parents=True)
        text = yaml.safe_dump(tenant_document(doc, spec, name), sort_keys=False)
        (own / "experiment.yaml").write_text(text, encoding="utf-8")
        _requests(own / "requests.csv", name)
    ids = REPLICAS[sharing]
    with open(paths.telemetry, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["time", "source", "metric", "value"])
        for s in range(SECONDS + 1):
            at = f"{T0 + s:.3f}"
            out.writerow([at, "system", "cpu_pct", "40"])
            out.writerow([at, ids["teama"], "cpu_pct", "50"])
            out.writerow([at, ids["teamb"], "cpu_pct", "100"])
            out.writerow([at, "platform", "replicas_ready", "2"])
    return path
