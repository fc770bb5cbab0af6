"""Which arithmetic the kNN distances use: `choose_precision` picks the fastest exact path.

Precisions (`--knn-precision`):

- ``int8``: exact int32 distances from an int8 GEMM on the pixels − 128
  (`labeller.baseline.knn_int8`); 8-bit pixel data only.
- ``float32`` / ``float16`` / ``bfloat16``: a GEMM in that type ranks candidates; on
  8-bit pixels the candidates are then re-checked exactly in int32 (see
  `labeller.baseline.neighbours`), so the neighbours are exactly those of float64.
- ``float64``: the reference; on 8-bit pixels its sums of integer products are exact.
- ``auto``: on 8-bit pixels, the fastest of the exact paths this device has, by a
  short timed probe of one block (int8 and float32 on a CPU; also float16 and
  bfloat16 on a GPU), run once per process and device; float32 on other features.

`Choice.reason` says which path ran and why (it goes into the report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from labeller.baseline.config import KNN_PRECISIONS
from labeller.baseline.knn_int8 import int8_available, int_mm
from labeller.core.errors import BadInput

__all__ = ["DTYPES", "KNN_PRECISIONS", "Choice", "choose_precision", "cpu_dot_product_flags", "probe"]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
# The probe: one block of the real shape (256 queries × 2,048 training rows × 3,072).
_PROBE_SHAPE = (256, 2048, 3072)
_PROBE_REPEATS = 3
# CPU flags that mean integer dot-product instructions (reported, not decisive: the probe is)
_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Choice:
    """The precision that runs, and one line saying why."""

    precision: str
    reason: str
    probe_ms: dict[str, float] | None = None


def cpu_dot_product_flags() -> list[str]:
    """The integer / bfloat16 dot-product flags of this CPU (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in _DOT_FLAGS if f in have]
    except OSError:
        pass
    return []


def _probe_ms(precision: str, device: torch.device) -> float:
    """Milliseconds for one probe block in `precision` (best of a few, after a warm-up)."""
    r, w, D = _PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    a8 = torch.randint(-128, 128, (r, D), generator=g, dtype=torch.int8).to(device)
    b8 = torch.randint(-128, 128, (w, D), generator=g, dtype=torch.int8).to(device)
    if precision == "int8":
        def step():
            return int_mm(a8, b8.T)
    else:
        a, b = a8.to(DTYPES[precision]), b8.to(DTYPES[precision])

        def step():
            return a @ b.T
    best = float("inf")
    for i in range(_PROBE_REPEATS + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:  # the first run is the warm-up (kernel selection, packing)
            best = min(best, time.perf_counter() - t)
    return 1e3 * best


_PROBES: dict[str, dict[str, float]] = {}


def probe(device: torch.device) -> dict[str, float]:
    """{precision: ms per probe block} for the exact paths worth trying on `device` (cached)."""
    key = str(device)
    if key not in _PROBES:
        names = ["float32"]
        if device.type == "cuda":
            names += ["float16", "bfloat16"]
        if int8_available(device):
            names.insert(0, "int8")
        _PROBES[key] = {n: _probe_ms(n, device) for n in names}
    return _PROBES[key]


def choose_precision(requested: str, pixels: bool, device: torch.device) -> Choice:
    """The precision for data that are 8-bit pixels (`pixels`) or other features on `device`.

    Raises BadInput for a precision the data or the device cannot use."""
    if requested not in KNN_PRECISIONS:
        raise BadInput("--knn-precision", f"'{requested}' (expected one of {', '.join(KNN_PRECISIONS)})")
    if requested != "auto":
        if requested in ("int8", "float16", "bfloat16") and not pixels:
            raise BadInput("--knn-precision", f"{requested} needs 8-bit pixel data (uint8); use float32 or float64")
        if requested == "int8" and not int8_available(device):
            raise BadInput("--knn-precision", f"int8: this torch has no exact int8 GEMM on {device.type} "
                                              "(torch._int_mm failed its self-test); use auto or float32")
        return Choice(requested, "given by --knn-precision")
    if not pixels:
        return Choice("float32", "auto: the features are not 8-bit pixels, so float32 GEMM")
    times = probe(device)
    best = min(times, key=times.__getitem__)
    where = "GPU" if device.type == "cuda" else "CPU"
    flags = ", ".join(cpu_dot_product_flags()) or "none" if device.type == "cpu" else torch.cuda.get_device_name(device)
    listing = ", ".join(f"{n} {ms:.1f} ms" for n, ms in times.items())
    why = (f"auto: 8-bit pixels; fastest exact path in a timed probe on this {where} "
           f"({listing} per 256 x 2048 x 3072 block; {'dot-product flags' if device.type == 'cpu' else 'device'}: {flags})")
    if "int8" not in times:
        why += "; the int8 GEMM is not exact here (self-test failed), so it was not tried"
    return Choice(best, why, dict(times))
