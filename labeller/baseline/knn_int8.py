"""Exact integer arithmetic on uint8 pixels: the int8 GEMM and its self-test.

Squared distances between uint8 images do not change when every pixel is shifted by
the same amount, so pixels − 128 fit int8 and ``‖x − y‖² = ‖x̃‖² + ‖ỹ‖² − 2 x̃·ỹ``
with ``x̃ = x − 128`` is computed exactly in int32: ``|x̃·ỹ| ≤ D·128² = 5.0e7`` and the
distance ``≤ D·255² = 2.0e8`` for D = 3,072, both below 2**31. The GEMM is
`torch._int_mm` (int8 × int8 → int32, oneDNN on the CPU, which uses VNNI / AVX-VNNI /
AMX where the CPU has them; cuBLASLt's int8 tensor cores on CUDA).

`int8_available(device)` runs a self-test at the saturation edge before the path is
trusted: on a CPU without VNNI an int8 GEMM that pairs products in saturating int16
sums would fail it, and the path is then not offered.
"""

from __future__ import annotations

import torch

# torch._int_mm on CUDA wants both sizes of the result and the inner size in multiples
# of 8 (and more than 16 rows); blocks are padded to this.
_CUDA_ALIGN = 8


def centred(X: torch.Tensor) -> torch.Tensor:
    """uint8 (n, D) pixels -> int8 (n, D) pixels − 128 (flip the top bit: exact, no copy of values)."""
    return (X ^ 128).view(torch.int8)


def int_mm(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """(r, D) int8 × (D, w) int8 -> (r, w) int32, exact. `b_t` may be a transposed view.

    On CUDA the operands are zero-padded to the sizes cuBLASLt's int8 GEMM accepts."""
    if a.device.type != "cuda":
        return torch._int_mm(a, b_t)
    r, D = a.shape
    w = b_t.shape[1]
    R = max(32, -(-r // _CUDA_ALIGN) * _CUDA_ALIGN)
    W = -(-w // _CUDA_ALIGN) * _CUDA_ALIGN
    K = -(-D // _CUDA_ALIGN) * _CUDA_ALIGN
    if (R, W, K) != (r, w, D):
        a = torch.nn.functional.pad(a, (0, K - D, 0, R - r))
        b_t = torch.nn.functional.pad(b_t, (0, W - w, 0, K - D))
    return torch._int_mm(a.contiguous(), b_t.contiguous())[:r, :w]


def sq_norms(Xc: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(n,) int32 ‖x̃‖² of (n, D) int8 rows, exact (at most D·128² < 2**31)."""
    out = torch.empty(Xc.shape[0], dtype=torch.int32, device=Xc.device)
    for s in range(0, Xc.shape[0], chunk):
        r = Xc[s : s + chunk].to(torch.int32)
        out[s : s + chunk] = (r * r).sum(1, dtype=torch.int32)
    return out


def _self_test(device: torch.device) -> bool:
    """Does the int8 GEMM return exact int32 sums at the extremes on `device`?

    Worst cases: every product at ±128·127 or 128·128 (vpmaddubsw-style int16 pair sums
    would saturate), alternating signs, zeros, and a length that is not a block multiple."""
    D = 3072 + 40
    a = torch.full((40, D), -128, dtype=torch.int8)
    a[1] = 127
    a[2, ::2] = 127
    a[3] = 0
    a[4:] = torch.randint(-128, 128, (36, D), generator=torch.Generator().manual_seed(0), dtype=torch.int8)
    b = torch.full((D, 24), -128, dtype=torch.int8)
    b[:, 1] = 127
    b[1::2, 2] = 127
    b[:, 3:] = torch.randint(-128, 128, (D, 21), generator=torch.Generator().manual_seed(1), dtype=torch.int8)
    want = (a.to(torch.int64) @ b.to(torch.int64)).to(torch.int32)
    got = int_mm(a.to(device), b.to(device)).cpu()
    return bool(torch.equal(got, want))


_AVAILABLE: dict[str, bool] = {}


def int8_available(device: torch.device | str = "cpu") -> bool:
    """Whether this torch has an exact int8 × int8 → int32 GEMM on `device` (self-tested once)."""
    dev = torch.device(device)
    key = dev.type
    if key not in _AVAILABLE:
        try:
            _AVAILABLE[key] = hasattr(torch, "_int_mm") and _self_test(dev)
        except (RuntimeError, NotImplementedError, TypeError):  # op missing on this build / device
            _AVAILABLE[key] = False
    return _AVAILABLE[key]
