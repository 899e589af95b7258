"""The base of every configuration model: strict, immutable and finite; and the bounds every
number of an experiment is held to.

Every block of an experiment is a model of this kind, so a misspelt or unknown key is an
error that names the field (``extra="forbid"``) instead of a setting silently ignored, and a
validated spec cannot be changed afterwards (``frozen``). No number may be ``true`` or
``false`` (pydantic would read 1 or 0). No float may be infinite or NaN
(``allow_inf_nan=False``, which holds for every float of every model derived from this one,
in lists and dicts too): ``duration_s: .inf`` or ``1e999`` would otherwise run until
killed and then break the scoring's arithmetic.

The bounds below are shared so that every field of one kind has the same limit. Each is far
beyond what a real experiment needs and low enough to stop a typo (an extra three zeros, a
value in ms where seconds are meant) before anything is deployed.
"""

from __future__ import annotations

import typing
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

#: Longest duration of anything (the load, a fault, a time-out, a window): 7 days. A soak
#: test runs for a day or two; a week is a typo or a unit mistake.
MAX_DURATION_S = 604_800
#: Longest period between two polls, probes or samples, and longest back-off, think time or
#: grace period: 1 hour. Anything slower would see nothing of a run.
MAX_INTERVAL_S = 3_600
#: Longest a single request may take (its time-out): 1 hour. A completion of a million
#: tokens streams in well under that.
MAX_REQUEST_S = 3_600
#: The same as a latency objective in milliseconds.
MAX_LATENCY_MS = MAX_REQUEST_S * 1_000
#: Most concurrent users (closed loop) of one load, and most requests in flight at once:
#: Locust on one machine manages a few thousand, a fleet of workers tens of thousands.
MAX_USERS = 100_000
#: Highest level of a load shape: concurrent users (closed loop) or requests/s (open loop).
MAX_LEVEL = 1_000_000
#: Highest rate of anything per second (users spawned, requests sent or served).
MAX_RATE = 1_000_000
#: Most tokens of a completion or a context: the largest context windows are about 1M.
MAX_TOKENS = 1_000_000
#: Most words of a prompt (a word is at least one token).
MAX_WORDS = 1_000_000
#: Largest multiplier or weight (a spike's height, a trace's scale, an objective's weight).
MAX_MULTIPLIER = 1_000
#: Most of anything counted one by one (requests queued, failures in a row, steps of a load).
MAX_COUNT = 1_000_000
#: Most replicas on one virtual node of the local platform.
MAX_NODE_REPLICAS = 64
#: Most replicas of a workload (a Deployment, an autoscaler's range).
MAX_REPLICAS = 256
#: Highest CPU core number (Linux's largest common NR_CPUS is 4096).
MAX_CPU = 4_095
#: Most threads or worker loops (one per core of the largest machines).
MAX_THREADS = 4_096
#: Most memory of one amount, in MiB: 1 TiB, beyond any GPU and most hosts.
MAX_MEMORY_MIB = 1_048_576
#: Largest seed: 32 bits, what every random number generator takes.
MAX_SEED = 2**32 - 1
#: Highest TCP port.
MAX_PORT = 65_535
#: Largest sigma of a lognormal length: e**10 is a factor of 22,000 per standard
#: deviation already, and a sigma in the hundreds overflows the draw (``math.exp``).
MAX_LOG_SIGMA = 10
#: Highest price of one GPU-hour, in any currency.
MAX_PRICE = 1_000_000


def _mentions(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether ``annotation`` is, or has among its arguments (unions, lists, dicts,
    ``Annotated``), one of ``kinds`` or a subclass of one."""
    if isinstance(annotation, type) and issubclass(annotation, kinds):
        return True
    return any(_mentions(arg, kinds) for arg in typing.get_args(annotation))


def refuse_bool_for_number(annotation: Any, value: Any) -> Any:
    """``value`` unchanged, unless it is ``true``/``false`` (or holds one, in a list or a
    mapping) where ``annotation`` wants a number: pydantic would take it as 1 or 0, so
    ``replicas: true`` would run one replica."""
    if not _mentions(annotation, (int, float)) or _mentions(annotation, (bool,)):
        return value
    items: Any = ()
    if _mentions(annotation, (BaseModel,)):
        pass  # a model checks its own fields, naming them
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list):
        items = value
    if isinstance(value, bool) or any(isinstance(item, bool) for item in items):
        raise ValueError("expected a number, not true or false")
    return value


class StrictModel(BaseModel):
    """A model that rejects unknown keys, infinite or NaN floats and booleans for numbers,
    and cannot be changed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(str(info.field_name))
        return value if field is None else refuse_bool_for_number(field.annotation, value)


def check_url_port(url: str) -> str:
    """``url`` unchanged when its port, if any, is 1 to 65535; ValueError otherwise (the
    pattern of a URL field lets any digits through)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= MAX_PORT:
        raise ValueError(f"{url!r}: the port must be a number from 1 to {MAX_PORT}")
    return url
