"""Exact k-nearest-neighbour search on uint8 pixels in integer arithmetic (CPU only).

`Int8Index` finds the same neighbours as `labeller.baseline.knn.knn_search` on the
preprocessed features, in the same order, exactly: see the comment below. It backs
`KNNClassifier(method="int8")` and `cross_validate_k(..., method="int8")`.
"""

from __future__ import annotations

import torch

from labeller.baseline.knn import merge_smallest
from labeller.core.progress import iter_bar

# Squared distances between uint8 images do not change when every pixel is shifted by
# the same amount, so training pixels − 128 fit int8 and the distances can be computed
# exactly in integer arithmetic (oneDNN's u8 × s8 → s32 GEMM). On CPUs without VNNI,
# oneDNN multiplies with vpmaddubsw, whose pairwise int16 sums saturate unless the u8
# operand has 7 bits; so each query x is split as x = 2·(x >> 1) + (x & 1) and both
# halves (7-bit and 1-bit) go through one GEMM: x·y = 2·G_hi + G_lo, exact in int32.
# oneDNN hands the int32 sums back as float32 (rounding them), and the ranking key is
# then formed in float32, so a key is only within `Int8Index.key_error` of its exact
# value. The search keeps k + 8 candidates per query. Where consecutive keys up to the
# (k+1)-th are all more than twice the error apart, their order is the exact order;
# otherwise the candidates are re-ranked with exact float64 distances (sums of integer
# products below 2**53), or, when even the last kept key is within twice the error of
# the k-th, the query is searched exhaustively. So the neighbour sets and their order
# are exact; ties in distance go to the smaller training index.
_INT8_EXTRA = 8  # candidates beyond k kept per query for the exactness check


def _int8_exact(q_max: int) -> bool:
    """Does oneDNN's u8 × s8 GEMM return exact sums for u8 values up to `q_max`?

    Worst cases: every pair of products at the int16 saturation edge (255·127 twice
    exceeds 32767), alternating signs, zeros."""
    q = torch.full((4, 3072), q_max, dtype=torch.uint8)
    q[1] = 0
    q[2, ::2] = 1
    w = torch.full((3, 3072), 127, dtype=torch.int8)
    w[1] = -128
    w[2, 1::2] = -128
    got = _int8_gemm(q, torch.ops.onednn.qlinear_prepack(w, [4, 3072]), 3)
    # the op returns its int32 sums as float32; round the exact sums the same way
    want = (q.double() @ w.double().T).float()
    return bool(torch.equal(got, want))


def int8_mode() -> str | None:
    """How the exact int8 path multiplies on this CPU, or None when it cannot.

    'full': 8-bit queries in one GEMM (CPUs with VNNI accumulate straight into int32);
    'split': queries split into 7-bit and 1-bit halves (AVX2's vpmaddubsw saturates
    pairwise int16 sums of 8-bit products), twice the integer work.
    """
    global _INT8_MODE
    if _INT8_MODE is None:
        try:
            _INT8_MODE = "full" if _int8_exact(255) else ("split" if _int8_exact(127) else "")
        except Exception:  # noqa: BLE001 - op missing or unsupported on this build/CPU
            _INT8_MODE = ""
    return _INT8_MODE or None


def int8_available() -> bool:
    """Whether torch's oneDNN int8 linear op is here and exact (see `int8_mode`)."""
    return int8_mode() is not None


_INT8_MODE: str | None = None


def _int8_gemm(a_u8: torch.Tensor, packed, m: int) -> torch.Tensor:
    """(n, D) uint8 (7-bit values) × prepacked (m, D) int8 → (n, m) float32 sums."""
    ones = torch.ones(m)
    zeros = torch.zeros(m, dtype=torch.int64)
    return torch.ops.onednn.qlinear_pointwise(a_u8, 1.0, 0, packed, ones, zeros, None, 1.0, 0,
                                              torch.float32, "none", [], "")


