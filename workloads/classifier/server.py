"""The KServe v2 / Open Inference Protocol HTTP layer of the classifier.

Endpoints: ``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/{name}`` (model metadata), ``GET /v2/models/{name}/ready``,
``POST /v2/models/{name}/infer`` (also under ``/versions/{version}``), ``GET /metrics``.
Inputs come as JSON ``data`` or as binary tensor data (the protocol's binary extension, which
tritonclient uses by default); outputs are always JSON. Errors are ``{"error": "..."}``.

Malformed requests are a 400 before any tensor is built: JSON that does not parse or nests
deeper than ``guards.MAX_JSON_DEPTH`` levels, a wrong input name, datatype or shape, and more
images than ``--max-batch-size`` (the classifier's input limit, as the context is the LLM's).
Slow clients (408) and disconnects (one log line) are handled around the app (guards.py).

The port is bound before the model loads (``/v2/health/live`` answers at once, readiness is 503
until warm); the first SIGTERM drains: readiness and new requests get 503, requests in flight
finish within the grace period, then the process exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from workloads import faulthook
from workloads.classifier.config import CLASSIFIER_CONFIGS, ClassifierSettings
from workloads.classifier.metrics import ClassifierMetrics
from workloads.classifier.oom import OomGuard, oom_safe_h11_protocol
from workloads.common import (
    REPLICA_HEADER,
    QueueFull,
    Replica,
    ReplicaHeaderMiddleware,
    release_memory,
    retry_after_header,
)
from workloads.guards import BadJson, ReadTimeoutH11Protocol, load_json

if TYPE_CHECKING:
    from workloads.classifier.engine import BatchingEngine

logger = logging.getLogger(__name__)

MODEL_NAME = "classifier"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
HEADER_LENGTH = "inference-header-content-length"
NUMPY_TYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


class BadRequest(ValueError):
    """The inference request does not fit the model (answer 400)."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ClassifierReplica(Replica[ClassifierSettings, ClassifierMetrics, "BatchingEngine"]):
    """Settings, metrics and (once loaded) the engine of one classifier process."""

    thread_name = "classifier"
    log = logger
    kind = "classifier"

    def out_of_memory(self) -> None:
        """A request ran out of memory outside the engine (reading or answering it): count it
        as an out-of-memory failure and give memory back."""
        self.metrics.engine_error("oom")
        self.metrics.failed_requests.inc()
        release_memory("cuda" if self.settings.device.startswith("cuda") else "cpu")

    def error_body(self, status: int, message: str) -> bytes:
        return json.dumps({"error": message}).encode()

    def http_protocol(self) -> type[asyncio.Protocol]:
        """h11 with the read time-outs, whose reading of a request also survives running out
        of memory (a 503)."""
        base = super().http_protocol()
        assert issubclass(base, ReadTimeoutH11Protocol)
        headers = [(REPLICA_HEADER, self.settings.replica_id)]
        return oom_safe_h11_protocol(self.out_of_memory, headers, base)

    def engine_builder(self) -> Callable[[], BatchingEngine]:
        from workloads.classifier.engine import BatchingEngine

        s = self.settings
        return lambda: BatchingEngine(
            s.model,
            s.device,
            s.max_batch_size,
            s.max_batch_delay_ms / 1000.0,
            s.max_queue_size,
            seed=s.seed,
            metrics=self.metrics,
        )


def parse_infer_request(
    body: bytes, header_length: int | None, image_shape: list[int], max_images: int
) -> tuple[np.ndarray, Any]:
    """The images [n, *image_shape] (float32) of a v2 inference request and its ``id`` (None
    when it has none); BadRequest if wrong, or if it holds more than ``max_images``. The JSON
    part is parsed once."""
    json_part = body if header_length is None else body[:header_length]
    try:
        doc = load_json(json_part)
    except BadJson as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadRequest("expected an object with an 'inputs' list")
    inputs = doc["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(f"expected exactly one input, {INPUT_NAME!r}")
    tensor = inputs[0]
    request_id = doc.get("id")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if name != INPUT_NAME:
        raise BadRequest(f"unknown input {name!r}; expected {INPUT_NAME!r}")
    if datatype not in NUMPY_TYPES:
        raise BadRequest(f"datatype {datatype!r} not supported; expected one of FP16, FP32, FP64")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) for d in shape)
        or len(shape) != 1 + len(image_shape)
        or shape[1:] != image_shape
        or shape[0] < 1
    ):
        raise BadRequest(
            f"input shape must be [N, {', '.join(map(str, image_shape))}], got {shape}"
        )
    if shape[0] > max_images:
        raise BadRequest(f"a request holds 1 to {max_images} images, got {shape[0]}")
    dtype = NUMPY_TYPES[datatype]
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    try:
        if size is not None:
            if header_length is None:
                raise BadRequest("binary_data_size given without Inference-Header-Content-Length")
            raw = body[header_length : header_length + int(size)]
            array = np.frombuffer(raw, dtype=dtype).copy()
        else:
            array = np.asarray(tensor.get("data"), dtype=dtype)
        del doc, inputs, tensor  # the JSON data (Python floats) is no longer needed
        return array.reshape(shape).astype(np.float32, copy=False), request_id
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"input data does not match shape {shape}: {exc}") from None


