"""Linear classifiers (multiclass SVM, softmax) trained by minibatch `torch.optim` steps.

The losses and their analytic gradients are in `labeller.baseline.losses`, the
hyperparameter search in `labeller.baseline.search`.

The bias is either the bias trick (a constant 1 appended to every feature vector, the
last row of W is the bias, and it is penalised with the rest of W, as in the course) or
a separate, unpenalised `b`.
"""

from __future__ import annotations

import contextlib

import torch

from labeller.baseline.config import BIAS_MODES, LOSSES, OPTIMIZERS, REG_TYPES
from labeller.baseline.device import resolve_device
from labeller.baseline.losses import LOSS_FNS, class_scores, regularizer
from labeller.core.errors import BadInput
from labeller.core.progress import bar as progress_bar

__all__ = ["BIAS_MODES", "LOSSES", "LR_RANGES", "MOMENTUM", "OPTIMIZERS", "REG_RANGE", "REG_TYPES",
           "LinearClassifier", "make_optimizer"]

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
    "lbfgs": (0.1, 1.0),  # a step-length scale: the strong-Wolfe line search does the rest
}
LBFGS_HISTORY = 10  # curvature pairs L-BFGS keeps
REG_RANGE = (1e-5, 1e-1)


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
    if name == "lbfgs":
        return torch.optim.LBFGS([p for g in params for p in g["params"]], lr=lr, max_iter=1,
                                 history_size=LBFGS_HISTORY, line_search_fn="strong_wolfe")
    raise BadInput("--optimizer", f"unknown optimiser '{name}' (expected one of {', '.join(OPTIMIZERS)})")


def _objective(fn, W, b, X, y, reg: float, reg_type: str):
    """(loss, dW, db) of the linear loss `fn`. With the bias trick (b is None and W is
    (D + 1, C)) the constant-1 column is never built: scores are X W[:-1] + W[-1], and
    the bias row is penalised like the rest of W, as in the course. (Appending the
    column with torch.cat per minibatch cost more than the GEMMs.)"""
    if b is not None:
        return fn(W, X, y, reg, b, reg_type)
    loss, dW, db = fn(W[:-1], X, y, reg, W[-1], reg_type)
    pen, dpen = regularizer(W[-1], reg, reg_type)
    return loss + pen, torch.cat([dW, (db + dpen).unsqueeze(0)]), None


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
    `optimizer` (one of OPTIMIZERS; 'lbfgs' is full-batch L-BFGS, one iteration per
    `num_iters`, deterministic), `num_iters`, `batch_size` (minibatches drawn with
    replacement, as the course does; unused by 'lbfgs'), `bias` ('trick' | 'separate'), `init_std` (W ~
    init_std · N(0, 1)), `seed`, `device`, `progress` (a tqdm bar), `num_classes`.

    Learned state: `W_` (D [+1 with the bias trick], C) float32, `b_` (C,) or None,
    `loss_history_` (num_iters,) floats (the objective on each minibatch, penalty
    included; 'lbfgs': on the whole set), `passes_` (num_iters,) passes over the
    training set done after each iteration (L-BFGS counts its line search's
    evaluations), `num_classes_`, `n_features_in_`, `diverged_` (a non-finite loss
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
        fn = LOSS_FNS[self.loss]
        hist = torch.empty(self.num_iters, device=self.device_)
        self.diverged_ = False
        bar = progress_bar(self.num_iters, f"{self.loss} {self.optimizer}", "it") if self.progress else None
        bs = min(self.batch_size, N) if self.batch_size else N
        try:
            if self.optimizer == "lbfgs":  # full batch: big GEMMs, let every thread work
                done, passes = self._lbfgs(bar, Xf, y, W, b, opt, fn, hist)
            else:
                with _cpu_threads(self.device_, 1):
                    done = self._loop(bar, N, bs, gen, Xf, y, W, b, opt, fn, loss_reg, decoupled, hist)
                passes = [(t + 1) * bs / N for t in range(done)]
        finally:
            if bar is not None:
                bar.close()
        self.loss_history_ = hist[:done].tolist()
        self.passes_ = passes
        self.W_ = W.detach()
        self.b_ = None if b is None else b.detach()
        return self

    def _loop(self, bar, N, bs, gen, Xf, y, W, b, opt, fn, loss_reg, decoupled, hist) -> int:
        """The minibatch steps; returns how many ran (fewer when the loss diverged)."""
        done = 0
        Xb = torch.empty((bs, Xf.shape[1]), dtype=Xf.dtype, device=Xf.device)  # reused minibatch
        for t in range(self.num_iters):
            idx = torch.randint(N, (bs,), generator=gen).to(self.device_, non_blocking=True)
            torch.index_select(Xf, 0, idx, out=Xb)  # 5x faster than Xf[idx], and no new tensor
            yb = y.index_select(0, idx)
            with torch.no_grad():
                loss, dW, db = _objective(fn, W, b, Xb, yb, loss_reg, self.reg_type)
                if decoupled and self.reg:
                    loss = loss + self.reg * (W * W).sum()  # record the same objective
            W.grad = dW
            if b is not None:
                b.grad = db
            opt.step()
            hist[t] = loss
            done = t + 1
            if bar is not None:
                bar.update(1)
            if (t % 100 == 99 or t == self.num_iters - 1) and not bool(torch.isfinite(hist[t])):
                self.diverged_ = True
                break
            if bar is not None and t % 100 == 99:
                bar.set_postfix(loss=f"{float(hist[t]):.3f}")
        return done

    def _lbfgs(self, bar, Xf, y, W, b, opt, fn, hist) -> tuple[int, list[float]]:
        """Full-batch L-BFGS iterations; returns (iterations run, passes after each)."""
        evaluations = 0

        def closure():
            nonlocal evaluations
            evaluations += 1
            with torch.no_grad():
                loss, dW, db = _objective(fn, W, b, Xf, y, self.reg, self.reg_type)
            W.grad = dW
            if b is not None:
                b.grad = db
            return loss

        done, passes = 0, []
        for t in range(self.num_iters):
            before = W.detach().clone()
            hist[t] = opt.step(closure)  # the objective before this iteration's step (as minibatches)
            if torch.equal(before, W.detach()):
                # No step was taken: at a kink of the hinge loss the quasi-Newton direction
                # may not descend, and torch's L-BFGS then stops for good. Forget the
                # curvature pairs, so that the next iteration starts from steepest descent.
                opt.state.clear()
            passes.append(float(evaluations))
            done = t + 1
            if bar is not None:
                bar.update(1)
            if not bool(torch.isfinite(hist[t])):
                self.diverged_ = True
                break
        return done, passes

    def decision_function(self, X) -> torch.Tensor:
        """(N, C) class scores."""
        X = self._features(X)
        if self.bias == "trick":  # [X, 1] W = X W[:-1] + W[-1]
            return class_scores(self.W_[:-1], X, self.W_[-1])
        return class_scores(self.W_, X, self.b_)

    def predict(self, X) -> torch.Tensor:
        """(N,) int64 labels (on the estimator's device)."""
        return self.decision_function(X).argmax(1)

    def score(self, X, y) -> float:
        """Fraction of `X` whose predicted label equals `y`."""
        y = torch.as_tensor(y, device=self.device_).reshape(-1)
        return float((self.predict(X) == y).double().mean())
