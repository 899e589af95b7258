"""A stand-in for NVIDIA's dcgm-exporter: DCGM-named series in the Prometheus text format,
with the labels the real exporter writes (gpu, UUID, device, modelName, Hostname), values
the test sets and may change while Prometheus scrapes them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import LOOPBACK, in_thread

#: Two H100s on one node, as dcgm-exporter 3.x reports them (FB in MiB, power in W).
GPUS: dict[str, dict[str, float]] = {
    "0": {
        "DCGM_FI_DEV_GPU_UTIL": 87.0,
        "DCGM_FI_DEV_FB_USED": 61440.0,
        "DCGM_FI_DEV_FB_FREE": 19456.0,
        "DCGM_FI_DEV_FB_RESERVED": 559.0,
        "DCGM_FI_DEV_POWER_USAGE": 612.5,
        "DCGM_FI_DEV_GPU_TEMP": 64.0,
        "DCGM_FI_DEV_SM_CLOCK": 1980.0,
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": 0.0,
        "DCGM_FI_DEV_XID_ERRORS": 0.0,
    },
    "1": {
        "DCGM_FI_DEV_GPU_UTIL": 21.0,
        "DCGM_FI_DEV_FB_USED": 2048.0,
        "DCGM_FI_DEV_FB_FREE": 78848.0,
        "DCGM_FI_DEV_FB_RESERVED": 559.0,
        "DCGM_FI_DEV_POWER_USAGE": 118.0,
        "DCGM_FI_DEV_GPU_TEMP": 41.0,
        "DCGM_FI_DEV_SM_CLOCK": 345.0,
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": 4.0,
        "DCGM_FI_DEV_XID_ERRORS": 0.0,
    },
}


class Exporter:
    """The served values: ``values[gpu][series]``; change them under ``lock``."""

    def __init__(self, host: str = "gpu-node-a") -> None:
        self.host = host
        self.values = {gpu: dict(series) for gpu, series in GPUS.items()}
        self.lock = threading.Lock()
        self.scrapes = 0

    def text(self) -> str:
        lines = []
        with self.lock:
            self.scrapes += 1
            names = sorted({name for series in self.values.values() for name in series})
            for name in names:
                lines.append(f"# HELP {name} {name} (stand-in).")
                lines.append(f"# TYPE {name} gauge")
                for gpu, series in sorted(self.values.items()):
                    labels = (
                        f'gpu="{gpu}",UUID="GPU-0000000{gpu}-aaaa-bbbb-cccc-dddddddddddd",'
                        f'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",'
                        f'Hostname="{self.host}",DCGM_FI_DRIVER_VERSION="550.54.15"'
                    )
                    lines.append(f"{name}{{{labels}}} {series[name]:g}")
        return "\n".join(lines) + "\n"


@contextmanager
def dcgm_exporter() -> Iterator[tuple[Exporter, int]]:
    """The stand-in exporter on 127.0.0.1:<ephemeral>/metrics, served from a thread."""
    exporter = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = exporter.text().encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    with in_thread(server, "dcgm-exporter") as port:
        yield exporter, port
