"""k-nearest-neighbour classification with chunked squared Euclidean distances.

Distances are ``‖a‖² + ‖b‖² − 2 a·b`` computed block by block on the estimator's
device (one GEMM per block), so memory stays bounded by `chunk_bytes` however many
queries and training rows there are; the k smallest per query are merged across
blocks. Never is a full queries × training float64 matrix built.

Votes: the majority label among the k nearest; a tie goes to the smallest label.
Neighbours at exactly equal distance are taken in no particular order.

`Int8Index` (KNNClassifier(method="int8")) computes the same neighbours exactly in
integer arithmetic on raw uint8 pixels (CPU only); see the comment above it.
"""

from __future__ import annotations

import numpy as np
import torch

from labeller.core.errors import BadInput

K_CHOICES = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100)
DEFAULT_CHUNK_BYTES = 64 << 20  # one block of distances: 64 MiB
_COL_BLOCK = 4096  # training rows per distance block (4,096 × 4,096 float32 = 64 MiB measured best here)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is BadInput."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(
            "--device", f"'{name}' asked for but no CUDA GPU is available to torch "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise BadInput("--device", f"unknown device '{name}' (expected auto, cpu or cuda)") from None


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
    starts = range(0, n, rows)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk", leave=False)
    use_numpy = _numpy_gemm_ok(Q, X)
    buf = np.empty((rows, cb), dtype=np.float32 if Q.dtype == torch.float32 else np.float64) if use_numpy else None
    X_np = X.numpy() if use_numpy else None
    for s in starts:
        a = Q[s : s + rows]
        a_np = (a * -2).numpy() if use_numpy else None  # ×(−2) is exact: a power of two
        best_d = best_i = None
        for c in range(0, m, cb):
            # ‖b‖² − 2 a·b: the query's own ‖a‖² does not change its ranking
            if use_numpy:
                o = buf[: a.shape[0], : min(cb, m - c)]
                np.matmul(a_np, X_np[c : c + cb].T, out=o)
                d = torch.from_numpy(o)
                d += bn[c : c + cb]
            else:
                d = torch.addmm(bn[c : c + cb], a, X[c : c + cb].T, beta=1, alpha=-2)
            kk = min(k, d.shape[1])
            v, i = torch.topk(d, kk, dim=1, largest=False, sorted=False)
            i += c
            if best_d is None:
                best_d, best_i = v, i
            else:
                v = torch.cat([best_d, v], 1)
                i = torch.cat([best_i, i], 1)
                best_d, j = torch.topk(v, min(k, v.shape[1]), dim=1, largest=False, sorted=False)
                best_i = i.gather(1, j)
        best_d, j = torch.sort(best_d, dim=1)
        best_i = best_i.gather(1, j)
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


METHODS = ("float32", "int8")


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
    it = range(num_folds)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"kNN {num_folds}-fold CV", unit="fold", leave=False)
    for f in it:
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


# ------------------------------------------------------------------ exact int8 path
# Squared distances between uint8 images do not change when every pixel is shifted by
# the same amount, so training pixels − 128 fit int8 and the distances can be computed
# exactly in integer arithmetic (oneDNN's u8 × s8 → s32 GEMM). On CPUs without VNNI,
# oneDNN multiplies with vpmaddubsw, whose pairwise int16 sums saturate unless the u8
# operand has 7 bits; so each query x is split as x = 2·(x >> 1) + (x & 1) and both
# halves (7-bit and 1-bit) go through one GEMM: x·y = 2·G_hi + G_lo, exact in int32.
# oneDNN hands the int32 sums back as float32 (rounding them), and the ranking key is
# then formed in float32, so a key is only within `Int8Index.key_error` of its exact
# value. The search keeps k + 8 candidates per query. Where consecutive keys up to the
# (k+1)-th are all more than twice the error apart, their order is the exact order;
# otherwise the candidates are re-ranked with exact float64 distances (sums of integer
# products below 2**53), or, when even the last kept key is within twice the error of
# the k-th, the query is searched exhaustively. So the neighbour sets and their order
# are exact; ties in distance go to the smaller training index.
_INT8_EXTRA = 8  # candidates beyond k kept per query for the exactness check


def _int8_exact(q_max: int) -> bool:
    """Does oneDNN's u8 × s8 GEMM return exact sums for u8 values up to `q_max`?

    Worst cases: every pair of products at the int16 saturation edge (255·127 twice
    exceeds 32767), alternating signs, zeros."""
    q = torch.full((4, 3072), q_max, dtype=torch.uint8)
    q[1] = 0
    q[2, ::2] = 1
    w = torch.full((3, 3072), 127, dtype=torch.int8)
    w[1] = -128
    w[2, 1::2] = -128
    got = _int8_gemm(q, torch.ops.onednn.qlinear_prepack(w, [4, 3072]), 3)
    # the op returns its int32 sums as float32; round the exact sums the same way
    want = (q.double() @ w.double().T).float()
    return bool(torch.equal(got, want))


