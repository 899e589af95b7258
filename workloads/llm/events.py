"""What flows between the HTTP layer and the engine thread (torch-free)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

FINISH_LENGTH = "length"


@dataclass(frozen=True)
class TokenEvent:
    """One generated token; `finish_reason` is set on the request's last token."""

    token_id: int
    index: int
    finish_reason: str | None = None


@dataclass(frozen=True)
class ErrorEvent:
    """The request failed (for example the forward ran out of memory); no more events follow."""

    message: str
    status: int = 503


GenerationEvent = TokenEvent | ErrorEvent


@dataclass(eq=False)
class GenerationRequest:
    """A prompt to complete greedily.

    `sink` is called from the engine thread with each event as soon as it exists; it must not
    block (the server's sink hands the event to the event loop with call_soon_threadsafe).
    """

    prompt_ids: list[int]
    max_tokens: int
    sink: Callable[[GenerationEvent], None]
    arrival: float = field(default_factory=time.perf_counter)
    #: perf_counter time after which the engine fails the request with 504 (None: never).
    deadline: float | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """Ask the engine to drop the request (its client went away); no more events follow."""
        self.cancelled = True
