"""Seeded draws for the load: request lengths, open-loop arrivals, v2 input tensors.

Pure functions of a ``random.Random``; no Locust import (the unit tests run them in the
harness process).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

from harness.config import LengthDistribution, LoadSpec, Shape
from harness.load.shapes import level_at, next_change

#: Datatypes of the Open Inference Protocol the v2 user can fill.
V2_FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})
V2_INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


def draw_length(spec: int | LengthDistribution, rng: random.Random) -> int:
    """One length: the number itself, or a draw rounded and clamped to [min, max]."""
    if isinstance(spec, int):
        return spec
    if spec.dist == "uniform":
        return rng.randint(spec.min, spec.max)
    assert spec.mean is not None and spec.std is not None  # checked by the model
    if spec.dist == "normal":
        value = rng.gauss(spec.mean, spec.std)
    else:
        value = rng.lognormvariate(math.log(spec.mean), spec.std)
    return min(spec.max, max(spec.min, round(value)))


def longest(spec: int | LengthDistribution) -> int:
    """The largest length ``spec`` can draw."""
    return spec if isinstance(spec, int) else spec.max


class PromptSource:
    """Seeded prompts: windows of one seeded text, never the same window twice in a row of
    ``len(starts)`` prompts.

    The ``i``-th prompt starts at word ``(first + i * stride) mod starts`` of the text, with
    the stride coprime to the number of starts, so a process makes that many prompts before
    any window comes back (a server with prefix caching, like vLLM, never answers from its
    cache a prompt it has seen). Worker ``w`` of ``n`` takes prompts ``w, w + n, ...``, so
    workers never repeat each other's either. Cheap per request: no random draw per word.
    """

    def __init__(
        self,
        words: Sequence[str],
        seed: object,
        longest: int,
        worker: int = 0,
        workers: int = 1,
        size: int = 1 << 17,
    ) -> None:
        rng = random.Random(f"{seed}:prompt-text")
        size = max(size, 2 * longest)
        chosen = rng.choices(words, k=size)
        self._text = " ".join(chosen)
        starts, at = [], 0
        for word in chosen:
            starts.append(at)
            at += len(word) + 1
        self._starts = [*starts, at]  # a word's end is the next start minus its space
        count = size - longest + 1  # windows of up to ``longest`` words fit from these
        stride = int(count * 0.6180339887) or 1
        while math.gcd(stride, count) != 1:
            stride += 1
        self._count = count
        self._next = (rng.randrange(count) + worker * stride) % count
        self._stride = stride * workers % count or stride

    def prompt(self, words: int) -> str:
        """The next prompt, of ``words`` words (at most the ``longest`` given at construction)."""
        first = self._next
        self._next = (first + self._stride) % self._count
        return self._text[self._starts[first] : self._starts[first + words] - 1]


def arrivals(
    shape: Shape, poisson: bool, rng: random.Random, start: float = 0.0
) -> Iterator[float]:
    """Open-loop send times (seconds after load start) holding the shape's rate.

    Poisson arrivals draw exponential gaps at the current rate; uniform ones are evenly
    spaced, ``k / rate`` after the last change (multiplied, not summed, so no rounding
    drifts: 40/s for 10 s is 400 arrivals, the last at 10 s). A gap that would cross a
    change of the rate is cut at the change and drawn again at the new rate (exact for
    Poisson arrivals, which have no memory). Ends with the load.
    """
    t = max(start, 0.0)
    while True:
        rate = level_at(shape, t)
        if rate is None:
            return
        change = next_change(shape, t)
        if rate <= 0:
            if change is None:
                return
            t = change
            continue
        if not poisson:
            yield from _even(t, rate, change)
            if change is None:
                return
            t = change
            continue
        gap = rng.expovariate(rate)
        if change is not None and t + gap > change:
            t = change
            continue
        t += gap
        yield t


def _even(t: float, rate: float, until: float | None) -> Iterator[float]:
    """``t + k / rate`` for k = 1, 2, ... up to ``until`` (a hair of rounding allowed)."""
    k = 1
    while True:
        at = t + k / rate
        if until is not None:
            if at > until + 1e-9:
                return
            at = min(at, until)
        yield at
        k += 1


def schedule(load: LoadSpec) -> Iterator[float]:
    """The open-loop schedule of ``load``: every arrival's offset from t0, in order.

    Deterministic (seeded by ``load.seed``): each Locust process draws the same one (a
    worker sends its share of it) and the harness counts it (``scheduled`` in ``load_end``).
    """
    rng = random.Random(f"{load.seed}:arrivals")
    return arrivals(load.shape, load.arrivals == "poisson", rng)


def scheduled_count(load: LoadSpec, until: float | None = None) -> int:
    """Arrivals of :func:`schedule`, all of them or those due by offset ``until``."""
    count = 0
    for offset in schedule(load):
        if until is not None and offset > until:
            break
        count += 1
    return count


def v2_tensor_shape(shape: list[int]) -> list[int]:
    """A model's declared input shape with variable dimensions (-1) set to 1."""
    return [1 if d < 0 else d for d in shape]


def v2_payload(inputs: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """An inference request for inputs described by v2 model metadata, filled at random.

    Raises ValueError for a datatype that cannot be generated (BYTES, BOOL).
    """
    tensors = []
    for spec in inputs:
        shape = v2_tensor_shape([int(d) for d in spec["shape"]])
        count = math.prod(shape)
        datatype = str(spec["datatype"])
        if datatype in V2_FLOAT_TYPES:
            data: list[Any] = [round(rng.uniform(-1.0, 1.0), 3) for _ in range(count)]
        elif datatype in V2_INT_TYPES:
            data = [rng.randint(0, 100) for _ in range(count)]
        else:
            raise ValueError(f"cannot generate input {spec.get('name')!r} of type {datatype}")
        tensors.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": tensors}
