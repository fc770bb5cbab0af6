"""Cutting every PROPS candidate crop in worker processes, kept per scene in an HDF5 cache
(SCENE/labels/crops_cache.h5) that a later export with the same labels, frames and crop
settings reuses.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labeller.core.diskspace import HDF5_OVERHEAD_BYTES, check_room
from labeller.core.errors import BadInput
from labeller.core.fileio import image_damage
from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig
from labeller.export.crops import CROP_MARGIN, CROP_PAD_RGB, CROP_SIZE, crop_resize
from labeller.export.props_candidates import Candidates
from labeller.export.sources import SceneSource
from labeller.export.workers import ExportProgress, run_tasks

CACHE_NAME = "crops_cache.h5"
CACHE_VERSION = 1
# Crops per worker task: large enough that process overhead vanishes, small enough that
# results in flight stay a few MB.
TASK_CROPS = 512


def crop_task(task: tuple) -> tuple[int, int, np.ndarray]:
    """Worker: crops of a run of frames. task = (scene index, first candidate index,
    [(rgb path, squares (n, 3))...], (H, W)); returns (scene, start, (N, 32, 32, 3) RGB)."""
    si, start, frames, (H, W) = task
    n = sum(len(sq) for _, sq in frames)
    out = np.empty((n, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    k = 0
    for path, squares in frames:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise BadInput(path, f"cannot read it ({exc.strerror})") from None
        damage = image_damage(data)
        if damage:
            raise BadInput(path, f"damaged image ({damage})")
        # BGR; flipped once per batch below
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise BadInput(path, "unreadable image (not a valid PNG/JPEG)")
        if img.shape[:2] != (H, W):
            raise BadInput(path, f"size {img.shape[1]}x{img.shape[0]} differs from the "
                                 f"labels' {W}x{H}")
        for sq in squares:
            x0, y0, side = (int(v) for v in sq)
            out[k] = crop_resize(img, (x0, y0, side), CROP_SIZE, CROP_PAD_RGB[::-1])
            k += 1
    return si, start, np.ascontiguousarray(out[..., ::-1])


def _rgb_fingerprint(src: SceneSource, rows: np.ndarray) -> str:
    """Identity of the colour frames used: name, size and mtime of each file."""
    h = hashlib.sha256()
    for r in np.unique(rows):
        p = src.rgb_path(int(src.frame_ids[r]))
        st = p.stat()
        h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_key(src: SceneSource, cand: Candidates) -> str:
    return json.dumps({"version": CACHE_VERSION, "labels_sha256": src.labels_sha256,
                       "rgb": _rgb_fingerprint(src, cand.rows), "crop_size": CROP_SIZE,
                       "crop_margin": CROP_MARGIN, "pad_rgb": list(CROP_PAD_RGB)}, sort_keys=True)


def _cache_positions(path: Path, key: str, keys: np.ndarray) -> np.ndarray | None:
    """Rows of the cache holding `keys` when the cache is complete, current and holds them all."""
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("key") != key or not bool(f.attrs.get("complete", False)):
                return None
            have = f["keys"][()]
    except (OSError, KeyError):
        return None
    pos = np.searchsorted(have, keys)
    if len(keys) and (pos.max() >= len(have) or not np.array_equal(have[pos], keys)):
        return None
    return pos


@dataclass
class SceneCrops:
    """Where one scene's crops are: an HDF5 file with /crops, and the rows to read."""

    path: Path | None
    positions: np.ndarray
    reused: bool


def _cache_bytes(n: int) -> int:
    """Size of a cache file of `n` crops: the crops, keys and squares, and HDF5's own."""
    return HDF5_OVERHEAD_BYTES + n * (CROP_SIZE * CROP_SIZE * 3 + 8 + 3 * 8)


def _writable(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK)


