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

This module imports only the standard library and numpy at import time, so the command
line's `--help` stays fast; torch and matplotlib load inside `run`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import BadInput

MODELS = ("knn", "svm", "softmax")
K_CHOICES = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)


@dataclass
class BaselineConfig:
    """Everything `run` needs. Paths may be str or Path; None means the default.

    data_dir: the `Progress-Objects-Sample` folder or its parent. out: the report folder
    (default: `baseline/` beside `Progress-Objects-Sample/`, i.e. DIR/baseline when DIR
    is the parent). num_train / num_test: images in total (train counts training +
    validation). k: fixed k for kNN (None: choose by `folds`-fold CV over k_choices).
    lr / reg: fixed linear hyperparameters (both given: no search).
    knn_train_eval: at most this many training images for kNN's training accuracy.
    knn_method: 'float32' (GEMM on the preprocessed features, any device) or 'int8'
    (exact integer distances on the raw pixels, CPU; same neighbours: the ranking does
    not change under the common scale and shift of the preprocessing).
    """

    data_dir: str | os.PathLike
    model: str = "all"
    device: str = "auto"
    out: str | os.PathLike | None = None
    num_train: int | None = None
    num_test: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    # kNN
    k: int | None = None
    k_choices: tuple[int, ...] = K_CHOICES
    folds: int = 5
    knn_train_eval: int = 2000
    knn_method: str = "float32"
    # linear models
    optimizer: str = "sgd"
    search: str = "random"
    search_budget: int = 12
    search_iters: int = 500
    lr: float | None = None
    reg: float | None = None
    reg_type: str = "l2"
    bias: str = "trick"
    num_iters: int = 1500
    batch_size: int = 200
    compare_optimizers: bool = False
    # output
    progress: bool = True
    write_checkpoints: bool = True
    extra: dict = field(default_factory=dict)

    def models(self) -> list[str]:
        if self.model == "all":
            return list(MODELS)
        names = [m.strip() for m in str(self.model).split(",") if m.strip()]
        bad = [m for m in names if m not in MODELS]
        if bad or not names:
            raise BadInput("--model", f"'{self.model}' (expected knn, svm, softmax or all)")
        return [m for m in MODELS if m in names]


def _check_config(cfg: BaselineConfig) -> None:
    from labeller.baseline.linear import BIAS_MODES, OPTIMIZERS, REG_TYPES

    cfg.models()
    checks = [
        (cfg.optimizer in OPTIMIZERS, "--optimizer", f"'{cfg.optimizer}' (expected one of {', '.join(OPTIMIZERS)})"),
        (cfg.search in ("grid", "random"), "--search", f"'{cfg.search}' (expected grid or random)"),
        (cfg.reg_type in REG_TYPES, "--reg-type", f"'{cfg.reg_type}' (expected l2 or l1)"),
        (cfg.bias in BIAS_MODES, "--bias", f"'{cfg.bias}' (expected trick or separate)"),
        (cfg.num_iters >= 1, "--num-iters", f"must be at least 1 (got {cfg.num_iters})"),
        (cfg.search_iters >= 1, "--search-iters", f"must be at least 1 (got {cfg.search_iters})"),
        (cfg.search_budget >= 1, "--search-budget", f"must be at least 1 (got {cfg.search_budget})"),
        (cfg.batch_size >= 1, "--batch-size", f"must be at least 1 (got {cfg.batch_size})"),
        (cfg.k is None or cfg.k >= 1, "--k", f"must be at least 1 (got {cfg.k})"),
        (cfg.folds >= 2, "--folds", f"must be at least 2 (got {cfg.folds})"),
        (cfg.knn_method in ("float32", "int8"), "--knn-method", f"'{cfg.knn_method}' (expected float32 or int8)"),
        (cfg.lr is None or (cfg.lr > 0 and math.isfinite(cfg.lr)), "--lr", f"must be a positive number (got {cfg.lr})"),
        (cfg.reg is None or (cfg.reg >= 0 and math.isfinite(cfg.reg)), "--reg", f"must be >= 0 (got {cfg.reg})"),
        (0.0 <= cfg.val_fraction < 1.0, "--val-fraction", f"must be in [0, 1) (got {cfg.val_fraction})"),
    ]
    for ok, where, problem in checks:
        if not ok:
            raise BadInput(where, problem)
    if cfg.optimizer == "adamw" and cfg.reg_type != "l2":
        raise BadInput("--optimizer", "adamw's decoupled weight decay is an L2 penalty; use --reg-type l2")


