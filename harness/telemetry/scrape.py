"""One reader of a replica's Prometheus ``/metrics`` as plain numbers.

Why its own module: the telemetry sampler (queue, KV cache, OOMs), the local autoscaler
(queue depth) and the memory fault's proof (the OOM counters moved) read the same thing;
it imports nothing from the harness, so each can use it from its own layer.
"""

from __future__ import annotations

import http.client
import logging

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 1.0


def metrics_text(port: int, timeout: float = SCRAPE_TIMEOUT_S) -> str:
    """The body of ``http://127.0.0.1:PORT/metrics``; raises OSError or HTTPException when it
    cannot be read, ValueError on a status other than 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", errors="replace")
    finally:
        conn.close()
    if resp.status != 200:
        raise ValueError(f"/metrics on port {port} answered {resp.status}")
    return body


def scrape(port: int, timeout: float = SCRAPE_TIMEOUT_S) -> dict[str, float]:
    """The samples of a replica's /metrics as {name: value} (labels summed); empty on error."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        body = metrics_text(port, timeout)
    except (OSError, http.client.HTTPException, ValueError):
        return {}
    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    except ValueError as exc:
        log.debug("unparsable /metrics on port %d: %s", port, exc)
    return out
