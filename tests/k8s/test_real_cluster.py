"""Against a real cluster: ``make test-k8s`` with KUBECONFIG and GPUCHAOS_K8S_CONTEXT set.

Skipped without them. Needs GPU nodes labelled ``nvidia.com/gpu.present=true`` (the NVIDIA
GPU operator's feature discovery sets it), the workload image (GPUCHAOS_K8S_IMAGE, built
from workloads/Dockerfile), and rights to create a namespace and to cordon nodes. It
deploys into a namespace of its own (GPUCHAOS_K8S_NAMESPACE, default gpuchaos-test) and
deletes it at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.chaos import k8s as k8s_actions
from harness.chaos.context import RunContext, activate
from harness.config import HarnessSpec, KubernetesPlatformSpec, WorkloadSpec
from harness.platforms.kubernetes import KubernetesPlatform
from harness.timeline import Timeline

CONTEXT = os.environ.get("GPUCHAOS_K8S_CONTEXT")
pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and CONTEXT),
        reason="needs KUBECONFIG and GPUCHAOS_K8S_CONTEXT (a real cluster)",
    ),
]
NAMESPACE = os.environ.get("GPUCHAOS_K8S_NAMESPACE", "gpuchaos-test")


def _spec() -> KubernetesPlatformSpec:
    return KubernetesPlatformSpec.model_validate(
        {
            "kind": "kubernetes",
            "context": CONTEXT,
            "namespace": NAMESPACE,
            "allowed_namespaces": [NAMESPACE],
            "image": os.environ.get("GPUCHAOS_K8S_IMAGE", "ghcr.io/gpuchaos/workload:0.1.0"),
            "replicas": int(os.environ.get("GPUCHAOS_K8S_REPLICAS", "2")),
            "access": "port-forward",
            "rollout_timeout_s": 900,
        }
    )


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KubernetesPlatform, Timeline, Path]]:
    run_dir = tmp_path_factory.mktemp("k8s-run")
    timeline = Timeline(run_dir / "timeline.jsonl")
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), timeline, run_dir)
    platform.start()
    try:
        yield platform, timeline, run_dir
    finally:
        platform.stop()


def test_completion_through_the_port_forward(
    deployed: tuple[KubernetesPlatform, Timeline, Path],
) -> None:
    platform, _, _ = deployed
    body = {"model": "gpuchaos", "prompt": "hello", "max_tokens": 4}
    reply = httpx.post(f"{platform.endpoint}/v1/completions", json=body, timeout=60)
    assert reply.status_code == 200
    assert reply.headers["x-replica-id"] in {p.metadata.name for p in platform.pods()}


def test_gpu_node_loss_by_drain_is_proven_and_reverted(
    deployed: tuple[KubernetesPlatform, Timeline, Path],
) -> None:
    platform, timeline, run_dir = deployed
    spec = HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": platform.spec.model_dump(),
            "load": {
                "shape": {
                    "duration_s": 60,
                    "baseline_users": 1,
                    "spike_start_s": 1,
                    "spike_duration_s": 1,
                }
            },
        }
    )
    with activate(RunContext(platform, timeline, run_dir, spec, time.time())):
        result = k8s_actions.drain_gpu_node(down_for_s=10, timeout_s=300)
    assert result["evicted"]
    assert not platform.core().read_node(result["node"]).spec.unschedulable
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        platform.refresh()
        if any("rescheduled_after_s" in e["details"] for e in timeline.events
               if e["kind"] == "replica_ready"):  # fmt: skip
            break
        time.sleep(2)
    else:
        pytest.fail("no evicted replica became Ready again within 900 s")
