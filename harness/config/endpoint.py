"""The ``endpoint`` block: load a server that already runs instead of deploying one."""

from __future__ import annotations

from pydantic import Field

from harness.config.base import StrictModel


class EndpointSpec(StrictModel):
    """An inference server that is already running (vLLM, TGI, Triton, ...): no deployment."""

    url: str = Field(
        description="Base URL the load goes to, e.g. http://10.0.0.5:8000.",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    ready_path: str | None = Field(
        default=None,
        description="Path polled until it answers 200 before the load starts (unset: no wait).",
    )
    ready_timeout_s: float = Field(
        default=60.0, gt=0, description="How long the endpoint may take to answer ready_path."
    )
