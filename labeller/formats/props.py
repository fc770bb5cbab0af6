"""The PROPS classification format: class pickles and meta.pkl (docs/design.md)::

    Progress-Objects-Sample/
      meta.pkl               {"test_split": ["mug_3", "cracker_box_12", ...]}
      <class>_<k>.pkl        {"data": uint8 (n, 32, 32, 3) RGB, "labels": [int] * n}
    md5.json                 [["meta.pkl", "<md5>"], ["cracker_box_1.pkl", "<md5>"], ...]

md5.json is the course loaders' `object_list` (`[name, md5]` per file, names relative to
the dataset folder): they md5-check exactly the files it lists, so a notebook points them
at an export by setting `object_list` from it (`md5_list` / `read_md5_list`). It sits
beside the folder, never inside it (the loaders open every other file there as a pickle).

Writing (`labeller export --format props`): `class_pickle_bytes` / `meta_bytes` through
`dumps_compat`, pickles that Python 3 with NumPy 1.x or 2.x loads. Reading
(`labeller baseline`): every pickle goes through `RestrictedUnpickler`, which resolves
the handful of globals numpy pickles name to stand-ins that only record the shape, dtype
and raw bytes asked for; anything else (a custom class, a function, `os.system`) is
refused before it is called. After loading, the object tree is checked and its arrays are
built: only dicts, lists, tuples, numeric numpy arrays (from exactly the bytes their
shape needs; never an object dtype or a foreign buffer) and scalars may appear.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import pickletools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import read_json

PROPS_FOLDER = "Progress-Objects-Sample"
META_FILE = "meta.pkl"
IMAGE_SHAPE = (32, 32, 3)  # (H, W, C) as stored: RGB, uint8
MD5_FILE = "md5.json"


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


def md5_list(folder: Path, names: Sequence[str]) -> list[list[str]]:
    """The course's `object_list`: [[name, md5 hex of folder/name], ...] in `names` order."""
    out = []
    for name in names:
        digest = hashlib.md5(usedforsecurity=False)
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out.append([name, digest.hexdigest()])
    return out


def md5_json(entries: Sequence[Sequence[str]]) -> str:
    """md5.json text: one `[name, md5]` pair per line, as the course writes object_list."""
    return "[\n" + ",\n".join(f"  {json.dumps(list(e))}" for e in entries) + "\n]\n"


def read_md5_list(path: str | os.PathLike) -> list[list[str]]:
    """md5.json back as [[name, md5], ...]; FormatError naming `path` when it is not that."""
    path = Path(path)
    obj = read_json(path)
    ok = isinstance(obj, list) and all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e) for e in obj)
    if not ok:
        raise FormatError(path, "expected a list of [file name, md5] pairs")
    return obj


# --------------------------------------------------------------------------------------
# Reading, restricted to arrays and plain containers
# --------------------------------------------------------------------------------------
# Globals a numpy pickle may name (protocols 2-5, numpy 1.x and 2.x spellings). None of
# them reaches numpy's own unpickling: `find_class` hands out stand-ins (`_DtypeSpec`,
# `_ArraySpec`, `_scalar`) that only record what the pickle asks for. numpy's
# `ndarray.__setstate__` and `dtype.__setstate__` trust their state (a forged dtype state
# or an object array followed by SETITEM has crashed the process), so arrays are built
# after loading, by `_resolve`, from a numeric dtype and exactly the right number of raw
# bytes, never from an object dtype or a foreign buffer.
_RECONSTRUCT = "_reconstruct"
_SCALAR = "scalar"
_FROMBUFFER = "_frombuffer"
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
}
# bool, signed and unsigned integers, floats, complex: fixed-size values, no pointers.
_SAFE_KINDS = "biufc"
# Larger than any PROPS file (50,000 crops are 150 MB); a forged shape cannot ask for more.
MAX_ARRAY_BYTES = 1 << 32


class UnsafeContent(pickle.UnpicklingError):
    """The pickle loaded but holds something only plain data may not (an object array,
    a set, a class instance); the message says where (``the pickle['data']``)."""


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """`_codecs.encode` as protocol-2 numpy pickles use it (str -> bytes), latin1 only."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin1", errors)


def _raw_bytes(data, what: str) -> bytes:
    """Pixel bytes as pickles carry them: bytes, a bytearray (protocol 5 in-band) or a
    latin1 str (a Python 2 pickle read with encoding="latin1"); nothing else."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("latin1")
    raise pickle.UnpicklingError(f"{what} data is a {type(data).__name__} (expected raw bytes)")


