"""The ``load`` block: which Locust user, what requests, which shape, open or closed loop,
and where the Locust workers run.

``user`` names a protocol (:mod:`harness.load.protocols`): a built-in one, or
``package.module:ClassName`` for a ``Protocol`` subclass of your own. Only the Locust process
imports protocols (they import gevent), so this checks the name's form and that its module
can be found (``importlib.util.find_spec``, which imports its parent packages but not the
module itself): a misspelt name is one clear error at ``gpuchaos validate``.

The connection settings (``api_key_env``, ``headers``, ``ca_bundle``, ``verify``) live here, not
on ``endpoint``: they are how the load generator reaches its server, so they apply to an
external endpoint and to a deployed platform alike (a gateway in front of either), and they
travel to the Locust process with the rest of this block. Only their form is checked here;
the token's variable and the CA file are checked when the load starts
(:mod:`harness.connection`), because a catalog is validated, and a run folder re-scored,
where neither is.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from harness.config.base import (
    MAX_INTERVAL_S,
    MAX_LOG_SIGMA,
    MAX_REQUEST_S,
    MAX_SEED,
    MAX_TOKENS,
    MAX_USERS,
    MAX_WORDS,
    StrictModel,
)
from harness.config.shapes import Shape

#: The protocols of harness.load.protocols by their registered names.
BUILTIN_USERS = ("openai-stream", "openai", "kserve-v2", "openai-chat-stream", "openai-chat")
#: An environment variable's name (``api_key_env``).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: An HTTP header's name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: The largest number of a length (prompt words, completion tokens), and how it reads.
_MAX_LENGTH = max(MAX_WORDS, MAX_TOKENS)
_MAX_DOC = f"{_MAX_LENGTH:,}"
#: The largest plain number of each length field of :class:`LoadSpec`.
_LENGTH_LIMITS = {"prompt_words": MAX_WORDS, "max_tokens": MAX_TOKENS}
#: ``package.module:ClassName``: a Protocol subclass in an importable module.
_CLASS_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def _check_user(user: str) -> str:
    """``user`` unchanged when it is a built-in name or a findable ``module:Class``."""
    if user in BUILTIN_USERS:
        return user
    if not _CLASS_REF.fullmatch(user):
        known = ", ".join(repr(name) for name in BUILTIN_USERS)
        raise ValueError(
            f"unknown user {user!r}: one of {known}, or 'package.module:ClassName' naming a "
            "Protocol subclass (harness.load.protocols)"
        )
    module = user.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or not a package
        found = False
    if not found:
        raise ValueError(
            f"user {user!r}: no module {module!r} can be imported here (is it on PYTHONPATH?)"
        )
    return user


class LengthDistribution(StrictModel):
    """A seeded random length: drawn per request, rounded, clamped to [min, max]."""

    dist: Literal["uniform", "normal", "lognormal"] = Field(
        description="uniform(min, max), normal(mean, std) or lognormal(median=mean, sigma=std)."
    )
    min: int = Field(
        default=1, ge=1, le=_MAX_LENGTH, description=f"Smallest length drawn, 1 to {_MAX_DOC}."
    )
    max: int = Field(ge=1, le=_MAX_LENGTH, description=f"Largest length drawn, 1 to {_MAX_DOC}.")
    mean: float | None = Field(
        default=None,
        gt=0,
        le=_MAX_LENGTH,
        description=f"normal: the mean; lognormal: the median; at most {_MAX_DOC}.",
    )
    std: float | None = Field(
        default=None,
        gt=0,
        le=_MAX_LENGTH,
        description=(
            f"normal: the standard deviation, at most {_MAX_DOC}; lognormal: sigma, at most "
            f"{MAX_LOG_SIGMA}."
        ),
    )

    @model_validator(mode="after")
    def _complete(self) -> LengthDistribution:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must not be below min ({self.min})")
        if self.dist != "uniform" and (self.mean is None or self.std is None):
            raise ValueError(f"a {self.dist} distribution needs mean and std")
        if self.dist == "lognormal" and self.std is not None and self.std > MAX_LOG_SIGMA:
            raise ValueError(
                f"std: a lognormal sigma must be at most {MAX_LOG_SIGMA} (got {self.std:g})"
            )
        return self


def _length_kind(value: object) -> str:
    return "distribution" if isinstance(value, dict | LengthDistribution) else "number"


#: A length: a plain number or a distribution, told apart by the value's form, so a wrong
#: key of a distribution is reported as that key, not as "not an integer".
Length = Annotated[
    Annotated[int, Tag("number")] | Annotated[LengthDistribution, Tag("distribution")],
    Discriminator(_length_kind),
]


class LoadSpec(StrictModel):
    """The Locust load: which user, what requests, which shape, open or closed loop."""

    user: str = Field(
        default="openai-stream",
        description=(
            "Protocol of the requests: 'openai-stream' (streaming /v1/completions, records "
            "TTFT), 'openai' (non-streaming), 'openai-chat-stream' (streaming "
            "/v1/chat/completions, TTFT at the first content delta), 'openai-chat' "
            "(non-streaming chat), 'kserve-v2' (POST /v2/models/{model}/infer), or "
            "'package.module:ClassName' naming a Protocol subclass (harness.load.protocols) "
            "in an installed module or one on PYTHONPATH (checked here: the form, and that "
            "the module can be found; it is imported only in the Locust process)."
        ),
    )
    shape: Shape = Field(description="The load shape: spike, step, ramp, diurnal or trace.")
    mode: Literal["closed", "open"] = Field(
        default="closed",
        description=(
            "closed: the shape's level is concurrent users, each waiting for its answer; open: "
            "the level is requests/s, sent on schedule whatever the latency."
        ),
    )
    arrivals: Literal["poisson", "uniform"] = Field(
        default="poisson", description="Open loop: Poisson or evenly spaced arrivals."
    )
    max_in_flight: int = Field(
        default=512,
        ge=1,
        le=MAX_USERS,
        description=(
            "Open loop: requests in flight at once; later arrivals wait in the client queue "
            f"(recorded as queue_ms, and counted in their latency). 1 to {MAX_USERS:,}."
        ),
    )
    model: str | None = Field(
        default=None,
        description=(
            "Model name sent (openai, openai-stream: default 'gpuchaos'; openai-chat, "
            "openai-chat-stream: default the first model of GET /v1/models, asked once per "
            "Locust process) or addressed (kserve-v2, default 'classifier')."
        ),
    )
    prompt_words: Length = Field(
        default=8,
        description=(
            f"Words in each prompt: a number (1 to {MAX_WORDS:,}) or a length distribution."
        ),
    )
    max_tokens: Length = Field(
        default=16,
        description=(
            f"Tokens requested per completion: a number (1 to {MAX_TOKENS:,}) or a distribution."
        ),
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_REQUEST_S,
        description=f"Client-side timeout, seconds; at most {MAX_REQUEST_S} (1 hour).",
    )
    api_key_env: str | None = Field(
        default=None,
        description=(
            "Name of an environment variable holding a bearer token, sent as 'Authorization: "
            "Bearer <token>' with every request (GET /v1/models too). Only the name is written "
            "anywhere; the Locust process reads the token from its environment, inherited "
            "from the harness. Checked when the load starts, not at validate (a catalog is "
            "validated, and a run folder re-scored, where the token is not): unset or empty, "
            "the run fails there with one line naming the variable."
        ),
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra HTTP headers of every request (a gateway's routing or tenant header); "
            "they replace the protocol's headers of the same name. They are written to the "
            "run folder with the experiment: a secret goes in api_key_env, and Authorization "
            "is refused here."
        ),
    )
    ca_bundle: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "https: a PEM file of the CA certificates the server's certificate is checked "
            "against, instead of the system's (a private CA, a self-signed gateway); "
            "relative paths are from the working directory. Loaded when the load starts."
        ),
    )
    verify: bool = Field(
        default=True,
        description=(
            "https: check the server's certificate and host name. false skips the check and "
            "says so with a warning in harness.log and locust.log; not with ca_bundle."
        ),
    )
    wait_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_INTERVAL_S,
        description=(
            "Closed loop: think time between a user's requests, seconds (0: none); at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description=f"Seed of prompts, lengths, inputs and arrivals, 0 to {MAX_SEED:,}.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "Locust workers: 0 runs the load in one process; N runs a Locust master and N "
            "local worker processes, each writing its own records file, merged into "
            "requests.csv as they come and sorted by start time when the load stops. At "
            "most 64."
        ),
    )
    workers_on: Literal["local", "kubernetes"] = Field(
        default="local",
        description=(
            "Where the Locust master and workers run: 'local' (processes of the harness) or "
            "'kubernetes' (a master Job behind a Service and an indexed Job of 'workers' "
            "workers in the platform's namespace, sending to the workload's in-cluster "
            "Service URL; needs platform.kind: kubernetes and workers >= 1)."
        ),
    )
    workers_image: str = Field(
        default="ghcr.io/gpuchaos/load:0.1.0",
        min_length=1,
        description=(
            "workers_on 'kubernetes': image of the Locust Jobs (built from "
            "workloads/load.Dockerfile, the same harness version as this one)."
        ),
    )
    workers_start_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "workers_on 'kubernetes': seconds between creating the Jobs and the start of the "
            "load shape, for scheduling and image pulls; the run fails when no request record "
            f"is in the workers' logs 15 s after that. At most {MAX_INTERVAL_S} (1 hour)."
        ),
    )

    @field_validator("user")
    @classmethod
    def _known_user(cls, value: str) -> str:
        return _check_user(value)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is no environment variable name (letters, digits, _)")
        return value

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is no HTTP header name")
            if name.lower() == "authorization":
                raise ValueError(
                    "Authorization is refused here (it would be written to the run folder): "
                    "name the environment variable holding the token in api_key_env"
                )
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a value must be one line")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())

    @field_validator("prompt_words", "max_tokens")
    @classmethod
    def _in_range(
        cls, value: int | LengthDistribution, info: ValidationInfo
    ) -> int | LengthDistribution:
        if isinstance(value, int) and not 1 <= value <= _LENGTH_LIMITS[str(info.field_name)]:
            raise ValueError(f"must be a number from 1 to {_LENGTH_LIMITS[str(info.field_name)]:,}")
        return value

    @model_validator(mode="after")
    def _jobs_need_workers(self) -> LoadSpec:
        if self.workers_on == "kubernetes" and self.workers < 1:
            raise ValueError("workers_on: kubernetes needs workers >= 1")
        return self

    @model_validator(mode="after")
    def _connection(self) -> LoadSpec:
        if self.ca_bundle is not None and not self.verify:
            raise ValueError("ca_bundle and verify: false contradict (check with one, or not)")
        local = [name for name in ("api_key_env", "ca_bundle") if getattr(self, name)]
        if self.workers_on == "kubernetes" and local:
            raise ValueError(
                f"{' and '.join(local)}: the harness's environment and files, which the "
                "Locust Jobs of workers_on: kubernetes do not have"
            )
        return self