def int8_mode() -> str | None:
    """How the exact int8 path multiplies on this CPU, or None when it cannot.

    'full': 8-bit queries in one GEMM (CPUs with VNNI accumulate straight into int32);
    'split': queries split into 7-bit and 1-bit halves (AVX2's vpmaddubsw saturates
    pairwise int16 sums of 8-bit products), twice the integer work.
    """
    global _INT8_MODE
    if _INT8_MODE is None:
        try:
            _INT8_MODE = "full" if _int8_exact(255) else ("split" if _int8_exact(127) else "")
        except Exception:  # noqa: BLE001 - op missing or unsupported on this build/CPU
            _INT8_MODE = ""
    return _INT8_MODE or None


def int8_available() -> bool:
    """Whether torch's oneDNN int8 linear op is here and exact (see `int8_mode`)."""
    return int8_mode() is not None


_INT8_MODE: str | None = None


def _int8_gemm(a_u8: torch.Tensor, packed, m: int) -> torch.Tensor:
    """(n, D) uint8 (7-bit values) × prepacked (m, D) int8 → (n, m) float32 sums."""
    ones = torch.ones(m)
    zeros = torch.zeros(m, dtype=torch.int64)
    return torch.ops.onednn.qlinear_pointwise(a_u8, 1.0, 0, packed, ones, zeros, None, 1.0, 0,
                                              torch.float32, "none", [], "")


