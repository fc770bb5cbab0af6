"""Linear classifiers: multiclass SVM (hinge) and softmax (cross-entropy).

Scores are ``S = X W (+ b)`` with X: (N, D) features, W: (D, C), b: (C,). Both losses
are the mean over the batch plus a penalty on W:

- SVM: ``L = 1/N Σ_i Σ_{j≠y_i} max(0, s_ij − s_iy_i + Δ)`` with margin Δ = 1;
- softmax: ``L = 1/N Σ_i (log Σ_j exp s_ij − s_iy_i)``;
- penalty: ``reg · Σ W²`` (L2, no ½) or ``reg · Σ |W|`` (L1).

The bias is either the bias trick (a constant 1 appended to every feature vector, the
last row of W is the bias, and it is penalised with the rest of W, as in the course) or
a separate, unpenalised `b`.

`svm_loss` and `softmax_loss` return the loss and its analytic gradient; `linear_loss`
wraps them in a `torch.autograd.Function` so `torch.optim` optimisers (and
`torch.autograd.gradcheck`) use the analytic gradient.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from labeller.core.errors import BadInput

LOSSES = ("svm", "softmax")
REG_TYPES = ("l2", "l1")
BIAS_MODES = ("trick", "separate")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
MOMENTUM = 0.9

# Learning-rate search ranges (log-uniform) per optimiser, for features scaled to [0, 1]
# minus the mean (3,072 of them): plain SGD and AdaGrad take bigger steps than the
# momentum and Adam families, whose effective step is larger for the same lr.
LR_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (1e-4, 1e-1),
    "momentum": (1e-5, 1e-2),
    "nesterov": (1e-5, 1e-2),
    "adagrad": (1e-4, 1e-1),
    "rmsprop": (1e-6, 1e-3),
    "adam": (1e-6, 1e-3),
    "adamw": (1e-6, 1e-3),
}
REG_RANGE = (1e-5, 1e-1)


# --------------------------------------------------------------------------- losses
def regularizer(W: torch.Tensor, reg: float, reg_type: str = "l2"):
    """(penalty, gradient): reg·ΣW² and 2·reg·W (L2), or reg·Σ|W| and reg·sign(W) (L1)."""
    if reg_type == "l2":
        return reg * (W * W).sum(), (2.0 * reg) * W
    if reg_type == "l1":
        return reg * W.abs().sum(), reg * torch.sign(W)
    raise ValueError(f"reg_type must be one of {REG_TYPES}, got {reg_type!r}")


def _scores(W, X, b):
    # (Wᵀ Xᵀ)ᵀ rather than X W: MKL is 3-4x faster with the 10-wide side as the rows
    # (measured here: 0.5 ms against 1.9 ms for a 200 x 3,073 batch)
    S = (W.T @ X.T).T.contiguous()
    return S if b is None else S + b


def svm_loss(W, X, y, reg: float = 0.0, b=None, reg_type: str = "l2", delta: float = 1.0):
    """Multiclass hinge loss and its analytic gradient (vectorised).

    W: (D, C); X: (N, D); y: (N,) int64 in 0..C-1; b: (C,) or None.
    Returns (loss scalar tensor, dW (D, C), db (C,) or None).
    """
    N = X.shape[0]
    S = _scores(W, X, b)
    rows = torch.arange(N, device=X.device)
    correct = S[rows, y].unsqueeze(1)
    margins = (S - correct + delta).clamp_(min=0)
    margins[rows, y] = 0
    pen, dpen = regularizer(W, reg, reg_type)
    loss = margins.sum() / N + pen
    dS = (margins > 0).to(S.dtype)
    dS[rows, y] = -dS.sum(1)
    dS /= N
    dW = (dS.T @ X).T.contiguous() + dpen  # = Xᵀ dS, in the faster orientation (see _scores)
    return loss, dW, (None if b is None else dS.sum(0))


def softmax_loss(W, X, y, reg: float = 0.0, b=None, reg_type: str = "l2"):
    """Softmax cross-entropy and its analytic gradient (vectorised, numerically stable).

    Shapes as in `svm_loss`. Returns (loss, dW (D, C), db (C,) or None).
    """
    N = X.shape[0]
    S = _scores(W, X, b)
    S = S - S.max(1, keepdim=True).values
    lse = torch.logsumexp(S, 1)
    rows = torch.arange(N, device=X.device)
    pen, dpen = regularizer(W, reg, reg_type)
    loss = (lse - S[rows, y]).mean() + pen
    dS = torch.exp(S - lse.unsqueeze(1))
    dS[rows, y] -= 1
    dS /= N
    dW = (dS.T @ X).T.contiguous() + dpen  # = Xᵀ dS, in the faster orientation (see _scores)
    return loss, dW, (None if b is None else dS.sum(0))


_LOSS_FNS = {"svm": svm_loss, "softmax": softmax_loss}


class _AnalyticLinearLoss(torch.autograd.Function):
    """Loss value forward, the analytic gradient backward (so gradcheck can test it)."""

    @staticmethod
    def forward(ctx, W, b, X, y, reg, kind, reg_type):
        loss, dW, db = _LOSS_FNS[kind](W.detach(), X, y, reg, None if b is None else b.detach(), reg_type)
        ctx.save_for_backward(dW, db if db is not None else torch.empty(0))
        ctx.has_b = b is not None
        return loss

    @staticmethod
    def backward(ctx, grad):
        dW, db = ctx.saved_tensors
        return grad * dW, (grad * db if ctx.has_b else None), None, None, None, None, None


def linear_loss(W, X, y, reg: float = 0.0, b=None, loss: str = "svm", reg_type: str = "l2"):
    """The loss as a differentiable scalar whose backward is the analytic gradient."""
    return _AnalyticLinearLoss.apply(W, b, X, y, reg, loss, reg_type)


def reference_loss(W, X, y, reg: float = 0.0, b=None, loss: str = "svm", reg_type: str = "l2", delta=1.0):
    """The same losses written with plain torch ops and loops over nothing clever, for
    checking the analytic gradients against autograd."""
    S = _scores(W, X, b)
    N = X.shape[0]
    if loss == "svm":
        correct = S.gather(1, y.view(-1, 1))
        m = torch.relu(S - correct + delta)
        m = m * (1 - torch.nn.functional.one_hot(y, S.shape[1]).to(S.dtype))
        data = m.sum() / N
    else:
        data = torch.nn.functional.cross_entropy(S, y)
    pen = reg * (W**2).sum() if reg_type == "l2" else reg * W.abs().sum()
    return data + pen


# ----------------------------------------------------------------------- optimisers
def make_optimizer(name: str, params: list[dict], lr: float, reg: float):
    """A torch.optim optimiser by name (see OPTIMIZERS).

    `params` are param groups; a group with ``"decay": True`` gets AdamW's decoupled
    weight decay ``2·reg`` (the step SGD would take for reg·ΣW²), the others none.
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, nesterov=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        groups = [
            {"params": g["params"], "weight_decay": (2.0 * reg if g.get("decay") else 0.0)}
            for g in params
        ]
        return torch.optim.AdamW(groups, lr=lr)
    raise BadInput("--optimizer", f"unknown optimiser '{name}' (expected one of {', '.join(OPTIMIZERS)})")