def build_crops(sources: list[SceneSource], cands: list[Candidates], cfg: ExportConfig,
                scratch: Path, progress_cb: ProgressFn | None) -> list[SceneCrops]:
    """Crop every candidate, reusing up-to-date caches (SCENE/labels/crops_cache.h5).

    Scenes whose labels folder is not writable (or with cfg.cache False) are cropped into
    `scratch` (inside the output's temporary folder, removed at the end).
    """
    import h5py

    out: list[SceneCrops | None] = [None] * len(sources)
    todo: list[tuple[int, Path, str]] = []
    for i, (src, cand) in enumerate(zip(sources, cands, strict=True)):
        if len(cand) == 0:
            out[i] = SceneCrops(None, np.zeros(0, np.int64), False)
            continue
        keys = cand.keys(src.n_objects)
        key = _cache_key(src, cand)
        cache = src.scene.paths.labels_dir / CACHE_NAME
        if cfg.cache:
            pos = _cache_positions(cache, key, keys)
            if pos is not None:
                out[i] = SceneCrops(cache, pos, True)
                continue
        if not (cfg.cache and _writable(cache.parent)):
            cache = scratch / f"scene{i:04d}_{CACHE_NAME}"
        todo.append((i, cache, key))
    if not todo:
        return _all_filled(out)

    tasks = []
    for i, _, _ in todo:
        src, cand = sources[i], cands[i]
        H, W = src.scene.camera.height, src.scene.camera.width  # noqa: N806
        bounds = np.flatnonzero(np.diff(cand.rows)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(cand)]])
        batch: list[tuple[str, np.ndarray]] = []
        bstart, n = 0, 0
        for a, b in zip(starts, ends, strict=True):
            if not batch:
                bstart = int(a)
            fid = int(src.frame_ids[cand.rows[a]])
            batch.append((str(src.rgb_path(fid)), cand.squares[a:b]))
            n += int(b - a)
            if n >= TASK_CROPS:
                tasks.append((i, bstart, batch, (H, W)))
                batch, n = [], 0
        if batch:
            tasks.append((i, bstart, batch, (H, W)))

    totals = {i: (sources[i].name, len(cands[i])) for i, _, _ in todo}
    progress = ExportProgress(sum(len(cands[i]) for i, _, _ in todo), "crops", totals,
                              cfg.progress_bars, progress_cb)
    open_files: dict[int, tuple[Any, Path]] = {}
    remaining = {i: len(cands[i]) for i, _, _ in todo}
    dest = {i: (cache, key) for i, cache, key in todo}
    try:
        for si, start, crops in run_tasks(crop_task, tasks, cfg.n_workers):
            if si not in open_files:
                cache, key = dest[si]
                tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.tmp.h5")
                n = len(cands[si])
                # HDF5 does not survive a failed write (it crashes the process): ask for
                # the whole file's room first and stop cleanly, naming the cache.
                try:
                    check_room(tmp, _cache_bytes(n), size_now=0)
                except OSError as exc:
                    raise OSError(exc.errno, exc.strerror, str(cache)) from None
                f = h5py.File(tmp, "w")
                f.attrs["key"] = key
                f.attrs["complete"] = False
                f.create_dataset("keys", data=cands[si].keys(sources[si].n_objects))
                f.create_dataset("squares", data=cands[si].squares)
                f.create_dataset("crops", shape=(n, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8,
                                 chunks=(min(n, 1024), CROP_SIZE, CROP_SIZE, 3))
                open_files[si] = (f, tmp)
            f, tmp = open_files[si]
            f["crops"][start:start + len(crops)] = crops
            remaining[si] -= len(crops)
            if remaining[si] == 0:
                f.attrs["complete"] = True
                f.close()
                del open_files[si]
                cache = dest[si][0]
                os.replace(tmp, cache)
                out[si] = SceneCrops(cache, np.arange(len(cands[si])), False)
            progress.update(si, len(crops))
    finally:
        progress.close()
        for f, tmp in open_files.values():
            f.close()
            tmp.unlink(missing_ok=True)
    return _all_filled(out)


def _all_filled(out: list[SceneCrops | None]) -> list[SceneCrops]:
    """`out` once every scene has its crops (a None left here is a bug, not bad input)."""
    filled = [c for c in out if c is not None]
    assert len(filled) == len(out), "a scene was left without crops"
    return filled
