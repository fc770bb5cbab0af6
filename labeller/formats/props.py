"""The PROPS classification format: class pickles and meta.pkl (docs/design.md)::

    Progress-Objects-Sample/
      meta.pkl               {"test_split": ["mug_3", "cracker_box_12", ...]}
      <class>_<k>.pkl        {"data": uint8 (n, 32, 32, 3) RGB, "labels": [int] * n}

Writing (`labeller export --format props`): `class_pickle_bytes` / `meta_bytes` through
`dumps_compat`, pickles that Python 3 with NumPy 1.x or 2.x loads. Reading
(`labeller baseline`): every pickle goes through `RestrictedUnpickler`, which resolves
only the handful of globals numpy needs to rebuild arrays and scalars; anything else (a
custom class, a function, `os.system`) is refused before it is called. After loading,
the object tree is checked again: only dicts, lists, tuples, numpy arrays (not of dtype
object) and scalars may appear.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError

PROPS_FOLDER = "Progress-Objects-Sample"
META_FILE = "meta.pkl"
IMAGE_SHAPE = (32, 32, 3)  # (H, W, C) as stored: RGB, uint8


def class_pickle_name(class_name: str, k: int) -> str:
    """The stem of the k-th pickle of a class (k counts from 1): ``<class>_<k>``."""
    return f"{class_name}_{k}"


# --------------------------------------------------------------------------------------
# Writing: pickles the course loaders read
# --------------------------------------------------------------------------------------
# NumPy 2 pickles arrays as `numpy._core.multiarray._reconstruct`, a module NumPy 1.x does
# not have (numpy/numpy#28340), so students on NumPy 1.x could not load the dataset. The
# name NumPy 1.x writes, `numpy.core.multiarray._reconstruct`, loads in both.
_NP2_RECONSTRUCT = "numpy._core.multiarray _reconstruct"
_COMPAT_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\n"
# Protocol 3: plain GLOBAL opcodes (rewritable) and raw bytes for the pixels; Python 3.0+.
PICKLE_PROTOCOL = 3


def dumps_compat(obj: Any) -> bytes:
    """pickle.dumps(obj) loadable by Python 3 with NumPy 1.x or 2.x (dicts, lists, arrays)."""
    raw = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    out = io.BytesIO()
    last = 0
    for op, arg, pos in pickletools.genops(raw):
        if op.name == "GLOBAL" and arg == _NP2_RECONSTRUCT:
            assert pos is not None  # genops of bytes always gives positions
            end = raw.index(b"\n", raw.index(b"\n", pos) + 1) + 1
            out.write(raw[last:pos])
            out.write(_COMPAT_RECONSTRUCT)
            last = end
    out.write(raw[last:])
    return out.getvalue()


def class_pickle_bytes(data: np.ndarray, labels: Sequence[int]) -> bytes:
    """One ``<class>_<k>.pkl``: `data` uint8 (n, 32, 32, 3) RGB, `labels` n ints."""
    return dumps_compat({"data": data, "labels": list(labels)})


def meta_bytes(test_split: Sequence[str]) -> bytes:
    """``meta.pkl``: the stems of the pickles in the test split."""
    return dumps_compat({"test_split": list(test_split)})


# --------------------------------------------------------------------------------------
# Reading, restricted to arrays and plain containers
# --------------------------------------------------------------------------------------
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
