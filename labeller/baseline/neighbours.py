"""Nearest neighbours in a chosen precision, exact on 8-bit pixels: `Distances`, `search`.

`Distances(X, precision, device)` holds the training rows prepared for one precision
(`labeller.baseline.precision`): for 8-bit pixels the rows − 128 as int8 (the exact
int8 GEMM and every exact re-check use them) and, for a floating precision, the same
values in that type; for other features the features in float32 or float64. `keys`
gives one block of full squared distances ``‖x‖² + ‖y‖² − 2 x·y``:

- int8: int32, exact. float64 on pixels: exact too (sums of integer products < 2**53).
- float32 / float16 / bfloat16 on pixels: approximate, within `error_bound` of exact
  (float16 / bfloat16 operands are the pixels − 128 scaled by 1/64, exact in both types;
  the bound assumes float32 accumulation, which oneDNN and CUDA's tensor cores use).

`search` keeps the `k + EXTRA` smallest keys per query block by block, then `finalize`
makes them exact: on pixels the candidates' distances are recomputed in int32
(``|x − y|² ≤ D·255² < 2**31``), sorted by (distance, training index), and accepted
when the k-th is provably below every distance left out (the largest kept key minus the
error bound; strictly, so ties go to the smaller index); a query for which that fails
(many equal distances, or candidates too close to tell apart) is searched exhaustively in
exact float64 arithmetic. So every precision returns the neighbours of a float64 search
with ties broken by index, and predictions are identical across precisions.

Blocks are sized from the free memory of the device (`labeller.baseline.memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labeller.baseline.knn_int8 import centred, int_mm, sq_norms
from labeller.baseline.memory import block_rows
from labeller.baseline.precision import DTYPES
from labeller.core.progress import iter_bar

EXTRA = 8  # candidates kept beyond k per query for the exactness check
# Training rows per block of keys. Measured here (2,730 queries x 50,000, int8): 8,192
# took a quarter less CPU than 4,096 (fewer of the small per-block ops) and less than 16,384.
COL_BLOCK = 8192
MAX_QUERY_ROWS = 4096
HALF_SCALE = 1.0 / 64  # float16 / bfloat16 operands: (pixel − 128) / 64, exact in both
_UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
# Rounding of the norms (≤ 5.0e7, stored in float32) and of the two float32 additions of
# the key (≤ 2.0e8): at most 2 + 2 + 8 + 8 squared-pixel units; the margin covers the rest.
_KEY_ROUNDING = 64.0


@dataclass
class Prepared:
    """Rows prepared for `Distances.keys`: `c8` (n, D) int8 pixels − 128 (pixels only),
    `v` (n, D) operands of the GEMM in the compute type (int8: `c8` itself), `sq` (n,)
    norms ‖x̃‖² (int32 for int8, float32 or float64 otherwise), `norm` (n,) float64 ‖x̃‖
    (pixels with an approximate precision: for the error bound)."""

    c8: torch.Tensor | None
    v: torch.Tensor
    sq: torch.Tensor
    norm: torch.Tensor | None

    def rows(self, s: int, e: int) -> Prepared:
        return Prepared(None if self.c8 is None else self.c8[s:e], self.v[s:e], self.sq[s:e],
                        None if self.norm is None else self.norm[s:e])

    def __len__(self) -> int:
        return self.v.shape[0]


_OUT_DTYPE_MM: dict[str, bool] = {}


def _half_mm(a: torch.Tensor, b_t: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """a @ b_t for float16 / bfloat16 operands as float32, and whether the product was
    returned in float32 directly (CUDA's `out_dtype`) rather than rounded to the half type."""
    dev = a.device.type
    if _OUT_DTYPE_MM.get(dev, dev == "cuda"):
        try:
            return torch.mm(a, b_t, out_dtype=torch.float32), True
        except (RuntimeError, TypeError, NotImplementedError):
            _OUT_DTYPE_MM[dev] = False
    if dev != "cuda":
        return (a @ b_t).float(), False
    # the error bound assumes float32 accumulation: forbid cuBLAS's reduced-precision
    # (half-type) split-K reductions for this product
    m = torch.backends.cuda.matmul
    old = (m.allow_fp16_reduced_precision_reduction, m.allow_bf16_reduced_precision_reduction)
    m.allow_fp16_reduced_precision_reduction = m.allow_bf16_reduced_precision_reduction = False
    try:
        return (a @ b_t).float(), False
    finally:
        m.allow_fp16_reduced_precision_reduction, m.allow_bf16_reduced_precision_reduction = old


class Distances:
    """Training rows X ((m, D) uint8 pixels or floating features) prepared for `precision`.

    `pixels`: X is uint8 (results are exact); `exact_keys`: `keys` are exact (int8, and
    float64 on pixels); `m`, `D`; `train` (a `Prepared`)."""

    def __init__(self, X: torch.Tensor, precision: str, device: torch.device):
        X = torch.as_tensor(X)
        X = X.reshape(X.shape[0], -1)
        self.device = torch.device(device)
        self.precision = precision
        self.pixels = X.dtype == torch.uint8
        if precision in ("int8", "float16", "bfloat16") and not self.pixels:
            raise ValueError(f"precision {precision} needs uint8 pixels")
        self.m, self.D = X.shape
        self.exact_keys = self.pixels and precision in ("int8", "float64")
        self.dtype = torch.int32 if precision == "int8" else DTYPES[precision]
        self.scale = HALF_SCALE if precision in ("float16", "bfloat16") else 1.0
        self.train = self.prepare(X)
        self.max_norm = float(self.train.norm.max()) if self.train.norm is not None and self.m else 0.0
        self._out_f32 = False

    def prepare(self, X: torch.Tensor) -> Prepared:
        """Queries (or training rows) in the form `keys` takes."""
        X = torch.as_tensor(X)
        X = X.reshape(X.shape[0], -1).to(self.device)
        if not self.pixels:
            v = X.to(self.dtype).contiguous()
            return Prepared(None, v, (v * v).sum(1), None)
        if X.dtype != torch.uint8:
            raise ValueError("the training rows are uint8 pixels: queries must be uint8 too")
        c8 = centred(X.contiguous())
        sq = sq_norms(c8)
        if self.precision == "int8":
            return Prepared(c8, c8, sq, None)
        v = c8.to(self.dtype)
        if self.scale != 1.0:
            v.mul_(self.scale)  # a power of two: exact
        norm = None if self.exact_keys else sq.to(torch.float64).sqrt_()
        return Prepared(c8, v, sq.to(torch.float64 if self.dtype == torch.float64 else torch.float32), norm)

    def keys(self, q: Prepared, c0: int, c1: int, full: bool = True, out: torch.Tensor | None = None
             ) -> torch.Tensor:
        """(r, w) squared distances ‖x̃‖² + ‖ỹ‖² − 2 x̃·ỹ of the query rows `q` to the
        training rows c0:c1: int32 (int8), float64 or float32. `full=False` leaves out
        ‖x̃‖², which does not change a query's ranking (one pass less over the block).
        `out`: a flat buffer of at least r·w elements of the key type to write into
        (reusing it spares the page faults of a fresh large tensor per block)."""
        t = self.train
        tv = t.v[c0:c1]
        shape = (q.v.shape[0], tv.shape[0])
        dst = None if out is None else out[: shape[0] * shape[1]].view(shape)
        if self.precision == "int8":
            g = int_mm(q.v, tv.T) if dst is None or q.v.device.type == "cuda" else torch._int_mm(q.v, tv.T, out=dst)
            d = torch.add(t.sq[c0:c1], g, alpha=-2, out=g)  # one pass: ‖ỹ‖² − 2 x̃·ỹ
        elif self.dtype in (torch.float16, torch.bfloat16):
            g, self._out_f32 = _half_mm(q.v, tv.T)
            d = torch.add(t.sq[c0:c1], g, alpha=-2.0 / self.scale**2)
        elif dst is not None:
            d = torch.addmm(t.sq[c0:c1], q.v, tv.T, beta=1, alpha=-2.0, out=dst)
        else:
            d = torch.addmm(t.sq[c0:c1], q.v, tv.T, beta=1, alpha=-2.0)
        return d.add_(q.sq.unsqueeze(1)) if full else d

    def error_bound(self, q: Prepared) -> torch.Tensor | None:
        """(r,) float64: how far an approximate key of each query may be from exact
        (None when the keys are exact, or for features, where nothing is checked).
        |fl(x̃·ỹ) − x̃·ỹ| ≤ (D·u_acc + u_out)·‖x̃‖·‖ỹ‖ to first order (float32 accumulation,
        u_out of the type the product is returned in); the key has twice that, plus the
        roundings of the norms and additions; the factor 1.25 covers the higher orders."""
        if self.exact_keys or not self.pixels or q.norm is None:
            return None
        u_acc = 2.0**-24
        u_out = 0.0 if (self.dtype == torch.float32 or self._out_f32) else _UNIT_ROUNDOFF[self.dtype]
        return 1.25 * 2 * (self.D * u_acc + u_out) * q.norm * self.max_norm + _KEY_ROUNDING


def _sentinel(dtype: torch.dtype) -> float | int:
    return torch.iinfo(dtype).max if not dtype.is_floating_point else float("inf")


PRUNE_GROUP = 8  # keys per group in the pruned merge (their minimum is taken first)


def _smallest(K: torch.Tensor, kb: int, tau: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The kb smallest keys per row of K ((q, w): values, positions). With thresholds
    `tau` (q,), only the groups of PRUNE_GROUP consecutive keys whose minimum lies below
    a query's threshold are looked at: the top-k then runs on those few groups instead
    of the whole block (every key left out is >= its query's threshold)."""
    q, w = K.shape
    G = PRUNE_GROUP
    if tau is not None and w % G == 0 and w >= 4 * G:
        gm = K.view(q, w // G, G).amin(2)  # (q, w/G)
        ng = int((gm <= tau.unsqueeze(1)).sum(1).max())
        if ng == 0:
            return K.new_empty((q, 0)), torch.empty((q, 0), dtype=torch.int64, device=K.device)
        if 2 * ng * G <= w:  # few groups: gather them (those below any threshold are among them)
            _, gi = torch.topk(gm, ng, dim=1, largest=False, sorted=False)
            pos = (gi.unsqueeze(2) * G + torch.arange(G, device=K.device)).flatten(1)  # (q, ng·G)
            v, j = torch.topk(K.gather(1, pos), min(kb, ng * G), dim=1, largest=False, sorted=False)
            return v, pos.gather(1, j)
    return torch.topk(K, min(kb, w), dim=1, largest=False, sorted=False)


def merge_block(best_v: torch.Tensor, best_i: torch.Tensor, K: torch.Tensor, offset: int, kk: int) -> None:
    """Fold one block of keys into the kept candidates, in place.

    best_v, best_i: (q, kk) kept keys (unsorted; the sentinel where none yet) and
    training indices of q queries; K: (q, w) their keys against the training rows
    offset..offset+w. Every key left out is >= the worst key kept (what `finalize`
    relies on)."""
    tau = best_v.max(1).values
    full = bool((tau < _sentinel(best_v.dtype)).all())
    v, j = _smallest(K, kk, tau if full else None)
    if v.shape[1] == 0:
        return
    allv = torch.cat([best_v, v.to(best_v.dtype)], 1)
    alli = torch.cat([best_i, j.add_(offset)], 1)
    sel = torch.empty(best_i.shape, dtype=torch.int64, device=best_i.device)
    torch.topk(allv, kk, dim=1, largest=False, sorted=False, out=(best_v, sel))  # straight into place
    torch.gather(alli, 1, sel, out=best_i)


def empty_candidates(n: int, kk: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, kk) kept keys (all the sentinel) and indices (−1)."""
    return (torch.full((n, kk), _sentinel(dtype), dtype=dtype, device=device),
            torch.full((n, kk), -1, dtype=torch.int64, device=device))


def key_dtype(dist: Distances) -> torch.dtype:
    return torch.int32 if dist.precision == "int8" else (torch.float64 if dist.dtype == torch.float64 else torch.float32)


def exact_candidate_dists(q8: torch.Tensor, t8: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """(r, c) int64 exact ‖x − y‖² of queries q8 ((r, D) int8 pixels − 128) to the training
    rows cand ((r, c) indices into t8 (m, D) int8), in int32 arithmetic, chunked."""
    r, c = cand.shape
    D = q8.shape[1]
    out = torch.empty((r, c), dtype=torch.int64, device=cand.device)
    step = block_rows(c * D * 6, q8.device, limit=max(1, r))  # int16 rows + int32 products
    for s in range(0, r, step):
        idx = cand[s : s + step]
        Y = t8.index_select(0, idx.reshape(-1)).view(idx.shape[0], c, D).to(torch.int16)
        diff = Y.sub_(q8[s : s + step].to(torch.int16).unsqueeze(1)).to(torch.int32)
        out[s : s + step] = diff.mul_(diff).sum(-1, dtype=torch.int32)
    return out


def exhaustive(dist: Distances, q8: torch.Tensor, k: int, exclude: tuple[int, int] | None = None,
               rank: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest training rows of queries q8 ((f, D) int8 pixels − 128) by float64
    GEMM (exact: integer sums < 2**53), ties to the smaller `rank` (default: the training
    index); training rows in `exclude` = (lo, hi) are left out. Returns (dist (f, k)
    int64, idx (f, k) int64)."""
    t8 = dist.train.c8
    assert t8 is not None
    m = t8.shape[0]
    qd = q8.to(torch.float64)
    qn = (qd * qd).sum(1, keepdim=True)
    keys = torch.empty((q8.shape[0], m), dtype=torch.int64, device=q8.device)
    for c in range(0, m, COL_BLOCK):
        y = t8[c : c + COL_BLOCK].to(torch.float64)
        d = (qn + (y * y).sum(1) - 2 * qd @ y.T).round_().to(torch.int64)
        r = torch.arange(c, c + y.shape[0], device=q8.device) if rank is None else rank[c : c + y.shape[0]]
        keys[:, c : c + COL_BLOCK] = d * m + r
    if exclude is not None:
        keys[:, exclude[0] : exclude[1]] = torch.iinfo(torch.int64).max
    top = torch.topk(keys, k, dim=1, largest=False, sorted=True)
    return top.values // m, top.indices


def finalize(dist: Distances, q: Prepared, best_v: torch.Tensor, best_i: torch.Tensor, k: int,
             exclude: tuple[int, int] | None = None, rank: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest from the kept candidates (see the module docstring), ascending.

    Pixels: (dist (r, k) int64 exact squared distances, idx (r, k) int64), exact, ties to
    the smaller `rank` ((m,) int64, default: the training index). Features: (dist (r, k)
    in the key type, idx), by the keys. `exclude` = (lo, hi): training rows never
    offered as candidates (cross-validation: the query's own fold)."""
    kk = best_v.shape[1]
    if not dist.pixels:
        v, j = torch.sort(best_v, dim=1)
        return v[:, :k], best_i.gather(1, j[:, :k])
    assert q.c8 is not None and dist.train.c8 is not None
    if dist.exact_keys:
        d = best_v.to(torch.int64)
    else:
        d = exact_candidate_dists(q.c8, dist.train.c8, best_i)
    m = dist.m
    key = d * m + (best_i if rank is None else rank[best_i])  # by distance, then by rank
    o = torch.argsort(key, dim=1)[:, :k]
    out_d, out_i = d.gather(1, o), best_i.gather(1, o)
    available = m - (0 if exclude is None else exclude[1] - exclude[0])
    if kk < available:
        worst_kept = best_v.max(1).values.to(torch.float64)
        err = dist.error_bound(q)
        if err is not None:
            worst_kept = worst_kept - err
        # every left-out row has a key >= the worst kept one (hence an exact distance >=
        # that minus the error): the k-th is exact if it lies strictly below
        bad = torch.nonzero(~(out_d[:, k - 1].to(torch.float64) < worst_kept)).flatten()
        for c in range(0, bad.numel(), 256):  # rare; bounded memory
            rows = bad[c : c + 256]
            out_d[rows], out_i[rows] = exhaustive(dist, q.c8[rows], k, exclude, rank)
    return out_d, out_i


def search(dist: Distances, Q: torch.Tensor, k: int, progress: bool = False, desc: str = "kNN"
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest training rows of each query row of Q ((n, D), same kind as the
    training rows): (dist (n, k) ascending, idx (n, k) int64); see `finalize`."""
    m = dist.m
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be in 1..{m} (the number of training rows)")
    n = Q.shape[0]
    kk = min(m, k + EXTRA)
    w = min(m, COL_BLOCK)
    kd = key_dtype(dist)
    # per query row: one block of keys, written in place (4 or 8 bytes each), and the
    # temporaries of the top-k (about as much again)
    rows = block_rows(w * 2 * torch.empty(0, dtype=kd).element_size(), dist.device,
                      limit=min(max(n, 1), MAX_QUERY_ROWS), minimum=min(n, 64) or 1)
    buf = torch.empty(rows * w, dtype=kd, device=dist.device)
    out_d = torch.empty((n, k), dtype=torch.int64 if dist.pixels else kd, device=dist.device)
    out_i = torch.empty((n, k), dtype=torch.int64, device=dist.device)
    for s in iter_bar(range(0, n, rows), desc, "chunk", enabled=progress):
        q = dist.prepare(Q[s : s + rows])
        bv, bi = empty_candidates(len(q), kk, kd, dist.device)
        for c in range(0, m, w):
            merge_block(bv, bi, dist.keys(q, c, c + w, full=False, out=buf), c, kk)
        bv = bv.to(torch.float64 if bv.is_floating_point() else torch.int64).add_(q.sq.unsqueeze(1))
        out_d[s : s + rows], out_i[s : s + rows] = finalize(dist, q, bv, bi, k)
    return out_d, out_i
