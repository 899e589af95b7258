"""The ``endpoint`` block: load a server that already runs instead of deploying one."""

from __future__ import annotations

from pydantic import Field, field_validator

from harness.config.base import MAX_DURATION_S, StrictModel, check_url_port


class EndpointSpec(StrictModel):
    """An inference server that is already running (vLLM, TGI, Triton, ...): no deployment."""

    url: str = Field(
        description="Base URL the load goes to, e.g. http://10.0.0.5:8000 (a port 1 to 65535).",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    ready_path: str | None = Field(
        default=None,
        description="Path polled until it answers 200 before the load starts (unset: no wait).",
    )
    ready_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "How long the endpoint may take to answer ready_path, seconds; at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _port(cls, value: str) -> str:
        return check_url_port(value)
