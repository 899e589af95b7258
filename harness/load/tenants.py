"""Every tenant's load at once (issue #20): one Locust process per tenant against its own
endpoint, records in ``run_dir/tenants/<name>/``, all on ONE clock.

Why one shared ``t0``: the scorer lines the tenants up (a fault at 20 s is at 20 s of every
tenant's records, and the blast radius compares the same seconds), so every tenant's
shape starts at the same unix time. The runner pins it a little ahead (``lead_s``: the time
Locust takes to import and get ready on a busy machine) and starts the tenants' Locust
processes together; each emits its ``load_start``/``phase``/``load_end`` events through its
tenant's timeline view, so they carry ``details["tenant"]``.

It keeps :class:`~harness.load.factory.LoadRunner`'s contract, so the run loop sees one
load: ``t0`` is the shared one, it runs while every tenant's runs, ``record_count`` sums
the tenants' records, and the load generators' CPU is sampled per tenant (``locust`` for
the first tenant, ``locust-<name>`` for the others).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import LoadSpec
from harness.errors import HarnessError, LoadError
from harness.load.local import LocustRunner
from harness.timeline import Timeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantLoad:
    """One tenant's load: its spec, its endpoint, its folder and its timeline view."""

    name: str
    spec: LoadSpec
    endpoint: str
    folder: Path
    timeline: Timeline


class TenantLoads:
    """One :class:`~harness.load.local.LocustRunner` per tenant, started together on one
    ``t0``; a :class:`~harness.load.factory.LoadRunner`."""

    #: t0 is this long after start(): every tenant's Locust imports and gets ready by then
    lead_s = 5.0

    def __init__(
        self,
        loads: list[TenantLoad],
        *,
        first_record_timeout_s: float = 15.0,
        stop_timeout_s: float | None = None,
    ) -> None:
        if not loads:
            raise LoadError("a tenancy run needs at least one tenant's load")
        for t in loads:
            if t.spec.workers or t.spec.workers_on != "local":
                raise LoadError(
                    f"tenancy.tenants[{t.name}].load: a tenant's load runs in one local Locust "
                    "process (workers: 0, workers_on: local)"
                )
        self.loads = loads
        self.first_record_timeout_s = first_record_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.runners: dict[str, LocustRunner] = {}
        self._t0: float | None = None
        self._done = threading.Event()
        self._keepers: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return self.loads[0].endpoint

    @property
    def t0(self) -> float:
        if self._t0 is None:
            raise LoadError("the load has not been started")
        return self._t0

    @property
    def running(self) -> bool:
        """Every tenant's load still runs (one that stopped early ends the warm-up)."""
        return bool(self.runners) and all(r.running for r in self.runners.values())

    @property
    def returncode(self) -> int | None:
        codes = [r.returncode for r in self.runners.values()]
        if not codes or any(c is None for c in codes):
            return None
        return max(c for c in codes if c is not None)

    def start(self) -> None:
        """Start every tenant's Locust on one t0 and return once each has a record; the
        first failure stops them all and is raised, naming its tenant.

        Each runner is started by a keeper thread that lives until :meth:`stop`: a Locust
        process dies with the thread that spawned it (PR_SET_PDEATHSIG), and starting them
        one after the other from this thread would start the later ones after t0."""
        if self.runners:
            raise LoadError("load already started")
        t0 = time.time() + self.lead_s
        self._t0 = t0
        for t in self.loads:
            t.folder.mkdir(parents=True, exist_ok=True)
            self.runners[t.name] = LocustRunner(
                t.spec,
                t.endpoint,
                t.folder,
                t.timeline,
                first_record_timeout_s=self.first_record_timeout_s,
                stop_timeout_s=self.stop_timeout_s,
                t0=t0,
            )
        errors: dict[str, HarnessError] = {}
        started = [threading.Event() for _ in self.loads]

        def keep(name: str, ready: threading.Event) -> None:
            try:
                self.runners[name].start()
            except HarnessError as exc:
                errors[name] = exc
            finally:
                ready.set()
            self._done.wait()

        for t, ready in zip(self.loads, started, strict=True):
            keeper = threading.Thread(
                target=keep, args=(t.name, ready), name=f"gpuchaos-load-{t.name}", daemon=True
            )
            keeper.start()
            self._keepers.append(keeper)
        for ready in started:
            ready.wait()
        if errors:
            self.stop(grace_s=2.0)
            name, exc = next(iter(errors.items()))
            raise LoadError(f"tenant {name}: {exc}")
        log.info("tenants' loads started at %.3f: %s", t0, ", ".join(self.runners))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every tenant's load to end by itself; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for r in self.runners.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = r.wait(left) and ok
        return ok

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop every tenant's load at once (one clock: no tenant loads on while another's
        is being stopped); each emits its ``load_end``. Idempotent."""

        def stop_one(name: str, r: LocustRunner) -> None:
            try:
                r.stop(grace_s)
            except HarnessError as exc:
                log.warning("stopping tenant %s's load: %s", name, exc)

        try:
            stops = [
                threading.Thread(target=stop_one, args=(n, r), name=f"gpuchaos-stop-{n}")
                for n, r in self.runners.items()
            ]
            for t in stops:
                t.start()
            for t in stops:
                t.join()
        finally:
            self._done.set()
            for keeper in self._keepers:
                keeper.join(timeout=5.0)
        return self.returncode

    def record_count(self) -> int:
        return sum(r.record_count() for r in self.runners.values())

    def load_pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, (name, r) in enumerate(self.runners.items()):
            for source, pid in r.load_pids().items():
                out[source if i == 0 else f"{source}-{name}"] = pid
        return out


def tenant_loads(
    pool: object,
    *,
    first_record_timeout_s: float = 15.0,
    stop_timeout_s: float | None = None,
) -> TenantLoads:
    """The loads of a tenant pool (:class:`~harness.platforms.local.tenancy.TenantPool`):
    each tenant's load spec against its endpoint, into its folder, on its timeline view."""
    from harness.platforms.local.tenancy import TenantPool

    assert isinstance(pool, TenantPool)
    loads = [
        TenantLoad(
            t.name,
            t.load,
            pool.tenant_endpoint(t.name),
            pool.tenant_dir(t.name),
            pool.tenant(t.name).timeline,
        )
        for t in pool.tenancy.tenants
    ]
    return TenantLoads(
        loads, first_record_timeout_s=first_record_timeout_s, stop_timeout_s=stop_timeout_s
    )
