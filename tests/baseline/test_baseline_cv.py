"""Cross-validation of k: one distance pass equals a plain loop over folds; folds grouped by scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeller.baseline.cv import cross_validate_k, make_folds
from labeller.baseline.knn import KNNClassifier
from labeller.baseline.knn_int8 import int8_available
from labeller.core.errors import BadInput

PRECISIONS = [p for p in ("int8", "float32", "float64", "bfloat16") if p != "int8" or int8_available()]
KS = (1, 3, 5, 8, 20, 100)


def _fold_loop(X, y, fold, ks):
    """The reference: per fold, a float64 search of its training set (original order)."""
    accs = {k: [] for k in ks}
    for f in np.unique(fold):
        tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        m = KNNClassifier(k=max(ks), precision="float64").fit(X[tr], y[tr])
        for k in ks:
            accs[k].append(float((m.predict(X[va], k) == y[va]).double().mean()))
    return {k: float(np.mean(v)) for k, v in accs.items()}


@pytest.fixture
def pixels_with_ties():
    g = torch.Generator().manual_seed(2)
    X = torch.randint(0, 256, (600, 3072), dtype=torch.uint8, generator=g)
    X[100:130] = X[7]  # 31 identical images with random labels: the tie rule decides votes
    y = torch.randint(0, 10, (600,), generator=g)
    return X, y


@pytest.mark.parametrize("precision", PRECISIONS)
def test_one_pass_equals_a_loop_over_folds(pixels_with_ties, precision):
    X, y = pixels_with_ties
    cv = cross_validate_k(X, y, KS, num_folds=5, seed=3, precision=precision)
    fold, _ = make_folds(y.numpy(), None, 5, 3)
    want = _fold_loop(X, y, fold, KS)
    assert cv.accuracy_by_k == want  # identical: same neighbours, same votes
    assert cv.best_k == max(KS, key=lambda k: (want[k], -k))
    assert cv.precision == precision and cv.fold_sizes == [120] * 5
    assert cv.grouping.startswith("random folds (no scene per image given)")


def test_one_pass_on_features_and_skipped_k():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 10)
    X = rng.normal(0, 0.3, (40, 6)) + np.eye(6)[y] * 3
    cv = cross_validate_k(X, y, k_choices=(1, 3, 5, 8, 10, 12, 15, 20, 50, 100), num_folds=5, seed=0)
    assert set(cv.accuracy_by_k) == {1, 3, 5, 8, 10, 12, 15, 20}  # folds train on 32 images: 50, 100 skipped
    assert cv.accuracy_by_k[1] == 1.0 and cv.best_k == 1  # separable: ties go to the smaller k
    fold, _ = make_folds(y, None, 5, 0)
    want = _fold_loop(torch.tensor(X), torch.tensor(y), fold, (1, 20))
    assert cv.accuracy_by_k[20] == pytest.approx(want[20])
    with pytest.raises(BadInput, match=r"^--k-choices: no k in \[50\] fits a fold's training set of 32 images$"):
        cross_validate_k(X, y, (50,), num_folds=5)
    with pytest.raises(BadInput, match=r"^--folds: 5-fold cross-validation needs at least 5 training images \(have 4\)$"):
        cross_validate_k(X[:4], y[:4], (1,), num_folds=5)


def _scenes(n_scenes=40, frames=12, seed=0):
    """Scenes of near-identical frames (a base image plus a little noise), 4 classes, a
    scene's class at random: across scenes there is nothing to learn, within a scene the
    nearest frame always has the right label."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    labels = np.tile(np.arange(4), n_scenes // 4)
    for s in range(n_scenes):
        base = rng.integers(0, 256, 3072)
        X.append(np.clip(base + rng.integers(-3, 4, (frames, 3072)), 0, 255).astype(np.uint8))
        y += [labels[s]] * frames
        g += [s] * frames
    return torch.from_numpy(np.concatenate(X)), torch.tensor(y), np.array(g)


def test_random_folds_leak_and_scene_folds_do_not():
    X, y, groups = _scenes()
    leaky = cross_validate_k(X, y, (1, 3, 10), num_folds=5, seed=0)
    assert leaky.accuracy_by_k == {1: 1.0, 3: 1.0, 10: 1.0} and leaky.best_k == 1  # what the issue saw
    fair = cross_validate_k(X, y, (1, 3, 10), num_folds=5, seed=0, groups=groups)
    assert fair.grouping.startswith("grouped by scene: 40 scenes in 5 folds, stratified by class")
    assert max(fair.accuracy_by_k.values()) < 0.6  # chance is 0.25: no leak left
    fold, _ = make_folds(y.numpy(), groups, 5, 0)
    for s in range(40):  # every scene lies in one fold
        assert len(np.unique(fold[groups == s])) == 1
    assert fair.accuracy_by_k == pytest.approx(_fold_loop(X, y, fold, (1, 3, 10)))


def test_grouping_falls_back_and_says_why():
    y = np.repeat(np.arange(4), 6)
    one_scene_per_class = y.copy()
    fold, why = make_folds(y, one_scene_per_class, 3, 0)
    assert why.startswith("random folds (4 class(es) have a single training scene")
    assert sorted(np.bincount(fold)) == [8, 8, 8]
    _, why = make_folds(y, np.arange(24) % 2, 3, 0)
    assert why.startswith("random folds (only 2 scenes for 3 folds)")
    _, why = make_folds(y, None, 3, 0)
    assert why.startswith("random folds (no scene per image given)")


@pytest.mark.parametrize("precision", ["int8", "float32"] if int8_available() else ["float32"])
def test_one_pass_with_thresholds_equals_a_loop_over_folds(precision, monkeypatch):
    """Folds large enough for the threshold path (group minima, uneven tails, survivors
    merged row- and column-wise, several blocks per pair of folds), with duplicates."""
    from labeller.baseline import cv as cv_module

    g = torch.Generator().manual_seed(5)
    X = torch.randint(0, 256, (3003, 40), dtype=torch.uint8, generator=g)
    X[500:540] = X[3]  # 41 identical images: ties at every threshold
    y = torch.randint(0, 7, (3003,), generator=g)
    ks = (1, 3, 8, 20)
    # several blocks per pair of folds (of 600 and 601), enough groups for the first
    # thresholds, and blocks whose sides are not multiples of the group size
    monkeypatch.setattr(cv_module, "CV_COL_BLOCK", 264)
    monkeypatch.setattr(cv_module, "CV_MAX_ROWS", 232)
    cv = cross_validate_k(X, y, ks, num_folds=5, seed=1, precision=precision)
    fold, _ = make_folds(y.numpy(), None, 5, 1)
    assert cv.accuracy_by_k == _fold_loop(X, y, fold, ks)
