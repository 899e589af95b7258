"""``gpuchaos run --dry-run``: check and plan a run, changing nothing.

It sits beside the runner (it loads a platform, the load and the faults, like a run does).
Which activities are faults comes from the fault registry, through the Chaos Toolkit
adapter: each fault of the method and rollbacks is run through the shared lifecycle with
the platform in dry-run mode, so it checks its arguments and picks its target as a real run
would, and says what it would do instead of doing it.

On the ``kubernetes`` platform it connects (the context check and the allowlists apply),
reads what is there, and lists what the run would create and what each cluster fault of the
method and rollbacks would hit, all under :func:`no_mutations`: any request but a GET is
refused before it leaves the process. On the local platform it lists the replicas it would
start and the activities, starting nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from harness.chaos.adapter import lookup
from harness.chaos.context import RunContext, activate
from harness.config import KubernetesPlatformSpec, LocalPlatformSpec
from harness.errors import HarnessError
from harness.experiment import Experiment
from harness.faults import lifecycle
from harness.platforms.kubernetes.client import no_mutations
from harness.platforms.kubernetes.platform import KubernetesPlatform
from harness.scoring.preflight import Preflight, preflight_node_loss
from harness.tenancy_run import tenancy_plan
from harness.timeline import Timeline

log = logging.getLogger(__name__)


def _activities(document: dict[str, Any]) -> list[dict[str, Any]]:
    acts = [a for a in document.get("method") or [] if isinstance(a, dict)]
    acts += [a for a in document.get("rollbacks") or [] if isinstance(a, dict)]
    return acts


def _arguments(activity: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any]:
    from chaoslib import substitute

    args = (activity.get("provider") or {}).get("arguments") or {}
    return dict(substitute(args, configuration, {}) or {})


#: Faults that take a node's replicas away: what they lose and their default hold (seconds).
_NODE_LOSS = {"lose_node": ("node", 30.0), "lose_gpu": ("gpu", 30.0)}


def preflight_checks(experiment: Experiment) -> list[Preflight]:
    """The spare-capacity preflight (:mod:`harness.scoring.preflight`) of every node-loss
    fault of the method, on the local platform; [] elsewhere or with ``preflight: off``."""
    spec = experiment.spec
    if not isinstance(spec.platform, LocalPlatformSpec) or spec.preflight == "off":
        return []
    if spec.tenancy is not None:  # its capacity model is one workload's nodes, not a pool's
        return []
    known = set(spec.platform.all_node_names())
    checks = []
    for act in experiment.document.get("method") or []:
        found = lookup(act) if isinstance(act, dict) else None
        if found is None or found.reverts or found.fault.name not in _NODE_LOSS:
            continue
        args = _arguments(act, experiment.configuration)
        node = args.get(found.fault.target_arg)
        if not isinstance(node, str) or node not in known:
            continue  # a random or unknown target: the fault's own checks say so
        loss, default = _NODE_LOSS[found.fault.name]
        held = args.get("duration_s", args.get("down_for_s", args.get("unhealthy_s", default)))
        down = float(held) if isinstance(held, (int, float)) else None
        checks.append(
            preflight_node_loss(spec.platform, node, spec.slos.recovery_s, down, loss=loss)
        )
    return checks


def plan(experiment: Experiment, kube_context: str | None = None) -> list[str]:
    """What a run of ``experiment`` would do, one line each; no mutating call is made."""
    spec = experiment.spec
    lines: list[str] = []
    if not isinstance(spec.platform, KubernetesPlatformSpec):
        kind = spec.platform.kind if spec.platform is not None else "external"
        lines += tenancy_plan(spec)  # with tenancy: each tenant's replicas on its view
        for node in [] if spec.tenancy else getattr(spec.platform, "nodes", None) or []:
            lines.append(
                f"would start {node.replicas} replica(s) on {kind} node {node.name} ({node.device})"
            )
        for pool in getattr(spec.platform, "pools", None) or []:
            lines.append(
                f"pool {pool.name}: {pool.min_nodes}-{pool.max_nodes} node(s) of "
                f"{pool.capacity} replica(s), each ready {pool.provisioning_s:g} s after "
                "the cluster autoscaler asks (boot, driver, image pull)"
            )
        for act in _activities(experiment.document):
            provider = act.get("provider") or {}
            found = lookup(act)
            what = f" ({found.fault.summary})" if found is not None and not found.reverts else ""
            lines.append(
                f"would run {act.get('type')} {act.get('name')}: "
                f"{provider.get('module')}.{provider.get('func')}"
                f"({_arguments(act, experiment.configuration)}){what}"
            )
        lines += [f"preflight: {check.line()}" for check in preflight_checks(experiment)]
        return lines
    timeline = Timeline(None)
    platform = KubernetesPlatform(
        spec.platform, spec.workload, timeline, None, context=kube_context, dry_run=True
    )
    with no_mutations():
        platform.start()
        lines.append(f"kube context {platform.context}: matches; namespace {platform.namespace}")
        if spec.load.workers_on == "kubernetes":
            from harness.load.k8s_jobs import KubernetesLoadJobs

            jobs = KubernetesLoadJobs(
                platform,
                spec.load,
                experiment.path.parent,
                spec.load.workers_image,
                platform.service_url,
            )
            jobs.create(time.time())
            platform.plan.append(
                f"Locust as Jobs: {spec.load.workers} worker(s), image "
                f"{spec.load.workers_image}, load to {platform.service_url}"
            )
        ctx = RunContext(platform, timeline, experiment.path.parent, spec, time.time())
        with activate(ctx):
            for act in _activities(experiment.document):
                found = lookup(act)
                if found is None or found.fault.platform != "kubernetes":
                    continue
                args = _arguments(act, experiment.configuration)
                try:
                    if found.reverts:
                        target = args.get(found.target_arg)
                        lifecycle.revert_action(found.fault, ctx, target)
                    else:
                        lifecycle.run(found.fault, ctx, args)
                except HarnessError as exc:
                    platform.plan.append(f"{act.get('name')}: {exc}")
        platform.stop()
    return lines + platform.plan
