"""Kept nearest candidates updated block by block through per-query thresholds.

`Candidates` holds, for n queries, the kk smallest keys seen so far (`v` (n, kk), unsorted,
the sentinel where none yet), their training indices (`i` (n, kk) int64) and a threshold
per query (`t` (n,)): the largest key kept, i.e. the kk-th smallest seen, or the sentinel
while fewer than kk were seen. Every key left out is >= the query's worst kept one, which
is what `labeller.baseline.neighbours.finalize` relies on to make the result exact.

`add_rows(K, q0, offset)` folds in a block K (r, w) whose rows are queries q0..q0+r and
whose columns are training rows offset..offset+w; `add_cols(K, q0, offset)` the same block
for the queries of its columns (K[:, j] are query q0+j's keys against training rows
offset..offset+r): the one-pass cross-validation serves both directions from one block.

Why not a top-k per block: a top-k of kk ~ 100 costs about 6 ns per key on this CPU, half a
GEMM's cost per pair, and the other direction needs the block transposed first. Here a
block costs one comparison with the thresholds (a bool mask; per column or per row, so
neither direction needs a transpose) and a scan of the mask word by word; after a
query's first block only about kk·w/m of a block's keys are at most its threshold (m:
the training rows it has met), and only those survivors are gathered and merged, by a
top-kk over its kept keys and its survivors. A query's first block has no threshold yet:
the kk-th smallest of its group minima is one (strided groups of GROUP keys, a reduction
that vectorises in either direction; at least kk keys are <= it, one per group), which
lets in about 1.1·kk keys instead of all of them. The bookkeeping on the survivors runs
in one thread (`torch_threads`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

GROUP = 8  # keys per group for a first threshold: kk-th of w/GROUP minima lets in ~1.1·kk keys
_MERGE_BYTES = 64 << 20  # at most this much for the padded arrays of one merge (bounded memory)


@contextmanager
def torch_threads(n: int):
    """Run a section with n of torch's CPU threads. The bookkeeping on the survivors runs
    in one: split over threads, each of its many small operations costs more in
    synchronisation than it saves (much more when other processes keep the cores busy,
    as the waiting thread spins). The passes over whole blocks keep torch's setting."""
    old = torch.get_num_threads()
    if n <= 0 or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def sentinel(dtype: torch.dtype) -> float | int:
    """The key that stands for 'none yet': the largest of the type (inf for floats)."""
    return torch.iinfo(dtype).max if not dtype.is_floating_point else float("inf")