def default_out(props_root: Path) -> Path:
    """`baseline/` beside `Progress-Objects-Sample/` (never inside it: the course
    loader opens every file there as a pickle)."""
    return props_root.parent / "baseline"


def _check_out(out: Path, props_root: Path) -> None:
    try:
        inside = out.resolve().is_relative_to(props_root.resolve())
    except OSError:
        inside = False
    if inside:
        raise BadInput("--out", f"{out} is inside {props_root} (the course loader reads every file there); choose another folder")
    if out.exists() and not out.is_dir():
        raise BadInput("--out", f"{out} exists and is not a directory")


def _eval(model_predict, X, y) -> tuple[float | None, np.ndarray]:
    if X.shape[0] == 0:
        return None, np.zeros(0, np.int64)
    pred = model_predict(X).cpu().numpy()
    return float((pred == y.cpu().numpy()).mean()), pred


def _run_knn(cfg, pp, dev, out: Path, class_names, report_cfg) -> dict:
    import torch

    from labeller.baseline.knn import KNNClassifier, cross_validate_k
    from labeller.baseline.report import confusion_matrix, per_class_accuracy, plot_confusion

    t0 = time.perf_counter()
    C = len(class_names)
    cv = None
    if cfg.knn_method == "int8":
        # raw pixels (any fixed flattening): the same neighbours as the preprocessed features
        def feats(raw):
            return torch.from_numpy(np.ascontiguousarray(raw.reshape(raw.shape[0], -1)))

        X_tr, X_val, X_te = feats(pp.raw_train), feats(pp.raw_val), feats(pp.raw_test)
    else:
        X_tr, X_val, X_te = pp.X_train, pp.X_val, pp.X_test
    if cfg.k is None:
        k, accs = cross_validate_k(X_tr, pp.y_train, cfg.k_choices, cfg.folds, cfg.seed, dev,
                                   num_classes=C, progress=cfg.progress, method=cfg.knn_method)
        cv = {"folds": cfg.folds, "accuracy_by_k": {str(kk): v for kk, v in accs.items()}}
    else:
        k = min(cfg.k, X_tr.shape[0])
    model = KNNClassifier(k=k, num_classes=C, device=dev, method=cfg.knn_method,
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
        "method": cfg.knn_method,
        "train_accuracy_images": int(len(sub)),
        "files": {"confusion": "confusion_knn.png"},
    }
    if cv:
        res["cross_validation"] = cv
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def _compare_optimizers(cfg, name, pp, dev, reg, C, out: Path) -> dict:
    """Each optimiser at its best of 4 learning rates (by mean loss over the last 10 %
    of iterations), with the chosen regularisation; plot the curves."""
    from labeller.baseline.linear import LR_RANGES, OPTIMIZERS, LinearClassifier
    from labeller.baseline.report import plot_optimizers

    curves = {}
    opts = OPTIMIZERS if cfg.reg_type == "l2" else tuple(o for o in OPTIMIZERS if o != "adamw")
    it = opts
    if cfg.progress:
        from tqdm import tqdm

        it = tqdm(opts, desc=f"{name}: comparing optimisers", unit="opt", leave=False)
    for opt in it:
        best = None
        for lr in np.logspace(*np.log10(LR_RANGES[opt]), 4):
            m = LinearClassifier(loss=name, lr=float(lr), reg=reg, reg_type=cfg.reg_type, optimizer=opt,
                                 num_iters=cfg.num_iters, batch_size=cfg.batch_size, bias=cfg.bias,
                                 seed=cfg.seed, device=dev, num_classes=C).fit(pp.X_train, pp.y_train)
            h = np.asarray(m.loss_history_)
            final = float(np.mean(h[-max(1, len(h) // 10):]))
            if m.diverged_ or not math.isfinite(final):
                continue
            if best is None or final < best["final_loss"]:
                best = {"lr": float(lr), "final_loss": final, "history": h.tolist(),
                        "val_accuracy": m.score(pp.X_val, pp.y_val) if pp.X_val.shape[0] else None}
        if best is not None:
            curves[opt] = best
    plot_optimizers(curves, f"{name}: training loss per optimiser (reg {reg:.1e}, batch {cfg.batch_size})",
                    out / f"optimizers_{name}.png")
    return {o: {k: v for k, v in c.items() if k != "history"} for o, c in curves.items()}


def _run_linear(name, cfg, pp, dev, out: Path, class_names, report_cfg) -> dict:
    from labeller.baseline.linear import (
        LR_RANGES,
        REG_RANGE,
        LinearClassifier,
        search_hyperparameters,
    )
    from labeller.baseline.report import (
        confusion_matrix,
        per_class_accuracy,
        plot_confusion,
        plot_loss,
        save_checkpoint,
    )

    t0 = time.perf_counter()
    C = len(class_names)
    common = dict(reg_type=cfg.reg_type, batch_size=cfg.batch_size, bias=cfg.bias, device=dev, num_classes=C)
    search = None
    if cfg.lr is not None and cfg.reg is not None:
        lr, reg = cfg.lr, cfg.reg
    else:
        if pp.X_val.shape[0] == 0:
            raise BadInput("--val-fraction", "the search needs a validation split; give --lr and --reg or a --val-fraction > 0")
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
    report.json). Raises BadInput for anything the user can fix."""
    _check_config(cfg)
    import torch

    from labeller.baseline.data import find_props_root, load_props, preprocess
    from labeller.baseline.knn import resolve_device
    from labeller.core.fileio import atomic_write_json

    dev = resolve_device(cfg.device)  # fails fast on --device cuda without a GPU
    root = find_props_root(cfg.data_dir)
    out = Path(cfg.out) if cfg.out is not None else default_out(root)
    _check_out(out, root)
    ds = load_props(root)
    pp = preprocess(ds, cfg.num_train, cfg.num_test, cfg.val_fraction, cfg.seed, device=dev)
    out.mkdir(parents=True, exist_ok=True)
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
        "knn_method": cfg.knn_method,
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
            "test_files": len(ds.test_files),
        },
    }
    report: dict = {}
    for name in cfg.models():
        if name == "knn":
            report["knn"] = _run_knn(cfg, pp, dev, out, class_names, report_cfg)
        else:
            report[name] = _run_linear(name, cfg, pp, dev, out, class_names, report_cfg)
    report["config"] = report_cfg
    atomic_write_json(out / "report.json", report)
    return report


def predict_paths(checkpoint, paths, device: str = "cpu") -> list[dict]:
    """Classify images (PNG/JPEG files, resized to 32×32 when needed) or the test split
    of PROPS datasets with a linear checkpoint. Returns one dict per input:
    {"path", "class", "label", "score"} for an image; {"path", "accuracy", "n",
    "per_class_accuracy"} for a dataset."""
    import cv2

    from labeller.baseline.data import find_props_root, load_props
    from labeller.baseline.knn import resolve_device
    from labeller.baseline.report import (
        confusion_matrix,
        load_checkpoint,
        per_class_accuracy,
        predict_with_checkpoint,
    )
    from labeller.core.fileio import read_image

    dev = resolve_device(device)
    ck = load_checkpoint(checkpoint)
    names = list(ck["class_names"])
    results = []
    for p in map(Path, paths):
        if p.is_dir():
            ds = load_props(find_props_root(p), class_names=tuple(names))
            pred, _ = predict_with_checkpoint(ck, ds.test_images, dev)
            conf = confusion_matrix(ds.test_labels, pred, len(names))
            results.append({"path": str(p), "n": int(len(pred)), "accuracy": float((pred == ds.test_labels).mean()),
                            "per_class_accuracy": per_class_accuracy(conf, names)})
            continue
        img = read_image(p)
        if img.ndim != 3 or img.dtype != np.uint8:
            raise BadInput(p, f"expected an 8-bit RGB image (got shape {img.shape}, dtype {img.dtype})")
        if img.shape[:2] != (32, 32):
            img = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
        pred, scores = predict_with_checkpoint(ck, img[None], dev)
        lab = int(pred[0])
        results.append({"path": str(p), "label": lab, "class": names[lab], "score": float(scores[0, lab])})
    return results
