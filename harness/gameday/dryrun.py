"""``gpuchaos gameday PLAN --dry-run``: what will run, in order, and for how long.

The length of a game day is the runs (each experiment's warm-up and load), the pauses, and
a reset with its health gate before every experiment on the shared deployment but the
first; the reset is an estimate (:data:`RESET_ESTIMATE_S` plus the gate's ``hold_s``), the
deploy is not counted.
"""

from __future__ import annotations

from harness.gameday.prepare import LoadedPlan, run_seconds

#: What a reset costs besides the gate's hold: faults reverted, replicas Ready, queues
#: drained (about 1 s measured on CPU: ``make bench-gameday``), rounded up for a busy machine.
RESET_ESTIMATE_S = 3.0


def _where(loaded: LoadedPlan) -> str:
    plan = loaded.plan
    if plan.endpoint is not None:
        return f"external endpoint {plan.endpoint.url}"
    platform = plan.platform
    assert platform is not None
    nodes = getattr(platform, "nodes", None)
    if nodes:
        return "local platform, " + ", ".join(f"{n.name}({n.replicas}x{n.device})" for n in nodes)
    return f"{platform.kind} platform"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def dry_run_lines(loaded: LoadedPlan) -> list[str]:
    plan = loaded.plan
    order = "the plan's order" if loaded.seed is None else f"shuffled with seed {loaded.seed}"
    lines = [
        f"plan {loaded.path}: {plan.title!r}: {len(loaded.entries)} experiment(s), {order}",
        f"deploy once: {_where(loaded)}; workload {plan.workload.kind}",
    ]
    runs = pauses = resets = 0.0
    shared_seen = False
    for n, e in enumerate(loaded.entries, 1):
        if n > 1 and plan.pause_s:
            pauses += plan.pause_s
            lines.append(f"   pause {plan.pause_s:g} s")
        if e.shared and shared_seen:
            estimate = RESET_ESTIMATE_S + plan.health_gate.hold_s
            resets += estimate
            lines.append(
                f"   reset + health gate ~{estimate:g} s (hold {plan.health_gate.hold_s:g} s "
                f"at {plan.health_gate.trickle_rps:g} req/s, at most "
                f"{plan.health_gate.timeout_s:g} s)"
            )
        shared_seen = shared_seen or e.shared
        length = run_seconds(e.experiment)
        runs += length
        spec = e.experiment.spec
        vars_text = (" vars " + ", ".join(f"{k}={v}" for k, v in e.vars.items())) if e.vars else ""
        where = "shared deployment" if e.shared else "its own platform"
        lines.append(
            f"{n:2d}. {e.name} ({e.path}){vars_text}: {spec.warmup_s:g} s warm-up + "
            f"{length - spec.warmup_s:g} s load = {length:g} s, on {where}"
        )
    total = runs + pauses + resets
    lines.append(
        f"about {_minutes(total)}: runs {runs:g} s, pauses {pauses:g} s, resets ~{resets:g} s "
        f"(the deploy not counted); on failure: {plan.on_failure}"
    )
    return lines
