# ruff: noqa: E501  (tables of cases read better one per line)
"""A seeded generator of malformed experiments, by class of input.

Why classes, not examples: a validator that handles the cases someone thought of still
accepts their neighbours. Every class below mutates the catalog's own experiments (so the
rest of each file is valid and the mutation is what is wrong), and the seeded random picks
(which field, which bad value) reach fields nobody listed. Every case must be refused by
``gpuchaos validate`` with exit 2 and one line; ``tests/unit/test_validate_fuzz.py`` runs
them all, and ``python -m tests.support.fuzz`` prints the figures (accepted, traceback,
refused) for the current code.
"""

from __future__ import annotations

import copy
import functools
import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "experiments"
LOCAL = ["gpu-node-loss", "replica-hang", "gpu-memory-exhaustion", "traffic-spike", "capstone"]
K8S = ["k8s-gpu-node-drain"]

#: Bad values for a number, each wrong whatever the field means.
BAD_NUMBERS: list[Any] = [
    float("inf"), float("-inf"), float("nan"), -20, 1e15, "ten", [1], {"a": 1}, True,
]  # fmt: skip
#: Bad values for a name (a node, a replica, a module).
BAD_NAMES: list[Any] = [5, [], {"a": 1}, "", True, "Node A!"]
#: A canary file that a shell command smuggled into an experiment would create.
CANARY = Path("/tmp/gpuchaos-fuzz-canary")


@dataclass
class Case:
    """One malformed input: the file's bytes (or a builder for odd files), ``--var`` pairs."""

    name: str
    klass: str
    text: bytes | None = None
    make: Callable[[Path], Path] | None = None  # odd files: FIFOs, folders, missing
    var: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> Path:
        if self.make is not None:
            return self.make(folder)
        path = folder / f"{self.name}.yaml"
        assert self.text is not None
        path.write_bytes(self.text)
        return path


