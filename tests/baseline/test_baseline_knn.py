"""kNN: every precision against an exact float64 reference, the tie rules, the exact
re-check and its fallback, memory-bounded blocks, the precision choice, scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import labeller.baseline.neighbours as nb
from labeller.baseline.knn import KNNClassifier, knn_search, majority_vote, pairwise_sq_dists
from labeller.baseline.knn_int8 import int8_available, int_mm
from labeller.baseline.neighbours import Distances, search
from labeller.baseline.precision import choose_precision
from labeller.core.errors import BadInput

PROPS_SAMPLES = (Path(__file__).resolve().parents[3] / "shared" / "data" / "props_samples"
                 / "props_samples_32x32.npz")
CPU = torch.device("cpu")
# every precision this machine can run (int8 only where its GEMM passed the self-test)
PRECISIONS = [p for p in ("int8", "float32", "float64", "float16", "bfloat16") if p != "int8" or int8_available()]


def exact_reference(X: torch.Tensor, Q: torch.Tensor, k: int):
    """(dist, idx) of uint8 rows by float64 arithmetic; equal distances to the smaller index."""
    Xd, Qd = X.double(), Q.double()
    d = ((Qd * Qd).sum(1, keepdim=True) + (Xd * Xd).sum(1) - 2 * Qd @ Xd.T).round().long()
    key = d * X.shape[0] + torch.arange(X.shape[0])
    idx = torch.sort(key, 1).values[:, :k] % X.shape[0]
    return d.gather(1, idx), idx


def _naive_predict(Xtr, ytr, Xte, k, C):
    """Two loops, float64, as the course's first version: the reference."""
    out = []
    for q in Xte:
        d = np.array([((q - x) ** 2).sum() for x in Xtr])
        nn = np.argsort(d, kind="stable")[:k]
        counts = np.bincount(ytr[nn], minlength=C)
        out.append(int(np.flatnonzero(counts == counts.max())[0]))  # smallest label on ties
    return np.array(out)


@pytest.fixture
def hard_pixels():
    """Random uint8 images with the awkward cases: 16 identical rows (more exact ties
    than k + EXTRA candidates), a query equal to them, all-255 and all-0 rows and
    queries (the int8 extremes), a near-duplicate at distance 5."""
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 256, (700, 3072), dtype=torch.uint8, generator=g)
    Q = torch.randint(0, 256, (60, 3072), dtype=torch.uint8, generator=g)
    X[10:25] = X[3]
    Q[0] = X[3]
    Q[1] = 255
    X[40] = 255
    X[41] = 0
    Q[2] = 0
    Q[3] = X[50]
    Q[3, :5] ^= 1
    y = torch.randint(0, 10, (700,), generator=g)
    return X, Q, y


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    C, D = 5, 40
    centers = rng.normal(0, 1.0, (C, D))
    ytr = rng.integers(0, C, 300)
    yte = rng.integers(0, C, 80)
    Xtr = centers[ytr] + rng.normal(0, 1.2, (300, D))
    Xte = centers[yte] + rng.normal(0, 1.2, (80, D))
    return Xtr, ytr, Xte, yte, C


# ------------------------------------------------------------- exact on 8-bit pixels
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_is_exact_on_random_pixels(hard_pixels, precision):
    X, Q, y = hard_pixels
    rd, ri = exact_reference(X, Q, 10)
    d, i = search(Distances(X, precision, CPU), Q, 10)
    assert torch.equal(i, ri) and torch.equal(d, rd)
    assert i[0].tolist() == [3, *range(10, 19)]  # the 16 ties resolved by index
    assert int(d[3, 0]) == 5 and int(i[3, 0]) == 50
    # predictions identical to the float64 reference vote, for several k
    for k in (1, 5, 12):
        want = majority_vote(y[exact_reference(X, Q, k)[1]], 10)
        assert torch.equal(KNNClassifier(k=k, precision=precision).fit(X, y).predict(Q), want)


@pytest.mark.skipif(not PROPS_SAMPLES.is_file(), reason="../shared/data/props_samples not found")
@pytest.mark.parametrize("precision", PRECISIONS + ["auto"])
def test_every_precision_is_exact_on_real_props_crops(precision):
    """The 110 real crops: 8 per class as training, the other 3 as queries, and every
    crop against all the others (real neighbours are close: the re-check matters)."""
    d = np.load(PROPS_SAMPLES)
    X = torch.from_numpy(d["data"].reshape(len(d["data"]), -1).copy())
    y = torch.from_numpy(d["labels"])
    tr = torch.cat([torch.nonzero(y == c).flatten()[:8] for c in range(10)])
    te = torch.cat([torch.nonzero(y == c).flatten()[8:] for c in range(10)])
    for Xt, yt, Q in ((X[tr], y[tr], X[te]), (X, y, X)):
        rd, ri = exact_reference(Xt, Q, 7)
        m = KNNClassifier(k=7, precision=precision).fit(Xt, yt)
        dist, idx = m.kneighbors(Q)
        assert torch.equal(idx, ri) and torch.equal(dist, rd)
        for k in (1, 3, 7):
            assert torch.equal(m.predict(Q, k), majority_vote(yt[ri[:, :k]], 10))


