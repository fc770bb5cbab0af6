"""Preprocess a PROPS classification dataset as the course does.

`preprocess` follows the course's `preprocess_cifar10`: scale to [0, 1], subtract the
per-channel mean of the training images, flatten channel-first (C, H, W) to 3,072
features. The validation split is a seeded, stratified held-out part of the training
images (default 20 %), made of whole scenes (class pickles) where a class has at least
two, so that near-duplicate frames of one scene never sit on both sides of it
(`grouped_validation_split`). torch loads only when `preprocess` or
`images_to_features` runs.
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


def grouped_validation_split(labels: np.ndarray, groups: np.ndarray, fraction: float,
                             rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(positions of the validation images, a line saying how they were chosen).

    Per class: whole groups (scenes) in a seeded random order are held out, as many as
    bring the held-out count closest to `fraction` of the class, at least one and never
    all of them. A class with a single group is split per image (stratified, seeded),
    and the line names it."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    n_val = int(round(len(labels) * fraction))
    if n_val == 0:
        return np.zeros(0, np.int64), "none (val_fraction 0)"
    classes = np.unique(labels)
    if all(len(np.unique(groups[labels == c])) < 2 for c in classes):
        return (stratified_subset(labels, n_val, rng),
                "per image, stratified (every class has a single training scene)")
    val: list[np.ndarray] = []
    per_image: list[int] = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        names = np.unique(groups[idx])
        target = fraction * len(idx)
        if len(names) < 2:
            per_image.append(int(c))
            take = int(round(target))
            val.append(rng.permutation(idx)[:take])
            continue
        names = rng.permutation(names)
        counts = np.array([np.count_nonzero(groups[idx] == g) for g in names])
        cum = np.cumsum(counts)[:-1]  # never all groups
        j = int(np.argmin(np.abs(cum - target)))
        held = set(names[: j + 1].tolist())
        val.append(idx[np.isin(groups[idx], list(held))])
    pos = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    how = "grouped by scene (whole class pickles held out per class)"
    if per_image:
        how += (f"; per image for {len(per_image)} class(es) with a single training scene "
                f"(labels {', '.join(map(str, per_image))})")
    return pos.astype(np.int64), how


@dataclass
class Preprocessed:
    """Tensors ready for the models (float32, channel-first flattened).

    `X_*`: (N, 3072) float32, pixels scaled to [0, 1] minus `mean`; `y_*`: (N,) int64;
    `raw_*`: the same images as stored, uint8 (N, 32, 32, 3) (kNN can use these: its
    ranking does not change under a common scale and shift); `mean`: (3,) float32
    per-channel mean of the training split in [0, 1] units (R, G, B); `group_train`:
    (N,) int64 scene (source pickle) of each training-split image, for grouped
    cross-validation (None when unknown); `validation_split`: how the validation images
    were chosen (one line).
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
    group_train: np.ndarray | None = None
    validation_split: str = ""


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
    images never influence the preprocessing. With `ds.train_source` (the pickle of each
    image) the validation split holds out whole pickles (`grouped_validation_split`).
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
    source = ds.train_source
    if source is not None and n_val:
        val_pos, how = grouped_validation_split(ds.train_labels[tr], source[tr], val_fraction, rng)
        if len(val_pos) >= len(tr):
            raise BadInput("--val-fraction", f"{val_fraction} holds out every training image")
    else:
        # validation = the first n_val of a stratified random order of the training subset
        val_pos = stratified_subset(ds.train_labels[tr], n_val, rng) if n_val else np.zeros(0, np.int64)
        how = "per image, stratified (no scene per image known)" if n_val else "none (val_fraction 0)"
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
        group_train=None if source is None else np.asarray(source[tr_idx], np.int64),
        validation_split=how,
    )