def _exact_sq_norms(rows: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(m,) int64 ‖y‖² of (m, D) uint8 rows. float32 sums over runs of 256 pixels are
    exact (at most 256 · 255² < 2**24), the runs are added in int64."""
    m, D = rows.shape
    out = torch.empty(m, dtype=torch.int64)
    pad = (-D) % 256
    for c in range(0, m, chunk):
        r = rows[c : c + chunk].to(torch.float32)
        if pad:
            r = torch.nn.functional.pad(r, (0, pad))
        out[c : c + chunk] = (r * r).view(r.shape[0], -1, 256).sum(-1).to(torch.int64).sum(-1)
    return out


class Int8Index:
    """Training images prepared for exact int8 nearest-neighbour search on CPU.

    X: (m, D) uint8 pixels. Keeps `rows` (m, D) uint8, `sq_norms` (m,) int64 = ‖y‖², and
    per column block a oneDNN-prepacked int8 copy of y − 128 with float32 norms.
    """

    def __init__(self, X: torch.Tensor, col_block: int = 32768, query_rows: int = 256,
                 mode: str | None = None):
        if X.dtype != torch.uint8 or X.device.type != "cpu":
            raise ValueError("Int8Index needs a uint8 tensor on the CPU")
        self.mode = mode or int8_mode()
        if self.mode not in ("full", "split"):
            raise RuntimeError("exact int8 GEMM is not available in this torch build")
        self.rows = X.contiguous()
        self.sq_norms = _exact_sq_norms(self.rows)
        # Every float32 step rounds by at most 2**-24 of its magnitude; the magnitudes
        # are bounded by D·255² (‖y‖²), D·127·128 or D·255·128 (a GEMM sum, times 4 or 2)
        # and their combination, below D·400,000 in all: the bound below has 50 % margin
        # over the sum of those roundings (107 squared-pixel units for D = 3072).
        self.key_error = 2.0**-24 * X.shape[1] * 400_000 * 1.5
        self.query_rows = query_rows
        self.blocks = []
        ys = (self.rows ^ 128).view(torch.int8)  # y − 128 as int8: flip the top bit
        for c in range(0, X.shape[0], col_block):
            blk = ys[c : c + col_block].contiguous()
            packed = torch.ops.onednn.qlinear_prepack(blk, [(2 if self.mode == "split" else 1) * query_rows, X.shape[1]])
            self.blocks.append((c, blk.shape[0], packed, self.sq_norms[c : c + col_block].to(torch.float32)))

    def search(self, Q: torch.Tensor, k: int, progress: bool = False, desc: str = "kNN int8"):
        """The exact k nearest rows for each row of Q ((n, D) uint8), in exact order (ties
        in distance go to the smaller index): (dist (n, k) float64 squared distances,
        exact where a re-rank was needed and otherwise within ±`key_error`; idx (n, k)
        int64)."""
        m = self.rows.shape[0]
        if not 1 <= k <= m:
            raise ValueError(f"k={k} must be in 1..{m} (the number of training rows)")
        Q = Q.contiguous()
        n = Q.shape[0]
        kk = min(m, k + _INT8_EXTRA)
        dist = torch.empty((n, k), dtype=torch.float64)
        idx = torch.empty((n, k), dtype=torch.int64)
        for s in iter_bar(range(0, n, self.query_rows), desc, "chunk", enabled=progress):
            q = Q[s : s + self.query_rows]
            r = q.shape[0]
            split = self.mode == "split"
            a = torch.cat([q >> 1, q & 1]) if split else q  # (2r, D) 7-bit and 1-bit halves
            best: tuple[torch.Tensor, torch.Tensor] | None = None
            for c, width, packed, bn in self.blocks:
                g = _int8_gemm(a, packed, width)  # split: (2r, width) = [G_hi; G_lo]
                # key = ‖y‖² − 2 x·(y − 128) (query constants dropped)
                #     = ‖y‖² − 4 G_hi − 2 G_lo   (split)   or   ‖y‖² − 2 G   (full)
                if split:
                    key = g[:r].mul_(-4.0).add_(bn).sub_(g[r:], alpha=2.0)
                else:
                    key = g.mul_(-2.0).add_(bn)
                v, i = torch.topk(key, min(kk, width), dim=1, largest=False, sorted=False)
                i += c
                best = (v, i) if best is None else merge_smallest(best, (v, i), kk)
            assert best is not None  # at least one block: m >= k >= 1
            best_v, j = torch.sort(best[0], dim=1)
            best_i = best[1].gather(1, j)
            d, ix = self._exact(q, best_v, best_i, k)
            dist[s : s + r] = d
            idx[s : s + r] = ix
        return dist, idx

    def _exact(self, q, v, i, k):
        """Turn the kept candidates (sorted approximate keys v, indices i; (r, kk)) into
        the exact k nearest. Where every gap between consecutive keys up to the (k+1)-th
        exceeds twice the key error, the approximate order is the exact one; other
        queries are re-ranked exactly among the candidates, or searched exhaustively when
        the candidates may not hold all k."""
        m = self.rows.shape[0]
        kk = v.shape[1]
        eps2 = 2 * self.key_error
        head = v[:, : min(k + 1, kk)]
        clear = (head[:, 1:] - head[:, :-1] > eps2).all(1)
        qi = q.to(torch.int64)
        qn = (qi * qi).sum(1).to(torch.float64)  # ‖x‖², exact
        # ‖x − y‖² = ‖x‖² + ‖y‖² − 2 x·(y − 128) − 256 Σx = ‖x‖² − 256 Σx + key
        dist = v[:, :k].to(torch.float64) + (qn - 256.0 * qi.sum(1).to(torch.float64)).unsqueeze(1)
        idx = i[:, :k].clone()
        rerank = torch.nonzero(~clear).flatten()
        if rerank.numel():
            full = (v[rerank, -1] - v[rerank, k - 1] <= eps2) & torch.tensor(kk < m)
            for row in rerank[full].tolist():  # the kept set may be cut short: search all
                dist[row], idx[row] = self._brute(q[row], k)
            rows_ = rerank[~full]
            if rows_.numel():
                # exact distances of the kept candidates, all such queries at once
                # (float64 sums of integer products: exact below 2**53)
                cand = i[rows_]  # (f, kk)
                Y = self.rows.index_select(0, cand.reshape(-1)).view(len(rows_), kk, -1).to(torch.float64)
                x = q[rows_].to(torch.float64).unsqueeze(2)  # (f, D, 1)
                d = self.sq_norms[cand].to(torch.float64) - 2 * torch.bmm(Y, x).squeeze(2) + qn[rows_].unsqueeze(1)
                key = d.to(torch.int64) * m + cand  # by distance, then by index
                o = torch.argsort(key, dim=1)[:, :k]
                dist[rows_], idx[rows_] = d.gather(1, o), cand.gather(1, o)
        return dist, idx

    def _brute(self, x, k):
        """Exact float64 search of one query against every row (rarely needed)."""
        xd = x.to(torch.float64)
        dots = torch.cat([self.rows[c : c + 4096].to(torch.float64) @ xd  # exact: integer sums < 2**53
                          for c in range(0, self.rows.shape[0], 4096)])
        d = self.sq_norms.to(torch.float64) - 2 * dots + float((xd * xd).sum())
        key = d.to(torch.int64) * self.rows.shape[0] + torch.arange(self.rows.shape[0])
        j = torch.topk(key, k, largest=False).indices
        j = j[torch.argsort(key[j])]
        return d[j], j
