"""Read a PROPS classification dataset and preprocess it as the course does.

The on-disk format is fixed by docs/design.md ("PROPS classification format")::

    Progress-Objects-Sample/
      meta.pkl               {"test_split": ["mug_3", "cracker_box_12", ...]}
      <class>_<k>.pkl        {"data": uint8 (n, 32, 32, 3) RGB, "labels": [int] * n}

Every pickle is read with `RestrictedUnpickler`, which resolves only the handful of
globals numpy needs to rebuild arrays and scalars; anything else (a custom class, a
function, `os.system`) is refused before it is called. After loading, the object tree
is checked again: only dicts, lists, tuples, numpy arrays (not of dtype object) and
scalars may appear.

Preprocessing (`preprocess`) follows the course's `preprocess_cifar10`: scale to
[0, 1], subtract the per-channel mean of the training images, flatten channel-first
(C, H, W) to 3,072 features. The validation split is a seeded, stratified held-out
part of the training images (default 20 %).
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError

PROPS_FOLDER = "Progress-Objects-Sample"
META_FILE = "meta.pkl"
IMAGE_SHAPE = (32, 32, 3)  # (H, W, C) as stored: RGB, uint8
NUM_FEATURES = 32 * 32 * 3

# Globals a numpy pickle may name (protocols 2-5, numpy 1.x and 2.x spellings). Every
# one of them only builds arrays, dtypes or scalars.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
}


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """`_codecs.encode` as protocol-2 numpy pickles use it (str -> bytes), latin1 only."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin1", errors)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, numpy arrays and scalars.

    Plain containers and Python scalars need no globals; numpy arrays and scalars need
    the few constructors in `_NUMPY_GLOBALS`. Any other global is refused with
    `pickle.UnpicklingError` naming it, before it is ever called.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            # numpy 2 renamed numpy.core to numpy._core; resolve the old spelling to
            # the new module so no deprecation warning fires.
            mod = module.replace("numpy.core.", "numpy._core.", 1)
            try:
                return super().find_class(mod, name)
            except (ImportError, AttributeError):
                return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def _check_tree(obj, where: str, depth: int = 0) -> None:
    """Raise ValueError when `obj` holds anything but the allowed types."""
    if depth > 20:
        raise ValueError(f"{where} is nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        if isinstance(obj, np.generic) and obj.dtype.kind == "O":
            raise ValueError(f"{where} is a numpy object scalar")
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OV":
            raise ValueError(f"{where} is a numpy array of dtype {obj.dtype} (objects are not allowed)")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where} has a key of type {type(k).__name__}")
            _check_tree(v, f"{where}[{k!r}]", depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_tree(v, f"{where}[{i}]", depth + 1)
        return
    raise ValueError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}")


def load_pickle(path: str | os.PathLike):
    """Load one pickle with `RestrictedUnpickler` (latin1 strings, as the course does).

    Raises FormatError naming `path` when the file is unreadable or holds anything but
    dicts, lists, numpy arrays and scalars.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise FormatError(
            path, f"refused: {exc}; only dicts, lists, numpy arrays and scalars may appear"
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated or garbage files raise anything
        raise FormatError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    try:
        _check_tree(obj, "the pickle")
    except ValueError as exc:
        raise FormatError(
            path, f"{exc}; only dicts, lists, numpy arrays and scalars may appear"
        ) from None
    return obj


@dataclass
class PropsDataset:
    """A PROPS classification dataset in memory, as stored (no preprocessing).

    `train_images`/`test_images`: uint8 (N, 32, 32, 3) RGB; `train_labels`/
    `test_labels`: int64 (N,) in 0..C-1; `class_names`: C names in label order;
    `train_source`/`test_source`: (N,) index into `train_files`/`test_files`, the pickle
    stem each image came from. `root` is the `Progress-Objects-Sample` folder.
    """

    root: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...] = PROPS_CLASS_NAMES
    train_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    train_source: np.ndarray | None = None
    test_source: np.ndarray | None = None


def find_props_root(path: str | os.PathLike) -> Path:
    """The `Progress-Objects-Sample` folder for `path` (that folder or its parent)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "directory not found")
    if not path.is_dir():
        raise BadInput(path, "not a directory (expected a PROPS dataset folder)")
    if (path / META_FILE).is_file():
        return path
    if (path / PROPS_FOLDER / META_FILE).is_file():
        return path / PROPS_FOLDER
    raise BadInput(
        path, f"no {META_FILE} here or in {PROPS_FOLDER}/ (not a PROPS classification dataset)"
    )


