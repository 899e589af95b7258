"""The drill pack: a pool of hidden incidents one deployment can suffer, and what else may
happen meanwhile to mislead the trainee.

Why a file of its own kind and not an experiment: an experiment names its fault; a pack
names several, with the targets and the window of time each may be drawn from, and the
drill (:mod:`harness.drill.pick`) draws one with a seed, so the trainee cannot read the
answer from the file they were told to run, and a facilitator can replay a drill. Everything
is checked before anything is deployed, as an experiment is: unknown keys are errors, every
number finite and bounded (:mod:`harness.config.base`), every fault a registered local fault
with arguments it accepts, every target a node or a replica of the pack's platform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from harness.config import EXTENSION_NAME, HarnessSpec, StrictModel
from harness.config.base import MAX_COUNT, MAX_DURATION_S, MAX_NODE_REPLICAS, MAX_SEED
from harness.errors import ConfigError, HarnessError
from harness.experiment.document import read_document
from harness.experiment.fields import choices, format_validation_error

#: Scenarios, red herrings or stored baselines in one pack: far beyond a real pool.
MAX_ENTRIES = 100

#: The trainee diagnoses a fault kind from this fixed list. Why labels of their own and not
#: the fault names: the drill never shows a fault's name (it would give the answer away to
#: anyone who searches the page); the debrief maps them back.
DIAGNOSES: dict[str, str] = {
    "lose_node": "node lost",
    "crash_replica": "replica crashed",
    "hang_replica": "replica hung (stuck process)",
    "exhaust_gpu_memory": "out of memory",
    "contend_compute": "compute contention (noisy neighbour)",
}
#: The same, as the short ids the page and ``gpuchaos drill act diagnose`` send.
DIAGNOSIS_IDS: dict[str, str] = {
    "lose_node": "node-lost",
    "crash_replica": "replica-crashed",
    "hang_replica": "replica-hung",
    "exhaust_gpu_memory": "out-of-memory",
    "contend_compute": "noisy-neighbour",
}


def _window(description: str) -> Any:
    return Field(min_length=2, max_length=2, description=description)


class ScenarioSpec(StrictModel):
    """One incident the drill may run: a fault, its possible targets and when it starts."""

    fault: str = Field(
        min_length=1,
        max_length=100,
        description=f"A local fault of the registry: one of {', '.join(DIAGNOSES)}.",
    )
    targets: list[str] = Field(
        min_length=1,
        max_length=MAX_NODE_REPLICAS,
        description=(
            "What it may act on, one drawn: nodes (node faults) or replica ids such as "
            "node-a-0 (replica faults) of the pack's platform."
        ),
    )
    window_s: list[float] = _window(
        f"[earliest, latest] injection time, seconds after the load starts (drawn "
        f"uniformly); at or after the base's warmup_s, at most {MAX_DURATION_S}."
    )
    duration_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            f"Seconds the fault is held (unless the drill ends first); unset: the fault's "
            f"default; none for an instant fault (crash_replica); at most {MAX_DURATION_S}."
        ),
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="The fault's other arguments, as in an experiment (e.g. workers).",
    )


class HerringSpec(StrictModel):
    """A harmless event at another time than the fault, so the diagnosis is real work."""

    kind: Literal["restart", "scale"] = Field(
        description=(
            "restart: a graceful restart of a replica (SIGTERM; the supervisor starts it "
            "again); scale: a node runs `replicas` replicas for hold_s seconds, then as before."
        )
    )
    target: str = Field(
        min_length=1,
        max_length=100,
        description="The replica (restart) or node (scale) of the pack's platform.",
    )
    window_s: list[float] = _window(
        f"[earliest, latest] time of the event, seconds after the load starts; at most "
        f"{MAX_DURATION_S}."
    )
    replicas: int = Field(
        default=2,
        ge=0,
        le=MAX_NODE_REPLICAS,
        description=f"scale: replicas the node runs meanwhile, 0 to {MAX_NODE_REPLICAS}.",
    )
    hold_s: float = Field(
        default=20.0,
        gt=0,
        le=MAX_DURATION_S,
        description=f"scale: seconds before the node goes back; at most {MAX_DURATION_S}.",
    )


class Damage(StrictModel):
    """SLO damage over a drill's window: what a baseline run left alone measured."""

    requests: int = Field(ge=0, le=10**12, description="Requests sent in the window.")
    failed: int = Field(ge=0, le=10**12, description="Requests that failed in the window.")
    bad_s: float = Field(
        ge=0,
        le=MAX_DURATION_S,
        description="Seconds of the window whose requests missed the latency or error SLOs.",
    )
    window_s: float = Field(ge=0, le=MAX_DURATION_S, description="Length of the window, seconds.")


class StoredBaseline(StrictModel):
    """A baseline's figures kept in the pack: the same scenario left alone (``gpuchaos drill
    --no-trainee``), so a debrief can compare without running it again."""

    fault: str = Field(min_length=1, max_length=100, description="The scenario's fault.")
    target: str = Field(min_length=1, max_length=100, description="The scenario's target.")
    at_s: float = Field(
        ge=0, le=MAX_DURATION_S, description="The injection time, seconds after load start."
    )
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="The seed that drew it (for the record)."
    )
    damage: Damage = Field(description="What the scenario did left alone, from the injection.")


