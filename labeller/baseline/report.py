"""Metrics, plots, the terminal table and the checkpoint format of `labeller baseline`.

Plots are written with matplotlib's Agg backend (no display needed), atomically.
Checkpoints are `torch.save` files of tensors and plain types only, read back with
``torch.load(weights_only=True)``: never a pickle of our classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from labeller.core.errors import BadInput, FormatError

CHECKPOINT_FORMAT = "labeller-baseline-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_ORDER = ("knn", "svm", "softmax")


# ------------------------------------------------------------------------- metrics
def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(conf: np.ndarray, class_names) -> dict[str, float | None]:
    """Class name -> fraction of that class's images predicted correctly (None: no images)."""
    out: dict[str, float | None] = {}
    for i, name in enumerate(class_names):
        n = int(conf[i].sum())
        out[name] = None if n == 0 else float(conf[i, i]) / n
    return out


# --------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, dest: Path) -> None:
    from labeller.core.fileio import atomic_path

    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


def plot_confusion(conf: np.ndarray, class_names, title: str, dest: str | os.PathLike) -> Path:
    """Row-normalised confusion matrix (colour) with the counts written in each cell."""
    plt = _pyplot()
    conf = np.asarray(conf)
    C = conf.shape[0]
    rows = conf.sum(1, keepdims=True)
    frac = np.divide(conf, rows, out=np.zeros(conf.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(0.62 * C + 3.2, 0.55 * C + 2.2))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(C):
        for j in range(C):
            if conf[i, j]:
                ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(C))
    ax.set_yticks(range(C))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels([f"{n} ({int(r)})" for n, r in zip(class_names, rows[:, 0], strict=True)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (test images)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    dest = Path(dest)
    _save(fig, dest)
    plt.close(fig)
    return dest


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 2 or window <= 1:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_loss(history, title: str, dest: str | os.PathLike, trials=None, best=None) -> Path:
    """Training loss per iteration (raw and a moving average); with `trials` (dicts
    with lr, reg, val_accuracy) a second panel shows the search, the best one ringed."""
    plt = _pyplot()
    h = np.asarray(history, float)
    ncols = 2 if trials else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    it = np.arange(1, len(h) + 1)
    ax.plot(it, h, color="tab:blue", alpha=0.3, lw=0.8, label="minibatch loss")
    ax.plot(it, _smooth(h, max(1, len(h) // 50)), color="tab:blue", lw=2, label="moving average")
    ax.set_xlabel("iteration")
    finite = h[np.isfinite(h)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_yscale("log")  # the loss falls by decades: show all of them
        ax.set_ylabel("loss (data + penalty), log scale")
    else:
        ax.set_ylabel("loss (data + penalty)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    if trials:
        ax2 = axes[0, 1]
        lr = np.array([t["lr"] for t in trials])
        reg = np.array([t["reg"] for t in trials])
        acc = np.array([t["val_accuracy"] for t in trials])
        lo, hi = float(acc.min()), float(acc.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.05, hi + 0.05
        sc = ax2.scatter(lr, reg, c=acc, cmap="viridis", vmin=lo, vmax=hi, s=60, edgecolors="k", linewidths=0.5)
        if best is not None:
            ax2.scatter([best["lr"]], [best["reg"]], s=260, facecolors="none", edgecolors="red",
                        linewidths=2, label=f"chosen (val {best['val_accuracy']:.3f})")
            ax2.legend(loc="best", fontsize=8)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("learning rate")
        ax2.set_ylabel("regularisation strength")
        ax2.set_title(f"hyperparameter search ({len(trials)} trials)", fontsize=10)
        fig.colorbar(sc, ax=ax2, label="validation accuracy")
    fig.tight_layout()
    dest = Path(dest)
    _save(fig, dest)
    plt.close(fig)
    return dest


def plot_optimizers(curves: dict[str, dict], title: str, dest: str | os.PathLike) -> Path:
    """One loss curve per optimiser against passes over the training set (so a
    full-batch L-BFGS iteration, which reads every image, is not drawn as cheap as a
    minibatch step); `curves[name]` = {"lr", "history", "final_loss", "passes" (optional,
    one per point; default: the point's index)}. Minibatch curves are smoothed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    styles = ["-", "--", "-.", ":"]  # curves that coincide (adam / adamw) stay visible
    for n, (name, c) in enumerate(curves.items()):
        h = np.asarray(c["history"], float)
        if not len(h):
            continue
        x = np.asarray(c.get("passes") or np.arange(1, len(h) + 1), float)
        label = f"{name} (lr {c['lr']:.1e}, final {c['final_loss']:.3g})"
        if name == "lbfgs":  # full batch: exact losses, no smoothing; a marker per iteration
            ax.plot(x, h, lw=2.2, color="black", marker="o", ms=3, label=label + ", full batch")
        else:
            ax.plot(x, _smooth(h, max(1, len(h) // 50)), lw=1.8, ls=styles[n % len(styles)], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("passes over the training set")
    ax.set_ylabel("training loss (minibatch: moving average; log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    dest = Path(dest)
    _save(fig, dest)
    plt.close(fig)
    return dest


# --------------------------------------------------------------------------- table
def _fmt_acc(v) -> str:
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def _fmt_hp(hp: dict) -> str:
    parts = []
    for k, v in hp.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.2e}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


def format_table(report: dict) -> str:
    """A short text table of a baseline report: one row per model that ran."""
    cfg = report.get("config", {})
    ds = cfg.get("dataset", {})
    lines = []
    if ds:
        lines.append(
            f"baseline on {ds.get('root', '?')}: {ds.get('train', '?')} train, "
            f"{ds.get('val', '?')} val, {ds.get('test', '?')} test images; device {cfg.get('device', '?')}"
        )
    lines.append(f"{'model':<8} {'train':>6} {'val':>6} {'test':>6}  hyperparameters")
    for name in MODEL_ORDER:
        r = report.get(name)
        if not r:
            continue
        hp = {k: v for k, v in r.get("hyperparameters", {}).items()
              if k in ("k", "optimizer", "lr", "reg")}
        lines.append(
            f"{name:<8} {_fmt_acc(r.get('train_accuracy'))} {_fmt_acc(r.get('val_accuracy'))} "
            f"{_fmt_acc(r.get('test_accuracy'))}  {_fmt_hp(hp)}"
        )
    chance = cfg.get("chance_accuracy")
    if chance is not None:
        lines.append(f"(chance: {100 * chance:.1f}%; report: {cfg.get('out', '?')})")
    knn = report.get("knn") or {}
    if knn.get("precision"):
        cv = knn.get("cross_validation") or {}
        folds = f"; CV folds: {cv['grouping'].split(' (')[0].split(':')[0]}" if cv.get("grouping") else ""
        lines.append(f"(kNN distances: {knn['precision']}{folds})")
    return "\n".join(lines)


# ---------------------------------------------------------------------- checkpoint
def save_checkpoint(dest: str | os.PathLike, *, model: str, W, b, bias: str, class_names,
                    mean, hyperparameters: dict, config: dict) -> Path:
    """Write a linear model's checkpoint: W (D', C) float32, b (C,) or None, the bias
    mode, class names, the per-channel preprocessing mean (3,) in [0, 1] units, the
    hyperparameters and the run's config. Tensors and plain types only."""
    import torch

    from labeller.core.fileio import atomic_path

    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model,
        "W": W.detach().to("cpu", torch.float32).contiguous(),
        "b": None if b is None else b.detach().to("cpu", torch.float32).contiguous(),
        "bias": bias,
        "class_names": list(class_names),
        "mean": torch.as_tensor(np.asarray(mean, np.float32)),
        "image_shape": [32, 32, 3],
        "hyperparameters": hyperparameters,
        "config": config,
    }
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        torch.save(payload, tmp)
    return dest


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `save_checkpoint` (weights_only: no code runs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise FormatError(path, f"not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(path, f"not a {CHECKPOINT_FORMAT} file")
    if ck.get("version") != CHECKPOINT_VERSION:
        raise FormatError(path, f"checkpoint version {ck.get('version')} is not supported (expected {CHECKPOINT_VERSION})")
    for key in ("W", "class_names", "mean", "bias"):
        if key not in ck:
            raise FormatError(path, f"checkpoint has no '{key}'")
    W = ck["W"]
    C = len(ck["class_names"])
    want_rows = 3072 + (1 if ck["bias"] == "trick" else 0)
    if W.ndim != 2 or tuple(W.shape) != (want_rows, C):
        raise FormatError(path, f"'W' has shape {tuple(W.shape)} (expected ({want_rows}, {C}))")
    return ck


def predict_with_checkpoint(ck: dict, images: np.ndarray, device="cpu"):
    """Classify uint8 (N, 32, 32, 3) RGB images with a loaded checkpoint.

    Returns (labels int64 (N,), scores float32 (N, C)) as numpy arrays.
    """
    import torch

    from labeller.baseline.preprocess import images_to_features

    X = images_to_features(images, ck["mean"].numpy(), device)
    if ck["bias"] == "trick":
        X = torch.cat([X, torch.ones((X.shape[0], 1), device=X.device)], 1)
    S = X @ ck["W"].to(X.device)
    if ck.get("b") is not None:
        S = S + ck["b"].to(X.device)
    return S.argmax(1).cpu().numpy(), S.cpu().numpy()
