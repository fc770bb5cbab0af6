"""The `labeller baseline` stage as a function: `run(BaselineConfig(...)) -> report dict`.

Reads a PROPS dataset, preprocesses it, trains the chosen models (kNN with k by
cross-validation; linear SVM and softmax with a learning-rate / regularisation search
on the validation split, the best retrained and evaluated once on test) and writes the
report under `out`:

    report.json              {"knn": {...}, "svm": {...}, "softmax": {...}, "config": {...}}
    confusion_<model>.png    test-set confusion matrix with class names
    loss_<model>.png         loss curve and search (linear models)
    <model>.pt               checkpoint (linear models; see report.save_checkpoint)
    optimizers_<model>.png   loss curves per optimiser (with compare_optimizers)

The folder is written whole (`labeller.core.fileio.atomic_dir`): a failed or killed run
leaves the previous report as it was; an existing `out` is replaced only when it is
empty or holds a report.json (an earlier report).

This module imports only the standard library and numpy at import time, so the command
line's `--help` stays fast; torch and matplotlib load inside `run`. The settings are
`labeller.baseline.config.BaselineConfig`; `--predict` is `labeller.baseline.predict`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labeller.baseline.config import MODELS, BaselineConfig
from labeller.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from labeller.baseline.data import PropsDataset
    from labeller.baseline.preprocess import Preprocessed

__all__ = ["MODELS", "BaselineConfig", "default_out", "run"]

LBFGS_MIN_ITERS = 20  # L-BFGS in the optimiser comparison: at least this many full-batch iterations


def default_out(props_root: Path) -> Path:
    """`baseline/` beside `Progress-Objects-Sample/` (never inside it: the course
    loader opens every file there as a pickle)."""
    return props_root.parent / "baseline"


def _check_out(cfg: BaselineConfig, out: Path, props_root: Path) -> None:
    try:
        inside = out.resolve().is_relative_to(props_root.resolve())
    except OSError:
        inside = False
    if inside:
        raise ConfigError(cfg, "out", f"{out} is inside {props_root} (the course loader reads every file there); choose another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(cfg, "out", f"{out} exists and is not a directory")


def _eval(model_predict, X, y) -> tuple[float | None, np.ndarray]:
    if X.shape[0] == 0:
        return None, np.zeros(0, np.int64)
    pred = model_predict(X).cpu().numpy()
    return float((pred == y.cpu().numpy()).mean()), pred


def _run_knn(cfg: BaselineConfig, pp: Preprocessed, dev: torch.device, out: Path,
             class_names: list[str]) -> dict:
    import torch

    from labeller.baseline.cv import cross_validate_k
    from labeller.baseline.knn import KNNClassifier
    from labeller.baseline.report import confusion_matrix, per_class_accuracy, plot_confusion

    t0 = time.perf_counter()
    C = len(class_names)
    cv = None

    # kNN works on the raw pixels (flattened in any fixed order): the preprocessing is a
    # common scale and shift, which changes no ranking, and 8-bit pixels let every
    # precision be exact (labeller.baseline.neighbours)
    def feats(raw):
        return torch.from_numpy(np.ascontiguousarray(raw.reshape(raw.shape[0], -1)))

    X_tr, X_val, X_te = feats(pp.raw_train), feats(pp.raw_val), feats(pp.raw_test)
    if cfg.k is None:
        res_cv = cross_validate_k(X_tr, pp.y_train, cfg.k_choices, cfg.folds, cfg.seed, dev, num_classes=C,
                                  progress=cfg.progress, precision=cfg.knn_precision, groups=pp.group_train)
        k = res_cv.best_k
        cv = {"folds": cfg.folds, "grouping": res_cv.grouping, "fold_sizes": res_cv.fold_sizes,
              "accuracy_by_k": {str(kk): v for kk, v in res_cv.accuracy_by_k.items()}}
    else:
        k = min(cfg.k, X_tr.shape[0])
    model = KNNClassifier(k=k, num_classes=C, device=dev, precision=cfg.knn_precision,
                          progress=cfg.progress).fit(X_tr, pp.y_train)
    n_tr = X_tr.shape[0]
    sub = np.arange(n_tr)
    if n_tr > cfg.knn_train_eval:
        sub = np.sort(np.random.default_rng(cfg.seed).choice(n_tr, cfg.knn_train_eval, replace=False))
    sub_t = torch.as_tensor(sub, device=X_tr.device)
    train_acc, _ = _eval(model.predict, X_tr[sub_t], pp.y_train[sub_t.to(pp.y_train.device)])
    val_acc, _ = _eval(model.predict, X_val, pp.y_val)
    test_acc, pred = _eval(model.predict, X_te, pp.y_test)
    conf = confusion_matrix(pp.y_test.cpu().numpy(), pred, C)
    plot_confusion(conf, class_names, f"kNN (k={k}): test accuracy {test_acc:.1%} on {len(pred)} images",
                   out / "confusion_knn.png")
    res = {
        "train_accuracy": train_acc,
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "per_class_accuracy": per_class_accuracy(conf, class_names),
        "confusion": conf.tolist(),
        "hyperparameters": {"k": int(k)},
        "precision": model.precision_,
        "precision_reason": model.precision_reason_,
        "train_accuracy_images": int(len(sub)),
        "files": {"confusion": "confusion_knn.png"},
    }
    if cv:
        res["cross_validation"] = cv
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def _compare_optimizers(cfg: BaselineConfig, name: str, pp: Preprocessed, dev: torch.device,
                        reg: float, C: int, out: Path) -> dict:
    """Each optimiser at its best of 4 learning rates (by mean loss over the last 10 %
    of iterations), with the chosen regularisation; plot the curves against passes over
    the training set. The minibatch optimisers run `num_iters` steps; full-batch L-BFGS
    runs as many iterations as those steps make passes (at least LBFGS_MIN_ITERS)."""
    from labeller.baseline.linear import LR_RANGES, OPTIMIZERS, LinearClassifier
    from labeller.baseline.report import plot_optimizers
    from labeller.core.progress import iter_bar

    curves = {}
    opts = OPTIMIZERS if cfg.reg_type == "l2" else tuple(o for o in OPTIMIZERS if o != "adamw")
    n_train = int(pp.y_train.shape[0])
    passes = cfg.num_iters * min(cfg.batch_size, n_train) / max(1, n_train)
    for opt in iter_bar(opts, f"{name}: comparing optimisers", "opt", enabled=cfg.progress):
        best = None
        lr_lo, lr_hi = LR_RANGES[opt]
        iters = max(LBFGS_MIN_ITERS, math.ceil(passes)) if opt == "lbfgs" else cfg.num_iters
        for lr in np.logspace(np.log10(lr_lo), np.log10(lr_hi), 4):
            m = LinearClassifier(loss=name, lr=float(lr), reg=reg, reg_type=cfg.reg_type, optimizer=opt,
                                 num_iters=iters, batch_size=cfg.batch_size, bias=cfg.bias,
                                 seed=cfg.seed, device=dev, num_classes=C).fit(pp.X_train, pp.y_train)
            h = np.asarray(m.loss_history_)
            final = float(h[-1]) if opt == "lbfgs" and len(h) else float(np.mean(h[-max(1, len(h) // 10):]))
            if m.diverged_ or not math.isfinite(final):
                continue
            if best is None or final < best["final_loss"]:
                best = {"lr": float(lr), "final_loss": final, "history": h.tolist(), "passes": m.passes_,
                        "iterations": len(h), "full_batch": opt == "lbfgs",
                        "val_accuracy": m.score(pp.X_val, pp.y_val) if pp.X_val.shape[0] else None}
        if best is not None:
            curves[opt] = best
    plot_optimizers(curves, f"{name}: training loss per optimiser (reg {reg:.1e}, batch {cfg.batch_size})",
                    out / f"optimizers_{name}.png")
    return {o: {k: v for k, v in c.items() if k not in ("history", "passes")} | {"passes": c["passes"][-1]}
            for o, c in curves.items()}


def _run_linear(name: str, cfg: BaselineConfig, pp: Preprocessed, dev: torch.device, out: Path,
                class_names: list[str], report_cfg: dict) -> dict:
    from labeller.baseline.linear import LR_RANGES, REG_RANGE, LinearClassifier
    from labeller.baseline.report import (
        confusion_matrix,
        per_class_accuracy,
        plot_confusion,
        plot_loss,
        save_checkpoint,
    )
    from labeller.baseline.search import search_hyperparameters

    t0 = time.perf_counter()
    C = len(class_names)
    common: dict[str, Any] = dict(reg_type=cfg.reg_type, batch_size=cfg.batch_size, bias=cfg.bias, device=dev,
                                  num_classes=C)
    search: dict[str, Any] | None = None
    if cfg.lr is not None and cfg.reg is not None:
        lr, reg = cfg.lr, cfg.reg
    else:
        if pp.X_val.shape[0] == 0:
            raise ConfigError(cfg, "val_fraction", "the search needs a validation split; give --lr and --reg or a --val-fraction > 0")
        lr_range = (cfg.lr, cfg.lr) if cfg.lr is not None else LR_RANGES[cfg.optimizer]
        reg_range = (cfg.reg, cfg.reg) if cfg.reg is not None else REG_RANGE
        res = search_hyperparameters(
            name, pp.X_train, pp.y_train, pp.X_val, pp.y_val, optimizer=cfg.optimizer, search=cfg.search,
            budget=cfg.search_budget, num_iters=cfg.search_iters, lr_range=lr_range, reg_range=reg_range,
            seed=cfg.seed, progress=cfg.progress, **common,
        )
        lr, reg = res.best.lr, res.best.reg
        search = {
            "method": cfg.search, "budget": cfg.search_budget, "num_iters": cfg.search_iters,
            "lr_range": list(lr_range), "reg_range": list(reg_range),
            "trials": [asdict(t) for t in res.trials],
        }
    model = LinearClassifier(loss=name, lr=lr, reg=reg, optimizer=cfg.optimizer, num_iters=cfg.num_iters,
                             seed=cfg.seed, progress=cfg.progress, **common).fit(pp.X_train, pp.y_train)
    train_acc, _ = _eval(model.predict, pp.X_train, pp.y_train)
    val_acc, _ = _eval(model.predict, pp.X_val, pp.y_val)
    test_acc, pred = _eval(model.predict, pp.X_test, pp.y_test)
    conf = confusion_matrix(pp.y_test.cpu().numpy(), pred, C)
    hp = {"optimizer": cfg.optimizer, "lr": float(lr), "reg": float(reg), "reg_type": cfg.reg_type,
          "bias": cfg.bias, "num_iters": cfg.num_iters, "batch_size": cfg.batch_size}
    label = "SVM" if name == "svm" else "softmax"
    plot_confusion(conf, class_names, f"linear {label}: test accuracy {test_acc:.1%} on {len(pred)} images",
                   out / f"confusion_{name}.png")
    best_trial = None
    if search:
        best_trial = next(t for t in search["trials"] if t["lr"] == res.best.lr and t["reg"] == res.best.reg)
    plot_loss(model.loss_history_,
              f"linear {label}, {cfg.optimizer}: lr {lr:.2e}, reg {reg:.2e} ({cfg.reg_type}), batch {cfg.batch_size}",
              out / f"loss_{name}.png", trials=search["trials"] if search else None, best=best_trial)
    files = {"confusion": f"confusion_{name}.png", "loss": f"loss_{name}.png"}
    h = np.asarray(model.loss_history_)
    result = {
        "train_accuracy": train_acc,
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "per_class_accuracy": per_class_accuracy(conf, class_names),
        "confusion": conf.tolist(),
        "hyperparameters": hp,
        "initial_loss": float(h[0]) if len(h) else None,
        "final_loss": float(np.mean(h[-max(1, len(h) // 10):])) if len(h) else None,
        "diverged": bool(model.diverged_),
    }
    if search:
        result["search"] = search
    if cfg.compare_optimizers:
        result["optimizers"] = _compare_optimizers(cfg, name, pp, dev, reg, C, out)
        files["optimizers"] = f"optimizers_{name}.png"
    if cfg.write_checkpoints:
        save_checkpoint(out / f"{name}.pt", model=name, W=model.W_, b=model.b_, bias=cfg.bias,
                        class_names=class_names, mean=pp.mean, hyperparameters=hp, config=report_cfg)
        files["checkpoint"] = f"{name}.pt"
    result["files"] = files
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def run(cfg: BaselineConfig) -> dict:
    """Run the baseline; write the report files; return the report dict (as written to
    report.json). Raises BadInput (ConfigError for a setting) for anything the user can fix."""
    cfg.check()
    from labeller.baseline.data import find_props_root, load_props
    from labeller.baseline.device import resolve_device
    from labeller.baseline.preprocess import preprocess
    from labeller.core.fileio import atomic_dir, atomic_write_json

    dev = resolve_device(cfg.device)  # fails fast on --device cuda without a GPU
    root = find_props_root(cfg.data_dir)
    out = Path(cfg.out) if cfg.out is not None else default_out(root)
    _check_out(cfg, out, root)
    ds = load_props(root)
    pp = preprocess(ds, cfg.num_train, cfg.num_test, cfg.val_fraction, cfg.seed, device=dev)
    # Every file goes into a temporary folder that replaces `out` only once all are
    # written: a full disk or a kill leaves the previous report whole, never a partial one.
    with atomic_dir(out, overwrite=True, ours=_is_report_folder,
                    what="a report folder of labeller baseline (report.json)") as tmp:
        report = _train_and_report(cfg, pp, ds, dev, out, tmp)
        atomic_write_json(tmp / "report.json", report)
    return report


def _is_report_folder(folder: Path) -> bool:
    return (folder / "report.json").is_file()


def _train_and_report(cfg: BaselineConfig, pp: Preprocessed, ds: PropsDataset, dev: torch.device,
                      out: Path, tmp: Path) -> dict:
    """Train the models and write their plots and checkpoints into `tmp` (the folder that
    becomes `out`); the report dict."""
    import torch

    torch.manual_seed(cfg.seed)
    class_names = list(ds.class_names)
    n_tr = pp.y_train.shape[0]
    report_cfg = {
        "data_dir": str(cfg.data_dir),
        "out": str(out),
        "models": cfg.models(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "seed": cfg.seed,
        "num_train": cfg.num_train,
        "num_test": cfg.num_test,
        "val_fraction": cfg.val_fraction,
        "k": cfg.k,
        "k_choices": list(cfg.k_choices),
        "folds": cfg.folds,
        "knn_precision": cfg.knn_precision,
        "optimizer": cfg.optimizer,
        "search": cfg.search,
        "search_budget": cfg.search_budget,
        "search_iters": cfg.search_iters,
        "lr": cfg.lr,
        "reg": cfg.reg,
        "reg_type": cfg.reg_type,
        "bias": cfg.bias,
        "num_iters": cfg.num_iters,
        "batch_size": cfg.batch_size,
        "compare_optimizers": cfg.compare_optimizers,
        "class_names": class_names,
        "chance_accuracy": 1.0 / len(class_names),
        "preprocessing": {
            "scale": "pixels / 255",
            "mean_rgb": [float(v) for v in pp.mean],
            "mean_over": "training split (validation and test excluded)",
            "layout": "channel-first (3, 32, 32) flattened to 3072",
        },
        "dataset": {
            "root": str(ds.root),
            "train": int(n_tr),
            "val": int(pp.y_val.shape[0]),
            "test": int(pp.y_test.shape[0]),
            "train_per_class": np.bincount(pp.y_train.cpu().numpy(), minlength=len(class_names)).tolist(),
            "test_per_class": np.bincount(pp.y_test.cpu().numpy(), minlength=len(class_names)).tolist(),
            "train_files": len(ds.train_files),
            "validation_split": pp.validation_split,
            "test_files": len(ds.test_files),
        },
    }
    report: dict = {}
    for name in cfg.models():
        if name == "knn":
            report["knn"] = _run_knn(cfg, pp, dev, tmp, class_names)
        else:
            report[name] = _run_linear(name, cfg, pp, dev, tmp, class_names, report_cfg)
    report["config"] = report_cfg
    return report
