"""Draw a drill's scenario from its pack with a seed: which fault, on what, when, and which
red herrings at which times.

Why one ``random.Random(seed)`` drawn in a fixed order: the same seed and pack give the same
drill on any machine, so a facilitator replays an exercise (or makes its baseline with
``--no-trainee``) by passing the seed the debrief shows.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.drill.pack import DIAGNOSIS_IDS, LoadedPack

#: Tries to place a red herring away from the injection before it is dropped.
_HERRING_TRIES = 20


@dataclass(frozen=True)
class Herring:
    """A red herring as drawn."""

    kind: str  # restart | scale
    target: str
    at_s: float  # seconds after the load starts
    replicas: int = 0
    hold_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """The hidden incident of one drill."""

    seed: int
    fault: str
    target_arg: str  # node | replica
    target: str
    at_s: float  # injection, seconds after the load starts
    duration_s: float | None
    args: dict[str, Any] = field(default_factory=dict)
    herrings: tuple[Herring, ...] = ()

    @property
    def diagnosis(self) -> str:
        """The id of the right diagnosis (``DIAGNOSIS_IDS``)."""
        return DIAGNOSIS_IDS[self.fault]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["diagnosis"] = self.diagnosis
        out["herrings"] = [asdict(h) for h in self.herrings]
        return out


def pick_scenario(loaded: LoadedPack, seed: int) -> Scenario:
    """The scenario ``seed`` draws from ``loaded``."""
    from harness.faults import registry

    rng = random.Random(seed)
    pack = loaded.pack
    spec = pack.scenarios[rng.randrange(len(pack.scenarios))]
    target = spec.targets[rng.randrange(len(spec.targets))]
    at_s = round(rng.uniform(spec.window_s[0], spec.window_s[1]), 1)
    fault = registry.get("local", spec.fault)
    assert fault is not None  # load_pack checked it
    duration = spec.duration_s
    if duration is None and fault.hold != "none":
        duration = float(fault.args.model_fields["duration_s"].default)
    herrings: list[Herring] = []
    pool = list(pack.red_herrings)
    count = min(pack.herrings_per_drill, len(pool))
    for h in rng.sample(pool, count) if count else []:
        if h.kind == "restart" and h.target == target:
            continue  # the scenario's replica keeps its process until the fault
        for _ in range(_HERRING_TRIES):
            when = round(rng.uniform(h.window_s[0], h.window_s[1]), 1)
            if abs(when - at_s) >= pack.herring_gap_s:
                herrings.append(Herring(h.kind, h.target, when, h.replicas, h.hold_s))
                break
    return Scenario(
        seed=seed,
        fault=spec.fault,
        target_arg=fault.target_arg,
        target=target,
        at_s=at_s,
        duration_s=duration,
        args=dict(spec.args),
        herrings=tuple(sorted(herrings, key=lambda h: h.at_s)),
    )