def test_fallback_search_when_the_candidates_cannot_be_trusted(hard_pixels, monkeypatch):
    X, Q, _ = hard_pixels
    rd, ri = exact_reference(X, Q, 7)
    calls = []
    real = nb.exhaustive

    def counting(*a, **kw):
        calls.append(a[1].shape[0])
        return real(*a, **kw)

    monkeypatch.setattr(nb, "exhaustive", counting)
    # an error bound so large that no candidate set can be trusted: every query falls back
    monkeypatch.setattr(Distances, "error_bound", lambda self, q: torch.full((len(q),), 1e12, dtype=torch.float64))
    d, i = search(Distances(X, "float32", CPU), Q, 7)
    assert torch.equal(i, ri) and torch.equal(d, rd) and sum(calls) == len(Q)
    monkeypatch.undo()
    # exact keys (float64): k = 3 keeps 11 candidates, fewer than the 16 rows at distance
    # 0 from query 0, so that query (and only it) needs the exhaustive search
    calls.clear()
    monkeypatch.setattr(nb, "exhaustive", counting)
    d, i = search(Distances(X, "float64", CPU), Q, 3)
    assert torch.equal(i, exact_reference(X, Q, 3)[1]) and sum(calls) == 1
    assert i[0].tolist() == [3, 10, 11]


def test_half_precision_error_bound_holds(hard_pixels):
    X, Q, _ = hard_pixels
    for p in ("float32", "float16", "bfloat16"):
        dist = Distances(X, p, CPU)
        q = dist.prepare(Q)
        K = dist.keys(q, 0, dist.m).double()
        exact = exact_reference(X, Q, dist.m)
        want = torch.empty_like(K)
        want.scatter_(1, exact[1], exact[0].double())
        err = (K - want).abs().max(1).values
        bound = dist.error_bound(q)
        assert bound is not None and bool((err <= bound).all()), p


def test_small_blocks_and_little_memory_change_nothing(hard_pixels, monkeypatch):
    import labeller.baseline.memory as mem

    X, Q, _ = hard_pixels
    rd, ri = exact_reference(X, Q, 10)
    monkeypatch.setattr(nb, "COL_BLOCK", 96)  # many blocks, some narrower than k + EXTRA
    monkeypatch.setattr(mem, "free_bytes", lambda device="cpu": 1 << 20)  # 1 MiB "free"
    assert mem.block_rows(96 * 24, "cpu", minimum=1) == (1 << 20) // 8 // (96 * 24)
    for p in PRECISIONS:
        d, i = search(Distances(X, p, CPU), Q, 10)
        assert torch.equal(i, ri) and torch.equal(d, rd), p


def test_block_rows_follow_free_memory(monkeypatch):
    import labeller.baseline.memory as mem

    monkeypatch.setattr(mem, "free_bytes", lambda device="cpu": 8 << 30)
    big = mem.block_rows(4096 * 24, "cpu")
    monkeypatch.setattr(mem, "free_bytes", lambda device="cpu": 64 << 20)
    small = mem.block_rows(4096 * 24, "cpu")
    assert big == mem.MAX_BLOCK_BYTES // (4096 * 24) and small == (64 << 20) // 8 // (4096 * 24) < big
    assert mem.block_rows(1 << 40, "cpu", minimum=3) == 3  # never below the minimum
    monkeypatch.undo()
    assert mem.free_bytes("cpu") > 0


@pytest.mark.skipif(not int8_available(), reason="no exact int8 GEMM here")
def test_int8_gemm_is_exact_at_the_extremes():
    a = torch.full((33, 3080), -128, dtype=torch.int8)
    a[1] = 127
    b = torch.full((3080, 9), -128, dtype=torch.int8)
    b[:, 1] = 127
    want = (a.to(torch.int64) @ b.to(torch.int64))
    assert torch.equal(int_mm(a, b).to(torch.int64), want)
    assert int(want.abs().max()) == 3080 * 128 * 128


