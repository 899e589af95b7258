"""What ``gpuchaos run`` does differently for an experiment with tenants (issue #20).

Why a module of its own: the run loop (:mod:`harness.runner`) stays one loop; a tenancy
run differs in three places only, all here:

- the run folder gets ``tenants/<name>/experiment.yaml`` per tenant at the start: the
  tenant's single-tenant experiment (the document with the gpuchaos block's ``tenancy``
  removed and its workload, load, SLOs and platform the tenant's, the platform being its
  layout view of the pool), which the scorer scores the tenant's records against;
- the load is every tenant's (:mod:`harness.load.tenants`, chosen by the load factory for a
  tenant pool), each writing ``tenants/<name>/requests.csv``: there is no
  ``run_dir/requests.csv``;
- what reads "the run's requests" while it runs (the progress line, the abort guards, the
  steady-state probes) reads the first tenant's, whose SLOs are also the experiment's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.config import HarnessSpec, LocalPlatformSpec
from harness.config.tenancy_layout import NICENESS, layout, tenant_document
from harness.rundir import EXPERIMENT_FILE, RunDir


def first_tenant(spec: HarnessSpec) -> str | None:
    """The first tenant's name, None without tenancy."""
    return spec.tenancy.tenants[0].name if spec.tenancy is not None else None


def records_dir(run_dir: Path, spec: HarnessSpec) -> Path:
    """The folder whose ``requests.csv`` stands for the run's: the run folder, or with
    tenancy the first tenant's."""
    name = first_tenant(spec)
    return Path(run_dir) if name is None else RunDir(run_dir).tenant(name).path


def write_tenant_documents(doc: Mapping[str, Any], spec: HarnessSpec, run_dir: Path) -> None:
    """``tenants/<name>/experiment.yaml`` of every tenant; nothing without tenancy."""
    if spec.tenancy is None:
        return
    for name in spec.tenancy.names():
        folder = RunDir(run_dir).tenant(name).path
        folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(tenant_document(doc, spec, name), sort_keys=False)
        (folder / EXPERIMENT_FILE).write_text(text, encoding="utf-8")


def tenancy_plan(spec: HarnessSpec) -> list[str]:
    """The dry run's lines of a tenancy experiment: each tenant's replicas on its view of
    the pool (cores, memory cap, niceness) and its quota; [] without tenancy."""
    tenancy = spec.tenancy
    if tenancy is None or not isinstance(spec.platform, LocalPlatformSpec):
        return []
    lines = [f"tenancy: {len(tenancy.tenants)} tenant(s) share the pool by {tenancy.sharing}"]
    for name, view in layout(tenancy, spec.platform).items():
        contract = tenancy.tenant(name).contract
        for s in view.slots:
            cores = "any core" if s.cpus is None else "cores " + ",".join(map(str, s.cpus))
            cap = "no memory cap" if s.memory_cap_mib is None else f"{s.memory_cap_mib:g} MiB cap"
            lines.append(
                f"tenant {name}: would start {s.replicas} replica(s) on {s.view} (pool node "
                f"{s.node}, {cores}, {cap}, niceness {NICENESS[contract.priority]})"
            )
        lines.append(f"tenant {name}: quota {contract.replica_quota} replica(s)")
    return lines
