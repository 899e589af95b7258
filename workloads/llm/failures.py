"""How the engine hands events to a request, and ends one that cannot complete.

Every outcome reaches the client as an event on the request's sink (:func:`emit`); a sink
that raises means its consumer is gone, so the request is cancelled. A request past its
deadline fails with 504 (:func:`time_out`, counted as rejected for timeout); a forward that
raises fails only the requests it was computing, with 503 (:func:`fail`; 500 with the error's
own text for a CUDA error, a poisoned context; after an out of memory the memory is given
back and counted apart, see :func:`workloads.common.engine_failure`).
"""

from __future__ import annotations

import logging

from workloads.common import engine_failure, failure_status, is_oom
from workloads.llm.events import ErrorEvent, GenerationEvent, GenerationRequest
from workloads.llm.metrics import Metrics

logger = logging.getLogger(__name__)


def emit(request: GenerationRequest, event: GenerationEvent) -> bool:
    """Hand an event to the request's consumer; False (and cancel) if it is gone."""
    try:
        request.sink(event)
    except Exception:
        logger.debug("dropping a request whose consumer is gone", exc_info=True)
        request.cancel()
        return False
    return True


def time_out(request: GenerationRequest, where: str, metrics: Metrics | None) -> None:
    """Fail a request past its deadline (``where``: in the queue, while generating): 504."""
    if metrics is not None:
        metrics.rejected("timeout")
    emit(request, ErrorEvent(f"request timed out {where}", status=504))


def fail(
    requests: list[GenerationRequest],
    exc: Exception,
    stage: str,
    device_type: str,
    metrics: Metrics | None,
) -> None:
    """Fail the requests a forward (``stage``) was computing when it raised ``exc``: 503."""
    kind = "oom" if is_oom(exc) else "other"
    logger.warning(
        "%s failed (%s) for %d request(s): %s: %s",
        stage,
        kind,
        len(requests),
        type(exc).__name__,
        exc,
    )
    message = engine_failure(exc, kind, len(requests), device_type, metrics)
    status = failure_status(exc)
    text = message if status == 500 else f"{message} during {stage}"
    for request in requests:
        emit(request, ErrorEvent(text, status=status))
