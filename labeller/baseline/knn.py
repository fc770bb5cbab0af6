"""k-nearest-neighbour classification with chunked squared Euclidean distances.

Distances are ``‖a‖² + ‖b‖² − 2 a·b`` computed block by block on the estimator's
device (one GEMM per block), so memory stays bounded by `chunk_bytes` however many
queries and training rows there are; the k smallest per query are merged across
blocks. Never is a full queries × training float64 matrix built.

Votes: the majority label among the k nearest; a tie goes to the smallest label.
Neighbours at exactly equal distance are taken in no particular order.

`labeller.baseline.knn_int8.Int8Index` (KNNClassifier(method="int8")) computes the
same neighbours exactly in integer arithmetic on raw uint8 pixels (CPU only).
"""

from __future__ import annotations

import numpy as np
import torch

from labeller.baseline.config import K_CHOICES, KNN_METHODS
from labeller.baseline.device import resolve_device
from labeller.core.errors import BadInput
from labeller.core.progress import iter_bar

DEFAULT_CHUNK_BYTES = 64 << 20  # one block of distances: 64 MiB
_COL_BLOCK = 4096  # training rows per distance block (4,096 × 4,096 float32 = 64 MiB measured best here)


def _as_matrix(X, device, dtype=None) -> torch.Tensor:
    """(N, ...) array or tensor -> (N, D) tensor on `device` (floating, or uint8 kept)."""
    t = torch.as_tensor(X, device=device)
    if t.ndim == 1:
        raise ValueError(f"expected a 2-D (N, D) array, got shape {tuple(t.shape)}")
    t = t.reshape(t.shape[0], -1)
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float32)
    return t.contiguous()


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


def _numpy_gemm_ok(Q: torch.Tensor, X: torch.Tensor) -> bool:
    """Use numpy's matmul (its bundled OpenBLAS) for the CPU GEMMs?

    Measured here (AMD EPYC, AVX2, one thread): OpenBLAS's sgemm does 78 GFLOP/s where
    torch's MKL does 69-71 on these shapes, which made the float32 search 12 % faster.
    Only for plain CPU float32/float64 tensors that numpy can view without a copy.
    """
    return (
        _USE_NUMPY_GEMM
        and Q.device.type == "cpu"
        and X.device.type == "cpu"
        and Q.dtype == X.dtype
        and Q.dtype in (torch.float32, torch.float64)
        and not Q.requires_grad
        and not X.requires_grad
        and X.is_contiguous()
    )


_USE_NUMPY_GEMM = True


