"""Kept candidates updated through thresholds: the kept keys are the kk smallest of all."""

from __future__ import annotations

import pytest
import torch

from labeller.baseline import candidates as cand_module
from labeller.baseline.candidates import Candidates


def _blocks(n_queries, widths, seed, dtype=torch.int32):
    g = torch.Generator().manual_seed(seed)
    out = []
    for w in widths:
        K = torch.randint(0, 5000, (n_queries, w), generator=g)
        K[:, : w // 3] += torch.randint(0, 3, (n_queries, 1), generator=g) * 4000  # query-dependent levels
        K[1] = 77  # one query with every key equal
        out.append(K.to(dtype))
    return out


def _check(c: Candidates, K_all: torch.Tensor, kk: int):
    """Kept keys = the kk smallest (as multisets), each at its training index; the
    threshold is the largest kept; every key left out is >= it."""
    want = torch.sort(K_all, 1).values[:, :kk]
    assert torch.equal(torch.sort(c.v, 1).values, want)
    assert torch.equal(K_all.gather(1, c.i), c.v)
    assert torch.equal(c.t, c.v.amax(1))
    assert all(len(set(r)) == kk for r in c.i.tolist())  # no training row twice


@pytest.mark.parametrize("dtype", [torch.int32, torch.float32])
def test_rows_and_columns_keep_the_kk_smallest(dtype):
    kk = 12
    blocks = _blocks(203, [300, 97, 5, 410], seed=0, dtype=dtype)  # widths: tails, a block narrower than kk
    rows = Candidates(203, kk, dtype, "cpu")
    cols = Candidates(203, kk, dtype, "cpu")
    offset = 0
    for K in blocks:
        rows.add_rows(K, 0, offset)
        cols.add_cols(K.T.contiguous(), 0, offset)  # the same keys, as columns of the transposed block
        offset += K.shape[1]
    K_all = torch.cat(blocks, 1)
    _check(rows, K_all, kk)
    _check(cols, K_all, kk)


def test_queries_without_survivors_and_chunked_merges(monkeypatch):
    kk = 10
    K1, K2 = _blocks(150, [200, 200], seed=1)
    K2[:100] = 10**6  # the first 100 queries have no key below their threshold in the second block
    monkeypatch.setattr(cand_module, "_MERGE_BYTES", 2000)  # merges in chunks of a few queries
    c = Candidates(160, kk, torch.int32, "cpu")
    c.add_rows(K1, 10, 0)  # queries 10..160 of 160
    c.add_rows(K2, 10, 200)
    sub = Candidates(150, kk, torch.int32, "cpu")
    sub.v, sub.i, sub.t = c.v[10:], c.i[10:], c.t[10:]
    _check(sub, torch.cat([K1, K2], 1), kk)
    assert bool((c.t[:10] == torch.iinfo(torch.int32).max).all()) and bool((c.i[:10] == -1).all())  # untouched
