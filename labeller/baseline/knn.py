"""k-nearest-neighbour classification: `KNNClassifier` (scikit-learn style) and the vote.

The search itself is `labeller.baseline.neighbours` (block by block, memory-bounded,
exact on 8-bit pixels whatever the precision); the precision is chosen by
`labeller.baseline.precision.choose_precision` (`precision="auto"`: the fastest exact
path on this device for pixels, float32 for other features). Cross-validation of k is
`labeller.baseline.cv`.

Votes: the majority label among the k nearest; a tie goes to the smallest label.
Neighbours at equal distance go to the smaller training index (pixels; for floating
features in no particular order).
"""

from __future__ import annotations

import torch

from labeller.baseline.device import resolve_device
from labeller.baseline.precision import KNN_PRECISIONS
from labeller.core.errors import BadInput

DEFAULT_CHUNK_BYTES = 64 << 20  # one block of `pairwise_sq_dists`: 64 MiB


def pairwise_sq_dists(A: torch.Tensor, B: torch.Tensor, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Full (n, m) matrix of squared Euclidean distances, computed in row chunks.

    A: (n, D), B: (m, D), same floating dtype and device. The result is (n, m) of that
    dtype, clamped at 0; the caller makes sure it fits. For large problems use
    `knn_search`, which never holds more than one block.
    """
    n, m = A.shape[0], B.shape[0]
    out = torch.empty((n, m), dtype=A.dtype, device=A.device)
    bn = (B * B).sum(1)
    rows = max(1, min(n, chunk_bytes // max(1, m * A.element_size())))
    for s in range(0, n, rows):
        a = A[s : s + rows]
        blk = torch.addmm(bn, a, B.T, beta=1, alpha=-2)
        blk += (a * a).sum(1, keepdim=True)
        out[s : s + rows] = blk.clamp_(min=0)
    return out


def knn_search(Q: torch.Tensor, X: torch.Tensor, k: int, progress: bool = False, desc: str = "kNN",
               precision: str | None = None):
    """The `k` nearest rows of `X` for every row of `Q`, by squared Euclidean distance.

    Q: (n, D) queries, X: (m, D) training rows, both uint8 pixels or both floating
    features, on one device. `precision` defaults to the features' own type (float32
    or float64) and to int8 (when exact here, else float64) for pixels. Returns
    (dist (n, k) ascending, idx (n, k) int64 into X); see `labeller.baseline.neighbours`.
    """
    from labeller.baseline.knn_int8 import int8_available
    from labeller.baseline.neighbours import Distances, search

    if precision is None:
        if X.dtype == torch.uint8:
            precision = "int8" if int8_available(X.device) else "float64"
        else:
            precision = "float64" if X.dtype == torch.float64 else "float32"
    return search(Distances(X, precision, X.device), Q, k, progress, desc)


def majority_vote(neighbor_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Most frequent label per row of (n, k) int64 labels; ties go to the smallest label.

    The tie rule is explicit (count · C + (C − 1 − label), then argmax), so it does not
    rest on which maximum `argmax` happens to return.
    """
    n = neighbor_labels.shape[0]
    counts = torch.zeros((n, num_classes), dtype=torch.int64, device=neighbor_labels.device)
    counts.scatter_add_(1, neighbor_labels, torch.ones_like(neighbor_labels))
    order = torch.arange(num_classes - 1, -1, -1, device=counts.device)
    return (counts * num_classes + order).argmax(1)


class KNNClassifier:
    """k-nearest-neighbour classifier (scikit-learn style).

    Parameters: `k` neighbours; `num_classes` (default: max label + 1 seen in `fit`);
    `device` ('auto', 'cpu', 'cuda'); `precision` (one of KNN_PRECISIONS: 'auto',
    'int8', 'float32', 'float64', 'float16', 'bfloat16'; see
    `labeller.baseline.precision`). X may be uint8 pixels ((N, D) or images, flattened;
    every precision then gives the exact float64 neighbours) or floating features.

    Learned state: `X_train_` (N, D) tensor on the device, `y_train_` (N,) int64,
    `num_classes_`, `n_features_in_`, `device_`, `precision_` (the one that runs),
    `precision_reason_` (why), `distances_` (the prepared `Distances`).
    """

    def __init__(self, k: int = 1, num_classes: int | None = None, device="cpu", precision: str = "auto",
                 progress: bool = False):
        self.k = k
        self.num_classes = num_classes
        self.device = device
        self.precision = precision
        self.progress = progress

    def fit(self, X, y) -> KNNClassifier:
        """X: (N, D) features or uint8 pixels (or (N, ...) images, flattened); y: (N,) int labels."""
        from labeller.baseline.neighbours import Distances
        from labeller.baseline.precision import choose_precision

        if self.precision not in KNN_PRECISIONS:
            raise BadInput("--knn-precision", f"'{self.precision}' (expected one of {', '.join(KNN_PRECISIONS)})")
        self.device_ = resolve_device(self.device)
        Xt = torch.as_tensor(X, device=self.device_)
        if Xt.ndim < 2:
            raise ValueError(f"expected a 2-D (N, D) array, got shape {tuple(Xt.shape)}")
        Xt = Xt.reshape(Xt.shape[0], -1)
        pixels = Xt.dtype == torch.uint8
        if not pixels and not Xt.is_floating_point():
            Xt = Xt.to(torch.float32)
        choice = choose_precision(self.precision, pixels, self.device_)
        self.precision_, self.precision_reason_ = choice.precision, choice.reason
        self.distances_ = Distances(Xt, choice.precision, self.device_)
        self.X_train_ = Xt
        self.y_train_ = torch.as_tensor(y, device=self.device_).to(torch.int64).reshape(-1)
        if self.y_train_.shape[0] != Xt.shape[0]:
            raise ValueError(f"X has {Xt.shape[0]} rows but y has {self.y_train_.shape[0]}")
        self.num_classes_ = int(self.num_classes or int(self.y_train_.max()) + 1)
        self.n_features_in_ = Xt.shape[1]
        return self

    def kneighbors(self, X, n_neighbors: int | None = None):
        """(dist (n, k) squared distances ascending, idx (n, k) int64 into the training set).

        Pixels: int64 exact squared distances in pixel units."""
        from labeller.baseline.neighbours import search

        k = min(n_neighbors or self.k, self.X_train_.shape[0])
        Q = torch.as_tensor(X, device=self.device_)
        Q = Q.reshape(Q.shape[0], -1)
        if (Q.dtype == torch.uint8) != self.distances_.pixels:
            raise ValueError("queries must be of the same kind as the training rows (uint8 pixels or features)")
        if not self.distances_.pixels and not Q.is_floating_point():
            Q = Q.to(torch.float32)
        return search(self.distances_, Q, k, self.progress)

    def predict(self, X, k: int | None = None) -> torch.Tensor:
        """(n,) int64 predicted labels (on the estimator's device)."""
        _, idx = self.kneighbors(X, k or self.k)
        return majority_vote(self.y_train_[idx], self.num_classes_)

    def score(self, X, y) -> float:
        """Fraction of `X` whose predicted label equals `y`."""
        y = torch.as_tensor(y, device=self.device_).reshape(-1)
        return float((self.predict(X) == y).double().mean())


def accuracy_for_each_k(neighbor_labels: torch.Tensor, y: torch.Tensor, ks, num_classes: int) -> dict[int, float]:
    """Accuracy of the k-NN vote for each k in `ks`, from (n, kmax) labels sorted by distance."""
    return {
        int(k): float((majority_vote(neighbor_labels[:, :k], num_classes) == y).double().mean())
        for k in ks
    }
