"""kNN: distances, agreement with a naive reference and scikit-learn, the tie rule, CV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeller.baseline.knn import (
    KNNClassifier,
    cross_validate_k,
    knn_search,
    majority_vote,
    pairwise_sq_dists,
)
from labeller.baseline.knn_int8 import int8_available


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
def blobs():
    rng = np.random.default_rng(0)
    C, D = 5, 40
    centers = rng.normal(0, 1.0, (C, D))
    ytr = rng.integers(0, C, 300)
    yte = rng.integers(0, C, 80)
    Xtr = centers[ytr] + rng.normal(0, 1.2, (300, D))
    Xte = centers[yte] + rng.normal(0, 1.2, (80, D))
    return Xtr, ytr, Xte, yte, C


def test_distances_match_direct_formula():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(37, 11)), rng.normal(size=(53, 11))
    want = ((A[:, None] - B[None]) ** 2).sum(-1)
    got = pairwise_sq_dists(torch.tensor(A), torch.tensor(B), chunk_bytes=1000).numpy()
    assert np.allclose(got, want, atol=1e-10)
    d, i = knn_search(torch.tensor(A), torch.tensor(B), 7, chunk_bytes=2000)
    assert np.array_equal(i.numpy(), np.argsort(want, 1)[:, :7])
    assert np.allclose(d.numpy(), np.sort(want, 1)[:, :7])


def test_chunking_and_column_blocks_do_not_change_the_result(monkeypatch):
    import labeller.baseline.knn as knn

    rng = np.random.default_rng(2)
    A, B = torch.tensor(rng.normal(size=(50, 8))), torch.tensor(rng.normal(size=(300, 8)))
    d0, i0 = knn_search(A, B, 10)
    monkeypatch.setattr(knn, "_COL_BLOCK", 7)  # many blocks, some narrower than k
    d1, i1 = knn_search(A, B, 10, chunk_bytes=64)
    assert torch.equal(i0, i1) and torch.allclose(d0, d1)
    monkeypatch.setattr(knn, "_USE_NUMPY_GEMM", False)  # torch's addmm instead of numpy's BLAS
    d2, i2 = knn_search(A, B, 10, chunk_bytes=64)
    assert torch.equal(i0, i2) and torch.allclose(d0, d2)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_agrees_with_naive_reference_and_sklearn(blobs, k):
    from sklearn.neighbors import KNeighborsClassifier

    Xtr, ytr, Xte, yte, C = blobs
    naive = _naive_predict(Xtr, ytr, Xte, k, C)
    ours64 = KNNClassifier(k=k, dtype=torch.float64).fit(Xtr, ytr).predict(Xte).numpy()
    ours32 = KNNClassifier(k=k).fit(Xtr, ytr).predict(Xte).numpy()
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(Xtr, ytr).predict(Xte)
    assert np.array_equal(ours64, naive)
    assert np.array_equal(ours32, naive)
    # scikit-learn breaks vote ties the same way (argmax of counts: the smallest label)
    assert np.array_equal(sk, naive)
    _, idx = KNNClassifier(k=k, dtype=torch.float64).fit(Xtr, ytr).kneighbors(Xte)
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


def test_estimator_api(blobs):
    Xtr, ytr, Xte, yte, C = blobs
    knn = KNNClassifier(k=5)
    assert knn.fit(Xtr, ytr) is knn
    assert knn.X_train_.shape == (300, 40) and knn.num_classes_ == C and knn.n_features_in_ == 40
    acc = knn.score(Xte, yte)
    assert 0.0 <= acc <= 1.0 and acc > 0.6
    # k larger than the training set is clipped to it
    assert KNNClassifier(k=1000).fit(Xtr[:4], ytr[:4]).predict(Xte[:3]).shape == (3,)


def test_cross_validation_chooses_k_and_skips_large_k():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 10)
    X = rng.normal(0, 0.3, (40, 6)) + np.eye(6)[y] * 3
    best, accs = cross_validate_k(X, y, k_choices=(1, 3, 5, 8, 10, 12, 15, 20, 50, 100), num_folds=5, seed=0)
    assert set(accs) == {1, 3, 5, 8, 10, 12, 15, 20}  # folds train on 32 images: 50, 100 skipped
    assert accs[1] == 1.0 and best == 1  # separable: ties go to the smaller k
    # CV accuracy equals a by-hand fold loop for one k
    perm = np.random.default_rng(0).permutation(40)
    folds = np.array_split(perm, 5)
    hand = []
    for f in range(5):
        tr = np.concatenate([folds[g] for g in range(5) if g != f])
        hand.append(KNNClassifier(k=20).fit(X[tr], y[tr]).score(X[folds[f]], y[folds[f]]))
    assert accs[20] == pytest.approx(np.mean(hand))


# ------------------------------------------------------------------ exact int8 path
def _exact_reference(X, Q, k):
    """(dist, idx) by exact float64 arithmetic; ties in distance to the smaller index."""
    Xd, Qd = X.double(), Q.double()
    d = ((Qd * Qd).sum(1, keepdim=True) + (Xd * Xd).sum(1) - 2 * Qd @ Xd.T).round().long()
    key = d * X.shape[0] + torch.arange(X.shape[0])
    idx = torch.sort(key, 1).values[:, :k] % X.shape[0]
    return d.gather(1, idx), idx


int8 = pytest.mark.skipif(not int8_available(), reason="torch's oneDNN int8 linear op is not available here")


@int8
def test_int8_search_is_exact_with_ties_and_extremes():
    from labeller.baseline.knn_int8 import Int8Index

    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 256, (700, 3072), dtype=torch.uint8, generator=g)
    Q = torch.randint(0, 256, (60, 3072), dtype=torch.uint8, generator=g)
    X[10:25] = X[3]  # 16 identical rows: more exact ties than k + 8 candidates
    Q[0] = X[3]
    Q[1] = 255
    X[40] = 255  # the largest products: saturation would show here
    X[41] = 0
    Q[2] = 0
    Q[3] = X[50]
    Q[3, :5] ^= 1  # a near-duplicate: distance 5
    index = Int8Index(X, col_block=256, query_rows=16)  # several blocks and query chunks
    d, i = index.search(Q, 10)
    rd, ri = _exact_reference(X, Q, 10)
    assert torch.equal(i, ri)
    assert float((d - rd).abs().max()) <= index.key_error
    assert torch.equal(d[0], rd[0].double())  # the ties needed the exact re-rank
    assert i[0].tolist() == [3, *range(10, 19)]  # the ties resolved by index
    assert int(rd[3, 0]) == 5 and int(i[3, 0]) == 50 and abs(float(d[3, 0]) - 5) <= index.key_error


@int8
def test_int8_fallback_and_estimator_agree_with_float(monkeypatch):
    from labeller.baseline.knn_int8 import Int8Index

    g = torch.Generator().manual_seed(1)
    X = torch.randint(0, 256, (400, 3072), dtype=torch.uint8, generator=g)
    Q = torch.randint(0, 256, (30, 3072), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (400,), generator=g)
    index = Int8Index(X)
    index.key_error = 1e12  # every query takes the exhaustive float64 path
    d, i = index.search(Q, 7)
    rd, ri = _exact_reference(X, Q, 7)
    assert torch.equal(i, ri) and torch.equal(d, rd.double())
    # the estimator on raw pixels agrees with the float32 one on preprocessed features
    f = lambda a: (a.float() / 255 - 0.5)  # noqa: E731 - any common scale and shift
    p8 = KNNClassifier(k=5, method="int8").fit(X, y).predict(Q)
    p32 = KNNClassifier(k=5).fit(f(X), y).predict(f(Q))
    assert torch.equal(p8, p32)
    best8, acc8 = cross_validate_k(X, y, (1, 3, 5), num_folds=4, method="int8")
    best32, acc32 = cross_validate_k(f(X), y, (1, 3, 5), num_folds=4)
    assert best8 == best32 and acc8 == acc32
