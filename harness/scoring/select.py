"""Exact quantiles of value sets too large to hold at once: order statistics found in passes.

Why a module of its own: a soak of hours holds tens of millions of requests, and a
percentile over all of them (or over a phase of the run) needs the values around one rank,
not the values themselves. :class:`OrderStatistics` finds the exact ``k``-th smallest value
of each set (the sets are streamed in parts, as often as it asks) by narrowing down the
bits of the value: a float64 maps to an unsigned 64-bit key with the same order, a first
pass counts the keys of every set by their top 16 bits, each further pass counts the next
16 bits inside the one bin that holds the rank, and once that bin holds few values they
are collected and the rank is picked from them. Memory is a few histograms of 65,536 bins
and at most :data:`COLLECT` values per rank, whatever the number of values; it takes
three passes for a usual distribution and at most five for any.

:func:`numpy_quantiles` then interpolates between the two order statistics around each
quantile exactly as :func:`numpy.quantile` does (its default ``linear`` method, the same
floating-point operations), so a percentile computed this way is bit for bit the one
:func:`harness.scoring.slis.figures` computes from the whole array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

#: A bin holding at most this many values of a set is collected and the rank picked from it.
COLLECT = 1 << 17
_BITS = 16
_SIGN = np.uint64(1 << 63)


def keys(values: np.ndarray) -> np.ndarray:
    """Unsigned 64-bit keys ordered as ``values`` (float64, no NaN) are; ``-0.0`` and
    ``0.0`` get different keys (numpy orders them as equal, and either is the same number)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits & _SIGN) != 0
    return np.where(negative, ~bits, bits | _SIGN)


def from_key(key: int) -> float:
    """The float64 whose key (see :func:`keys`) is ``key``."""
    k = np.uint64(key)
    bits = k & ~_SIGN if k & _SIGN else ~k
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def quantile_ranks(n: int, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's linear method for ``n`` values: the ranks below and above each quantile and
    the weight of the upper one (as :func:`numpy.quantile` computes them)."""
    virtual = (n - 1) * np.asarray(qs, dtype=np.float64)
    previous = np.floor(virtual)
    nxt = previous + 1
    above = virtual >= n - 1
    previous[above] = n - 1
    nxt[above] = n - 1
    # numpy takes the weight against index -1 there; the two values are equal, so the
    # interpolation gives that value whatever the weight, as long as it is finite
    gamma = virtual - np.where(above, -1.0, previous)
    return previous.astype(np.int64), nxt.astype(np.int64), gamma


def numpy_quantiles(n: int, qs: Sequence[float], value_at: Mapping[int, float]) -> list[float]:
    """The quantiles ``qs`` of ``n`` values (none NaN) given their order statistics
    ``value_at[rank]`` (0-based) at the ranks of :func:`quantile_ranks`, as
    :func:`numpy.quantile` would return them; NaN for every one when ``n`` is 0."""
    if n == 0:
        return [float("nan")] * len(qs)
    previous, nxt, gamma = quantile_ranks(n, qs)
    a = np.array([value_at[int(i)] for i in previous], dtype=np.float64)
    b = np.array([value_at[int(i)] for i in nxt], dtype=np.float64)
    diff_b_a = b - a  # numpy's _lerp, operation for operation
    result = np.add(a, diff_b_a * gamma)
    np.subtract(b, diff_b_a * (1 - gamma), out=result, where=gamma >= 0.5)
    return [float(v) for v in result]


Parts = Callable[[], Iterable[Mapping[Any, np.ndarray]]]


class OrderStatistics:
    """Exact order statistics of several sets of float64 values (see module).

    ``parts()`` yields, each time it is called, the values of every set part by part: a
    mapping from the set's name to that part's values (NaN already left out); a set may be
    missing from a part. :meth:`find` asks for ranks per set and returns ``{set: {rank:
    value}}``.
    """

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def _scan(self) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        for part in self._parts():
            for name, values in part.items():
                if values.size:
                    yield name, values, keys(values)

    def find(
        self, ranks: Mapping[Any, Iterable[int]], top: Mapping[Any, np.ndarray]
    ) -> dict[Any, dict[int, float]]:
        """``ranks`` per set; ``top`` the histogram of each set's keys by their top 16 bits
        (see :meth:`top_histogram`), counted while the caller streamed the sets once."""
        found: dict[Any, dict[int, float]] = {name: {} for name in ranks}
        # a search: (set, rank) -> [shift, prefix, rank within the prefix, count there]
        open_: dict[tuple[Any, int], list[int]] = {}
        for name, wanted in ranks.items():
            for rank in set(wanted):
                open_[(name, rank)] = self._narrow(top[name], 64, 0, rank)
        while open_:
            for (name, rank), (shift, prefix, _within, _count) in list(open_.items()):
                if shift == 0:  # every value in the bin has the same key
                    found[name][rank] = from_key(prefix)
                    del open_[(name, rank)]
            if not open_:
                break
            histograms: dict[tuple[Any, int, int], np.ndarray] = {}
            collected: dict[tuple[Any, int, int], list[np.ndarray]] = {}
            wanted_bins = {(n, s[0], s[1]): s[3] for (n, _r), s in open_.items()}
            for name, values, k in self._scan():
                for (who, shift, prefix), count in wanted_bins.items():
                    if who != name:
                        continue
                    inside = (k >> np.uint64(shift)) == np.uint64(prefix)
                    if count <= COLLECT:
                        collected.setdefault((who, shift, prefix), []).append(values[inside])
                    else:
                        nxt = (k[inside] >> np.uint64(shift - _BITS)) & np.uint64(0xFFFF)
                        hist = np.bincount(nxt.astype(np.int64), minlength=1 << _BITS)
                        key = (who, shift, prefix)
                        histograms[key] = histograms[key] + hist if key in histograms else hist
            for (name, rank), (shift, prefix, within, count) in list(open_.items()):
                key = (name, shift, prefix)
                if count <= COLLECT:
                    pool = np.concatenate(collected.get(key, [np.empty(0)]))
                    found[name][rank] = float(np.partition(pool, within)[within])
                    del open_[(name, rank)]
                else:
                    hist = histograms.get(key, np.zeros(1 << _BITS, dtype=np.int64))
                    open_[(name, rank)] = self._narrow(hist, shift, prefix, within)
        return found

    @staticmethod
    def top_histogram(values: np.ndarray) -> np.ndarray:
        """The counts of ``values``' keys by their top 16 bits (add them up over parts)."""
        top = keys(values) >> np.uint64(64 - _BITS)
        return np.bincount(top.astype(np.int64), minlength=1 << _BITS)

    @staticmethod
    def _narrow(hist: np.ndarray, shift: int, prefix: int, rank: int) -> list[int]:
        """The bin of ``hist`` (the next 16 bits under ``prefix``) that holds ``rank``."""
        cum = np.cumsum(hist)
        b = int(np.searchsorted(cum, rank, side="right"))
        before = int(cum[b - 1]) if b else 0
        return [shift - _BITS, (prefix << _BITS) | b, rank - before, int(hist[b])]
