"""Every number of an experiment is finite and bounded, checked before anything runs.

The cases are built from the models themselves: every numeric field of every block of the
``gpuchaos`` extension (and every numeric argument of every built-in fault) gets infinite,
NaN and out-of-range values through :func:`harness.experiment.load_experiment`, and each must
be one ConfigError naming the field. A numeric field without an upper or a lower bound, or a
block these tests do not know, fails the coverage tests, so a new field cannot slip past.
"""

from __future__ import annotations

import copy
import math
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from harness.config import (
    AutoscalerSpec,
    ContractSpec,
    DevicePluginSpec,
    DiurnalShape,
    EndpointSpec,
    HarnessSpec,
    KedaSpec,
    KubernetesPlatformSpec,
    LengthDistribution,
    LivenessSpec,
    LoadSpec,
    LocalPlatformSpec,
    NodeSpec,
    OutlierEjectionSpec,
    RampShape,
    SLOSpec,
    SpikeShape,
    StepShape,
    StopCondition,
    TelemetrySpec,
    TenancySpec,
    TenantSpec,
    TraceShape,
    WorkloadSpec,
)
from harness.config.autoscaler import ScalingRuleSpec
from harness.config.base import MAX_CPU, MAX_DURATION_S, MAX_LOG_SIGMA, MAX_TOKENS, MAX_WORDS
from harness.config.pools import ClusterAutoscalerSpec, NodePoolSpec
from harness.errors import ConfigError
from harness.experiment import load_experiment
from harness.faults import registry

#: The trace file of the trace shape's cases; written under tmp_path by _write.
TRACE = "trace.csv"

_SHAPE = {"duration_s": 10, "baseline_users": 1, "spike_start_s": 0, "spike_duration_s": 0}
_LOAD = {
    "shape": _SHAPE,
    "prompt_words": {"dist": "normal", "min": 1, "max": 100, "mean": 10, "std": 2},
}

#: Minimal valid extension blocks, one per platform; every block of the table is in one.
BASES: dict[str, dict[str, Any]] = {
    "local": {
        "name": "gpuchaos",
        "workload": {},
        "platform": {
            "kind": "local",
            "nodes": [{"name": "node-a"}, {"name": "node-b", "replicas": 0}],
            "liveness": {},
            "outlier_ejection": {},
            "autoscaler": {"threshold": 1, "max_replicas": 2},
        },
        "load": _LOAD,
        "slos": {},
        "stop_conditions": [{"metric": "error_rate", "above": 0.5}],
        "telemetry": {},
    },
    "pools": {
        "name": "gpuchaos",
        "platform": {
            "kind": "local",
            "nodes": [{"name": "node-a"}],
            "pools": [{"name": "gpu"}],
            "cluster_autoscaler": {},
            "autoscaler": {"rules": [{"metric": "p99_latency_ms", "threshold": 1}]},
        },
        "load": _LOAD,
    },
    "kubernetes": {
        "name": "gpuchaos",
        "platform": {
            "kind": "kubernetes",
            "context": "test",
            "autoscaling": {},
            "device_plugin": {},
        },
        "load": {"shape": _SHAPE},
    },
    "endpoint": {
        "name": "gpuchaos",
        "endpoint": {"url": "http://127.0.0.1:8000"},
        "load": {"shape": _SHAPE},
    },
    "step": {
        "name": "gpuchaos",
        "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
        "load": {
            "shape": {"kind": "step", "duration_s": 10, "start": 1, "increment": 1, "step_s": 2}
        },
    },
    "ramp": {
        "name": "gpuchaos",
        "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
        "load": {"shape": {"kind": "ramp", "duration_s": 10, "start": 1, "end": 2, "ramp_s": 5}},
    },
    "diurnal": {
        "name": "gpuchaos",
        "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
        "load": {
            "shape": {"kind": "diurnal", "duration_s": 10, "mean": 2, "amplitude": 1, "period_s": 5}
        },
    },
    "tenancy": {
        "name": "gpuchaos",
        "platform": {"kind": "local", "nodes": [{"name": "gpu-0"}, {"name": "gpu-1"}]},
        "tenancy": {
            "sharing": "mps",
            "tenants": [
                {"name": "a", "load": {"shape": _SHAPE}, "contract": {"memory_mib": 512}},
                {"name": "b", "load": {"shape": _SHAPE}, "autoscaler": {"threshold": 1}},
            ],
        },
    },
    "trace": {
        "name": "gpuchaos",
        "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
        "load": {"shape": {"kind": "trace", "path": TRACE}},
    },
}