class Candidates:
    """The kk best keys and indices of n queries (see the module docstring)."""

    def __init__(self, n: int, kk: int, dtype: torch.dtype, device):
        self.kk = kk
        self.none = sentinel(dtype)
        self.v = torch.full((n, kk), self.none, dtype=dtype, device=device)
        self.i = torch.full((n, kk), -1, dtype=torch.int64, device=device)
        self.t = torch.full((n,), self.none, dtype=dtype, device=device)
        self._mask_buf: torch.Tensor | None = None

    def add_rows(self, K: torch.Tensor, q0: int, offset: int) -> None:
        """Fold in K (r, w): query q0+a's keys against training rows offset..offset+w."""
        K = K.contiguous()  # (a no-op on the CPU; CUDA's padded int8 GEMM returns a slice)
        r, w = K.shape
        t = self.t[q0 : q0 + r]
        L = w // GROUP
        if L >= self.kk and bool((t == self.none).any()):
            gm = K.as_strided((r, GROUP, L), (w, L, 1)).amin(1)  # (r, L): columns l + g·L
            t = self._first_thresholds(t, gm, 1)
        mask, padded = self._mask(K)
        torch.le(K, t.unsqueeze(1), out=mask)
        with torch_threads(1):
            flat = _true_positions(padded)  # ascending: by query
            start = torch.searchsorted(flat, torch.arange(0, (r + 1) * w, w, device=K.device))
            # the keys gathered in memory order, the positions from the flat index
            self._merge(q0, start, K.view(-1).take(flat), flat, w, offset)

    def add_cols(self, K: torch.Tensor, q0: int, offset: int) -> None:
        """Fold in K (r, w) for its columns: query q0+j's keys are K[:, j], against
        training rows offset..offset+r."""
        K = K.contiguous()
        r, w = K.shape
        t = self.t[q0 : q0 + w]
        R = r // GROUP
        if R >= self.kk and bool((t == self.none).any()):
            gm = K.as_strided((GROUP, R, w), (R * w, w, 1)).amin(0)  # (R, w): rows l + g·R
            t = self._first_thresholds(t, gm, 0)
        mask, padded = self._mask(K)
        torch.le(K, t.unsqueeze(0), out=mask)
        with torch_threads(1):
            flat = _true_positions(padded)  # ascending: by training row
            # row = flat // w in float64 (exact: flat < 2**52; vectorised, unlike int64 division)
            row = flat.to(torch.float64).div_(w).floor_().to(torch.int64)
            col = (flat - row * w).to(torch.int32)
            col, perm = torch.sort(col, stable=True)
            start = torch.searchsorted(col, torch.arange(w + 1, dtype=torch.int32, device=K.device))
            self._merge(q0, start, K.view(-1).take(flat).take(perm), row.take(perm), 0, offset)

    def _mask(self, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reused bool buffer of K's shape, and the same storage padded with False to a
        multiple of 8 entries (a fresh buffer per block costs its page faults)."""
        n = K.numel()
        n8 = -(-n // 8) * 8
        if self._mask_buf is None or self._mask_buf.numel() < n8 or self._mask_buf.device != K.device:
            self._mask_buf = torch.zeros(n8, dtype=torch.bool, device=K.device)
        self._mask_buf[n:n8] = False
        return self._mask_buf[:n].view(K.shape), self._mask_buf[:n8]

    def _first_thresholds(self, t: torch.Tensor, gm: torch.Tensor, dim: int) -> torch.Tensor:
        """The thresholds for this block: the kept ones, and for a query with fewer than
        kk kept the kk-th smallest of its group minima (at least kk keys are <= it)."""
        t0 = torch.topk(gm, self.kk, dim=dim, largest=False, sorted=False).values.amax(dim)
        return torch.where(t == self.none, t0, t)

    def _merge(self, q0: int, start: torch.Tensor, val: torch.Tensor, pos: torch.Tensor, stride: int,
               offset: int) -> None:
        """Merge the survivors into the kept keys: query q0+a's are val[s] for s in
        start[a]..start[a+1], at training position offset + pos[s] − a·stride. Per query a
        top-kk of its kept keys and its survivors, laid out in a padded array."""
        c = val.numel()
        if c == 0:
            return
        counts = start[1:] - start[:-1]
        start = start[:-1]
        nq = counts.numel()
        with_some = torch.nonzero(counts).squeeze(1)  # the queries with survivors
        rows: torch.Tensor | None = None
        if with_some.numel() < nq:
            rows = with_some
            start, counts = start[rows], counts[rows]
        kk = self.kk
        per_row = max(1, _MERGE_BYTES // ((kk + int(counts.max())) * (self.v.element_size() + 8)))
        n_rows = counts.numel()
        for s in range(0, n_rows, per_row):
            e = min(n_rows, s + per_row)
            width = int(counts[s:e].max())
            col = torch.arange(width, device=val.device)
            idx = (start[s:e].unsqueeze(1) + col).clamp_(max=c - 1)  # (e-s, width) into the survivors
            a = torch.arange(s, e, device=val.device) if rows is None else rows[s:e]
            vp = val.take(idx).masked_fill_(col >= counts[s:e].unsqueeze(1), self.none)  # padding: none
            jp = pos.take(idx)
            if stride:
                jp.sub_((a * stride).unsqueeze(1))
            sub = a + q0
            allv = torch.cat([self.v[sub], vp.to(self.v.dtype)], 1)
            best, sel = torch.topk(allv, kk, dim=1, largest=False, sorted=False)
            alli = torch.cat([self.i[sub], jp.add_(offset)], 1)
            self.v[sub] = best
            self.i[sub] = alli.gather(1, sel)
            self.t[sub] = best.amax(1)


def _true_positions(padded: torch.Tensor) -> torch.Tensor:
    """(c,) int64 ascending flat positions of the True entries of a bool vector whose
    length is a multiple of 8. The scan goes word by word (8 entries per int64), so the
    many empty words cost one test each; only the words with a True are looked into."""
    words = padded.view(torch.int64)
    nzw = torch.nonzero(words).squeeze(1)
    nzb = torch.nonzero(words.take(nzw).view(torch.uint8)).squeeze(1)  # little-endian: byte b = entry 8·word + b
    return nzw.take(nzb >> 3).mul_(8).add_(nzb & 7)