def _as_labels(raw, n: int, path: Path, num_classes: int) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        arr = raw
        if arr.ndim != 1:
            raise FormatError(path, f"'labels' has shape {arr.shape} (expected ({n},))")
    elif isinstance(raw, (list, tuple)):
        bad = next((v for v in raw if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if bad is not None:
            raise FormatError(path, f"'labels' holds {bad!r} of type {type(bad).__name__} (expected int)")
        arr = np.asarray(raw, dtype=np.int64) if raw else np.zeros(0, np.int64)
    else:
        raise FormatError(path, f"'labels' is a {type(raw).__name__} (expected a list of int)")
    if arr.dtype.kind not in "iu":
        raise FormatError(path, f"'labels' has dtype {arr.dtype} (expected integers)")
    if len(arr) != n:
        raise FormatError(path, f"'labels' has {len(arr)} entries but 'data' has {n} images")
    arr = arr.astype(np.int64)
    out = np.flatnonzero((arr < 0) | (arr >= num_classes))
    if out.size:
        i = int(out[0])
        raise FormatError(
            path, f"label {int(arr[i])} at index {i} is out of range 0..{num_classes - 1}"
            f" ({out.size} such label{'s' if out.size > 1 else ''})"
        )
    return arr


def load_class_pickle(path: str | os.PathLike, num_classes: int = len(PROPS_CLASS_NAMES)):
    """Read one `<class>_<k>.pkl`: returns (images uint8 (n, 32, 32, 3), labels int64 (n,))."""
    path = Path(path)
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise FormatError(path, f"holds a {type(obj).__name__} (expected a dict with 'data' and 'labels')")
    for key in ("data", "labels"):
        if key not in obj:
            raise FormatError(path, f"has no '{key}' key (keys: {sorted(map(str, obj))})")
    data = obj["data"]
    if not isinstance(data, np.ndarray):
        raise FormatError(path, f"'data' is a {type(data).__name__} (expected a numpy array)")
    if data.dtype != np.uint8:
        raise FormatError(path, f"'data' has dtype {data.dtype} (expected uint8)")
    if data.ndim != 4 or data.shape[1:] != IMAGE_SHAPE:
        raise FormatError(path, f"'data' has shape {data.shape} (expected (n, 32, 32, 3))")
    labels = _as_labels(obj["labels"], data.shape[0], path, num_classes)
    return np.ascontiguousarray(data), labels


def load_props(path: str | os.PathLike, class_names=PROPS_CLASS_NAMES) -> PropsDataset:
    """Read a PROPS classification dataset the way the course loaders do.

    `path` is the `Progress-Objects-Sample` folder (holding `meta.pkl`) or its parent.
    Train = every `*.pkl` except `meta.pkl` not named in `meta.pkl["test_split"]`;
    test = the named ones. Files are read in sorted order, so the result does not
    depend on the directory listing.

    Raises BadInput / FormatError (one line, naming the file) for: no `meta.pkl`, a
    pickle holding disallowed types, data of the wrong shape or dtype, labels out of
    range, a `test_split` naming a missing file, a class without training images, no
    test images.
    """
    root = find_props_root(path)
    meta_path = root / META_FILE
    meta = load_pickle(meta_path)
    if not isinstance(meta, dict) or "test_split" not in meta:
        raise FormatError(meta_path, "expected a dict with a 'test_split' list")
    split = meta["test_split"]
    if isinstance(split, np.ndarray):
        split = split.tolist()
    if not isinstance(split, (list, tuple)) or not all(isinstance(s, str) for s in split):
        raise FormatError(meta_path, "'test_split' must be a list of pickle names (str)")
    # The published meta.pkl names pickles by stem ("mug_3"); accept "mug_3.pkl" too.
    test_stems = [s[:-4] if s.endswith(".pkl") else s for s in split]
    available = sorted(p.stem for p in root.glob("*.pkl") if p.name != META_FILE and p.is_file())
    missing = [s for s in test_stems if s not in set(available)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FormatError(meta_path, f"test_split names '{missing[0]}' but {root / (missing[0] + '.pkl')} does not exist{more}")

    num_classes = len(class_names)
    parts = {"train": ([], [], [], []), "test": ([], [], [], [])}
    test_set = set(test_stems)
    for stem in available:
        which = "test" if stem in test_set else "train"
        images, labels = load_class_pickle(root / f"{stem}.pkl", num_classes)
        imgs, labs, files, src = parts[which]
        src.append(np.full(len(labels), len(files), np.int64))
        files.append(stem)
        imgs.append(images)
        labs.append(labels)

    def cat(which):
        imgs, labs, files, src = parts[which]
        if not imgs:
            return np.zeros((0, *IMAGE_SHAPE), np.uint8), np.zeros(0, np.int64), files, np.zeros(0, np.int64)
        return np.concatenate(imgs), np.concatenate(labs), files, np.concatenate(src)

    tr_x, tr_y, tr_f, tr_s = cat("train")
    te_x, te_y, te_f, te_s = cat("test")
    counts = np.bincount(tr_y, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        names = ", ".join(f"'{class_names[i]}' (label {i})" for i in empty[:3])
        more = f" and {empty.size - 3} more" if empty.size > 3 else ""
        raise BadInput(root, f"no training images for class {names}{more}")
    if te_y.size == 0:
        raise BadInput(meta_path, "test_split selects no images (the test set is empty)")
    return PropsDataset(root, tr_x, tr_y, te_x, te_y, tuple(class_names), tr_f, te_f, tr_s, te_s)


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

    X_train: object
    y_train: object
    X_val: object
    y_val: object
    X_test: object
    y_test: object
    mean: object
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


def write_props(
    out_dir: str | os.PathLike,
    scenes: dict[str, tuple[np.ndarray, list[int] | np.ndarray]],
    test_split: list[str],
) -> Path:
    """Write a PROPS classification dataset (used by tests, the bench and demos).

    `scenes` maps a pickle stem (`<class>_<k>`) to (uint8 (n, 32, 32, 3), labels);
    returns the `Progress-Objects-Sample` folder under `out_dir`. Plain pickles, as
    the course loaders expect (only dicts, lists and numpy arrays inside).
    """
    from labeller.core.fileio import atomic_write_bytes

    root = Path(out_dir) / PROPS_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    for stem, (data, labels) in scenes.items():
        payload = {"data": np.asarray(data, np.uint8), "labels": [int(v) for v in labels]}
        atomic_write_bytes(root / f"{stem}.pkl", pickle.dumps(payload, protocol=2))
    atomic_write_bytes(root / META_FILE, pickle.dumps({"test_split": list(test_split)}, protocol=2))
    return root
