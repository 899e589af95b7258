"""The tenants' Kubernetes objects (namespace, quota, limits, priority, workload), the
device plugin's sharing configs, the MIG profile and the admission policy of
``k8s_deny_admission``: valid against the Kubernetes schema like the other manifests
(test_k8s_manifests.py), and carrying the contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml

from harness.config import KubernetesPlatformSpec
from harness.config.tenancy import TenancySpec
from harness.faults.kube_tenancy import admission_objects
from harness.platforms.kubernetes.tenancy import (
    GPU_QUOTA_KEY,
    TENANT_LABEL,
    device_plugin_config,
    render_tenants,
    to_yaml,
)
from tests.unit.test_k8s_manifests import K8S_VERSION

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "tenancy"
_SHAPE = {"duration_s": 10, "baseline_users": 1, "spike_start_s": 1, "spike_duration_s": 1}


def _tenancy(sharing: str = "time-slicing", **b: Any) -> TenancySpec:
    return TenancySpec.model_validate(
        {
            "sharing": sharing,
            "tenants": [
                {"name": "llm", "load": {"shape": _SHAPE},
                 "contract": {"replicas": 2, "quota": 3, "memory_mib": 3000,
                              "priority": "high", "gpu_share": 0.25}},
                {"name": "batch", "load": {"shape": _SHAPE}, "workload": {"kind": "classifier"},
                 "contract": {"priority": "low", **b}},
            ],
        }
    )  # fmt: skip


def _by(objs: list[dict[str, Any]], kind: str, ns: str | None) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"].get("namespace") == ns]
    return found


def test_every_rendered_object_is_valid_and_in_order() -> None:
    base = KubernetesPlatformSpec.model_validate(
        {"kind": "kubernetes", "image": "registry.example/w:1", "gpus_per_replica": 1}
    )
    objs = render_tenants(_tenancy(), base, prefix="team-")
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert [(o["kind"], o["metadata"].get("namespace")) for o in objs] == [
        ("PriorityClass", None), ("PriorityClass", None), ("ConfigMap", "gpu-operator"),
        ("Namespace", None), ("ResourceQuota", "team-llm"), ("LimitRange", "team-llm"),
        ("Deployment", "team-llm"), ("Service", "team-llm"), ("PodDisruptionBudget", "team-llm"),
        ("Namespace", None), ("ResourceQuota", "team-batch"),
        ("Deployment", "team-batch"), ("Service", "team-batch"),
        ("PodDisruptionBudget", "team-batch"),
    ]  # fmt: skip
    # one multi-document stream for kubectl apply -f -
    assert list(yaml.safe_load_all(to_yaml(objs))) == objs


def test_the_contract_becomes_quota_limits_and_priority() -> None:
    objs = render_tenants(_tenancy())
    quota = _by(objs, "ResourceQuota", "llm")["spec"]["hard"]
    assert quota == {"pods": "3", GPU_QUOTA_KEY: "3", "limits.memory": "9000Mi"}
    limits = _by(objs, "LimitRange", "llm")["spec"]["limits"][0]
    assert limits["default"] == limits["max"] == {"memory": "3000Mi"}
    dep = _by(objs, "Deployment", "llm")
    assert dep["metadata"]["name"] == "llm" and dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = dep["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "gpuchaos-tenant-high"
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["memory"] == "3000Mi"
    assert container["resources"]["requests"]["memory"] == "3000Mi"
    assert container["command"] == ["python", "-m", "workloads.llm"]
    # the tenant without a cap: no limit range, no memory quota, the template's limit kept
    assert _by(objs, "ResourceQuota", "batch")["spec"]["hard"] == {"pods": "1", GPU_QUOTA_KEY: "1"}
    assert not [
        o for o in objs if o["kind"] == "LimitRange" and o["metadata"]["namespace"] == "batch"
    ]
    batch = _by(objs, "Deployment", "batch")["spec"]["template"]["spec"]
    assert batch["priorityClassName"] == "gpuchaos-tenant-low"
    assert batch["containers"][0]["command"] == ["python", "-m", "workloads.classifier"]
    classes = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PriorityClass"}
    assert set(classes) == {"gpuchaos-tenant-high", "gpuchaos-tenant-low"}
    assert classes["gpuchaos-tenant-high"]["value"] > classes["gpuchaos-tenant-low"]["value"]
    assert classes["gpuchaos-tenant-low"]["preemptionPolicy"] == "Never"
    for obj in objs[3:]:
        assert obj["metadata"]["labels"][TENANT_LABEL] in ("llm", "batch")
    # the PodDisruptionBudget never asks for more than the tenant runs
    assert _by(objs, "PodDisruptionBudget", "batch")["spec"]["minAvailable"] == 1


@pytest.mark.parametrize(("sharing", "key"), [("time-slicing", "timeSlicing"), ("mps", "mps")])
def test_the_device_plugin_config_fits_the_smallest_share(sharing: str, key: str) -> None:
    cm = device_plugin_config(_tenancy(sharing))
    assert cm is not None
    kubernetes_validate.validate(cm, K8S_VERSION, strict=True)
    config = yaml.safe_load(cm["data"][sharing])
    (res,) = config["sharing"][key]["resources"]
    assert res == {"name": "nvidia.com/gpu", "replicas": 4}  # 1 / 0.25
    assert device_plugin_config(_tenancy("mig")) is None
    assert device_plugin_config(_tenancy("exclusive")) is None


def test_recipe_files_are_valid() -> None:
    """deploy/kubernetes/tenancy/: the device plugin's sharing ConfigMap and the MIG profile,
    valid objects whose embedded configs have the fields the plugin and mig-parted read."""
    sharing = yaml.safe_load((RECIPE / "device-plugin-sharing.yaml").read_text())
    kubernetes_validate.validate(sharing, K8S_VERSION, strict=True)
    assert set(sharing["data"]) == {"time-slicing", "mps"}
    for name, key in (("time-slicing", "timeSlicing"), ("mps", "mps")):
        config = yaml.safe_load(sharing["data"][name])
        assert config["version"] == "v1"
        (res,) = config["sharing"][key]["resources"]
        assert res["name"] == "nvidia.com/gpu" and res["replicas"] >= 2
    mig = yaml.safe_load((RECIPE / "mig-config.yaml").read_text())
    kubernetes_validate.validate(mig, K8S_VERSION, strict=True)
    profiles = yaml.safe_load(mig["data"]["config.yaml"])["mig-configs"]
    (one,) = profiles["all-1g.10gb"]
    assert one == {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}
    assert profiles["all-disabled"] == [{"devices": "all", "mig-enabled": False}]


@pytest.mark.parametrize("rule", ["memory-cap", "all"])
def test_admission_objects_are_valid_and_bound_to_the_tenant(rule: str) -> None:
    policy, binding = admission_objects("teama", rule, "k8s_deny_admission")
    for obj in (policy, binding):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"]["name"] == f"gpuchaos-deny-{rule}-teama"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    selector = binding["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchLabels": {"kubernetes.io/metadata.name": "teama"}}


def _admits(rule: str, containers: list[dict[str, Any]]) -> bool:
    policy, _ = admission_objects("teama", rule, "k8s_deny_admission")
    env = celpy.Environment()
    (validation,) = policy["spec"]["validations"]
    program = env.program(env.compile(validation["expression"]))
    pod = {"metadata": {"name": "p"}, "spec": {"containers": containers}}
    return bool(program.evaluate({"object": celpy.json_to_cel(pod)}))


def test_the_memory_cap_rule_admits_only_pods_whose_containers_all_have_a_limit() -> None:
    capped = {"name": "a", "resources": {"limits": {"memory": "1Gi"}}}
    assert _admits("memory-cap", [capped])
    assert _admits("memory-cap", [capped, {**capped, "name": "b"}])
    assert not _admits("memory-cap", [{"name": "a"}])
    assert not _admits("memory-cap", [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}])
    assert not _admits("memory-cap", [capped, {"name": "b", "resources": {"limits": {"cpu": "1"}}}])
    assert not _admits("all", [capped])


def _experiment(tmp_path: Path, tenancy: dict[str, Any] | None) -> Path:
    block: dict[str, Any] = {"name": "gpuchaos", "platform": {"nodes": [{"name": "gpu0"}]}}
    if tenancy is None:
        block["load"] = {"shape": _SHAPE}
    else:
        block["tenancy"] = tenancy
    doc = {"title": "tenants", "description": "x", "extensions": [block], "method": []}
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_command_writes_the_objects_for_kubectl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    tenancy = _tenancy("mps").model_dump(mode="json", exclude_defaults=True)
    path = _experiment(tmp_path, {**tenancy, "sharing": "mps"})
    out = tmp_path / "tenants-k8s.yaml"
    argv = [
        *("tenant-manifests", str(path), "--image", "registry.example/w:2"),
        *("--node-selector", "pool=gpu", "--namespace-prefix", "t-", "--out", str(out)),
    ]
    assert main(argv) == 0
    assert "objects for tenants llm, batch" in capsys.readouterr().err
    text = out.read_text()
    assert text.startswith(f"# gpuchaos tenant-manifests {path} (mps, 2 tenants)")
    objs = list(yaml.safe_load_all(text))
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert objs == render_tenants(
        _tenancy("mps"),
        KubernetesPlatformSpec.model_validate(
            {
                "kind": "kubernetes",
                "image": "registry.example/w:2",
                "gpu_node_selector": {"pool": "gpu"},
            }
        ),
        prefix="t-",
    )
    dep = _by(objs, "Deployment", "t-llm")["spec"]["template"]["spec"]
    assert dep["nodeSelector"] == {"pool": "gpu"}
    assert dep["containers"][0]["image"] == "registry.example/w:2"


@pytest.mark.parametrize(
    ("tenancy", "extra", "message"),
    [
        (None, [], "no tenancy block"),
        ({}, ["--gpus-per-replica", "17"], "gpus_per_replica: Input should be less than"),
        ({}, ["--node-selector", "nolabel"], "--node-selector: 'nolabel': expected KEY=VALUE"),
        ({}, ["--namespace-prefix", "Bad_"], "namespace: String should match pattern"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    tenancy: dict[str, Any] | None, extra: list[str], message: str,
) -> None:  # fmt: skip
    from harness.cli import main

    if tenancy is not None:
        tenancy = _tenancy().model_dump(mode="json", exclude_defaults=True)
    assert main(["tenant-manifests", str(_experiment(tmp_path, tenancy)), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_catalog_tenancy_experiment_renders_valid_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    experiment = RECIPE.parents[2] / "experiments" / "multi-tenant-noisy-neighbour.yaml"
    out = tmp_path / "k8s.yaml"
    argv = ["tenant-manifests", str(experiment), "--var", "sharing=mps", "--out", str(out)]
    assert main(argv) == 0
    objs = [o for o in yaml.safe_load_all(out.read_text()) if o]
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "ResourceQuota", "Deployment", "PriorityClass", "ConfigMap"} <= kinds
    namespaces = [o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"]
    assert len(namespaces) >= 2  # one per tenant