def _load(name: str) -> dict[str, Any]:
    """A fresh copy of the catalog experiment's document (each mutation edits its own)."""
    return copy.deepcopy(_parsed(name))


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    """The catalog file parsed once: ~250 mutations start from a handful of files."""
    data = yaml.safe_load((CATALOG / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def _ext(doc: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in doc["extensions"] if e.get("name") == "gpuchaos")


def _numeric_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every number in a block, and of every ``${...}`` that stands for one."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numeric_leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numeric_leaves(v, (*path, i))
    elif (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.startswith("${")
    ):
        yield path


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _faults(doc: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(section, index, activity) of every fault action, method and rollbacks."""
    out = []
    for section in ("method", "rollbacks"):
        for i, act in enumerate(doc.get(section) or []):
            mod = (act.get("provider") or {}).get("module", "")
            if act.get("type") == "action" and mod.startswith("harness.chaos."):
                out.append((section, i, act))
    return out


def _mutations(rng: random.Random) -> Iterator[Case]:
    # --- numbers in the gpuchaos block, and configuration values standing for them
    for _ in range(60):
        name = rng.choice(LOCAL + K8S)
        doc = _load(name)
        ext = _ext(doc)
        path = rng.choice(list(_numeric_leaves(ext)))
        bad = rng.choice(BAD_NUMBERS)
        current = ext
        for key in path:
            current = current[key]
        if isinstance(current, str) and current.startswith("${") and rng.random() < 0.5:
            key = current[2:-1]
            doc["configuration"][key] = bad
            where = f"configuration.{key}"
        else:
            _set(ext, path, bad)
            where = ".".join(map(str, path))
        yield Case(f"number-{name}-{where}-{bad!r}", "numbers", _dump(doc))
    # --- --var values
    for var, bad in [
        ("duration_s", "1e999"), ("duration_s", ".nan"), ("duration_s", "-20"),
        ("node_down_s", "-20"), ("node_down_s", "1e999"), ("node_down_s", "abc"),
        ("baseline_users", "0.5"), ("baseline_users", "1e9"), ("spike_multiplier", "-1"),
        ("target_node", "node-z"), ("target_node", "[a, b]"), ("nope", "1"),
        ("fault_delay_s", "-3"), ("fault_delay_s", ".inf"), ("warmup_s", "1e999"),
    ]:  # fmt: skip
        yield Case(
            f"var-{var}-{bad}", "vars", (CATALOG / "gpu-node-loss.yaml").read_bytes(),
            var=[f"{var}={bad}"],
        )  # fmt: skip
    # --- fault arguments, per fault activity of each local experiment and the k8s one
    for name in LOCAL + K8S:
        doc = _load(name)
        for section, i, act in _faults(doc):
            args = act["provider"].get("arguments") or {}
            for arg, value in args.items():
                if isinstance(value, str) and value.startswith("${"):
                    value = doc["configuration"][value[2:-1]]
                pool = BAD_NAMES if isinstance(value, str) else BAD_NUMBERS
                for bad in rng.sample(pool, 2):
                    d = _load(name)
                    d[section][i]["provider"]["arguments"][arg] = bad
                    tag = f"{name}-{section}{i}-{arg}-{bad!r}"
                    yield Case(f"arg-{tag}", "fault arguments", _dump(d))
            d = _load(name)
            d[section][i]["provider"].setdefault("arguments", {})["colour"] = "red"
            yield Case(f"arg-unknown-{name}-{section}{i}", "fault arguments", _dump(d))
            d = _load(name)
            d[section][i]["provider"]["arguments"] = {"node": "${undefined_key}"}
            yield Case(f"arg-leftover-{name}-{section}{i}", "fault arguments", _dump(d))
    for name, target in [
        ("gpu-node-loss", ("node", "node-z")), ("gpu-memory-exhaustion", ("node", "gpu-9")),
        ("replica-hang", ("replica", "node-z-0")), ("replica-hang", ("replica", "node-a-7")),
    ]:  # fmt: skip
        d = _load(name)
        for _section, _i, act in _faults(d):
            if target[0] in (act["provider"].get("arguments") or {}):
                act["provider"]["arguments"][target[0]] = target[1]
        for key in ("target_node", "target_replica"):
            if key in d["configuration"]:
                d["configuration"][key] = target[1]
        yield Case(f"target-{name}-{target[1]}", "undeclared target", _dump(d))
    # --- modules: unknown, the wrong platform's, arbitrary code
    d = _load("gpu-node-loss")
    d["method"][1]["provider"]["module"] = "harness.chaos.nope"
    yield Case("module-unknown", "modules", _dump(d))
    d = _load("gpu-node-loss")
    d["method"][1]["provider"]["func"] = "lose_nodes"
    yield Case("func-unknown", "modules", _dump(d))
    d = _load("gpu-node-loss")
    d["method"][1]["provider"]["module"] = "harness.chaos.k8s"
    d["method"][1]["provider"]["func"] = "drain_gpu_node"
    d["method"][1]["provider"]["arguments"] = {"duration_s": 10}
    yield Case("module-k8s-on-local", "modules", _dump(d))
    d = _load("k8s-gpu-node-drain")
    d["method"][1]["provider"] = {
        "type": "python", "module": "harness.chaos.actions", "func": "lose_node",
        "arguments": {"node": "node-a", "duration_s": 10},
    }  # fmt: skip
    yield Case("module-local-on-k8s", "modules", _dump(d))
    for module, func, arguments in [
        ("os", "system", {"command": f"touch {CANARY}"}),
        ("subprocess", "getoutput", {"cmd": f"touch {CANARY}"}),
        ("shutil", "rmtree", {"path": "/tmp/gpuchaos-fuzz-nothing"}),
        ("builtins", "exec", {"source": f"open('{CANARY}', 'w')"}),
        ("harness", "__version__", {}),
    ]:
        d = _load("gpu-node-loss")
        d["method"].insert(0, {
            "type": "action", "name": "surprise",
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
        })  # fmt: skip
        yield Case(f"module-{module}-{func}", "modules", _dump(d))
    d = _load("gpu-node-loss")
    d["method"].insert(0, {
        "type": "action", "name": "surprise",
        "provider": {"type": "process", "path": "/bin/sh", "arguments": f"-c 'touch {CANARY}'"},
    })  # fmt: skip
    yield Case("module-process-shell", "modules", _dump(d))
    # --- controls
    for bad in [
        {"name": "gpuchaos-timeline", "provider": {"type": "python", "module": "harness.chaos.ctrl"}},
        {"name": "gpuchaos-timeline", "provider": {"type": "python", "module": "os"}},
        {"name": "gpuchaos-timeline"},
        {"name": "gpuchaos-timeline", "provider": {"type": "process", "path": "/bin/true"}},
        {"name": "gpuchaos-timeline", "provider": {"type": "python"}},
        {"provider": {"type": "python", "module": "harness.chaos.controls"}},
        {"name": 5, "provider": {"type": "python", "module": "harness.chaos.controls"}},
        {"name": "t", "scope": "during", "provider": {"type": "python", "module": "harness.chaos.controls"}},
        "harness.chaos.controls",
    ]:  # fmt: skip
        d = _load("gpu-node-loss")
        d["controls"] = [bad]
        yield Case(f"control-{len(str(bad))}-{str(bad)[:30]}", "controls", _dump(d))
    d = _load("gpu-node-loss")
    d["controls"] = {"name": "gpuchaos-timeline"}
    yield Case("controls-mapping", "controls", _dump(d))
    # --- Chaos Toolkit sections: method, rollbacks, probes, provider, arguments, tags, title
    sections: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("title-missing", lambda d: d.pop("title")),
        ("title-int", lambda d: d.update(title=5)),
        ("title-empty", lambda d: d.update(title="")),
        ("title-list", lambda d: d.update(title=["a"])),
        ("description-missing", lambda d: d.pop("description")),
        ("description-int", lambda d: d.update(description=7)),
        ("tags-string", lambda d: d.update(tags="gpu")),
        ("tags-int", lambda d: d.update(tags=[1, 2])),
        ("tags-empty-string", lambda d: d.update(tags=["gpu", ""])),
        ("method-missing", lambda d: d.pop("method")),
        ("method-mapping", lambda d: d.update(method={"a": 1})),
        ("method-string", lambda d: d.update(method="lose_node")),
        ("method-item-string", lambda d: d["method"].append("lose")),
        ("method-item-empty", lambda d: d["method"].append({})),
        ("rollbacks-string", lambda d: d.update(rollbacks="restore")),
        ("rollbacks-mapping", lambda d: d.update(rollbacks={"a": 1})),
        ("ssh-list", lambda d: d.update({"steady-state-hypothesis": []})),
        ("ssh-no-title", lambda d: d["steady-state-hypothesis"].pop("title")),
        ("probes-mapping", lambda d: d["steady-state-hypothesis"].update(probes={"a": 1})),
        ("probe-no-tolerance", lambda d: d["steady-state-hypothesis"]["probes"][0].pop("tolerance")),
        ("probe-action-in-ssh", lambda d: d["steady-state-hypothesis"]["probes"][0].update(type="action")),
        ("activity-type-bogus", lambda d: d["method"][0].update(type="probes")),
        ("activity-type-missing", lambda d: d["method"][0].pop("type")),
        ("activity-name-missing", lambda d: d["method"][0].pop("name")),
        ("activity-name-int", lambda d: d["method"][0].update(name=3)),
        ("activity-unknown-key", lambda d: d["method"][0].update(colour="red")),
        ("provider-missing", lambda d: d["method"][0].pop("provider")),
        ("provider-string", lambda d: d["method"][0].update(provider="python")),
        ("provider-type-bogus", lambda d: d["method"][0]["provider"].update(type="ruby")),
        ("provider-type-missing", lambda d: d["method"][0]["provider"].pop("type")),
        ("provider-module-missing", lambda d: d["method"][0]["provider"].pop("module")),
        ("provider-module-int", lambda d: d["method"][0]["provider"].update(module=5)),
        ("provider-func-list", lambda d: d["method"][0]["provider"].update(func=["a"])),
        ("provider-unknown-key", lambda d: d["method"][0]["provider"].update(colour="red")),
        ("arguments-list", lambda d: d["method"][1]["provider"].update(arguments=["node-a"])),
        ("arguments-string", lambda d: d["method"][1]["provider"].update(arguments="node-a")),
        ("pauses-list", lambda d: d["method"][0].update(pauses=[1])),
        ("pauses-negative", lambda d: d["method"][0].update(pauses={"after": -5})),
        ("pauses-inf", lambda d: d["method"][0].update(pauses={"after": float("inf")})),
        ("pauses-huge", lambda d: d["method"][0].update(pauses={"after": 1e12})),
        ("pauses-string", lambda d: d["method"][0].update(pauses={"before": "soon"})),
        ("pauses-leftover", lambda d: d["method"][0].update(pauses={"before": "${later}"})),
        ("pauses-unknown-key", lambda d: d["method"][0].update(pauses={"during": 1})),
        ("timeout-string", lambda d: d["method"][0].update(timeout="long")),
        ("timeout-negative", lambda d: d["method"][0].update(timeout=-1)),
        ("background-string", lambda d: d["method"][0].update(background="yes")),
        ("ref-unknown", lambda d: d["method"].append({"ref": "no-such-activity"})),
        ("configuration-list", lambda d: d.update(configuration=[1, 2])),
        ("extensions-mapping", lambda d: d.update(extensions={"name": "gpuchaos"})),
        ("extensions-none", lambda d: d.update(extensions=[])),
        ("extensions-twice", lambda d: d["extensions"].append(copy.deepcopy(d["extensions"][0]))),
        ("unknown-top-key", lambda d: d.update(methods=[])),
        ("version-list", lambda d: d.update(version=[1])),
    ]  # fmt: skip
    for tag, mutate in sections:
        d = _load("gpu-node-loss")
        mutate(d)
        yield Case(f"ctk-{tag}", "chaos toolkit sections", _dump(d))
    # --- unions: a wrong key inside a member
    unions: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("shape-wrong-key", lambda e: e["load"]["shape"].update(spike_multiplyer=3)),
        ("shape-kind-unknown", lambda e: e["load"]["shape"].update(kind="tsunami")),
        ("platform-kind-unknown", lambda e: e["platform"].update(kind="nomad")),
        ("platform-wrong-key", lambda e: e["platform"].update(node=[])),
        ("node-wrong-key", lambda e: e["platform"]["nodes"][0].update(gpu="h100")),
        ("length-wrong-key", lambda e: e["load"].update(
            prompt_tokens={"kind": "normal", "mean": 8, "stdev": 2, "sigma": 1})),
        ("length-kind-unknown", lambda e: e["load"].update(prompt_tokens={"kind": "zipf"})),
        ("workload-wrong-key", lambda e: e["workload"].update(batch=4)),
        ("slo-unknown", lambda e: e["slos"].update(p42_latency_ms=5)),
        ("user-unknown", lambda e: e["load"].update(user="grpc")),
    ]  # fmt: skip
    for tag, mutate in unions:
        d = _load("gpu-node-loss")
        mutate(_ext(d))
        yield Case(f"union-{tag}", "unions", _dump(d))
    # --- the platform: replicas, cpus, devices
    platform: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("no-replica", lambda p: [n.update(replicas=0) for n in p["nodes"]]),
        ("no-nodes", lambda p: p.update(nodes=[])),
        ("cpus-repeated", lambda p: p["nodes"][0].update(cpus=[0, 0])),
        ("cpus-shared", lambda p: p["nodes"][1].update(cpus=[0])),
        ("cpus-beyond-machine", lambda p: p["nodes"][0].update(cpus=[(os.cpu_count() or 1) + 7])),
        ("cpus-negative", lambda p: p["nodes"][0].update(cpus=[-1])),
        ("device-cuda-7", lambda p: p["nodes"][0].update(device="cuda:7")),
        ("device-tpu", lambda p: p["nodes"][0].update(device="tpu")),
        ("node-name-upper", lambda p: p["nodes"][0].update(name="Node-A")),
        ("node-names-repeated", lambda p: p["nodes"][1].update(name="node-a")),
    ]  # fmt: skip
    for tag, mutate in platform:
        d = _load("gpu-node-loss")
        mutate(_ext(d)["platform"])
        yield Case(f"platform-{tag}", "platform", _dump(d))


def _fifo(folder: Path) -> Path:
    path = folder / "fifo.yaml"
    os.mkfifo(path)
    return path


def _folder(folder: Path) -> Path:
    path = folder / "folder.yaml"
    path.mkdir()
    return path


def _missing(folder: Path) -> Path:
    return folder / "missing.yaml"


def _files() -> Iterator[Case]:
    good = (CATALOG / "gpu-node-loss.yaml").read_text(encoding="utf-8")
    deep_list = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    deep_map = "".join("  " * 0 + "{a: " for _ in range(5000)) + "1" + "}" * 5000 + "\n"
    laughs = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        laughs.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    bomb = good + "\n" + "\n".join(f"x{line}" for line in laughs) + "\n"
    yield Case("file-binary", "file shapes", bytes(random.Random(7).randbytes(2048)))
    yield Case("file-utf16", "file shapes", good.encode("utf-16"))
    yield Case("file-latin1", "file shapes", good.replace("GPU node", "GPU nœud").encode("cp1252"))
    yield Case("file-nul", "file shapes", good.encode()[:200] + b"\x00" + good.encode()[200:])
    yield Case("file-deep-list", "file shapes", deep_list.encode())
    yield Case("file-deep-map", "file shapes", deep_map.encode())
    yield Case("file-alias-bomb", "file shapes", bomb.encode())
    many = "".join(f"\n  k{i}: *w" for i in range(150))
    yield Case(
        "file-many-aliases",
        "file shapes",
        good.replace("  warmup_s: 10 ", "  warmup_s: &w 10 ")
        .replace("  target_node: node-a", "  target_node: node-a" + many)
        .encode(),
    )
    yield Case("file-empty", "file shapes", b"")
    yield Case("file-scalar", "file shapes", b"42\n")
    yield Case("file-list", "file shapes", b"- a\n- b\n")
    yield Case("file-python-tag", "file shapes", b"title: !!python/object/apply:os.system [ls]\n")
    yield Case("file-bad-yaml", "file shapes", b"title: [unclosed\n")
    yield Case(
        "file-tab-indent", "file shapes", good.replace("  - name: gpuchaos", "\t- name: x").encode()
    )
    yield Case("file-huge", "file shapes", good.encode() + b"# " + b"x" * (11 * 2**20) + b"\n")
    yield Case("file-fifo", "file shapes", make=_fifo)
    yield Case("file-folder", "file shapes", make=_folder)
    yield Case("file-missing", "file shapes", make=_missing)
    # duplicate keys at each level
    for tag, old, new in [
        ("top", "title: GPU node loss", "title: GPU node loss\ntitle: again"),
        ("configuration", "  node_down_s: 20 ", "  node_down_s: 20\n  node_down_s: -20 "),
        ("extension", "      max_batch_size: 16", "      max_batch_size: 16\n      max_batch_size: 8"),
        ("arguments", "        duration_s: ${node_down_s}", "        duration_s: ${node_down_s}\n        duration_s: 1"),
        ("flow", "{name: node-a, device: auto,", "{name: node-a, name: node-b, device: auto,"),
    ]:  # fmt: skip
        assert old in good, old
        yield Case(f"file-duplicate-{tag}", "duplicate keys", good.replace(old, new, 1).encode())


def cases(seed: int = 12) -> list[Case]:
    """Every malformed input, the same list for the same seed; names are unique."""
    out = list(_files()) + list(_mutations(random.Random(seed)))
    seen: dict[str, int] = {}
    for case in out:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in case.name)[:80]
        n = seen.get(name, 0)
        seen[name] = n + 1
        case.name = f"{name}-{n}" if n else name
    return out


def main() -> int:
    """Print how the current code answers each class: refused (exit 2, one line), accepted
    (exit 0), or anything else (a traceback, exit 1, several lines)."""
    import contextlib
    import io
    import tempfile
    import time

    from harness.cli import main as cli

    tally: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases()):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            path = case.write(folder)
            err, out = io.StringIO(), io.StringIO()
            t0 = time.monotonic()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                    rc = cli(["validate", str(path), *(f"--var={v}" for v in case.var)])
            except BaseException as exc:  # the figure "traceback" is what this counts
                rc, err = -1, io.StringIO(f"{type(exc).__name__}: {exc}")
            lines = err.getvalue().strip().splitlines()
            if rc == 2 and len(lines) == 1:
                verdict = "refused"
            elif rc == 0:
                verdict = "accepted"
            else:
                verdict = "other"
            tally.setdefault(case.klass, {}).setdefault(verdict, 0)
            tally[case.klass][verdict] += 1
            if verdict != "refused":
                first = lines[-1] if lines else out.getvalue().strip()[:150]
                bad.append(f"{verdict:8} rc={rc} {case.name}: {first[:160]}")
            if time.monotonic() - t0 > 1:
                bad.append(f"slow     {case.name}: {time.monotonic() - t0:.1f} s")
    total: dict[str, int] = {}
    for klass, counts in tally.items():
        print(f"{klass:24} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    print(f"{'all':24} " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    for line in bad:
        print(line)
    CANARY.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