def _with_bias_column(X: torch.Tensor) -> torch.Tensor:
    return torch.cat([X, torch.ones((X.shape[0], 1), dtype=X.dtype, device=X.device)], 1)


# ------------------------------------------------------------------------ estimator
@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int):
    """Run with `n` intra-op threads on CPU, restoring the setting afterwards.

    A minibatch step is a few small GEMMs (200 × 3,073 × 10): threads gain little on
    them, and on a busy machine OpenMP's synchronisation costs milliseconds per op
    (measured: a 40 × 7 × 4 matmul took 11 ms with 2 threads under load, 4 µs with 1).
    """
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class LinearClassifier:
    """A linear SVM or softmax classifier trained by minibatch `torch.optim` steps.

    Hyperparameters: `loss` ('svm' | 'softmax'), `lr`, `reg`, `reg_type` ('l2' | 'l1'),
    `optimizer` (one of OPTIMIZERS), `num_iters`, `batch_size` (minibatches drawn with
    replacement, as the course does), `bias` ('trick' | 'separate'), `init_std` (W ~
    init_std · N(0, 1)), `seed`, `device`, `progress` (a tqdm bar), `num_classes`.

    Learned state: `W_` (D [+1 with the bias trick], C) float32, `b_` (C,) or None,
    `loss_history_` (num_iters,) floats (the objective on each minibatch, penalty
    included), `num_classes_`, `n_features_in_`, `diverged_` (a non-finite loss
    stopped training).
    """

    def __init__(self, loss: str = "svm", lr: float = 1e-3, reg: float = 1e-4, reg_type: str = "l2",
                 optimizer: str = "sgd", num_iters: int = 1500, batch_size: int = 200,
                 bias: str = "trick", init_std: float = 1e-4, seed: int = 0, device="cpu",
                 progress: bool = False, num_classes: int | None = None):
        self.loss = loss
        self.lr = lr
        self.reg = reg
        self.reg_type = reg_type
        self.optimizer = optimizer
        self.num_iters = num_iters
        self.batch_size = batch_size
        self.bias = bias
        self.init_std = init_std
        self.seed = seed
        self.device = device
        self.progress = progress
        self.num_classes = num_classes

    def _check(self):
        if self.loss not in LOSSES:
            raise BadInput("--model", f"unknown loss '{self.loss}' (expected svm or softmax)")
        if self.reg_type not in REG_TYPES:
            raise BadInput("--reg-type", f"'{self.reg_type}' (expected l2 or l1)")
        if self.bias not in BIAS_MODES:
            raise BadInput("--bias", f"'{self.bias}' (expected trick or separate)")
        if self.optimizer not in OPTIMIZERS:
            raise BadInput("--optimizer", f"unknown optimiser '{self.optimizer}' (expected one of {', '.join(OPTIMIZERS)})")
        if self.optimizer == "adamw" and self.reg_type != "l2":
            raise BadInput("--optimizer", "adamw's decoupled weight decay is an L2 penalty; use --reg-type l2")

    def _features(self, X) -> torch.Tensor:
        """(N, D) float32 on the device. The bias trick's constant-1 column is appended
        per minibatch (and folded into `decision_function`), never to the whole set."""
        X = torch.as_tensor(X, device=self.device_)
        return X.reshape(X.shape[0], -1).to(torch.float32)

    def fit(self, X, y) -> LinearClassifier:
        """X: (N, D) float features; y: (N,) int labels. Returns self."""
        from labeller.baseline.knn import resolve_device

        self._check()
        self.device_ = resolve_device(self.device)
        Xf = self._features(X)
        y = torch.as_tensor(y, device=self.device_).to(torch.int64).reshape(-1)
        N, D = Xf.shape
        D += 1 if self.bias == "trick" else 0
        C = int(self.num_classes or int(y.max()) + 1)
        self.num_classes_ = C
        self.n_features_in_ = D - (1 if self.bias == "trick" else 0)
        # Random numbers come from a CPU generator on every device, so a seed gives the
        # same initial W and the same minibatches on a CPU and on a GPU.
        gen = torch.Generator()
        gen.manual_seed(int(self.seed))
        W = (self.init_std * torch.randn((D, C), generator=gen)).to(self.device_).requires_grad_()
        b = torch.zeros(C, device=self.device_, requires_grad=True) if self.bias == "separate" else None
        groups = [{"params": [W], "decay": True}] + ([{"params": [b], "decay": False}] if b is not None else [])
        opt = make_optimizer(self.optimizer, groups, self.lr, self.reg)
        decoupled = self.optimizer == "adamw"
        loss_reg = 0.0 if decoupled else self.reg
        fn = _LOSS_FNS[self.loss]
        hist = torch.empty(self.num_iters, device=self.device_)
        self.diverged_ = False
        it = range(self.num_iters)
        bar = None
        if self.progress:
            from tqdm import tqdm

            it = bar = tqdm(it, desc=f"{self.loss} {self.optimizer}", unit="it", leave=False)
        bs = min(self.batch_size, N) if self.batch_size else N
        done = 0
        with _cpu_threads(self.device_, 1):
            done = self._loop(it, bar, N, bs, gen, Xf, y, W, b, opt, fn, loss_reg, decoupled, hist)
        self.loss_history_ = hist[:done].tolist()
        self.W_ = W.detach()
        self.b_ = None if b is None else b.detach()
        return self

    def _loop(self, it, bar, N, bs, gen, Xf, y, W, b, opt, fn, loss_reg, decoupled, hist) -> int:
        """The minibatch steps; returns how many ran (fewer when the loss diverged)."""
        done = 0
        for t in it:
            idx = torch.randint(N, (bs,), generator=gen).to(self.device_, non_blocking=True)
            Xb, yb = Xf.index_select(0, idx), y.index_select(0, idx)  # 5x faster than Xf[idx]
            if self.bias == "trick":
                Xb = _with_bias_column(Xb)
            with torch.no_grad():
                loss, dW, db = fn(W, Xb, yb, loss_reg, b, self.reg_type)
                if decoupled and self.reg:
                    loss = loss + self.reg * (W * W).sum()  # record the same objective
            W.grad = dW
            if b is not None:
                b.grad = db
            opt.step()
            hist[t] = loss
            done = t + 1
            if (t % 100 == 99 or t == self.num_iters - 1) and not bool(torch.isfinite(hist[t])):
                self.diverged_ = True
                break
            if bar is not None and t % 100 == 99:
                bar.set_postfix(loss=f"{float(hist[t]):.3f}")
        return done

    def decision_function(self, X) -> torch.Tensor:
        """(N, C) class scores."""
        X = self._features(X)
        if self.bias == "trick":  # [X, 1] W = X W[:-1] + W[-1]
            return _scores(self.W_[:-1], X, self.W_[-1])
        return _scores(self.W_, X, self.b_)

    def predict(self, X) -> torch.Tensor:
        """(N,) int64 labels (on the estimator's device)."""
        return self.decision_function(X).argmax(1)

    def score(self, X, y) -> float:
        """Fraction of `X` whose predicted label equals `y`."""
        y = torch.as_tensor(y, device=self.device_).reshape(-1)
        return float((self.predict(X) == y).double().mean())


