"""Preprocess a PROPS classification dataset as the course does.

`preprocess` follows the course's `preprocess_cifar10`: scale to [0, 1], subtract the
per-channel mean of the training images, flatten channel-first (C, H, W) to 3,072
features. The validation split is a seeded, stratified held-out part of the training
images (default 20 %). torch loads only when `preprocess` or `images_to_features` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from labeller.core.errors import BadInput

if TYPE_CHECKING:
    import torch

    from labeller.baseline.data import PropsDataset


def stratified_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` of `labels`, as evenly spread over the classes as possible.

    Classes are interleaved round-robin in a seeded random order, so a subset of 50
    from 10 classes holds 5 of each when every class has 5. Returns sorted indices.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[rng.permutation(idx)] = np.arange(len(idx))
    # order by (rank within class, random tie-break between classes)
    order = np.lexsort((rng.random(len(labels)), rank))
    return np.sort(order[:n])


@dataclass
class Preprocessed:
    """Tensors ready for the models (float32, channel-first flattened).

    `X_*`: (N, 3072) float32, pixels scaled to [0, 1] minus `mean`; `y_*`: (N,) int64;
    `raw_*`: the same images as stored, uint8 (N, 32, 32, 3) (kNN can use these: its
    ranking does not change under a common scale and shift); `mean`: (3,) float32
    per-channel mean of the training split in [0, 1] units (R, G, B).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    mean: np.ndarray
    raw_train: np.ndarray
    raw_val: np.ndarray
    raw_test: np.ndarray
    class_names: tuple[str, ...]


def images_to_features(images: np.ndarray, mean, device="cpu"):
    """uint8 (N, 32, 32, 3) RGB -> float32 tensor (N, 3072) = flatten_CHW(img/255 - mean).

    `mean` is a (3,) per-channel mean in [0, 1] units.
    """
    import torch

    x = torch.as_tensor(np.ascontiguousarray(images), device=device)
    x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (N, 3, 32, 32)
    x = x - torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return x.reshape(x.shape[0], -1).contiguous()


def preprocess(
    ds: PropsDataset,
    num_train: int | None = None,
    num_test: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    device="cpu",
) -> Preprocessed:
    """Subset, split and normalise `ds` as the course does.

    `num_train` counts the training images in total (training + validation split);
    `num_test` the test images. Subsets are stratified and seeded. The validation split
    is `val_fraction` of the (subset of the) training images, stratified and seeded;
    the mean is taken over the remaining training split only, so validation and test
    images never influence the preprocessing.
    """
    rng = np.random.default_rng(seed)
    n_tr_all, n_te_all = len(ds.train_labels), len(ds.test_labels)
    if num_train is not None:
        if num_train < 2:
            raise BadInput("--num-train", f"must be at least 2 (got {num_train})")
        if num_train > n_tr_all:
            raise BadInput("--num-train", f"asks for {num_train} images but {ds.root} has {n_tr_all} training images")
    if num_test is not None:
        if num_test < 1:
            raise BadInput("--num-test", f"must be at least 1 (got {num_test})")
        if num_test > n_te_all:
            raise BadInput("--num-test", f"asks for {num_test} images but {ds.root} has {n_te_all} test images")
    if not 0.0 <= val_fraction < 1.0:
        raise BadInput("--val-fraction", f"must be in [0, 1) (got {val_fraction})")
    tr = stratified_subset(ds.train_labels, num_train or n_tr_all, rng)
    te = stratified_subset(ds.test_labels, num_test or n_te_all, rng)
    n_val = int(round(len(tr) * val_fraction))
    if n_val >= len(tr):
        raise BadInput("--num-train", f"{len(tr)} training images leave none to train on after the validation split")
    # validation = the first n_val of a stratified random order of the training subset
    val_pos = stratified_subset(ds.train_labels[tr], n_val, rng) if n_val else np.zeros(0, np.int64)
    keep = np.ones(len(tr), bool)
    keep[val_pos] = False
    tr_idx, val_idx = tr[keep], tr[val_pos]
    raw_train, raw_val, raw_test = ds.train_images[tr_idx], ds.train_images[val_idx], ds.test_images[te]
    mean = raw_train.reshape(-1, 3).mean(axis=0, dtype=np.float64) / 255.0  # (3,) R, G, B
    mean = mean.astype(np.float32)
    import torch

    def lab(a):
        return torch.as_tensor(a, dtype=torch.int64, device=device)

    return Preprocessed(
        X_train=images_to_features(raw_train, mean, device),
        y_train=lab(ds.train_labels[tr_idx]),
        X_val=images_to_features(raw_val, mean, device),
        y_val=lab(ds.train_labels[val_idx]),
        X_test=images_to_features(raw_test, mean, device),
        y_test=lab(ds.test_labels[te]),
        mean=mean,
        raw_train=raw_train,
        raw_val=raw_val,
        raw_test=raw_test,
        class_names=ds.class_names,
    )
