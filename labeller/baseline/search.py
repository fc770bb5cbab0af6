"""The learning-rate / regularisation search of the linear models (grid or random).

`search_space` lists the (lr, reg) points; `search_hyperparameters` trains one
`LinearClassifier` per point and keeps the best by validation accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from labeller.baseline.linear import LR_RANGES, REG_RANGE, LinearClassifier
from labeller.core.errors import BadInput
from labeller.core.progress import bar


@dataclass
class Trial:
    """One point of the hyperparameter search (accuracies are fractions in [0, 1])."""

    lr: float
    reg: float
    train_accuracy: float
    val_accuracy: float
    final_loss: float
    diverged: bool = False


@dataclass
class SearchResult:
    best: Trial
    trials: list[Trial] = field(default_factory=list)


def search_space(search: str, budget: int, lr_range: tuple[float, float], reg_range: tuple[float, float],
                 seed: int = 0) -> list[tuple[float, float]]:
    """(lr, reg) pairs to try: a log-spaced grid of at most `budget` points, or `budget`
    log-uniform random draws (seeded). A range (v, v) fixes that axis at v (v may be 0
    for reg); the whole budget then goes to the other axis."""
    if budget < 1:
        raise BadInput("--search-budget", f"must be at least 1 (got {budget})")
    fixed_lr = lr_range[0] == lr_range[1]
    fixed_reg = reg_range[0] == reg_range[1]
    if search not in ("grid", "random"):
        raise BadInput("--search", f"'{search}' (expected grid or random)")
    if search == "grid":
        if fixed_lr or fixed_reg:
            n_lr, n_reg = (1, budget) if fixed_lr else (budget, 1)
        else:
            n_lr = math.ceil(math.sqrt(budget))
            n_reg = max(1, budget // n_lr)

        def axis(lo, hi, n):
            if lo == hi:
                return [float(lo)]
            if n == 1:
                return [float(math.sqrt(lo * hi))]
            return [float(v) for v in np.logspace(math.log10(lo), math.log10(hi), n)]

        return [(a, r) for a in axis(*lr_range, n_lr) for r in axis(*reg_range, n_reg)]
    rng = np.random.default_rng(seed)

    def draw(lo, hi):
        return float(lo) if lo == hi else float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))

    n = 1 if (fixed_lr and fixed_reg) else budget
    return [(draw(*lr_range), draw(*reg_range)) for _ in range(n)]


def search_hyperparameters(
    loss: str, X_train, y_train, X_val, y_val, *, optimizer: str = "sgd", search: str = "random",
    budget: int = 12, num_iters: int = 500, lr_range: tuple[float, float] | None = None,
    reg_range: tuple[float, float] = REG_RANGE, seed: int = 0,
    progress: bool = False, **model_kwargs,
) -> SearchResult:
    """Train one model per (lr, reg) of `search_space` on the training split and keep the
    best by validation accuracy (ties: the lower final training loss, then the earlier
    trial). A diverged trial is never preferred over one that converged."""
    lr_range = lr_range or LR_RANGES[optimizer]
    points = search_space(search, budget, lr_range, reg_range, seed)
    trials: list[Trial] = []
    trial_bar = bar(len(points), f"{loss} search ({search})", "trial") if progress else None
    try:
        for lr, reg in points:
            m = LinearClassifier(loss=loss, lr=lr, reg=reg, optimizer=optimizer, num_iters=num_iters,
                                 seed=seed, **model_kwargs).fit(X_train, y_train)
            final = float(np.mean(m.loss_history_[-max(1, len(m.loss_history_) // 10):]))
            trials.append(Trial(lr, reg, m.score(X_train, y_train), m.score(X_val, y_val), final, m.diverged_))
            if trial_bar is not None:
                trial_bar.set_postfix(best_val=f"{max(t.val_accuracy for t in trials):.3f}", refresh=False)
                trial_bar.update(1)
    finally:
        if trial_bar is not None:
            trial_bar.close()

    # best validation accuracy; among equals, the lower training loss, then the earlier
    def rank(i):
        t = trials[i]
        ok = not t.diverged and math.isfinite(t.final_loss)
        return (ok, t.val_accuracy, -t.final_loss if ok else -math.inf, -i)

    best = trials[max(range(len(trials)), key=rank)]
    return SearchResult(best, trials)
