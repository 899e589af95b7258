"""One reader of a replica's Prometheus ``/metrics`` as plain numbers.

Why its own module: the local autoscaler (queue depth) and the memory fault's proof (the
OOM counters moved) read the same thing; it imports nothing from the harness, so both can
use it from any layer.
"""

from __future__ import annotations

import http.client
import logging

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 1.0


def scrape(port: int, timeout: float = SCRAPE_TIMEOUT_S) -> dict[str, float]:
    """The samples of a replica's /metrics as {name: value} (labels summed); empty on error."""
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", errors="replace")
        if resp.status != 200:
            return {}
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        conn.close()
    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    except ValueError as exc:
        log.debug("unparsable /metrics on port %d: %s", port, exc)
    return out
