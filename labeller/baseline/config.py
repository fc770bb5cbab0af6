"""`BaselineConfig`: the settings of `labeller baseline`, and the names they may take.

The command line's options are generated from the fields' `option()` metadata
(`labeller.cli.baseline`), so every default lives here. This module imports only the
standard library: the CLI reads it to build `--help`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from labeller.core.config import option
from labeller.core.errors import ConfigError

MODELS = ("knn", "svm", "softmax")
K_CHOICES = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)
KNN_PRECISIONS = ("auto", "int8", "float32", "float64", "float16", "bfloat16")
SEARCH_METHODS = ("grid", "random")
# The linear models' names (`labeller.baseline.linear` implements them).
LOSSES = ("svm", "softmax")
REG_TYPES = ("l2", "l1")
BIAS_MODES = ("trick", "separate")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs")
# lbfgs is full-batch (torch.optim.LBFGS with a strong-Wolfe line search, deterministic);
# the others take minibatches.


@dataclass(frozen=True)
class BaselineConfig:
    """Everything `run` needs. Paths may be str or Path; None means the default.

    data_dir: the `Progress-Objects-Sample` folder or its parent. out: the report folder
    (default: `baseline/` beside `Progress-Objects-Sample/`, i.e. DIR/baseline when DIR
    is the parent). num_train / num_test: images in total (train counts training +
    validation). k: fixed k for kNN (None: choose by `folds`-fold CV over k_choices).
    lr / reg: fixed linear hyperparameters (both given: no search).
    knn_train_eval: at most this many training images for kNN's training accuracy.
    knn_precision: the arithmetic of the kNN distances, on the raw pixels (the ranking
    does not change under the preprocessing's common scale and shift): 'auto' (the
    fastest exact path here, by a timed probe), 'int8', 'float32', 'float64',
    'float16', 'bfloat16'; every one gives the neighbours of an exact float64 search
    (labeller.baseline.precision).
    k_choices is on the command line as one comma list (`--k-choices 1,3,5`), which the
    CLI parses itself.
    """

    data_dir: str | os.PathLike
    model: str = option("all", help="knn, svm, softmax, all, or a comma list")
    device: str = option("auto", help="auto (cuda when available), cpu or cuda")
    out: str | os.PathLike | None = option(
        None, metavar="REPORT_DIR",
        help="report folder (default: baseline/ beside Progress-Objects-Sample/); replaces "
             "only an earlier report")
    num_train: int | None = option(
        None, metavar="N",
        help="use N training images in total (train + validation; stratified, seeded)")
    num_test: int | None = option(None, metavar="N", help="use N test images (stratified, seeded)")
    seed: int = option(0, help="seed for subsets, splits, folds, search and training")
    val_fraction: float = option(
        0.2, help="held-out part of the training images for validation")
    # kNN
    k: int | None = option(None, help="use this k instead of choosing it by cross-validation")
    k_choices: tuple[int, ...] = K_CHOICES
    folds: int = option(5, help="cross-validation folds")
    knn_train_eval: int = 2000
    knn_precision: str = option(
        "auto", choices=KNN_PRECISIONS,
        help="arithmetic of the kNN distances: auto picks the fastest exact path here "
             "(int8 where the CPU has integer dot products); each gives float64's neighbours")
    # linear models
    optimizer: str = option("sgd", choices=OPTIMIZERS, help="torch.optim optimiser")
    search: str = option("random", choices=SEARCH_METHODS,
                         help="learning-rate / regularisation search")
    search_budget: int = option(12, help="trials in the search")
    search_iters: int = option(500, help="iterations per search trial")
    lr: float | None = option(None, help="fix the learning rate (with --reg: no search)")
    reg: float | None = option(None, help="fix the regularisation strength (with --lr: no search)")
    reg_type: str = option("l2", choices=REG_TYPES,
                           help="penalty reg*sum(W^2) or reg*sum(|W|)")
    bias: str = option("trick", choices=BIAS_MODES,
                       help="bias trick (a constant-1 feature) or a separate b")
    num_iters: int = option(1500, help="iterations of the final training")
    batch_size: int = option(200, help="minibatch size")
    compare_optimizers: bool = option(
        False, help="also write optimizers_<model>.png comparing every optimiser's loss curve")
    # output
    progress: bool = option(True, flag="--no-progress", help="no progress bars")
    write_checkpoints: bool = True
    extra: dict = field(default_factory=dict)

    def models(self) -> list[str]:
        """The models to train, in MODELS order (`model` is 'all' or a comma list)."""
        if self.model == "all":
            return list(MODELS)
        names = [m.strip() for m in str(self.model).split(",") if m.strip()]
        bad = [m for m in names if m not in MODELS]
        if bad or not names:
            raise ConfigError(self, "model", f"'{self.model}' (expected knn, svm, softmax or all)")
        return [m for m in MODELS if m in names]

    def check(self) -> None:
        """Raise ConfigError naming the first field that is out of range."""
        self.models()
        checks = [
            (self.optimizer in OPTIMIZERS, "optimizer",
             f"'{self.optimizer}' (expected one of {', '.join(OPTIMIZERS)})"),
            (self.search in SEARCH_METHODS, "search", f"'{self.search}' (expected grid or random)"),
            (self.reg_type in REG_TYPES, "reg_type", f"'{self.reg_type}' (expected l2 or l1)"),
            (self.bias in BIAS_MODES, "bias", f"'{self.bias}' (expected trick or separate)"),
            (self.num_iters >= 1, "num_iters", f"must be at least 1 (got {self.num_iters})"),
            (self.search_iters >= 1, "search_iters", f"must be at least 1 (got {self.search_iters})"),
            (self.search_budget >= 1, "search_budget",
             f"must be at least 1 (got {self.search_budget})"),
            (self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})"),
            (self.k is None or self.k >= 1, "k", f"must be at least 1 (got {self.k})"),
            (self.folds >= 2, "folds", f"must be at least 2 (got {self.folds})"),
            (self.knn_precision in KNN_PRECISIONS, "knn_precision",
             f"'{self.knn_precision}' (expected one of {', '.join(KNN_PRECISIONS)})"),
            (self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), "lr",
             f"must be a positive number (got {self.lr})"),
            (self.reg is None or (self.reg >= 0 and math.isfinite(self.reg)), "reg",
             f"must be >= 0 (got {self.reg})"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction",
             f"must be in [0, 1) (got {self.val_fraction})"),
        ]
        for ok, name, problem in checks:
            if not ok:
                raise ConfigError(self, name, problem)
        if self.optimizer == "adamw" and self.reg_type != "l2":
            raise ConfigError(self, "optimizer",
                              "adamw's decoupled weight decay is an L2 penalty; use --reg-type l2")