# --------------------------------------------------------------------------- search
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


def search_space(search: str, budget: int, lr_range, reg_range, seed: int = 0) -> list[tuple[float, float]]:
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
    budget: int = 12, num_iters: int = 500, lr_range=None, reg_range=REG_RANGE, seed: int = 0,
    progress: bool = False, **model_kwargs,
) -> SearchResult:
    """Train one model per (lr, reg) of `search_space` on the training split and keep the
    best by validation accuracy (ties: the lower final training loss, then the earlier
    trial). A diverged trial is never preferred over one that converged."""
    lr_range = lr_range or LR_RANGES[optimizer]
    points = search_space(search, budget, lr_range, reg_range, seed)
    trials: list[Trial] = []
    it = points
    bar = None
    if progress:
        from tqdm import tqdm

        it = bar = tqdm(points, desc=f"{loss} search ({search})", unit="trial", leave=False)
    for lr, reg in it:
        m = LinearClassifier(loss=loss, lr=lr, reg=reg, optimizer=optimizer, num_iters=num_iters,
                             seed=seed, **model_kwargs).fit(X_train, y_train)
        final = float(np.mean(m.loss_history_[-max(1, len(m.loss_history_) // 10):]))
        trials.append(Trial(lr, reg, m.score(X_train, y_train), m.score(X_val, y_val), final, m.diverged_))
        if bar is not None:
            bar.set_postfix(best_val=f"{max(t.val_accuracy for t in trials):.3f}")
    # best validation accuracy; among equals, the lower training loss, then the earlier
    def rank(i):
        t = trials[i]
        ok = not t.diverged and math.isfinite(t.final_loss)
        return (ok, t.val_accuracy, -t.final_loss if ok else -math.inf, -i)

    best = trials[max(range(len(trials)), key=rank)]
    return SearchResult(best, trials)