def merge_smallest(best: tuple[torch.Tensor, torch.Tensor], new: tuple[torch.Tensor, torch.Tensor],
                   k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest (values, indices) per row of two candidate sets, unsorted.

    best, new: (values (n, a), indices (n, a)) and (values (n, b), indices (n, b));
    returns (n, min(k, a + b)) of each.
    """
    v = torch.cat([best[0], new[0]], 1)
    i = torch.cat([best[1], new[1]], 1)
    v, j = torch.topk(v, min(k, v.shape[1]), dim=1, largest=False, sorted=False)
    return v, i.gather(1, j)


def knn_search(
    Q: torch.Tensor,
    X: torch.Tensor,
    k: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    x_sq_norms: torch.Tensor | None = None,
    progress: bool = False,
    desc: str = "kNN",
):
    """The `k` nearest rows of `X` for every row of `Q`, by squared Euclidean distance.

    Q: (n, D) queries, X: (m, D) training rows, same floating dtype and device.
    Returns (dist (n, k) squared distances, ascending, clamped at 0; idx (n, k) int64
    into X). Works block by block: each block is at most `chunk_bytes` of distances
    (at most `_COL_BLOCK` training rows wide), its k smallest are merged with the best
    so far.
    """
    n, m = Q.shape[0], X.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be in 1..{m} (the number of training rows)")
    bn = (X * X).sum(1) if x_sq_norms is None else x_sq_norms
    cb = min(m, _COL_BLOCK)
    rows = max(1, min(n, chunk_bytes // (cb * Q.element_size())))
    dist = torch.empty((n, k), dtype=Q.dtype, device=Q.device)
    idx = torch.empty((n, k), dtype=torch.int64, device=Q.device)
    use_numpy = _numpy_gemm_ok(Q, X)
    buf = np.empty((rows, cb), dtype=np.float32 if Q.dtype == torch.float32 else np.float64) if use_numpy else None
    X_np = X.numpy() if use_numpy else None
    for s in iter_bar(range(0, n, rows), desc, "chunk", enabled=progress):
        a = Q[s : s + rows]
        a_np = (a * -2).numpy() if use_numpy else None  # ×(−2) is exact: a power of two
        best: tuple[torch.Tensor, torch.Tensor] | None = None
        for c in range(0, m, cb):
            # ‖b‖² − 2 a·b: the query's own ‖a‖² does not change its ranking
            if buf is not None and X_np is not None and a_np is not None:
                o = buf[: a.shape[0], : min(cb, m - c)]
                np.matmul(a_np, X_np[c : c + cb].T, out=o)
                d = torch.from_numpy(o)
                d += bn[c : c + cb]
            else:
                d = torch.addmm(bn[c : c + cb], a, X[c : c + cb].T, beta=1, alpha=-2)
            kk = min(k, d.shape[1])
            v, i = torch.topk(d, kk, dim=1, largest=False, sorted=False)
            i += c
            best = (v, i) if best is None else merge_smallest(best, (v, i), k)
        assert best is not None  # m >= k >= 1: at least one block
        best_d, j = torch.sort(best[0], dim=1)
        best_i = best[1].gather(1, j)
        best_d += (a * a).sum(1, keepdim=True)
        dist[s : s + rows] = best_d.clamp_(min=0)
        idx[s : s + rows] = best_i
    return dist, idx


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


METHODS = KNN_METHODS


class KNNClassifier:
    """k-nearest-neighbour classifier (scikit-learn style).

    Parameters: `k` neighbours; `num_classes` (default: max label + 1 seen in `fit`);
    `device` ('auto', 'cpu', 'cuda'); `method`: 'float32' (distances by GEMM in `dtype`,
    float32 by default, float64 for reference checks) or 'int8' (exact integer
    distances between uint8 pixel vectors on the CPU, see `Int8Index`; X must be uint8);
    `chunk_bytes` bounds one block of distances.

    Learned state: `X_train_` (N, D) tensor on the device, `y_train_` (N,) int64,
    `sq_norms_` (N,), `num_classes_`, `n_features_in_`, `device_`, and `index_` (the
    `Int8Index`, method 'int8' only).
    """

    def __init__(self, k: int = 1, num_classes: int | None = None, device="cpu", method: str = "float32",
                 dtype: torch.dtype = torch.float32, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 progress: bool = False):
        self.k = k
        self.num_classes = num_classes
        self.device = device
        self.method = method
        self.dtype = dtype
        self.chunk_bytes = chunk_bytes
        self.progress = progress

    def fit(self, X, y) -> KNNClassifier:
        """X: (N, D) features (or (N, ...) images, flattened); y: (N,) int labels."""
        if self.method not in METHODS:
            raise BadInput("--knn-method", f"'{self.method}' (expected one of {', '.join(METHODS)})")
        self.device_ = resolve_device(self.device)
        if self.method == "int8":
            from labeller.baseline.knn_int8 import Int8Index, int8_available

            if self.device_.type != "cpu":
                raise BadInput("--knn-method", "int8 runs on the CPU only (use float32 on a GPU)")
            if not int8_available():
                raise BadInput("--knn-method", "int8 needs torch's oneDNN int8 linear op, which this torch lacks")
            Xt = torch.as_tensor(X)
            if Xt.dtype != torch.uint8:
                raise ValueError("method 'int8' needs uint8 pixel data")
            self.X_train_ = Xt.reshape(Xt.shape[0], -1).contiguous()
            self.index_ = Int8Index(self.X_train_)
            self.sq_norms_ = self.index_.sq_norms
        else:
            self.X_train_ = _as_matrix(X, self.device_, self.dtype)
            self.sq_norms_ = (self.X_train_ * self.X_train_).sum(1)
        self.y_train_ = torch.as_tensor(y, device=self.device_).to(torch.int64).reshape(-1)
        if self.y_train_.shape[0] != self.X_train_.shape[0]:
            raise ValueError(f"X has {self.X_train_.shape[0]} rows but y has {self.y_train_.shape[0]}")
        self.num_classes_ = int(self.num_classes or int(self.y_train_.max()) + 1)
        self.n_features_in_ = self.X_train_.shape[1]
        return self

    def kneighbors(self, X, n_neighbors: int | None = None):
        """(dist (n, k) squared distances ascending, idx (n, k) int64 into the training set).

        'int8': in pixel units, float64, within ±`index_.key_error` of exact (the
        indices and their order are exact)."""
        k = min(n_neighbors or self.k, self.X_train_.shape[0])
        if self.method == "int8":
            Q = torch.as_tensor(X)
            if Q.dtype != torch.uint8:
                raise ValueError("method 'int8' needs uint8 queries")
            return self.index_.search(Q.reshape(Q.shape[0], -1), k, self.progress)
        Q = _as_matrix(X, self.device_, self.dtype)
        return knn_search(Q, self.X_train_, k, self.chunk_bytes, self.sq_norms_, self.progress)

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


def cross_validate_k(
    X, y, k_choices=K_CHOICES, num_folds: int = 5, seed: int = 0, device="cpu",
    num_classes: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
    method: str = "float32",
):
    """Choose k by `num_folds`-fold cross-validation on (X, y).

    X: (n, D) features ((n, D) uint8 pixels for method 'int8'). Folds come from a
    seeded permutation. For each fold the kmax nearest neighbours are
    searched once and every k is voted from them. A k larger than a fold's training
    set is skipped (for every fold alike). Returns (best_k, {k: mean accuracy over
    folds}); ties go to the smaller k.
    """
    dev = resolve_device(device)
    X = torch.as_tensor(X, device=dev)
    X = X.reshape(X.shape[0], -1).contiguous() if method == "int8" else _as_matrix(X, dev)
    y = torch.as_tensor(y, device=dev).to(torch.int64).reshape(-1)
    n = X.shape[0]
    if num_folds < 2 or n < num_folds:
        raise BadInput("--folds", f"{num_folds}-fold cross-validation needs at least {max(2, num_folds)} training images (have {n})")
    C = int(num_classes or int(y.max()) + 1)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n)).to(dev)
    folds = torch.tensor_split(perm, num_folds)
    smallest_train = n - max(len(f) for f in folds)
    ks = sorted({int(k) for k in k_choices if 1 <= int(k) <= smallest_train})
    if not ks:
        raise BadInput("--k-choices", f"no k in {list(k_choices)} fits a fold's training set of {smallest_train} images")
    kmax = ks[-1]
    sums = dict.fromkeys(ks, 0.0)
    if method == "int8":
        from labeller.baseline.knn_int8 import Int8Index
    for f in iter_bar(range(num_folds), f"kNN {num_folds}-fold CV", "fold", enabled=progress):
        val_idx = folds[f]
        tr_idx = torch.cat([folds[g] for g in range(num_folds) if g != f])
        if method == "int8":
            _, nn = Int8Index(X[tr_idx]).search(X[val_idx], kmax)
        else:
            _, nn = knn_search(X[val_idx], X[tr_idx], kmax, chunk_bytes)
        accs = accuracy_for_each_k(y[tr_idx][nn], y[val_idx], ks, C)
        for k in ks:
            sums[k] += accs[k]
    means = {k: sums[k] / num_folds for k in ks}
    best = max(ks, key=lambda k: (means[k], -k))
    return best, means
