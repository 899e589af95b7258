"""A noisy neighbour's traffic: ``spike_neighbour_load``.

What it teaches: on shared cores (time-slicing, mps) a neighbour's burst of real requests
takes compute from every tenant on the device, and the other team's latency SLO pays for
it; on MIG slices with cores of their own, or a GPU per replica, it should not. Unlike
``contend_compute`` (a synthetic loop) this is the neighbour's own service doing its own
work: real requests through its endpoint, its batches, its KV cache.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from harness.config import LoadSpec
from harness.config.base import MAX_RATE, MAX_USERS
from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import begin
from harness.faults.builtin.tenancy_common import (
    LAST,
    TenantFault,
    check_tenant,
    tenancy_host,
    tenancy_spec,
    tenant_field,
)
from harness.faults.contract import (
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.policy import ttl_for
from harness.faults.procfs import start_time
from harness.faults.registry import register
from harness.faults.state import Target
from harness.procs import die_with_parent

#: The process that runs the extra load (harness.load.neighbour: a layer above the faults,
#: so it is started by module name, never imported here).
LOAD_MODULE = "harness.load.neighbour"
#: Seconds the extra load may take to start (Python, Locust) and answer its first request.
FIRST_RECORD_TIMEOUT_S = 90.0
#: Seconds the load process has to stop Locust and write its summary after SIGINT.
STOP_GRACE_S = 15.0
DEFAULT_USERS = 8


class SpikeLoadArgs(FaultArgs):
    tenant: str | None = tenant_field(LAST)
    users: int | None = Field(
        None,
        ge=1,
        le=MAX_USERS,
        description=(
            f"Concurrent users of the extra load (closed loop), 1 to {MAX_USERS:,}; unset and "
            f"no rate: {DEFAULT_USERS}."
        ),
    )
    rate: float | None = Field(
        None,
        gt=0,
        le=MAX_RATE,
        allow_inf_nan=False,
        description=f"Requests/s of the extra load instead (open loop), at most {MAX_RATE:,}.",
    )
    duration_s: float = duration_field(20.0)
    ttl_s: float | None = ttl_field()

    @model_validator(mode="after")
    def _one_level(self) -> SpikeLoadArgs:
        if self.users is not None and self.rate is not None:
            raise ValueError("give users (closed loop) or rate (open loop), not both")
        return self


def spike_spec(base: LoadSpec, args: SpikeLoadArgs) -> LoadSpec:
    """The tenant's own load (its user, requests, timeouts) at a flat level for the fault's
    duration: ``users`` closed-loop users or ``rate`` requests/s, one local Locust process."""
    open_loop = args.rate is not None
    level = args.rate if open_loop else float(args.users or DEFAULT_USERS)
    # a little longer than the hold: the revert stops it, the shape's end never cuts it short
    shape = {
        "kind": "step",
        "duration_s": args.duration_s + 30.0,
        "start": level,
        "increment": 0,
        "step_s": args.duration_s + 30.0,
    }
    doc = base.model_dump(mode="json", exclude_unset=True)
    doc.update(shape=shape, mode="open" if open_loop else "closed", workers=0)
    doc.pop("workers_on", None)
    return LoadSpec.model_validate(doc)


def _tenant_load(ctx: FaultContext, fault: str, tenant: str) -> LoadSpec:
    tenancy = tenancy_spec(ctx)
    if tenancy is None:
        raise ChaosError(f"{fault}: the run's spec has no tenancy block to take the load from")
    load: LoadSpec = tenancy.tenant(tenant).load
    return load


def answered(path: Path) -> tuple[int, int]:
    """Records in ``requests.csv`` and how many of them were answered (HTTP 200)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return 0, 0
    return len(rows), sum(1 for r in rows if r.get("status") == "200")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (the load process stops Locust, which writes its summary), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@register
