"""The output folder of an export: its safety checks, the files workers write (hashed as
they are written), the permissions of the finished tree, and manifest.json (sources,
options, counts and the sha256 of every file).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_write_json, sha256_file
from labeller.export.sources import SceneSource

MANIFEST_FORMAT = "labeller-export"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"


def check_out_dir(out: Path, sources: Sequence[SceneSource], overwrite: bool) -> None:
    """Refuse an output folder that would replace anything but a previous export.

    Without --overwrite an existing folder is an error. With it, only an empty folder or
    one holding a labeller export (its manifest.json) is replaced, and never a scene or a
    folder that contains one of the scenes.
    """
    out_r = out.resolve()
    for s in sources:
        sr = s.root.resolve()
        if out_r == sr or out_r in sr.parents or sr in out_r.parents:
            raise BadInput(out, f"output folder overlaps the scene {s.root}; choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(out, "exists and is not a folder")
    if not overwrite:
        raise BadInput(out, "already exists (pass --overwrite to replace it)")
    if any(out.iterdir()):
        man = out / MANIFEST_NAME
        try:
            ok = json.loads(man.read_text()).get("format") == MANIFEST_FORMAT
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise BadInput(out, "is not empty and holds no labeller export (no manifest.json); "
                                "refusing to replace it even with --overwrite")


def hash_tree(root: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of every file under root (relative POSIX paths), reusing `known` hashes."""
    known = known or {}
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            rel = p.relative_to(root).as_posix()
            out[rel] = known.get(rel) or sha256_file(p)
    return out


def write_manifest(root: Path, body: dict, known_hashes: dict[str, str] | None = None) -> dict:
    """Write root/manifest.json: `body` plus format/version and the sha256 of every file."""
    from labeller import __version__

    man = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
           "labeller_version": __version__, **body}
    man["files"] = hash_tree(root, known_hashes)
    atomic_write_json(root / MANIFEST_NAME, man)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(root / MANIFEST_NAME, 0o666 & ~mask)  # not the temp file's private 0600
    return man


def to_jsonable(o: Any) -> Any:
    """numpy scalars/arrays and Paths to plain JSON values."""
    if isinstance(o, dict):
        return {str(k): to_jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return to_jsonable(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return o


def copy_hashed(src: str | os.PathLike, dest: Path) -> str:
    """Copy a file byte for byte; returns its sha256."""
    data = Path(src).read_bytes()
    dest.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_png_hashed(dest: Path, img: np.ndarray) -> str:
    """Write a PNG (uint8/uint16, 1 or 3 channels given as RGB); returns its sha256."""
    arr = img[:, :, ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise OSError(f"{dest}: OpenCV could not encode the image")
    data = buf.tobytes()
    dest.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def finish_permissions(root: Path) -> None:
    """Temporary files and folders are created private (0600/0700); a dataset is meant to
    be shared, so give it the permissions of a normally created tree (umask applies)."""
    mask = os.umask(0)
    os.umask(mask)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for fn in filenames:
            os.chmod(os.path.join(dirpath, fn), 0o666 & ~mask)