#: Every block: (base, where it is in the extension, its model). The path is written as the
#: error names it.
BLOCKS: list[tuple[str, str, type[BaseModel]]] = [
    ("local", "", HarnessSpec),
    ("local", "workload", WorkloadSpec),
    ("local", "platform", LocalPlatformSpec),
    ("local", "platform.nodes[0]", NodeSpec),
    ("local", "platform.liveness", LivenessSpec),
    ("local", "platform.outlier_ejection", OutlierEjectionSpec),
    ("local", "platform.autoscaler", AutoscalerSpec),
    ("pools", "platform.pools[0]", NodePoolSpec),
    ("pools", "platform.cluster_autoscaler", ClusterAutoscalerSpec),
    ("pools", "platform.autoscaler.rules[0]", ScalingRuleSpec),
    ("local", "load", LoadSpec),
    ("local", "load.shape", SpikeShape),
    ("local", "load.prompt_words", LengthDistribution),
    ("local", "slos", SLOSpec),
    ("local", "stop_conditions[0]", StopCondition),
    ("local", "telemetry", TelemetrySpec),
    ("kubernetes", "platform", KubernetesPlatformSpec),
    ("kubernetes", "platform.autoscaling", KedaSpec),
    ("kubernetes", "platform.device_plugin", DevicePluginSpec),
    ("endpoint", "endpoint", EndpointSpec),
    ("step", "load.shape", StepShape),
    ("ramp", "load.shape", RampShape),
    ("diurnal", "load.shape", DiurnalShape),
    ("trace", "load.shape", TraceShape),
    ("tenancy", "tenancy", TenancySpec),
    ("tenancy", "tenancy.tenants[0]", TenantSpec),
    ("tenancy", "tenancy.tenants[0].contract", ContractSpec),
]

#: Numeric fields that are not a plain number (a union, a list, a dict): checked by their
#: own tests below.
SPECIAL = {
    (LoadSpec, "prompt_words"),
    (LoadSpec, "max_tokens"),
    (NodeSpec, "cpus"),
    (NodePoolSpec, "cpus"),
    (SLOSpec, "windows"),
    (SLOSpec, "weights"),
}


def _doc(ext: dict[str, Any], method: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    probe = {
        "type": "probe",
        "name": "slos-hold",
        "provider": {"type": "python", "module": "harness.chaos.probes", "func": "slos_hold"},
    }
    return {
        "version": "1.0.0",
        "title": "bounds",
        "description": "every number is finite and bounded",
        "extensions": [ext],
        "controls": [
            {
                "name": "gpuchaos-timeline",
                "provider": {"type": "python", "module": "harness.chaos.controls"},
            }
        ],
        "method": method or [probe],
    }


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    (tmp_path / TRACE).write_text("time_s,level\n0,1\n10,2\n")
    for ext in doc["extensions"]:
        shape = ext.get("load", {}).get("shape", {})
        if shape.get("kind") == "trace":
            shape["path"] = str(tmp_path / TRACE)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _steps(where: str) -> list[str | int]:
    """``platform.nodes[0]`` as keys and indexes: ["platform", "nodes", 0]."""
    steps: list[str | int] = []
    for part in filter(None, where.split(".")):
        name, _, index = part.partition("[")
        steps.append(name)
        if index:
            steps.append(int(index.rstrip("]")))
    return steps


def _with(base: str, where: str, field: str, value: Any) -> dict[str, Any]:
    ext = copy.deepcopy(BASES[base])
    block: Any = ext
    for step in _steps(where):
        block = block[step]
    block[field] = value
    return ext


def _rejected(tmp_path: Path, ext: dict[str, Any]) -> ConfigError:
    """The error of an experiment with extension block ``ext``."""
    return _refused(tmp_path, _doc(ext))


def _refused(tmp_path: Path, doc: dict[str, Any]) -> ConfigError:
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}: ")
    return err.value


def _field(where: str, field: str) -> str:
    return ".".join(filter(None, ["extensions[0]", where, field]))


