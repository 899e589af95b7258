"""``gpuchaos tenant-manifests EXPERIMENT``: the Kubernetes objects of an experiment's tenants,
for ``kubectl apply``.

Why a command: a tenancy experiment runs on the local platform's pool (CPU stand-ins of
the sharing modes); the same contracts on a cluster are namespaces, ResourceQuotas,
LimitRanges and PriorityClasses that a platform team applies once, before running the
cluster faults ``k8s_exhaust_quota`` and ``k8s_deny_admission`` against them. This renders
them from the experiment's ``tenancy`` block
(:func:`harness.platforms.kubernetes.tenancy.render_tenants`), so the cluster gets the
contracts the experiment was scored against. It reads nothing from a cluster.

Exit codes: 0 written; 2 bad input (no tenancy block, an invalid value), one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from harness.cli_support import allow_module_option
from harness.errors import ConfigError

log = logging.getLogger(__name__)


def _selector(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--node-selector", "", f"{pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def cmd_tenant_manifests(args: argparse.Namespace) -> int:
    from harness.config import KubernetesPlatformSpec
    from harness.experiment import load_experiment, parse_vars
    from harness.platforms.kubernetes.tenancy import render_tenants, to_yaml

    exp = load_experiment(args.experiment, parse_vars(args.var), args.allow_module)
    tenancy = exp.spec.tenancy
    if tenancy is None:
        raise ConfigError(
            str(exp.path),
            "tenancy",
            "no tenancy block: nothing to render (an experiment "
            "with tenancy.tenants, e.g. experiments/multi-tenant-noisy-neighbour.yaml)",
        )
    base: dict[str, object] = {"kind": "kubernetes", "gpus_per_replica": args.gpus_per_replica}
    if args.image:
        base["image"] = args.image
    if args.node_selector:
        base["gpu_node_selector"] = _selector(args.node_selector)
    try:
        spec = KubernetesPlatformSpec.model_validate(base)
        objects = render_tenants(tenancy, spec, prefix=args.namespace_prefix)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise ConfigError("tenant-manifests", where, str(first["msg"])) from None
    header = (
        f"# gpuchaos tenant-manifests {exp.path} ({tenancy.sharing}, "
        f"{len(tenancy.tenants)} tenants): kubectl apply -f <this file>\n"
    )
    text = header + to_yaml(objects)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {len(objects)} objects for tenants "
              f"{', '.join(tenancy.names())}", file=sys.stderr)  # fmt: skip
    else:
        sys.stdout.write(text)
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tenant-manifests",
        help="the Kubernetes objects of an experiment's tenants (namespaces, quotas, limits, "
        "priorities, workloads) for kubectl apply",
        description="Render each tenant of the experiment's tenancy block as a namespace with "
        "a ResourceQuota on requests.nvidia.com/gpu (its replica quota), a LimitRange (its "
        "memory cap), a PriorityClass per priority, and its workload (Deployment, Service, "
        "PodDisruptionBudget); with time-slicing or mps also the device plugin's sharing "
        "ConfigMap. Reads no cluster.",
    )
    p.add_argument("experiment", help="an experiment with a tenancy block")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    allow_module_option(p)
    p.add_argument("--image", help="the workload image (default: the platform's default)")
    p.add_argument(
        "--gpus-per-replica",
        type=int,
        default=1,
        metavar="N",
        help="nvidia.com/gpu of each replica (a time-slice or MIG slice counts as one; "
        "default 1; 0: CPU replicas and no GPU quota)",
    )
    p.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="labels of the GPU nodes (repeatable; default nvidia.com/gpu.present=true)",
    )
    p.add_argument(
        "--namespace-prefix",
        default="",
        metavar="PREFIX",
        help="namespaces are PREFIX<tenant> (default: the tenant's name)",
    )
    p.add_argument("--out", metavar="FILE", help="write there (default: standard output)")
    p.set_defaults(func=cmd_tenant_manifests)
