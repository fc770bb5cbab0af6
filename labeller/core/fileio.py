"""Atomic file writing, image I/O and hashing shared by every codec.

Every file the tool writes goes to a temporary path beside its destination and is
renamed into place with `os.replace`, so an interrupted run leaves the previous file
intact (the rename is atomic on one file system).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from labeller.core.errors import BadInput, FormatError

# OpenCV logs its own warnings for broken files to stderr; we report them ourselves,
# one line, naming the file.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the permissions a plain
    open()/mkdir() would have had under the user's umask."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success rename it onto `dest`.

    The temporary file keeps `dest`'s suffix (or `suffix`) so libraries that pick a
    format from the extension (OpenCV, Open3D) still work. On an exception the
    temporary file is removed and `dest` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sfx = dest.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{sfx}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _public(tmp_path, 0o666)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `dest`; on success it replaces `dest`.

    With `overwrite=False` an existing `dest` is an error (raised before any work).
    On an exception the temporary directory is removed and `dest` is untouched.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BadInput(dest, "already exists (pass --overwrite to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        _public(tmp, 0o777)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_json_object(path: str | os.PathLike, expected: str = "a JSON object") -> dict:
    """The JSON object (dict) in `path`; FormatError naming the file when the text is not
    JSON or its top level is not an object (`expected` says what it should be)."""
    try:
        d = json.loads(Path(path).read_text())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise FormatError(path, f"expected {expected}")
    return d


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as stored: 8-bit colour as RGB (H, W, 3) uint8, 16-bit as is.

    Raises BadInput naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BadInput(path, "unreadable image (not a valid PNG/JPEG)")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = np.ascontiguousarray(img[:, :, ::-1])  # OpenCV stores BGR; we use RGB
    return img


def write_image(dest: str | os.PathLike, img: np.ndarray, atomic: bool = True) -> None:
    """Write an RGB (H, W, 3) uint8 or a single-channel uint8/uint16 image.

    The format follows the extension of `dest`; written atomically by default.
    """
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[:, :, ::-1])  # RGB -> OpenCV's BGR
    ext = Path(dest).suffix
    ok, buf = cv2.imencode(ext, arr)
    if not ok:
        raise OSError(f"{dest}: OpenCV could not encode the image")
    if atomic:
        atomic_write_bytes(dest, buf.tobytes())
    else:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as f:
            f.write(buf.tobytes())