class _NdarrayMark:
    """What the global `numpy.ndarray` resolves to: only `_reconstruct`'s first argument."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray may be named only as _reconstruct's argument")


_NDARRAY = _NdarrayMark()


class _DtypeSpec:
    """Stands in for `numpy.dtype(code, align, copy)` plus its BUILD state.

    Only a plain type code is accepted (``'u1'``, ``'<f8'``, ``'O8'``); the state must be
    the one numpy writes for such a code (no fields, subarray or names). Whether the
    dtype may carry an array is decided later (`dtype`, `safe_problem`)."""

    __slots__ = ("code", "byteorder", "built")

    def __init__(self, code=None, align=False, copy=True):
        if not isinstance(code, str) or not re.fullmatch(r"[<>|=]?[A-Za-z]\d{0,3}", code):
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a plain type code")
        try:
            np.dtype(code)
        except TypeError:
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a type code") from None
        self.code = code
        self.byteorder = "="
        self.built = False

    def __setstate__(self, state) -> None:
        if self.built:
            raise pickle.UnpicklingError("numpy dtype state given twice")
        self.built = True
        ok = (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
              and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)
              and all(isinstance(v, int) for v in state[5:8]))
        if not ok:
            raise pickle.UnpicklingError("numpy dtype state is not that of a plain type")
        self.byteorder = state[1]

    @property
    def dtype(self) -> np.dtype:
        dt = np.dtype(self.code)
        if self.byteorder == "<":
            return dt.newbyteorder("<")
        return dt.newbyteorder(">") if self.byteorder == ">" else dt

    def safe_problem(self) -> str | None:
        """None for a numeric dtype; else what it is (``dtype object``)."""
        dt = self.dtype
        if dt.kind in _SAFE_KINDS and dt.fields is None and dt.subdtype is None:
            return None
        return f"dtype {dt}"


class _ArraySpec:
    """Stands in for an ndarray while unpickling: shape, dtype, order and raw bytes.

    `_reconstruct(ndarray, (0,), b'b')` makes an empty one that BUILD fills with
    ``(version, shape, dtype, is_fortran, rawdata)``; `_frombuffer(buf, dtype, shape,
    order)` (protocol 5) fills it at once. It supports nothing else: SETITEM, APPEND or
    a second BUILD on it fail as the pickle module's own errors."""

    __slots__ = ("shape", "dtype", "fortran", "data", "built")

    def __init__(self) -> None:
        self.shape: tuple[int, ...] = (0,)
        self.dtype: _DtypeSpec | None = None
        self.fortran = False
        self.data: bytes | list = b""
        self.built = False

    def fill(self, shape, dtype, fortran, data) -> None:
        if self.built:
            raise pickle.UnpicklingError("numpy array state given twice")
        self.built = True
        if isinstance(shape, int):
            shape = (shape,)
        if not (isinstance(shape, tuple) and len(shape) <= 32
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"numpy array shape {shape!r} is not a tuple of sizes")
        if not isinstance(dtype, _DtypeSpec):
            raise pickle.UnpicklingError("numpy array dtype is not a numpy dtype")
        self.shape, self.dtype, self.fortran = shape, dtype, bool(fortran)
        # An object array carries a list of objects: kept only so that `_resolve` can
        # refuse it naming where it is.
        self.data = data if isinstance(data, list) and dtype.safe_problem() else _raw_bytes(data, "numpy array")

    def __setitem__(self, key, value) -> None:
        # SETITEM(S) on an array: the forged-object-array attack (numpy would decref
        # whatever the raw bytes point at)
        raise pickle.UnpicklingError("a numpy array is changed while unpickling (a forged pickle)")

    def append(self, value) -> None:
        raise pickle.UnpicklingError("a numpy array is appended to while unpickling (a forged pickle)")

    extend = append

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("numpy array state is not (version, shape, dtype, order, data)")
        self.fill(*state[-4:])

    def build(self, where: str) -> np.ndarray:
        assert self.dtype is not None  # `_resolve` refuses an unbuilt one first
        problem = self.dtype.safe_problem()
        if problem is not None:
            why = "objects are not allowed" if self.dtype.dtype.kind == "O" else "only numeric arrays are"
            raise UnsafeContent(f"{where} is a numpy array of {problem} ({why})")
        dt = self.dtype.dtype
        count = 1
        for n in self.shape:
            count *= n
        want = count * dt.itemsize
        if want > MAX_ARRAY_BYTES:
            raise UnsafeContent(f"{where} is a numpy array of {want} bytes (more than {MAX_ARRAY_BYTES})")
        assert isinstance(self.data, bytes)
        if len(self.data) != want:
            raise UnsafeContent(f"{where} is a numpy array of shape {self.shape} {dt} with "
                                f"{len(self.data)} bytes of data (expected {want})")
        flat = np.frombuffer(self.data, dtype=dt, count=count)
        return flat.reshape(self.shape, order="F" if self.fortran else "C").copy(order="K")


