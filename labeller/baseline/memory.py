"""How much memory a kNN block may take: chunk sizes chosen from the free memory.

`free_bytes(device)` is the memory available now: on a CUDA device what
`torch.cuda.mem_get_info` reports free, on the CPU `MemAvailable` of /proc/meminfo (or
the cgroup's limit minus its usage when that is lower, as in a container). `block_rows`
turns a per-row cost into a number of rows that stays within a fraction of it, so the
same code neither runs out at ten times the PROPS size nor wastes time on tiny blocks.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# A block's working set may use this fraction of the free memory: the rest is for the
# training set, the candidates and whatever else the process (or other tenants) need.
BLOCK_FRACTION = 0.125
# Above this, bigger blocks gain nothing (measured: 64 MiB blocks already run the GEMM
# at full speed on the CPU) and only delay the first progress update.
MAX_BLOCK_BYTES = 256 << 20
_FALLBACK_FREE = 2 << 30  # when nothing can be read: assume 2 GiB


def _cpu_free_bytes() -> int:
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        free = None
    # cgroup v2: a container's limit may be far below the host's free memory
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            left = max(0, int(limit) - used)
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        pass
    if free is None and hasattr(os, "sysconf"):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            free = None
    return int(free) if free else _FALLBACK_FREE


def free_bytes(device: torch.device | str = "cpu") -> int:
    """Bytes of memory free now on `device` (CUDA: free device memory; CPU: available RAM)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    return _cpu_free_bytes()


def block_rows(bytes_per_row: int, device: torch.device | str = "cpu", *, limit: int | None = None,
               minimum: int = 1, fraction: float = BLOCK_FRACTION, max_bytes: int = MAX_BLOCK_BYTES) -> int:
    """Rows of a block whose working set (`bytes_per_row` each) fits `fraction` of the free
    memory and `max_bytes`; at least `minimum`, at most `limit` (when given)."""
    budget = min(int(free_bytes(device) * fraction), max_bytes)
    rows = max(minimum, budget // max(1, bytes_per_row))
    return int(min(rows, limit) if limit is not None else rows)