def _exact_sq_norms(rows: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(m,) int64 ‖y‖² of (m, D) uint8 rows. float32 sums over runs of 256 pixels are
    exact (at most 256 · 255² < 2**24), the runs are added in int64."""
    m, D = rows.shape
    out = torch.empty(m, dtype=torch.int64)
    pad = (-D) % 256
    for c in range(0, m, chunk):
        r = rows[c : c + chunk].to(torch.float32)
        if pad:
            r = torch.nn.functional.pad(r, (0, pad))
        out[c : c + chunk] = (r * r).view(r.shape[0], -1, 256).sum(-1).to(torch.int64).sum(-1)
    return out


class Int8Index:
    """Training images prepared for exact int8 nearest-neighbour search on CPU.

    X: (m, D) uint8 pixels. Keeps `rows` (m, D) uint8, `sq_norms` (m,) int64 = ‖y‖², and
    per column block a oneDNN-prepacked int8 copy of y − 128 with float32 norms.
    """

    def __init__(self, X: torch.Tensor, col_block: int = 32768, query_rows: int = 256,
                 mode: str | None = None):
        if X.dtype != torch.uint8 or X.device.type != "cpu":
            raise ValueError("Int8Index needs a uint8 tensor on the CPU")
        self.mode = mode or int8_mode()
        if self.mode not in ("full", "split"):
            raise RuntimeError("exact int8 GEMM is not available in this torch build")
        self.rows = X.contiguous()
        self.sq_norms = _exact_sq_norms(self.rows)
        # Every float32 step rounds by at most 2**-24 of its magnitude; the magnitudes
        # are bounded by D·255² (‖y‖²), D·127·128 or D·255·128 (a GEMM sum, times 4 or 2)
        # and their combination, below D·400,000 in all: the bound below has 50 % margin
        # over the sum of those roundings (107 squared-pixel units for D = 3072).
        self.key_error = 2.0**-24 * X.shape[1] * 400_000 * 1.5
        self.query_rows = query_rows
        self.blocks = []
        ys = (self.rows ^ 128).view(torch.int8)  # y − 128 as int8: flip the top bit
        for c in range(0, X.shape[0], col_block):
            blk = ys[c : c + col_block].contiguous()
            packed = torch.ops.onednn.qlinear_prepack(blk, [(2 if self.mode == "split" else 1) * query_rows, X.shape[1]])
            self.blocks.append((c, blk.shape[0], packed, self.sq_norms[c : c + col_block].to(torch.float32)))

    def search(self, Q: torch.Tensor, k: int, progress: bool = False, desc: str = "kNN int8"):
        """The exact k nearest rows for each row of Q ((n, D) uint8), in exact order (ties
        in distance go to the smaller index): (dist (n, k) float64 squared distances,
        exact where a re-rank was needed and otherwise within ±`key_error`; idx (n, k)
        int64)."""
        m = self.rows.shape[0]
        if not 1 <= k <= m:
            raise ValueError(f"k={k} must be in 1..{m} (the number of training rows)")
        Q = Q.contiguous()
        n = Q.shape[0]
        kk = min(m, k + _INT8_EXTRA)
        dist = torch.empty((n, k), dtype=torch.float64)
        idx = torch.empty((n, k), dtype=torch.int64)
        starts = range(0, n, self.query_rows)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=desc, unit="chunk", leave=False)
        for s in starts:
            q = Q[s : s + self.query_rows]
            r = q.shape[0]
            split = self.mode == "split"
            a = torch.cat([q >> 1, q & 1]) if split else q  # (2r, D) 7-bit and 1-bit halves
            best_v = best_i = None
            for c, width, packed, bn in self.blocks:
                g = _int8_gemm(a, packed, width)  # split: (2r, width) = [G_hi; G_lo]
                # key = ‖y‖² − 2 x·(y − 128) (query constants dropped)
                #     = ‖y‖² − 4 G_hi − 2 G_lo   (split)   or   ‖y‖² − 2 G   (full)
                if split:
                    key = g[:r].mul_(-4.0).add_(bn).sub_(g[r:], alpha=2.0)
                else:
                    key = g.mul_(-2.0).add_(bn)
                v, i = torch.topk(key, min(kk, width), dim=1, largest=False, sorted=False)
                i += c
                if best_v is None:
                    best_v, best_i = v, i
                else:
                    v, i = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                    best_v, j = torch.topk(v, min(kk, v.shape[1]), dim=1, largest=False, sorted=False)
                    best_i = i.gather(1, j)
            best_v, j = torch.sort(best_v, dim=1)
            best_i = best_i.gather(1, j)
            d, ix = self._exact(q, best_v, best_i, k)
            dist[s : s + r] = d
            idx[s : s + r] = ix
        return dist, idx

    def _exact(self, q, v, i, k):
        """Turn the kept candidates (sorted approximate keys v, indices i; (r, kk)) into
        the exact k nearest. Where every gap between consecutive keys up to the (k+1)-th
        exceeds twice the key error, the approximate order is the exact one; other
        queries are re-ranked exactly among the candidates, or searched exhaustively when
        the candidates may not hold all k."""
        m = self.rows.shape[0]
        kk = v.shape[1]
        eps2 = 2 * self.key_error
        head = v[:, : min(k + 1, kk)]
        clear = (head[:, 1:] - head[:, :-1] > eps2).all(1)
        qi = q.to(torch.int64)
        qn = (qi * qi).sum(1).to(torch.float64)  # ‖x‖², exact
        # ‖x − y‖² = ‖x‖² + ‖y‖² − 2 x·(y − 128) − 256 Σx = ‖x‖² − 256 Σx + key
        dist = v[:, :k].to(torch.float64) + (qn - 256.0 * qi.sum(1).to(torch.float64)).unsqueeze(1)
        idx = i[:, :k].clone()
        rerank = torch.nonzero(~clear).flatten()
        if rerank.numel():
            full = (v[rerank, -1] - v[rerank, k - 1] <= eps2) & torch.tensor(kk < m)
            for row in rerank[full].tolist():  # the kept set may be cut short: search all
                dist[row], idx[row] = self._brute(q[row], k)
            rows_ = rerank[~full]
            if rows_.numel():
                # exact distances of the kept candidates, all such queries at once
                # (float64 sums of integer products: exact below 2**53)
                cand = i[rows_]  # (f, kk)
                Y = self.rows.index_select(0, cand.reshape(-1)).view(len(rows_), kk, -1).to(torch.float64)
                x = q[rows_].to(torch.float64).unsqueeze(2)  # (f, D, 1)
                d = self.sq_norms[cand].to(torch.float64) - 2 * torch.bmm(Y, x).squeeze(2) + qn[rows_].unsqueeze(1)
                key = d.to(torch.int64) * m + cand  # by distance, then by index
                o = torch.argsort(key, dim=1)[:, :k]
                dist[rows_], idx[rows_] = d.gather(1, o), cand.gather(1, o)
        return dist, idx

    def _brute(self, x, k):
        """Exact float64 search of one query against every row (rarely needed)."""
        xd = x.to(torch.float64)
        dots = torch.cat([self.rows[c : c + 4096].to(torch.float64) @ xd  # exact: integer sums < 2**53
                          for c in range(0, self.rows.shape[0], 4096)])
        d = self.sq_norms.to(torch.float64) - 2 * dots + float((xd * xd).sum())
        key = d.to(torch.int64) * self.rows.shape[0] + torch.arange(self.rows.shape[0])
        j = torch.topk(key, k, largest=False).indices
        j = j[torch.argsort(key[j])]
        return d[j], j