# ------------------------------------------------------------------ the choice
def test_auto_chooses_an_exact_path_and_says_why():
    c = choose_precision("auto", True, CPU)
    assert c.precision in ("int8", "float32") and c.probe_ms and c.precision == min(c.probe_ms, key=c.probe_ms.get)
    assert c.reason.startswith("auto: 8-bit pixels; fastest exact path in a timed probe")
    if int8_available():
        assert "int8" in c.probe_ms
    f = choose_precision("auto", False, CPU)
    assert (f.precision, f.reason) == ("float32", "auto: the features are not 8-bit pixels, so float32 GEMM")
    assert choose_precision("float64", True, CPU).reason == "given by --knn-precision"


def test_bad_precisions_are_clear_errors(blobs):
    Xtr, ytr, *_ = blobs
    with pytest.raises(BadInput, match=r"^--knn-precision: int8 needs 8-bit pixel data \(uint8\); use float32 or float64$"):
        KNNClassifier(precision="int8").fit(Xtr, ytr)
    with pytest.raises(BadInput, match=r"^--knn-precision: 'int4' \(expected one of auto, int8, float32"):
        KNNClassifier(precision="int4").fit(Xtr, ytr)
    with pytest.raises(BadInput, match=r"^--knn-precision: bfloat16 needs 8-bit pixel data"):
        choose_precision("bfloat16", False, CPU)


# ------------------------------------------------------------ floating features
def test_distances_match_direct_formula():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(37, 11)), rng.normal(size=(53, 11))
    want = ((A[:, None] - B[None]) ** 2).sum(-1)
    got = pairwise_sq_dists(torch.tensor(A), torch.tensor(B), chunk_bytes=1000).numpy()
    assert np.allclose(got, want, atol=1e-10)
    d, i = knn_search(torch.tensor(A), torch.tensor(B), 7)
    assert np.array_equal(i.numpy(), np.argsort(want, 1)[:, :7])
    assert np.allclose(d.numpy(), np.sort(want, 1)[:, :7])


@pytest.mark.parametrize("k", [1, 3, 8])
def test_agrees_with_naive_reference_and_sklearn(blobs, k):
    from sklearn.neighbors import KNeighborsClassifier

    Xtr, ytr, Xte, yte, C = blobs
    naive = _naive_predict(Xtr, ytr, Xte, k, C)
    ours64 = KNNClassifier(k=k, precision="float64").fit(Xtr, ytr).predict(Xte).numpy()
    ours32 = KNNClassifier(k=k).fit(Xtr.astype(np.float32), ytr).predict(Xte.astype(np.float32)).numpy()
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(Xtr, ytr).predict(Xte)
    assert np.array_equal(ours64, naive)
    assert np.array_equal(ours32, naive)
    # scikit-learn breaks vote ties the same way (argmax of counts: the smallest label)
    assert np.array_equal(sk, naive)
    _, idx = KNNClassifier(k=k, precision="float64").fit(Xtr, ytr).kneighbors(Xte)
    sk_idx = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(Xtr, ytr).kneighbors(Xte, return_distance=False)
    assert np.array_equal(idx.numpy(), sk_idx)


def test_tie_rule_smallest_label():
    # two of label 3 and two of label 1 among the 4 nearest: the vote goes to 1
    labels = torch.tensor([[3, 1, 3, 1], [2, 2, 0, 0], [5, 5, 5, 4], [4, 0, 9, 7]])
    assert majority_vote(labels, 10).tolist() == [1, 0, 5, 0]
    # the same through the estimator on a hand-made 1-D case
    Xtr = np.array([[-1.0], [1.0], [-2.0], [2.0]])
    ytr = np.array([3, 1, 3, 1])
    knn = KNNClassifier(k=4).fit(Xtr, ytr)
    assert knn.predict(np.array([[0.0]])).tolist() == [1]
    knn = KNNClassifier(k=2).fit(Xtr, np.array([7, 2, 7, 2]))
    assert knn.predict(np.array([[0.0]])).tolist() == [2]


def test_estimator_api(blobs, hard_pixels):
    Xtr, ytr, Xte, yte, C = blobs
    knn = KNNClassifier(k=5)
    assert knn.fit(Xtr, ytr) is knn
    assert knn.X_train_.shape == (300, 40) and knn.num_classes_ == C and knn.n_features_in_ == 40
    assert knn.precision_ == "float32"  # 'auto' on features that are not 8-bit pixels
    acc = knn.score(Xte, yte)
    assert 0.0 <= acc <= 1.0 and acc > 0.6
    # k larger than the training set is clipped to it
    assert KNNClassifier(k=1000).fit(Xtr[:4], ytr[:4]).predict(Xte[:3]).shape == (3,)
    X, Q, y = hard_pixels
    m = KNNClassifier(k=3).fit(X.view(700, 32, 32, 3), y)  # images are flattened
    assert m.n_features_in_ == 3072 and m.precision_reason_.startswith("auto: 8-bit pixels")
    with pytest.raises(ValueError, match="same kind"):
        m.predict(Q.float())