def _reconstruct(cls, shape, typecode) -> _ArraySpec:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct may only build a numpy.ndarray")
    return _ArraySpec()


def _frombuffer(buf, dtype, shape, order) -> _ArraySpec:
    if not isinstance(buf, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"numpy array buffer is a {type(buf).__name__} (expected in-band bytes)")
    spec = _ArraySpec()
    spec.fill(shape, dtype, order == "F", buf)
    return spec


def _scalar(dtype, data=None):
    if not isinstance(dtype, _DtypeSpec):
        raise pickle.UnpicklingError("numpy scalar dtype is not a numpy dtype")
    problem = dtype.safe_problem()
    if problem is not None:
        raise pickle.UnpicklingError(f"numpy scalar of {problem} is not allowed")
    raw = _raw_bytes(data, "numpy scalar")
    dt = dtype.dtype
    if len(raw) != dt.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar {dt} with {len(raw)} bytes (expected {dt.itemsize})")
    return np.frombuffer(raw, dtype=dt, count=1)[0]


_STAND_INS = {"ndarray": _NDARRAY, "dtype": _DtypeSpec, _RECONSTRUCT: _reconstruct,
              _SCALAR: _scalar, _FROMBUFFER: _frombuffer}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, tuples, numeric numpy arrays and scalars.

    Plain containers and Python scalars need no globals; numpy arrays and scalars name
    the few constructors in `_NUMPY_GLOBALS`, which resolve to stand-ins, never to
    numpy's own. Any other global is refused with `pickle.UnpicklingError` naming it,
    before it is ever called; what loads is checked and its arrays built by `_resolve`
    (`UnsafeContent` naming where something else appears).
    """

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return _STAND_INS[_NUMPY_GLOBALS[module, name]]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")

    def load(self):
        return _resolve(super().load(), "the pickle", {})


def _resolve(obj, where: str, built: dict[int, np.ndarray], depth: int = 0):
    """`obj` with every `_ArraySpec` built into an array; UnsafeContent naming `where` when
    it holds anything but the allowed types (or nests deeper than 20)."""
    if depth > 20:
        raise UnsafeContent(f"{where} is nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        if isinstance(obj, np.generic) and obj.dtype.kind not in _SAFE_KINDS:
            raise UnsafeContent(f"{where} is a numpy scalar of dtype {obj.dtype}")
        return obj
    if isinstance(obj, _ArraySpec):
        if not obj.built:
            raise UnsafeContent(f"{where} is a numpy array that was never given its data")
        if id(obj) not in built:
            built[id(obj)] = obj.build(where)
        return built[id(obj)]
    if type(obj) is dict:
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise UnsafeContent(f"{where} has a key of type {type(k).__name__}")
            out[k] = _resolve(v, f"{where}[{k!r}]", built, depth + 1)
        return out
    if type(obj) in (list, tuple):
        items = [_resolve(v, f"{where}[{i}]", built, depth + 1) for i, v in enumerate(obj)]
        return items if type(obj) is list else tuple(items)
    raise UnsafeContent(f"{where} is a {type(obj).__module__}.{type(obj).__name__}")


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
    except UnsafeContent as exc:
        raise FormatError(
            path, f"{exc}; only dicts, lists, numpy arrays and scalars may appear"
        ) from None
    except pickle.UnpicklingError as exc:
        raise FormatError(
            path, f"refused: {exc}; only dicts, lists, numpy arrays and scalars may appear"
        ) from None
    except RecursionError:
        raise FormatError(path, "not a readable pickle (nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - truncated or garbage files raise anything
        raise FormatError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
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
