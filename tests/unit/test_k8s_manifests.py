"""The Kubernetes manifests and the kubernetes platform's configuration (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from harness.config import HarnessSpec, KubernetesPlatformSpec, LocalPlatformSpec, WorkloadSpec
from harness.errors import PlatformError
from harness.platforms.kubernetes.client import Safety
from harness.platforms.kubernetes.manifests import MANIFEST_DIR, TEMPLATES, render

K8S_VERSION = "1.37.0"
#: Kinds the Kubernetes schema knows; the rest (KEDA's CRD) are checked structurally.
BUILTIN = {"Deployment", "Service", "PodDisruptionBudget"}


def _validate(obj: dict[str, Any]) -> None:
    if obj["kind"] in BUILTIN:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    else:
        _check_scaled_object(obj)


def _check_scaled_object(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    spec = obj["spec"]
    assert set(spec) <= {
        "scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
        "cooldownPeriod", "triggers", "advanced", "fallback", "idleReplicaCount",
    }  # fmt: skip
    ref = spec["scaleTargetRef"]
    assert ref["kind"] == "Deployment" and ref["apiVersion"] == "apps/v1" and ref["name"]
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert all(isinstance(spec[k], int) for k in ("pollingInterval", "cooldownPeriod"))
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert set(meta) == {"serverAddress", "query", "threshold"}
    assert all(isinstance(v, str) for v in meta.values())  # KEDA wants strings here
    assert "vllm:num_requests_waiting" in meta["query"]
    float(meta["threshold"])


def _spec(**kw: Any) -> KubernetesPlatformSpec:
    return KubernetesPlatformSpec.model_validate({"kind": "kubernetes", **kw})


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_files_are_valid(name: str) -> None:
    docs = list(yaml.safe_load_all((MANIFEST_DIR / name).read_text()))
    assert len(docs) == 1
    _validate(docs[0])


def test_rendered_objects_are_valid_and_carry_the_spec() -> None:
    spec = _spec(
        name="llm-a",
        namespace="chaos",
        allowed_namespaces=["chaos"],
        replicas=3,
        gpus_per_replica=2,
        image="registry.example/gpuchaos:1",
        gpu_node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        autoscaling={"min_replicas": 2, "max_replicas": 6, "threshold": 4},
    )
    objs = render(spec, WorkloadSpec(max_batch_size=32))
    assert [o["kind"] for o in objs] == [
        "Deployment", "Service", "PodDisruptionBudget", "ScaledObject",
    ]  # fmt: skip
    for obj in objs:
        _validate(obj)
        assert obj["metadata"]["namespace"] == "chaos" and obj["metadata"]["name"] == "llm-a"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gpuchaos"
    dep, svc, pdb, scaled = objs
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"] == labels == svc["spec"]["selector"]
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    assert dep["spec"]["replicas"] == 3
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/gpuchaos:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["command"] == ["python", "-m", "workloads.llm"]
    assert "--device=cuda" in container["args"] and "--replica-id=$(POD_NAME)" in container["args"]
    assert container["args"][container["args"].index("--max-batch-size") + 1] == "32"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "llm-a"
    assert scaled["spec"]["minReplicaCount"] == 2 and scaled["spec"]["maxReplicaCount"] == 6
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert query == "sum(vllm:num_requests_waiting{namespace='chaos',service='llm-a'})"


def test_cpu_replicas_have_no_gpu_limit_and_no_scaled_object() -> None:
    objs = render(_spec(gpus_per_replica=0), WorkloadSpec())
    assert [o["kind"] for o in objs] == ["Deployment", "Service", "PodDisruptionBudget"]
    container = objs[0]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "--device=cpu" in container["args"]
    for obj in objs:
        _validate(obj)


@pytest.mark.parametrize(
    ("extra", "secret"),
    [({}, "llm-a-fault-token"), ({"fault_token_secret": "team-token"}, "team-token")],
)
def test_the_pods_read_the_fault_token_from_a_secret(extra: dict[str, Any], secret: str) -> None:
    from harness.faults.kubehook import TOKEN_ENV, TOKEN_KEY, token_secret

    spec = _spec(name="llm-a", **extra)
    dep = render(spec, WorkloadSpec())[0]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env[TOKEN_ENV]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret, "key": TOKEN_KEY, "optional": True}
    assert spec.token_secret == secret
    assert "--fault-hook-remote" in container["args"]  # the hook answers on the pod's address
    obj = token_secret(secret, spec.namespace, "t0ken", spec.pod_labels)
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert obj["data"] == {TOKEN_KEY: "dDBrZW4="}  # base64 of the token, never in the args


def test_schema_validation_catches_a_broken_deployment() -> None:
    dep = render(_spec(), WorkloadSpec())[0]
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(dep)


def _harness(platform: dict[str, Any]) -> HarnessSpec:
    return HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": platform,
            "load": {
                "shape": {
                    "duration_s": 10,
                    "baseline_users": 1,
                    "spike_start_s": 1,
                    "spike_duration_s": 1,
                }
            },
        }
    )


def test_platform_is_chosen_by_kind() -> None:
    local = _harness({"nodes": [{"name": "node-a"}]})
    assert isinstance(local.platform, LocalPlatformSpec)
    k8s = _harness({"kind": "kubernetes", "context": "kind-gpu"})
    assert isinstance(k8s.platform, KubernetesPlatformSpec)
    assert k8s.platform.pod_labels["app.kubernetes.io/instance"] == "gpuchaos-llm"


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        ({"kind": "kubernetes", "namespace": "prod"}, "not in allowed_namespaces"),
        ({"kind": "kubernetes", "deploy": False}, "needs a selector"),
        ({"kind": "kubernetes", "replicas": 2, "nodes": []}, "Extra inputs"),
        ({"kind": "kubernetes", "autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "below"),
        ({"kind": "kubernetes", "gpu_node_selector": {}}, "at least one label"),
    ],
)
def test_bad_kubernetes_platforms_are_rejected(platform: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _harness(platform)


def test_safety_refuses_other_namespaces_and_non_gpu_nodes() -> None:
    safety = Safety.of(_spec())
    safety.namespace("gpuchaos")
    safety.node("gpu-a", {"nvidia.com/gpu.present": "true", "x": "y"})
    with pytest.raises(PlatformError, match="refusing to act in namespace 'kube-system'"):
        safety.namespace("kube-system")
    with pytest.raises(PlatformError, match="refusing to act on node 'cpu-a'"):
        safety.node("cpu-a", {"kubernetes.io/hostname": "cpu-a"})
    assert len(safety.refused) == 2


GAMEDAY_CRONJOB = (
    Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "gameday-cronjob.yaml"
)


def test_gameday_cronjob_manifests_are_valid(tmp_path: Path) -> None:
    """deploy/kubernetes/gameday-cronjob.yaml: every object valid against the schema, the
    CronJob running ``gpuchaos gameday`` on the plan its ConfigMap mounts, and that plan a
    valid game-day plan."""
    from harness.gameday.plan import read_plan

    docs = [d for d in yaml.safe_load_all(GAMEDAY_CRONJOB.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
        "ConfigMap", "PersistentVolumeClaim", "CronJob",
    ]  # fmt: skip
    for obj in docs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "gpuchaos") == "gpuchaos"
    by_kind = {d["kind"]: d for d in docs}
    cron = by_kind["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/gpuchaos/harness:")
    command = container["command"] + container["args"]
    assert command[:3] == ["gpuchaos", "gameday", "/plans/weekly.yaml"]
    assert command[command.index("--pushgateway") + 1].startswith("http://")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["plans"] == "/plans"
    assert volumes["plans"]["configMap"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]
    claim = volumes["results"]["persistentVolumeClaim"]["claimName"]
    assert claim == by_kind["PersistentVolumeClaim"]["metadata"]["name"]
    assert mounts["results"] == container["workingDir"] + "/results"
    plan_file = tmp_path / "weekly.yaml"
    plan_file.write_text(by_kind["ConfigMap"]["data"]["weekly.yaml"])
    plan, _ = read_plan(plan_file)
    assert plan.platform is not None and plan.platform.kind == "kubernetes"
    assert [e.experiment for e in plan.experiments] == ["k8s-gpu-node-drain"]
