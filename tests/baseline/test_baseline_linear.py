"""Linear SVM and softmax: analytic gradients, initial losses, optimisers, search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labeller.baseline.linear import OPTIMIZERS, LinearClassifier
from labeller.baseline.losses import linear_loss, reference_loss, softmax_loss, svm_loss
from labeller.baseline.search import search_hyperparameters, search_space
from labeller.core.errors import BadInput

LOSS_FNS = {"svm": svm_loss, "softmax": softmax_loss}


def _problem(seed=0, N=30, D=8, C=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=g, dtype=dtype)
    y = torch.randint(C, (N,), generator=g)
    W = torch.randn(D, C, generator=g, dtype=dtype)
    b = torch.randn(C, generator=g, dtype=dtype)
    return X, y, W, b


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("reg_type", ["l2", "l1"])
@pytest.mark.parametrize("with_b", [False, True])
def test_analytic_gradient_matches_autograd_and_finite_differences(loss, reg_type, with_b):
    X, y, W, b = _problem()
    W.requires_grad_()
    b = b.requires_grad_() if with_b else None
    reg = 0.05
    # finite differences (float64)
    inputs = (W, b) if with_b else (W,)
    assert torch.autograd.gradcheck(
        lambda *p: linear_loss(p[0], X, y, reg, p[1] if with_b else None, loss, reg_type), inputs
    )
    # autograd of a plain reference implementation
    ref = reference_loss(W, X, y, reg, b, loss, reg_type)
    grads = torch.autograd.grad(ref, inputs)
    val, dW, db = LOSS_FNS[loss](W.detach(), X, y, reg, None if b is None else b.detach(), reg_type)
    assert float(val) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert torch.allclose(dW, grads[0], atol=1e-12)
    if with_b:
        assert torch.allclose(db, grads[1], atol=1e-12)


def test_initial_losses_and_regulariser():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 3073, generator=g)
    y = torch.randint(10, (500,), generator=g)
    W = 1e-4 * torch.randn(3073, 10, generator=g)
    svm, _, _ = svm_loss(W, X, y, 0.0)
    soft, _, _ = softmax_loss(W, X, y, 0.0)
    assert float(svm) == pytest.approx(9.0, abs=0.05)  # C - 1 margins of 1
    assert float(soft) == pytest.approx(math.log(10), abs=0.01)
    # with W = ones the penalty is reg * sum(W^2), no 1/2
    ones = torch.ones(20, 10)
    Xs, ys = torch.zeros(3, 20), torch.zeros(3, dtype=torch.int64)
    for fn in (svm_loss, softmax_loss):
        l0, _, _ = fn(ones, Xs, ys, 0.0)
        l1, dW, _ = fn(ones, Xs, ys, 0.3)
        assert float(l1 - l0) == pytest.approx(0.3 * 200)
        assert torch.allclose(dW, torch.full_like(dW, 0.6))  # d/dW reg*W^2 = 2 reg W
        l1, _, _ = fn(ones, Xs, ys, 0.3, reg_type="l1")
        assert float(l1 - l0) == pytest.approx(0.3 * 200)


def _separable(seed=0, n=240, D=6, C=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    centers = np.eye(D)[:C] * 3.0
    X = centers[y] + rng.normal(0, 0.4, (n, D))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


TOY_LR = {"sgd": 0.3, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.3, "rmsprop": 0.01, "adam": 0.02, "adamw": 0.02,
          "lbfgs": 1.0}


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains_a_separable_problem(loss, optimizer):
    X, y = _separable()
    m = LinearClassifier(loss=loss, lr=TOY_LR[optimizer], reg=1e-4, optimizer=optimizer, num_iters=300,
                         batch_size=40, seed=0, init_std=1e-3)
    assert m.fit(X, y) is m
    h = np.asarray(m.loss_history_)
    assert len(h) == 300 and not m.diverged_
    assert h[-30:].mean() < 0.5 * h[:30].mean()
    assert m.score(X, y) == 1.0
    assert m.W_.shape == (7, 4) and m.b_ is None  # bias trick: D + 1 rows


def test_separate_bias_and_l1():
    X, y = _separable(1)
    X = X + 5.0  # an offset only a bias can absorb well
    m = LinearClassifier(loss="softmax", lr=0.02, reg=1e-4, reg_type="l1", optimizer="adam", bias="separate",
                         num_iters=400, batch_size=40).fit(X, y)
    assert m.W_.shape == (6, 4) and m.b_.shape == (4,)
    assert m.score(X, y) == 1.0
    with pytest.raises(BadInput, match="adamw's decoupled weight decay is an L2 penalty"):
        LinearClassifier(optimizer="adamw", reg_type="l1").fit(X, y)


def test_adamw_decay_is_decoupled():
    # with zero data gradient (all-zero features), AdamW only shrinks W by lr * 2 reg per step
    X = torch.zeros(10, 3)
    y = torch.zeros(10, dtype=torch.int64)
    m = LinearClassifier(loss="svm", lr=0.1, reg=0.5, optimizer="adamw", num_iters=1, bias="separate",
                         init_std=1.0, seed=0)
    g = torch.Generator().manual_seed(0)
    W0 = torch.randn((3, 2), generator=g)
    m.num_classes = 2
    m.fit(X, y)
    # W's data gradient is X^T dS = 0, and Adam's step for a zero gradient is 0
    assert torch.allclose(m.W_, W0 * (1 - 0.1 * 2 * 0.5), atol=1e-6)


def test_search_space_and_search():
    grid = search_space("grid", 9, (1e-4, 1e-2), (1e-3, 1e-1))
    assert len(grid) == 9 and sorted({a for a, _ in grid}) == pytest.approx([1e-4, 1e-3, 1e-2])
    rnd = search_space("random", 5, (1e-4, 1e-2), (1e-3, 1e-1), seed=2)
    assert len(rnd) == 5 and rnd == search_space("random", 5, (1e-4, 1e-2), (1e-3, 1e-1), seed=2)
    assert all(1e-4 <= a <= 1e-2 and 1e-3 <= r <= 1e-1 for a, r in rnd)
    assert search_space("grid", 4, (1e-3, 1e-3), (0.0, 0.0)) == [(1e-3, 0.0)]
    assert [r for _, r in search_space("grid", 3, (1e-3, 1e-3), (1e-4, 1e-2))] == pytest.approx([1e-4, 1e-3, 1e-2])
    X, y = _separable(2)
    res = search_hyperparameters("svm", X[:160], y[:160], X[160:], y[160:], optimizer="sgd", search="grid",
                                 budget=4, num_iters=100, lr_range=(1e-4, 0.3), reg_range=(1e-5, 1e-3), batch_size=40)
    assert len(res.trials) == 4
    assert res.best.val_accuracy == max(t.val_accuracy for t in res.trials) == 1.0
    assert res.best.lr > 1e-4  # the tiny step cannot get there in 100 iterations


def test_divergence_is_flagged():
    X, y = _separable(3)
    m = LinearClassifier(loss="softmax", lr=1e30, reg=1e10, optimizer="sgd", num_iters=300, batch_size=40).fit(X, y)
    assert m.diverged_ and len(m.loss_history_) < 300


def test_lbfgs_is_full_batch_and_deterministic():
    X, y = _separable(2)
    a = LinearClassifier(loss="softmax", lr=1.0, reg=1e-3, optimizer="lbfgs", num_iters=25, seed=0).fit(X, y)
    b = LinearClassifier(loss="softmax", lr=1.0, reg=1e-3, optimizer="lbfgs", num_iters=25, seed=0,
                         batch_size=7).fit(X, y)  # the batch size plays no part
    assert torch.equal(a.W_, b.W_) and a.loss_history_ == b.loss_history_
    assert len(a.passes_) == 25 and a.passes_[0] >= 1 and a.passes_ == sorted(a.passes_)
    # the recorded loss is the full-batch objective (data + reg * sum W^2) before each step
    from labeller.baseline.losses import reference_loss

    W0 = 1e-4 * torch.randn((7, 4), generator=torch.Generator().manual_seed(0))
    Xb = torch.cat([X, torch.ones(len(X), 1)], 1)
    assert a.loss_history_[0] == pytest.approx(float(reference_loss(W0, Xb, y, 1e-3, loss="softmax")), rel=1e-5)
    assert a.loss_history_[-1] < 0.3 * a.loss_history_[0] and a.score(X, y) == 1.0


def test_bias_trick_without_the_column_matches_the_column():
    """The bias row is folded into the scores instead of appending a column of ones:
    the same loss and gradient as with the column (and it is penalised like W)."""
    from labeller.baseline.linear import _objective
    from labeller.baseline.losses import LOSS_FNS

    X, y = _separable(3)
    W = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    Xd = X.double()
    for loss in ("svm", "softmax"):
        for reg_type in ("l2", "l1"):
            l0, g0, _ = LOSS_FNS[loss](W, torch.cat([Xd, torch.ones(len(Xd), 1, dtype=torch.float64)], 1), y,
                                       0.1, None, reg_type)
            l1, g1, b1 = _objective(LOSS_FNS[loss], W, None, Xd, y, 0.1, reg_type)
            assert b1 is None and float(l0) == pytest.approx(float(l1), rel=1e-12)
            assert torch.allclose(g0, g1, rtol=1e-12, atol=1e-14)
