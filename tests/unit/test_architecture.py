"""The structure the code promises (docs/extending.md, DESIGN.md "Layers"), checked on the
source: no import circle in harness/, imports that point down the layers, and modules a
newcomer can hold in their head. Read with ast, nothing imported."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 450

#: Layers from the bottom up; a module may import its own layer and the layers below.
#: telemetry.nvml and telemetry.scrape are leaf readers (they import nothing of the harness):
#: the layer of devices and /metrics that platforms and faults read through.
LAYERS: list[tuple[str, ...]] = [
    (
        "harness.errors", "harness.config", "harness.records", "harness.timeline",
        "harness.procs", "harness.rundir", "harness.connection", "harness.telemetry.nvml",
        "harness.telemetry.scrape", "harness.cli_support",
    ),
    ("harness.faults",),
    ("harness.platforms",),
    (
        "harness.chaos", "harness.load", "harness.report", "harness.scoring",
        "harness.telemetry", "harness.progress", "harness.compare", "harness.cleanup",
        "harness.scorecard_model", "harness.live", "harness.alerts",
    ),
    ("harness.history", "harness.ci"),
    ("harness.experiment",),
    (
        "harness.runner", "harness.planner", "harness.catalog", "harness.doctor",
        "harness.tenancy_run",
    ),
    ("harness.gameday", "harness.drill"),
    ("harness.tenant_manifests",),
    ("harness.cli", "harness.__main__", "harness.pytest_plugin"),
]  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "harness").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every harness module ``path`` imports, at module level or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache  # one parse of harness/ for the tests of this module (they only read it)
def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int:
    if module == "harness":  # the package's face: its version, nothing else
        return 0
    best, where = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, where = len(prefix), i
    assert where >= 0, f"{module} is in no layer: add it to LAYERS"
    return where


def test_no_import_circle_in_harness() -> None:
    assert _cycles(_graph()) == []


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{src} -> {dst}"
        for src, dsts in _graph().items()
        for dst in dsts
        if _layer(dst) > _layer(src)
    ]
    assert upward == []


def test_faults_never_import_a_platform_nor_chaoslib() -> None:
    graph = _graph()
    for src, dsts in graph.items():
        if src.startswith("harness.faults"):
            assert not [d for d in dsts if d.startswith("harness.platforms")], src
            text = _modules()[src].read_text(encoding="utf-8")
            assert "import chaoslib" not in text and "from chaoslib" not in text, src


def test_no_module_over_450_lines() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for folder in ("harness", "workloads")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_the_checks_see_a_circle_and_an_upward_import() -> None:
    """The checks above can fail: a made-up graph with a circle and an upward arrow."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("harness.faults.lifecycle") < _layer("harness.platforms.local.platform")
    assert _layer("harness.telemetry.nvml") < _layer("harness.faults.builtin.memory")
    assert _layer("harness.telemetry.sampler") > _layer("harness.platforms.base")
