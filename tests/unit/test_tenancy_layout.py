"""Where each tenant's replicas go per sharing mode (harness.config.tenancy_layout), what a
tenancy run derives from the experiment (harness.tenancy_run), and what ``gpuchaos
validate`` says about bad tenancy input: one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.config import HarnessSpec, LocalPlatformSpec
from harness.config.tenancy_layout import LayoutError, TenantLayout, layout, tenant_of
from harness.platforms.local.tenancy_checks import tenancy_target
from harness.tenancy_run import (
    records_dir,
    tenancy_plan,
    tenant_document,
    write_tenant_documents,
)

SHAPE = {"kind": "step", "duration_s": 10, "start": 1, "increment": 0, "step_s": 10}


def _tenant(name: str, **contract: Any) -> dict[str, Any]:
    return {"name": name, "load": {"shape": SHAPE}, "contract": contract}


def _block(sharing: str, tenants: list[dict[str, Any]], nodes: int = 2, **extra: Any) -> dict:
    return {
        "name": "gpuchaos",
        "platform": {
            "kind": "local",
            "nodes": [{"name": f"gpu{i}", "cpus": [2 * i, 2 * i + 1]} for i in range(nodes)],
        },
        "tenancy": {"sharing": sharing, "tenants": tenants, **extra},
    }


def _spec(sharing: str, tenants: list[dict[str, Any]], nodes: int = 2, **extra: Any) -> HarnessSpec:
    return HarnessSpec.model_validate(_block(sharing, tenants, nodes, **extra))


def _layout(spec: HarnessSpec) -> dict[str, TenantLayout]:
    assert spec.tenancy is not None and isinstance(spec.platform, LocalPlatformSpec)
    return layout(spec.tenancy, spec.platform)


def _placed(view: TenantLayout) -> dict[str, int]:
    return {n.name: n.replicas for n in view.platform.nodes}


def test_time_slicing_shares_every_node_and_its_cores_with_no_memory_cap() -> None:
    spec = _spec("time-slicing", [_tenant("a", replicas=3, quota=4), _tenant("b")])
    views = _layout(spec)
    assert _placed(views["a"]) == {"a-gpu0": 2, "a-gpu1": 1}  # spread round-robin
    assert _placed(views["b"]) == {"b-gpu0": 1, "b-gpu1": 0}
    a0, b0 = views["a"].slot("a-gpu0"), views["b"].slot("b-gpu0")
    assert (a0.node, b0.node) == ("gpu0", "gpu0")
    assert a0.cpus == b0.cpus == [0, 1]  # the same cores: the device is time-sliced
    assert a0.memory_cap_mib is None and b0.memory_cap_mib is None
    assert a0.capacity == 4  # room on each node for the tenant's whole quota
    assert [n.max_replicas for n in views["a"].platform.nodes] == [4, 4]


def test_mps_caps_each_replica_by_contract_or_gpu_share() -> None:
    spec = _spec(
        "mps",
        [_tenant("a", memory_mib=1024), _tenant("b", gpu_share=0.25)],
        gpu_memory_mib=8192,
    )
    views = _layout(spec)
    assert {s.memory_cap_mib for s in views["a"].slots} == {1024}
    assert {s.memory_cap_mib for s in views["b"].slots} == {2048}  # 0.25 of 8192
    assert views["a"].slot("a-gpu1").cpus == views["b"].slot("b-gpu1").cpus == [2, 3]


def test_exclusive_gives_each_replica_a_node_and_spares_round_robin() -> None:
    spec = _spec("exclusive", [_tenant("a", replicas=2, quota=3), _tenant("b")], nodes=5)
    views = _layout(spec)
    a_nodes = [(s.node, s.replicas) for s in views["a"].slots]
    b_nodes = [(s.node, s.replicas) for s in views["b"].slots]
    # start replicas in order (a: gpu0, gpu1; b: gpu2), spares alternate (gpu3 a, gpu4 b)
    assert a_nodes == [("gpu0", 1), ("gpu1", 1), ("gpu3", 0)]
    assert b_nodes == [("gpu2", 1), ("gpu4", 0)]
    assert {s.capacity for s in views["a"].slots} == {1}
    assert {s.memory_cap_mib for s in views["a"].slots} == {4096.0}  # the whole GPU
    assert views["a"].slot("a-gpu1").cpus == [2, 3]


def test_mig_slices_nodes_with_their_own_cores_and_memory() -> None:
    spec = _spec("mig", [_tenant("a"), _tenant("b", memory_mib=1000)], mig_slices=2)
    views = _layout(spec)
    # start replicas take slices in order, spare slices alternate between the tenants
    assert [s.view for s in views["a"].slots] == ["a-gpu0-s0", "a-gpu1-s0"]
    assert [s.view for s in views["b"].slots] == ["b-gpu0-s1", "b-gpu1-s1"]
    assert [s.replicas for s in views["a"].slots] == [1, 0]
    a, b = views["a"].slot("a-gpu0-s0"), views["b"].slot("b-gpu0-s1")
    assert (a.node, a.slice, a.cpus) == ("gpu0", 0, [0])
    assert (b.node, b.slice, b.cpus) == ("gpu0", 1, [1])  # its own core on the same GPU
    assert a.memory_cap_mib == 2048  # half of the 4096 MiB GPU
    assert b.memory_cap_mib == 1000  # its contract, within the slice
    assert a.share == 0.5


def test_mig_slices_share_no_cores_when_the_node_has_too_few() -> None:
    spec = HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": {"kind": "local", "nodes": [{"name": "gpu0", "cpus": [0]}]},
            "tenancy": {"sharing": "mig", "tenants": [_tenant("a"), _tenant("b")]},
        }
    )
    views = _layout(spec)
    assert views["a"].slots[0].cpus is None and views["b"].slots[0].cpus is None


@pytest.mark.parametrize(
    ("sharing", "tenants", "extra", "message"),
    [
        (
            "exclusive",
            [_tenant("a", replicas=2), _tenant("b")],
            {},
            "the pool (platform.nodes) has 2",
        ),
        ("mig", [_tenant("a", replicas=3), _tenant("b", replicas=2)], {}, "has 4"),
        ("mig", [_tenant("a", memory_mib=3000)], {}, "exceeds a MIG slice (2048 MiB"),
        ("mps", [_tenant("a", memory_mib=5000)], {}, "exceeds the GPU's memory (4096 MiB"),
    ],
)
def test_a_pool_too_small_for_the_mode_is_refused(
    sharing: str, tenants: list[dict[str, Any]], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="tenancy: ") as err:
        _spec(sharing, tenants, **extra)
    assert message in str(err.value)
    with pytest.raises(LayoutError):  # the pure function says it too
        spec = HarnessSpec.model_validate(_block("time-slicing", tenants))
        assert spec.tenancy is not None and isinstance(spec.platform, LocalPlatformSpec)
        layout(spec.tenancy.model_copy(update={"sharing": sharing, **extra}), spec.platform)


def test_tenant_of_takes_the_longest_name_that_prefixes() -> None:
    names = ["a", "ab"]
    assert tenant_of("ab-gpu0-0", names) == "ab"
    assert tenant_of("a-gpu0-0", names) == "a"
    assert tenant_of("b-gpu0-0", names) is None


def test_fault_targets_are_tenants_pool_or_view_nodes_and_tenant_replicas() -> None:
    spec = _spec("mig", [_tenant("a"), _tenant("b")])
    assert tenancy_target(spec, "tenant", "b") is None
    assert "tenants: a, b" in str(tenancy_target(spec, "tenant", "c"))
    assert tenancy_target(spec, "node", "gpu1") is None  # a pool node: every tenant's view
    assert tenancy_target(spec, "node", "a-gpu1-s0") is None
    assert "pool nodes: gpu0, gpu1" in str(tenancy_target(spec, "node", "gpu7"))
    assert tenancy_target(spec, "replica", "b-gpu0-s1-0") is None
    assert "TENANT-NODE-N" in str(tenancy_target(spec, "replica", "gpu0-0"))


def test_each_tenant_gets_its_single_tenant_experiment(tmp_path: Path) -> None:
    block = _block("mps", [_tenant("a", memory_mib=512), _tenant("b", priority="low")])
    block["tenancy"]["tenants"][1]["slos"] = {"error_rate": 0.2}
    doc = {"title": "t", "extensions": [block], "method": []}
    spec = HarnessSpec.model_validate(block)
    write_tenant_documents(doc, spec, tmp_path)
    derived = yaml.safe_load((tmp_path / "tenants" / "b" / "experiment.yaml").read_text())
    ext = derived["extensions"][0]
    assert "tenancy" not in ext and derived["title"] == "t"
    assert [n["name"] for n in ext["platform"]["nodes"]] == ["b-gpu0", "b-gpu1"]
    assert ext["slos"]["error_rate"] == 0.2
    one = HarnessSpec.model_validate(ext)  # a valid single-tenant experiment
    assert one.tenancy is None and one.load.shape.duration_s == 10
    assert tenant_document(doc, spec, "a")["extensions"][0]["platform"]["nodes"][0]["replicas"] == 1
    assert records_dir(tmp_path, spec) == tmp_path / "tenants" / "a"
    assert records_dir(tmp_path, _spec_single()) == tmp_path


def _spec_single() -> HarnessSpec:
    return HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": {"kind": "local", "nodes": [{"name": "n"}]},
            "load": {"shape": SHAPE},
        }
    )


def _experiment(tmp_path: Path, block: dict[str, Any], method: list[Any] | None = None) -> Path:
    doc = {
        "version": "1.0.0",
        "title": "tenancy",
        "description": "d",
        "extensions": [block],
        "controls": [
            {
                "name": "gpuchaos-timeline",
                "provider": {"type": "python", "module": "harness.chaos.controls"},
            }
        ],
        "method": method or [],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda b: b["tenancy"].update(sharing="exclusive"), "gives each replica a GPU of its own"),
        (lambda b: b.update(workload={"model": "tiny"}), "with tenancy each tenant has its own"),
        (lambda b: b["tenancy"]["tenants"].append(_tenant("a")), "repeated: a"),
        (lambda b: b["platform"]["nodes"][0].update(replicas=2), "leave replicas and max_replicas"),
        (lambda b: b["tenancy"].update(sharing="sliced"), "tenancy.sharing"),
        (
            lambda b: b["tenancy"]["tenants"][1]["load"].update(
                shape={**SHAPE, "duration_s": 20, "step_s": 20}
            ),
            "must last as long",
        ),
        (
            lambda b: b.update(platform={"kind": "kubernetes", "context": "test"}),
            "gpuchaos tenant-manifests",
        ),
        (lambda b: b["platform"].update(autoscaler={"threshold": 1}), "platform.autoscaler"),
        (
            lambda b: (
                b["tenancy"].update(sharing="mps"),
                b["tenancy"]["tenants"][0]["contract"].update(memory_mib=9000),
            ),
            "exceeds the GPU's memory",
        ),
    ],
)
def test_validate_refuses_bad_tenancy_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, says: str
) -> None:
    block = _block("time-slicing", [_tenant("a", replicas=2), _tenant("b")], nodes=2)
    edit(block)
    code, err = _validate(_experiment(tmp_path, block), capsys)
    assert code == 2
    assert len(err) == 1 and says in err[0], err


def test_validate_checks_a_fault_target_against_the_tenants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def action(func: str, **arguments: Any) -> dict[str, Any]:
        provider = {"type": "python", "module": "harness.chaos.actions", "func": func}
        return {"type": "action", "name": func, "provider": {**provider, "arguments": arguments}}

    block = _block("time-slicing", [_tenant("a"), _tenant("b")])
    for node in block["platform"]["nodes"]:
        node.pop("cpus")  # this machine may have 2 cores
    ok = _experiment(tmp_path, block, [action("crash_replica", replica="b-gpu0-0")])
    assert main(["validate", str(ok)]) == 0, capsys.readouterr().err
    bad = _experiment(tmp_path, block, [action("crash_replica", replica="gpu0-0")])
    code, err = _validate(bad, capsys)
    assert code == 2 and len(err) == 1 and "TENANT-NODE-N" in err[0], err


def test_the_dry_run_says_where_each_tenant_runs() -> None:
    spec = _spec("mig", [_tenant("a", priority="low"), _tenant("b", memory_mib=1000)])
    lines = tenancy_plan(spec)
    assert lines[0] == "tenancy: 2 tenant(s) share the pool by mig"
    assert (
        "tenant a: would start 1 replica(s) on a-gpu0-s0 (pool node gpu0, cores 0, "
        "2048 MiB cap, niceness 10)"
    ) in lines
    assert "tenant b: quota 1 replica(s)" in lines
    assert tenancy_plan(_spec_single()) == []