def _plain(annotation: Any) -> type | None:
    """int or float for a (possibly optional) plain number, else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _plain(args[0]) if len(args) == 1 else None
    return annotation if annotation in (int, float) else None


def _mentions_number(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    return any(_mentions_number(a) for a in typing.get_args(annotation))


def _bounds(info: Any) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return found


def _numeric_fields() -> list[tuple[str, str, type[BaseModel], str, type, dict[str, float]]]:
    out = []
    for base, where, model in BLOCKS:
        for name, info in model.model_fields.items():
            kind = _plain(info.annotation)
            if kind is not None and kind is not bool:
                out.append((base, where, model, name, kind, _bounds(info)))
    return out


FIELDS = _numeric_fields()


def _bad_values(kind: type, bounds: dict[str, float]) -> list[tuple[str, Any]]:
    bad: list[tuple[str, Any]] = []
    if kind is float:
        bad += [("inf", math.inf), ("nan", math.nan), ("1e999", "1e999")]
    if "ge" in bounds:
        bad.append(("below ge", bounds["ge"] - 1))
    if "gt" in bounds:
        bad.append(("at gt", bounds["gt"]))
    if "le" in bounds:
        bad.append(("above le", bounds["le"] + 1))
    if "lt" in bounds:
        bad.append(("at lt", bounds["lt"]))
    return bad


CASES = [
    pytest.param(base, where, name, value, id=f"{model.__name__}.{name}={label}")
    for base, where, model, name, kind, bounds in FIELDS
    for label, value in _bad_values(kind, bounds)
]


def _reachable(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    def walk(annotation: Any) -> None:
        model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if model and annotation not in seen:
            seen.add(annotation)
            for info in annotation.model_fields.values():
                walk(info.annotation)
        for arg in typing.get_args(annotation):
            walk(arg)

    walk(model)
    return seen


def test_every_block_of_the_extension_is_in_the_table() -> None:
    assert _reachable(HarnessSpec, set()) == {model for _, _, model in BLOCKS}


@pytest.mark.parametrize("base", sorted(BASES))
def test_the_minimal_blocks_are_valid(tmp_path: Path, base: str) -> None:
    load_experiment(_write(tmp_path, _doc(copy.deepcopy(BASES[base]))))


def test_every_numeric_field_is_bounded_above_and_below() -> None:
    unbounded = [
        f"{model.__name__}.{name}"
        for _, _, model, name, _, bounds in FIELDS
        if not ({"le", "lt"} & set(bounds) and {"ge", "gt"} & set(bounds))
    ]
    assert not unbounded, f"fields without an upper or a lower bound: {unbounded}"
    other = {
        (model, name)
        for _, _, model in BLOCKS
        for name, info in model.model_fields.items()
        if _plain(info.annotation) is None and _mentions_number(info.annotation)
    }
    assert other == SPECIAL, "a numeric field that is not a plain number needs its own test"


def test_every_bound_is_stated_in_the_description() -> None:
    def shown(bound: float) -> set[str]:
        whole = [f"{int(bound):,}", str(int(bound))] if bound == int(bound) else []
        return {f"{bound:g}", f"{bound:,}", str(bound), *whole}

    missing = []
    for _, _, model, name, _, bounds in FIELDS:
        upper = bounds.get("le", bounds.get("lt"))
        description = model.model_fields[name].description or ""
        if upper is not None and not any(s in description for s in shown(upper)):
            missing.append(f"{model.__name__}.{name}")
    assert not missing, f"upper bound not in the description: {missing}"


@pytest.mark.parametrize(("base", "where", "name", "value"), CASES)
def test_an_out_of_range_number_is_refused_naming_its_field(
    tmp_path: Path, base: str, where: str, name: str, value: Any
) -> None:
    err = _rejected(tmp_path, _with(base, where, name, value))
    assert err.field == _field(where, name)


#: The first numeric field of every block (a boolean is refused the same way in each).
FIRST_NUMBERS = {(base, where): name for base, where, _, name, _, _ in reversed(FIELDS)}


@pytest.mark.parametrize(("base", "where", "name"), [(*k, v) for k, v in FIRST_NUMBERS.items()])
def test_a_boolean_is_no_number(tmp_path: Path, base: str, where: str, name: str) -> None:
    err = _rejected(tmp_path, _with(base, where, name, True))
    assert err.field == _field(where, name) and "not true or false" in err.problem


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("prompt_words", 0, "from 1 to"),
        ("prompt_words", True, "not true or false"),
        ("prompt_words", MAX_WORDS + 1, "from 1 to"),
        ("max_tokens", MAX_TOKENS + 1, "from 1 to"),
        ("max_tokens", {"dist": "uniform", "min": 1, "max": MAX_TOKENS + 1}, "less than or equal"),
        ("max_tokens", {"dist": "normal", "max": 9, "mean": math.inf, "std": 1}, "finite"),
    ],
)
def test_a_length_is_a_bounded_number_or_distribution(
    tmp_path: Path, field: str, value: Any, problem: str
) -> None:
    err = _rejected(tmp_path, _with("local", "load", field, value))
    assert err.field.startswith(_field("load", field))
    assert problem in err.problem


def test_a_lognormal_sigma_that_would_overflow_the_draw_is_refused(tmp_path: Path) -> None:
    length = {"dist": "lognormal", "max": 100, "mean": 10, "std": MAX_LOG_SIGMA + 1}
    err = _rejected(tmp_path, _with("local", "load", "prompt_words", length))
    assert err.field.startswith(_field("load", "prompt_words"))
    assert "std" in err.problem and f"at most {MAX_LOG_SIGMA}" in err.problem


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("windows", {"p99_latency_ms": math.inf}, "windows.p99_latency_ms"),
        ("windows", {"p99_latency_ms": math.nan}, "windows.p99_latency_ms"),
        ("windows", {"p99_latency_ms": MAX_DURATION_S + 1}, "windows.p99_latency_ms"),
        ("weights", {"p99_latency_ms": 1001}, "weights.p99_latency_ms"),
        ("weights", {"p99_latency_ms": -1}, "weights.p99_latency_ms"),
        ("windows", {"p99_latency_ms": True}, "not true or false"),
    ],
)
def test_slo_windows_and_weights_are_bounded(
    tmp_path: Path, field: str, value: Any, problem: str
) -> None:
    err = _rejected(tmp_path, _with("local", "slos", field, value))
    assert err.field.startswith(_field("slos", "")) and problem in f"{err.field} {err.problem}"


def test_an_infinite_weight_names_its_objective(tmp_path: Path) -> None:
    err = _rejected(tmp_path, _with("local", "slos", "weights", {"error_rate": math.inf}))
    assert err.field == _field("slos", "weights.error_rate")


@pytest.mark.parametrize(
    ("metric", "bound"), [("error_rate", 1.5), ("availability", 2), ("p99_latency_ms", 1e9)]
)
def test_a_stop_condition_bound_lies_within_its_metric(
    tmp_path: Path, metric: str, bound: float
) -> None:
    ext = _with("local", "", "stop_conditions", [{"metric": metric, "above": bound}])
    err = _rejected(tmp_path, ext)
    assert err.field.startswith(_field("stop_conditions[0]", ""))


@pytest.mark.parametrize("cpus", [[-1], [MAX_CPU + 1], [0, 0], [True]])
def test_a_node_s_cores_are_real_core_numbers_each_once(tmp_path: Path, cpus: list[int]) -> None:
    err = _rejected(tmp_path, _with("local", "platform.nodes[0]", "cpus", cpus))
    assert err.field.startswith(_field("platform.nodes[0]", "cpus"))


def test_an_empty_core_list_is_refused(tmp_path: Path) -> None:
    err = _rejected(tmp_path, _with("local", "platform.nodes[0]", "cpus", []))
    assert err.field == _field("platform.nodes[0]", "cpus")


def test_no_core_is_pinned_by_two_nodes() -> None:
    nodes = [{"name": "node-a", "cpus": [0, 1]}, {"name": "node-b", "cpus": [1]}]
    with pytest.raises(ValueError, match="core 1 is in the cpus of both node-a and node-b"):
        LocalPlatformSpec.model_validate({"nodes": nodes})
    LocalPlatformSpec.model_validate({"nodes": [nodes[0], {"name": "node-b", "cpus": [2]}]})


def test_the_platform_has_at_least_one_replica(tmp_path: Path) -> None:
    ext = _with("local", "platform", "nodes", [{"name": "node-a", "replicas": 0}])
    err = _rejected(tmp_path, ext)
    assert err.field.startswith(_field("platform", ""))
    assert "at least one" in err.problem


@pytest.mark.parametrize("url", ["http://127.0.0.1:0", "http://127.0.0.1:65536", "http://h:x"])
def test_a_url_s_port_is_a_port(tmp_path: Path, url: str) -> None:
    err = _rejected(tmp_path, _with("endpoint", "endpoint", "url", url))
    assert err.field == _field("endpoint", "url") and "port" in err.problem


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("0,1\n10,inf\n", "finite"),
        ("0,1\nnan,2\n", "finite"),
        (f"0,1\n{MAX_DURATION_S + 1},2\n", "at most"),
        ("0,1\n10,2000000\n", "at most"),
    ],
)
def test_a_trace_s_rows_are_finite_and_bounded(tmp_path: Path, rows: str, problem: str) -> None:
    trace = tmp_path / "rows.csv"
    trace.write_text("time_s,level\n" + rows)
    doc = _doc(copy.deepcopy(BASES["trace"]))
    path = tmp_path / "exp.yaml"
    doc["extensions"][0]["load"]["shape"]["path"] = str(trace)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.field.startswith(_field("load.shape", ""))
    assert problem in err.value.problem


# --- fault arguments ---------------------------------------------------------------------

#: The module of each platform's fault actions, and the target each fault may be given.
_ACTIONS = {"local": "harness.chaos.actions", "kubernetes": "harness.chaos.k8s"}
_TARGETS = {("local", "node"): "node-a", ("local", "replica"): "node-a-0"}


def _builtin_faults() -> list[Any]:
    return [f for f in registry.faults() if type(f).__module__.startswith("harness.faults.")]


def _fault_cases() -> list[Any]:
    cases = []
    for fault in _builtin_faults():
        for name, info in fault.args.model_fields.items():
            kind = _plain(info.annotation)
            if kind is None or kind is bool:
                continue
            for label, value in _bad_values(kind, _bounds(info)):
                cases.append(pytest.param(fault, name, value, id=f"{fault.name}.{name}={label}"))
    return cases


def _fault_doc(fault: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    base = "local" if fault.platform == "local" else "kubernetes"
    ext = copy.deepcopy(BASES[base])
    target = _TARGETS.get((fault.platform, fault.target_arg))
    given = {fault.target_arg: target} if target else {}
    action = {
        "type": "action",
        "name": "inject",
        "provider": {
            "type": "python",
            "module": _ACTIONS[fault.platform],
            "func": fault.name,
            "arguments": {**given, **arguments},
        },
    }
    return _doc(ext, [action])


def test_every_numeric_fault_argument_is_bounded_and_described() -> None:
    loose = []
    for fault in _builtin_faults():
        for name, info in fault.args.model_fields.items():
            if _mentions_number(info.annotation) and _plain(info.annotation) is None:
                loose.append(f"{fault.name}.{name} (not a plain number)")
            elif _plain(info.annotation) in (int, float):
                bounds = _bounds(info)
                if not ({"le", "lt"} & set(bounds) and {"ge", "gt"} & set(bounds)):
                    loose.append(f"{fault.name}.{name}")
    assert not loose, f"fault arguments without both bounds: {loose}"


@pytest.mark.parametrize("fault", _builtin_faults(), ids=lambda f: f.name)
def test_a_fault_with_its_target_alone_is_valid(tmp_path: Path, fault: Any) -> None:
    load_experiment(_write(tmp_path, _fault_doc(fault, {})))


@pytest.mark.parametrize(("fault", "name", "value"), _fault_cases())
def test_an_out_of_range_fault_argument_is_refused_naming_it(
    tmp_path: Path, fault: Any, name: str, value: Any
) -> None:
    err = _refused(tmp_path, _fault_doc(fault, {name: value}))
    assert err.field == "method[0].provider.arguments"
    assert err.problem.startswith(f"{fault.name}: {name}: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (".inf", "finite number"),
        ("1e999", "finite number"),
        ("-20", "greater than 0"),
        ("0", "greater than 0"),  # a timed fault "reverted at once" is no fault
        ("true", "not true or false"),
    ],
)
def test_a_held_fault_duration_must_be_finite_and_positive(
    tmp_path: Path, text: str, problem: str
) -> None:
    fault = registry.get("local", "lose_node")
    doc = _fault_doc(fault, {"duration_s": "DURATION"})
    path = _write(tmp_path, doc)
    path.write_text(path.read_text().replace("DURATION", text))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.problem.startswith("lose_node: duration_s: ") and problem in str(err.value)
    assert "\n" not in str(err.value)
