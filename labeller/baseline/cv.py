"""Cross-validation of k at the cost of one distance pass, with folds grouped by scene.

Folds (`make_folds`): with a scene (group) per image and at least two scenes in every
class, whole scenes go to folds (scikit-learn's `StratifiedGroupKFold`, seeded), so a
validation image never has a near-duplicate frame of its own scene in its fold's
training set (random folds leak: consecutive frames are nearly identical). Otherwise the
folds are a seeded random split, and `grouping` says why.

One pass (`cross_validate_k`): the images are ordered by fold; for every pair of folds
each block of distances between them is computed once and serves both directions: its
rows give one fold's queries candidates in the other, its columns give the other fold's
queries candidates in the first (‖x − y‖² is symmetric). Every image thereby meets every
image of the other folds, which is exactly its fold's training set, with half the
distance work of per-fold searches. Each image keeps the kmax + EXTRA best
(`labeller.baseline.candidates.Candidates`: a block lets in only the keys at most a
query's current worst kept one, so no top-k runs over whole blocks), made exact by
`labeller.baseline.neighbours.finalize`; every k in the grid reads its vote from the
kmax nearest. Blocks are large (a whole pair of 8,000-image folds when memory allows)
and each pair is oriented so that the fold whose queries have met fewer images so far
takes the rows: the more survivors go where they need no sorting by query.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from labeller.baseline.config import K_CHOICES
from labeller.baseline.device import resolve_device
from labeller.baseline.knn import accuracy_for_each_k
from labeller.baseline.memory import block_rows
from labeller.core.errors import BadInput
from labeller.core.progress import bar

# Blocks of the one-pass CV: as large as memory allows up to a whole pair of 8,000-image
# folds, since a query's first block sets its threshold and each later block lets in
# about kk x (block / training rows met so far): fewer, larger blocks let in fewer.
CV_COL_BLOCK = 8192
CV_MAX_ROWS = 8192
CV_MAX_BLOCK_BYTES = 512 << 20


@dataclass
class CrossValidation:
    """The result: `best_k`, `accuracy_by_k` {k: mean accuracy over folds}, `grouping`
    (one line: how the folds were made), `precision` and `precision_reason`, `folds`."""

    best_k: int
    accuracy_by_k: dict[int, float]
    grouping: str
    precision: str
    precision_reason: str
    folds: int
    fold_sizes: list[int] = field(default_factory=list)


def make_folds(y: np.ndarray, groups: np.ndarray | None, num_folds: int, seed: int = 0
               ) -> tuple[np.ndarray, str]:
    """(fold id (n,) in 0..num_folds-1, a line saying how). Grouped by `groups` (one id
    per image, e.g. its scene) when every class has at least two groups and there are at
    least `num_folds` groups; otherwise seeded random folds."""
    n = len(y)
    y = np.asarray(y)
    why = "no scene per image given"
    if groups is not None:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        per_class = [len(np.unique(groups[y == c])) for c in np.unique(y)]
        if n_groups < num_folds:
            why = f"only {n_groups} scenes for {num_folds} folds"
        elif min(per_class) < 2:
            single = int(sum(1 for p in per_class if p < 2))
            why = f"{single} class(es) have a single training scene, which grouped folds would leave out of training"
        else:
            import warnings

            from sklearn.model_selection import StratifiedGroupKFold

            fold = np.empty(n, np.int64)
            with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
                warnings.simplefilter("ignore", UserWarning)
                splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
                for f, (_, val) in enumerate(splitter.split(np.zeros(n), y, groups)):
                    fold[val] = f
            sizes = np.bincount(fold, minlength=num_folds)
            if sizes.min() > 0:
                return fold, (f"grouped by scene: {n_groups} scenes in {num_folds} folds, "
                              "stratified by class (StratifiedGroupKFold)")
            why = "the scenes could not fill every fold"
    perm = np.random.default_rng(seed).permutation(n)
    fold = np.empty(n, np.int64)
    for f, part in enumerate(np.array_split(perm, num_folds)):
        fold[part] = f
    return fold, f"random folds ({why}): near-duplicate frames of one scene may fall on both sides"


def cross_validate_k(
    X, y, k_choices=K_CHOICES, num_folds: int = 5, seed: int = 0, device="cpu",
    num_classes: int | None = None, progress: bool = False, precision: str = "auto",
    groups: np.ndarray | None = None,
) -> CrossValidation:
    """Choose k by `num_folds`-fold cross-validation on (X, y) in one distance pass.

    X: (n, D) uint8 pixels or floating features; y: (n,) labels; groups: (n,) scene
    ids or None (see `make_folds`). A k larger than a fold's training set is skipped
    (for every fold alike). Accuracy per k is the mean over folds; the best k is the
    most accurate, ties to the smaller k. Neighbours are those of an exact search in
    each fold's training set (pixels: exact, ties to the smaller index in the
    fold-ordered data, which keeps the original order within each fold)."""
    from labeller.baseline.candidates import Candidates, torch_threads
    from labeller.baseline.neighbours import EXTRA, Distances, finalize, key_dtype
    from labeller.baseline.precision import choose_precision

    dev = resolve_device(device)
    X = torch.as_tensor(X)
    X = X.reshape(X.shape[0], -1)
    if X.dtype != torch.uint8 and not X.is_floating_point():
        X = X.to(torch.float32)
    y_np = torch.as_tensor(y).cpu().numpy().astype(np.int64).reshape(-1)
    n = X.shape[0]
    if num_folds < 2 or n < num_folds:
        raise BadInput("--folds", f"{num_folds}-fold cross-validation needs at least {max(2, num_folds)} "
                                  f"training images (have {n})")
    C = int(num_classes or int(y_np.max()) + 1)
    fold, grouping = make_folds(y_np, None if groups is None else np.asarray(groups), num_folds, seed)
    order = np.argsort(fold, kind="stable")  # by fold, original order within a fold
    sizes = np.bincount(fold, minlength=num_folds)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    smallest_train = int(n - sizes.max())
    ks = sorted({int(k) for k in k_choices if 1 <= int(k) <= smallest_train})
    if not ks:
        raise BadInput("--k-choices", f"no k in {list(k_choices)} fits a fold's training set of {smallest_train} images")
    kmax = ks[-1]
    choice = choose_precision(precision, X.dtype == torch.uint8, dev)
    Xs = X[torch.from_numpy(order)].to(dev)
    ys = torch.from_numpy(y_np[order]).to(dev)
    rank = torch.from_numpy(order).to(dev)  # equal distances go to the smaller original index
    dist = Distances(Xs, choice.precision, dev)
    kk = min(kmax + EXTRA, smallest_train)
    kd = key_dtype(dist)
    kept = Candidates(n, kk, kd, dev)  # (n, kk) per image
    P = dist.train
    w = CV_COL_BLOCK
    # per row: one block of keys (reused) and its bool mask; the survivors are few
    rows = block_rows(w * (torch.empty(0, dtype=kd).element_size() + 1), dev, limit=CV_MAX_ROWS, minimum=64,
                      max_bytes=CV_MAX_BLOCK_BYTES)
    buf = torch.empty(rows * w, dtype=kd, device=dev)
    blocks = []
    seen = [0] * num_folds  # training rows each fold's queries have met so far
    for a, b in itertools.combinations(range(num_folds), 2):
        if seen[b] < seen[a]:
            # the queries that have met fewer take the rows: they have the more survivors,
            # and survivors along rows need no sorting by query
            a, b = b, a
        seen[a] += int(sizes[b])
        seen[b] += int(sizes[a])
        blocks += [(a, b, r0, c0) for r0 in range(bounds[a], bounds[a + 1], rows)
                   for c0 in range(bounds[b], bounds[b + 1], w)]
    pbar = bar(len(blocks), f"kNN {num_folds}-fold CV (one pass)", "block") if progress else None
    try:
        for a, b, r0, c0 in blocks:
            r1, c1 = min(r0 + rows, bounds[a + 1]), min(c0 + w, bounds[b + 1])
            K = dist.keys(P.rows(r0, r1), c0, c1, out=buf)
            kept.add_rows(K, r0, c0)  # fold-a queries against fold-b rows
            kept.add_cols(K, c0, r0)  # fold-b queries against fold-a rows: the same distances
            if pbar is not None:
                pbar.update(1)
    finally:
        if pbar is not None:
            pbar.close()
    best_v, best_i = kept.v, kept.i
    sums = dict.fromkeys(ks, 0.0)
    for f in range(num_folds):
        lo, hi = bounds[f], bounds[f + 1]
        _, nn = finalize(dist, P.rows(lo, hi), best_v[lo:hi], best_i[lo:hi], kmax, exclude=(lo, hi), rank=rank)
        with torch_threads(1):  # votes on (fold, k) arrays: many small operations
            accs = accuracy_for_each_k(ys[nn], ys[lo:hi], ks, C)
        for k in ks:
            sums[k] += accs[k]
    means = {k: sums[k] / num_folds for k in ks}
    best = max(ks, key=lambda k: (means[k], -k))
    return CrossValidation(best, means, grouping, choice.precision, choice.reason, num_folds, sizes.tolist())