class DrillPack(StrictModel):
    """A pool of scenarios run against one deployment and load (the base)."""

    title: str = Field(min_length=1, max_length=200, description="What the drill trains.")
    description: str = Field(default="", max_length=5000, description="For the facilitator.")
    base: dict[str, Any] = Field(
        description=(
            "The deployment, load and SLOs: an experiment's gpuchaos block without its name "
            "(workload, platform of kind local, load, slos, warmup_s, ...)."
        )
    )
    scenarios: list[ScenarioSpec] = Field(
        min_length=1, max_length=MAX_ENTRIES, description="The incidents; one is drawn."
    )
    red_herrings: list[HerringSpec] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="Harmless events the drill may add, herrings_per_drill of them drawn.",
    )
    herrings_per_drill: int = Field(
        default=1, ge=0, le=MAX_ENTRIES, description="How many red herrings one drill gets."
    )
    herring_gap_s: float = Field(
        default=10.0,
        ge=0,
        le=MAX_DURATION_S,
        description="A red herring is at least this many seconds away from the injection.",
    )
    verify_s: float = Field(
        default=10.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "Declared resolved counts when the SLOs held over this many seconds before it."
        ),
    )
    baselines: list[StoredBaseline] = Field(
        default_factory=list,
        max_length=MAX_COUNT,
        description="Figures of baseline runs (--no-trainee), by scenario.",
    )

    @model_validator(mode="after")
    def _windows_in_order(self) -> DrillPack:
        for i, s in enumerate(self.scenarios):
            _check_window(f"scenarios.{i}.window_s", s.window_s)
        for i, h in enumerate(self.red_herrings):
            _check_window(f"red_herrings.{i}.window_s", h.window_s)
        return self


def _check_window(where: str, window: list[float]) -> None:
    lo, hi = window
    if not (0 <= lo <= hi <= MAX_DURATION_S):
        raise ValueError(f"{where}: expected [earliest, latest] with 0 <= earliest <= latest")


class LoadedPack:
    """A checked pack: the model, the base as a harness spec, and what it may target."""

    def __init__(self, path: Path, pack: DrillPack, spec: HarnessSpec) -> None:
        self.path = path
        self.pack = pack
        self.spec = spec
        platform: Any = spec.platform
        self.nodes: list[str] = [n.name for n in platform.nodes]
        self.replicas: list[str] = [
            f"{n.name}-{i}" for n in platform.nodes for i in range(n.replicas)
        ]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def length_s(self) -> float:
        from harness.load.shapes import duration

        return float(duration(self.spec.load.shape))


def load_pack(path: str | Path) -> LoadedPack:
    """Read and check a drill pack; every problem is one ConfigError naming the field."""
    p = Path(path)
    doc = read_document(p, "a drill pack")
    try:
        pack = DrillPack.model_validate(doc)
    except ValidationError as exc:
        raise format_validation_error(p, "", exc, doc) from None
    try:
        spec = HarnessSpec.model_validate({"name": EXTENSION_NAME, **pack.base})
    except ValidationError as exc:
        raise format_validation_error(p, "base", exc, pack.base) from None
    if spec.platform is None or spec.platform.kind != "local":
        raise ConfigError(str(p), "base.platform", "a drill needs platform kind: local")
    if spec.tenancy is not None:
        raise ConfigError(
            str(p), "base.tenancy", "a drill runs one workload: tenancy is for gpuchaos run"
        )
    loaded = LoadedPack(p, pack, spec)
    for i, scenario in enumerate(pack.scenarios):
        _check_scenario(loaded, f"scenarios[{i}]", scenario)
    for i, herring in enumerate(pack.red_herrings):
        _check_herring(loaded, f"red_herrings[{i}]", herring)
    return loaded


def _check_scenario(loaded: LoadedPack, where: str, s: ScenarioSpec) -> None:
    from harness.faults import registry
    from harness.faults.lifecycle import parse_args

    src = str(loaded.path)
    fault = registry.get("local", s.fault)
    if fault is None or s.fault not in DIAGNOSES:
        raise ConfigError(
            src,
            f"{where}.fault",
            f"no drill fault {s.fault!r} ({choices(s.fault, set(DIAGNOSES))})",
        )
    allowed = loaded.nodes if fault.target_arg == "node" else loaded.replicas
    for j, target in enumerate(s.targets):
        if target not in allowed:
            what = "node" if fault.target_arg == "node" else "replica"
            raise ConfigError(
                src,
                f"{where}.targets[{j}]",
                f"not a {what} of base.platform ({choices(target, set(allowed))})",
            )
    if fault.hold == "none" and s.duration_s is not None:
        raise ConfigError(src, f"{where}.duration_s", f"{s.fault} is instant: leave it out")
    if s.window_s[0] < loaded.spec.warmup_s:
        raise ConfigError(
            src, f"{where}.window_s", f"starts before the warmup ends ({loaded.spec.warmup_s:g} s)"
        )
    end = s.window_s[1] + (s.duration_s or 0.0)
    if end > loaded.length_s:
        raise ConfigError(
            src, f"{where}.window_s", f"ends after the load ({end:g} s > {loaded.length_s:g} s)"
        )
    raw = dict(s.args)
    raw[fault.target_arg] = s.targets[0]
    if s.duration_s is not None:
        raw["duration_s"] = s.duration_s
    try:
        parse_args(fault, raw)
    except HarnessError as exc:
        raise ConfigError(src, f"{where}.args", str(exc)) from None


def _check_herring(loaded: LoadedPack, where: str, h: HerringSpec) -> None:
    allowed = loaded.replicas if h.kind == "restart" else loaded.nodes
    if h.target not in allowed:
        what = "replica" if h.kind == "restart" else "node"
        raise ConfigError(
            str(loaded.path),
            f"{where}.target",
            f"not a {what} of base.platform ({choices(h.target, set(allowed))})",
        )
    if h.window_s[1] > loaded.length_s:
        raise ConfigError(str(loaded.path), f"{where}.window_s", "ends after the load")