class SpikeNeighbourLoad(TenantFault[SpikeLoadArgs]):
    """Noisy neighbour, traffic: an extra real Locust load (the tenant's own requests, at
    ``users`` users or ``rate`` requests/s) against the tenant's endpoint for ``duration_s``,
    its records in ``tenants/<tenant>/spike/`` (not the tenant's scored records). Real on
    every mode; what it costs the other tenants depends on the sharing mode (shared cores
    under time-slicing and mps, a MIG slice's own cores when the node has enough).
    ``duration_s`` counts from the call, as for every fault: the extra Locust's start-up
    (seconds on a busy CPU machine: its ``injection_latency_s``) is part of it.
    Proof: its requests reached the tenant (records written, answers counted). Revert: the
    load stopped (SIGINT); the detached reverter kills it by pid when the harness dies or
    the time-to-live runs out (before it is registered, Locust dies with the harness)."""

    name = "spike_neighbour_load"
    neighbour = True
    args = SpikeLoadArgs
    revert_action = "stop_neighbour_load"
    hold = "timed"
    summary = (
        "Noisy neighbour, traffic: an extra real Locust load against a tenant's endpoint "
        "(its own requests); the other tenants feel it on shared cores"
    )
    proves = "the extra load's requests reached the tenant (records written, answers counted)"

    def inject(self, ctx: FaultContext, args: SpikeLoadArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        check_tenant(host, self.name, target)
        spec = spike_spec(_tenant_load(ctx, self.name, target), args)
        out = Path(host.tenant_dir(target)) / "spike"
        out.mkdir(parents=True, exist_ok=True)
        spec_path = out / "spike_load.json"
        spec_path.write_text(json.dumps(spec.model_dump(mode="json")), encoding="utf-8")
        endpoint = host.tenant_endpoint(target)
        records = out / "requests.csv"
        already, already_ok = answered(records)
        log_path = out / "neighbour.log"
        t0 = time.perf_counter()
        with open(log_path, "ab") as log_fh:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    LOAD_MODULE,
                    "--dir",
                    str(out),
                    "--endpoint",
                    endpoint,
                    "--spec",
                    str(spec_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
                close_fds=True,
            )
        ttl = ttl_for(args.duration_s, args.ttl_s)
        target_proc = Target(proc.pid, start_time(proc.pid), group=True)
        active = begin("process", self.name, target, [target_proc], ttl, ctx.run_dir)
        active.undo.append(lambda: _stop(proc))
        with active.undone_on_error():
            deadline = time.monotonic() + FIRST_RECORD_TIMEOUT_S
            while answered(records)[0] <= already:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(encoding="utf-8", errors="replace")[-400:]
                    raise FaultNoEffect(
                        f"{self.name} {target}",
                        f"the extra load sent no request within {FIRST_RECORD_TIMEOUT_S:g} s "
                        f"(exit {proc.poll()}); end of {log_path}: {tail}",
                    )
                time.sleep(0.1)
        facts = {
            "tenant": target,
            "endpoint": endpoint,
            "pid": proc.pid,
            "level": args.rate if args.rate is not None else args.users or DEFAULT_USERS,
            "mode": spec.mode,
            "records_dir": str(out),
        }
        injection = Injection(target, active, facts, latency_s=time.perf_counter() - t0)
        injection.scratch.update(records=records, already=(already, already_ok), host=host)
        return injection

    def prove(
        self, ctx: FaultContext, args: SpikeLoadArgs, injection: Injection
    ) -> dict[str, Any] | None:
        count, ok = self._counts(injection)
        if count <= 0:
            return None
        replicas = sorted(injection.scratch["host"].tenant_replicas(injection.target))
        return {
            **injection.facts,
            "affected": replicas,
            "records": count,
            "answered": ok,
            "checked": "records of the extra load written",
        }

    def finish(
        self, ctx: FaultContext, args: SpikeLoadArgs, injection: Injection
    ) -> dict[str, Any]:
        count, ok = self._counts(injection)
        return {"records": count, "answered": ok}

    @staticmethod
    def _counts(injection: Injection) -> tuple[int, int]:
        """This injection's records and answers (a second spike appends to the same file)."""
        count, ok = answered(injection.scratch["records"])
        before, before_ok = injection.scratch["already"]
        return count - before, ok - before_ok