def create_app(replica: ClassifierReplica) -> FastAPI:
    app = replica.fastapi_app("gpuchaos reference classifier (KServe v2)")
    # innermost middleware: an allocation failure anywhere in a route is that request's 503
    app.add_middleware(OomGuard, on_oom=replica.out_of_memory)
    settings = replica.settings
    shape = CLASSIFIER_CONFIGS[settings.model]
    image_shape, num_classes = shape.input_shape(), shape.num_classes

    def unknown(name: str) -> JSONResponse | None:
        return None if name == MODEL_NAME else _error(404, f"unknown model {name!r}")

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "gpuchaos-classifier", "version": "1", "extensions": ["binary_tensor_data"]}

    # /health/* too: the local platform's supervisor probes the same paths for every workload
    @app.get("/v2/health/live")
    @app.get("/health/live")
    async def live() -> JSONResponse:
        problem = await faulthook.liveness(settings.liveness, replica.ready)
        if problem is not None:
            return JSONResponse({"live": False, "error": problem}, status_code=503)
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready")
    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": replica.ready}, status_code=200 if replica.ready else 503)

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Any:
        problem = unknown(name)
        if problem is not None:
            return problem
        return {
            "name": MODEL_NAME,
            "versions": ["1"],
            "platform": "pytorch",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *image_shape]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, num_classes]}],
        }

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Any:
        problem = unknown(name)
        if problem is not None:
            return problem
        status = 200 if replica.ready else 503
        return JSONResponse({"name": MODEL_NAME, "ready": replica.ready}, status_code=status)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Any:
        problem = unknown(name)
        if problem is not None:
            return problem
        if replica.draining:
            replica.metrics.rejected("draining")
            return _error(503, "the server is shutting down")
        engine = replica.engine
        if engine is None or not engine.ready:
            return _error(503, "the model is not ready")
        header = request.headers.get(HEADER_LENGTH)
        # a client gone mid-body (or a body the protocol answered: out of memory, too slow)
        # is ClientDisconnect here, one log line in DisconnectGuard
        body = await request.body()
        try:
            images, request_id = parse_infer_request(
                body, int(header) if header else None, image_shape, settings.max_batch_size
            )
        except (BadRequest, ValueError) as exc:
            return _error(400, str(exc))
        del body
        # out of memory while reading or answering (MemoryError): OomGuard answers 503
        from workloads.classifier.engine import InferenceFailed, InferRequest

        job = InferRequest(images, deadline=time.perf_counter() + settings.request_timeout_s)
        try:
            engine.submit(job)
        except QueueFull as exc:
            return _error(429, str(exc), retry_after_header(exc.retry_after_s))
        except ValueError as exc:
            return _error(400, str(exc))
        except RuntimeError as exc:
            return _error(503, str(exc))
        try:
            logits = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.future.cancel()
            raise
        except InferenceFailed as exc:
            return _error(exc.status, str(exc))
        doc: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": "1"}
        if request_id is not None:
            doc["id"] = request_id
        doc["outputs"] = [
            {
                "name": OUTPUT_NAME,
                "datatype": "FP32",
                "shape": list(logits.shape),
                "data": logits.reshape(-1).tolist(),
            }
        ]
        return JSONResponse(doc)

    return app


def build_asgi_app(replica: ClassifierReplica) -> ASGIApp:
    settings = replica.settings
    app = faulthook.mount(create_app(replica), settings.device)
    return ReplicaHeaderMiddleware(app, settings.replica_id)


def serve(settings: ClassifierSettings, started: float | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if the model failed to load."""
    metrics = ClassifierMetrics(settings.model, settings.replica_id, settings.device)
    replica = ClassifierReplica(
        settings, metrics, time.perf_counter() if started is None else started
    )
    return replica.serve(build_asgi_app(replica), f"classifier {settings.model}")
