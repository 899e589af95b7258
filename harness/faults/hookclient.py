"""The harness's side of the reference workloads' fault hook (``workloads/faulthook.py``).

Why a module of its own, standard library only: the faults call the hook, and so do the
detached reverter and ``gpuchaos cleanup`` when they undo a throttle the harness left behind
(a state file of kind ``hook``), without the platform or any third-party import.

The hook: ``POST /admin/fault`` with the replica's token in ``X-Gpuchaos-Fault-Token`` and a
JSON body (``kind``: poison, throttle, hang, contend, hog with ``mib``, clear; a hog that does
not fit the replica's memory cap is an HTTP 507, raised here as ChaosError with the
allocator's error); ``GET`` gives its state. The
local platform starts every replica with a fresh token in :data:`TOKEN_ENV`.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from harness.errors import ChaosError

#: The environment variable the servers read their token from (workloads.faulthook).
TOKEN_ENV = "GPUCHAOS_FAULT_TOKEN"
TOKEN_HEADER = "X-Gpuchaos-Fault-Token"
PATH = "/admin/fault"
TIMEOUT_S = 10.0


def call(
    port: int,
    token: str,
    body: dict[str, Any] | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """POST ``body`` to the hook (GET its state when None); the state it answers. Raises
    ChaosError naming the replica's port and what went wrong."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    headers = {TOKEN_HEADER: token}
    try:
        if body is None:
            conn.request("GET", PATH, headers=headers)
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            conn.request("POST", PATH, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ChaosError(f"fault hook on port {port}: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200:
        text = raw.decode("utf-8", "replace")[:200]
        if resp.status == 404:
            text = "no fault hook (the server was started without a token)"
        raise ChaosError(f"fault hook on port {port}: HTTP {resp.status}: {text}")
    try:
        state: dict[str, Any] = json.loads(raw)
    except ValueError:
        raise ChaosError(f"fault hook on port {port}: not JSON: {raw[:100]!r}") from None
    return state


def clear(info: dict[str, str]) -> bool:
    """Undo what a state file of kind ``hook`` records (``host``, ``port``, ``token``): a
    ``clear``. False when the server is gone (nothing left to undo)."""
    try:
        call(int(info["port"]), info["token"], {"kind": "clear"}, info.get("host", "127.0.0.1"))
    except ChaosError:
        return False
    return True


def metric_total(port: int, name: str, host: str = "127.0.0.1") -> float | None:
    """The sum of a Prometheus counter's samples on the replica's ``/metrics`` (``name``
    with its ``_total`` suffix), None when unreachable or absent."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            try:
                total += float(line.rsplit(" ", 1)[1])
                seen = True
            except (ValueError, IndexError):
                continue
    return total if seen else None


def probe_request(port: int, kind: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """One small inference request to the replica (``kind``: llm or classifier): its status
    and body (0 and the error when it could not be sent)."""
    if kind == "classifier":
        path = "/v2/models/classifier/infer"
        shape = [1, *_image_shape(port, host)]
        size = 1
        for d in shape:
            size *= d
        tensor = {"name": "input", "datatype": "FP32", "shape": shape, "data": [0.0] * size}
        body: dict[str, Any] = {"inputs": [tensor]}
    else:
        path = "/v1/completions"
        body = {"prompt": "probe", "max_tokens": 1}
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()


def _image_shape(port: int, host: str) -> list[int]:
    """The classifier's image shape from its model metadata (``[-1, C, H, W]``)."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/v2/models/classifier")
        doc = json.loads(conn.getresponse().read())
        return [int(d) for d in doc["inputs"][0]["shape"][1:]]
    except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError, TypeError):
        return [3, 32, 32]
    finally:
        conn.close()


def probe_live(port: int, host: str = "127.0.0.1") -> int:
    """The status of the replica's ``GET /health/live`` (0: no answer)."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/health/live")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()
