"""The fault worker: ``python -m harness.faults.worker --device DEV [--ttl-s S]``.

A process co-located with a replica's device that, on command, takes memory or burns
compute. It is started and warmed up before the fault (on CUDA: torch imported, the context
created, cuBLAS run once), so the fault itself takes milliseconds, not the ~5 s of a cold
start. Commands and replies are JSON lines on stdin and stdout:

- ``{"op": "fill", "leave_free_mib": N}`` or ``{"op": "fill", "fraction": F}`` (CUDA):
  allocate until only N MiB are free (``torch.cuda.mem_get_info``) or F of what is free is
  taken; replies with the latency and the free memory before and after.
- ``{"op": "free"}``: release it (``torch.cuda.empty_cache``).
- ``{"op": "burn"}``: start a compute loop (CUDA: bf16 matmuls; CPU: a Python busy loop);
  replies once it runs. ``{"op": "stop"}`` ends it; ``{"op": "status"}`` reports progress.

It exits when stdin closes (the harness died or let go), when its parent dies
(PR_SET_PDEATHSIG), and when ``--ttl-s`` runs out (a time-to-live: whatever it holds is
freed even if nobody tells it to).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from harness.procs import set_parent_death_signal

MIB = 1 << 20


class Worker:
    """Holds memory and runs the compute loop; one per fault target."""

    def __init__(self, device: str, matmul_size: int) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")
        self.matmul_size = matmul_size
        self.held: list[Any] = []
        self.iterations = 0
        self._burning = threading.Event()
        self._thread: threading.Thread | None = None
        self._torch: Any = None
        self._mats: tuple[Any, Any] | None = None

    def warm(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.cuda:
            import torch

            self._torch = torch
            torch.cuda.set_device(torch.device(self.device))
            a = torch.randn(self.matmul_size, self.matmul_size, device=self.device)
            self._mats = (a.to(torch.bfloat16), a.t().contiguous().to(torch.bfloat16))
            (self._mats[0] @ self._mats[1]).sum().item()  # cuBLAS handle and kernels loaded
            probe = torch.empty(64 * MIB, dtype=torch.uint8, device=self.device)
            del probe
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
        return {"ok": True, "ready": True, "pid": os.getpid(), "warm_s": time.perf_counter() - t0}

    # -- memory -------------------------------------------------------------------------

    def _free_mib(self) -> tuple[float, float]:
        free, total = self._torch.cuda.mem_get_info()
        return free / MIB, total / MIB

    def fill(self, leave_free_mib: float | None, fraction: float | None) -> dict[str, Any]:
        if not self.cuda:
            return {"ok": False, "error": "fill needs a CUDA device"}
        torch = self._torch
        t0 = time.perf_counter()
        free_before, total = self._free_mib()
        if leave_free_mib is not None:
            want = free_before - leave_free_mib
        else:
            want = free_before * float(fraction or 0.0)
        want_bytes = max(0, int(want * MIB))
        taken = 0
        chunk = want_bytes
        while taken < want_bytes and chunk >= 2 * MIB:
            size = min(chunk, want_bytes - taken)
            try:
                self.held.append(torch.empty(size, dtype=torch.uint8, device=self.device))
                taken += size
            except torch.cuda.OutOfMemoryError:
                chunk //= 2  # fragmentation or another allocator's reserve: smaller pieces
        torch.cuda.synchronize()
        latency = time.perf_counter() - t0
        free_after, _ = self._free_mib()
        return {
            "ok": True,
            "latency_s": latency,
            "taken_mib": taken / MIB,
            "free_mib_before": free_before,
            "free_mib_after": free_after,
            "total_mib": total,
        }

    def free(self) -> dict[str, Any]:
        self.held.clear()
        if self.cuda:
            self._torch.cuda.empty_cache()
            free, _ = self._free_mib()
            return {"ok": True, "free_mib_after": free}
        return {"ok": True}

    # -- compute ------------------------------------------------------------------------

    def _loop(self) -> None:
        if self.cuda:
            assert self._mats is not None
            a, b = self._mats
            while self._burning.is_set():
                for _ in range(8):
                    a @ b
                self._torch.cuda.synchronize()
                self.iterations += 8
        else:
            x = 0
            while self._burning.is_set():
                for _ in range(20000):
                    x += 1
                self.iterations += 1

    def burn(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self._thread is None or not self._thread.is_alive():
            self._burning.set()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        start = self.iterations
        while self.iterations == start:
            time.sleep(0.001)
        return {"ok": True, "latency_s": time.perf_counter() - t0, "iterations": self.iterations}

    def stop(self) -> dict[str, Any]:
        self._burning.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return {"ok": True, "iterations": self.iterations}

    def status(self) -> dict[str, Any]:
        held = sum(int(t.numel()) for t in self.held) / MIB if self.held else 0.0
        return {"ok": True, "iterations": self.iterations, "held_mib": held}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "fill":
            return self.fill(cmd.get("leave_free_mib"), cmd.get("fraction"))
        if op == "free":
            return self.free()
        if op == "burn":
            return self.burn()
        if op == "stop":
            return self.stop()
        if op == "status":
            return self.status()
        return {"ok": False, "error": f"unknown op {op!r}"}


def _watchdog(ttl_s: float, parent: int) -> None:
    deadline = time.monotonic() + ttl_s
    while time.monotonic() < deadline:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.2)
    os._exit(4)  # time-to-live: everything this process holds is freed with it


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.faults.worker")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--ttl-s", type=float, default=600.0, help="exit after this long, always")
    p.add_argument("--matmul-size", type=int, default=4096, help="CUDA burn: matrix size")
    args = p.parse_args(argv)
    set_parent_death_signal()
    parent = os.getppid()
    threading.Thread(target=_watchdog, args=(args.ttl_s, parent), daemon=True).start()
    worker = Worker(args.device, args.matmul_size)
    out = sys.stdout
    try:
        reply = worker.warm()
    except Exception as exc:
        reply = {"ok": False, "ready": False, "error": f"{type(exc).__name__}: {exc}"}
    out.write(json.dumps(reply) + "\n")
    out.flush()
    if not reply.get("ok"):
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = worker.handle(json.loads(line))
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0  # stdin closed: the harness is gone or let go


if __name__ == "__main__":
    sys.exit(main())
