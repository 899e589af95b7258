"""The fault hook's ``hog``: memory a server takes inside its own process and holds until
``clear`` (issue #20, the noisy neighbour's memory spike).

Why inside the server and not a separate hog process: a per-process cap (a CUDA memory
fraction, an MPS client's pinned limit, a CPU replica's RLIMIT_AS) holds only for the process
it was set in. A hog in the server's own process is capped like the model's memory is, so
"this tenant spiked beyond its contract" fails where the contract says it should (the real
``CUDA out of memory``, or the CPU allocator's refusal), while without a cap (time-slicing)
it takes the shared device's memory for real.

Every byte is written (``torch.ones``): on CPU the pages are resident, not just reserved
address space; on CUDA the allocation itself is the device memory taken.
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)


class MemoryHog:
    """Blocks of memory held on one device until :meth:`release`; thread-safe."""

    def __init__(self) -> None:
        self._blocks: list[Any] = []  # torch tensors
        self._lock = threading.Lock()
        self.held_bytes = 0
        #: The last failed allocation's error (None after a success or a release).
        self.error: str | None = None

    def allocate(self, device: str, mib: float) -> str | None:
        """Take ``mib`` MiB more on ``device`` and hold it; None, or the allocator's error
        when it does not fit (nothing more is then held)."""
        import torch

        size = int(mib * 2**20)
        try:
            block = torch.ones(size, dtype=torch.uint8, device=torch.device(device))
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
        except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            self.error = f"{type(exc).__name__}: {_first_words(exc)}"
            logger.warning("fault hook: hog of %g MiB on %s failed: %s", mib, device, self.error)
            return self.error
        with self._lock:
            self._blocks.append(block)
            self.held_bytes += size
            held = self.held_bytes
        self.error = None
        logger.warning("fault hook: hog of %g MiB on %s; %.0f MiB held", mib, device, held / 2**20)
        return None

    def release(self, device: str) -> None:
        """Drop every block and give the memory back (CUDA: out of the caching allocator
        too, so a neighbour on the same GPU can have it)."""
        with self._lock:
            blocks, self._blocks = self._blocks, []
            held, self.held_bytes = self.held_bytes, 0
        self.error = None
        if not blocks:
            return
        del blocks
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        logger.warning("fault hook: hog cleared (%.0f MiB given back)", held / 2**20)


def _first_words(exc: BaseException) -> str:
    """The allocator's message in one line, without c10's ``[enforce fail at ...]`` prefix."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else "out of memory"
    start = text.find("DefaultCPUAllocator")
    return text[start:] if start > 0 else text
