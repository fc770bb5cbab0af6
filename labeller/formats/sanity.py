"""Sanity checks of a scene that is valid but probably wrong: `labeller info`, the
importers and the GUI print them as warnings (``--strict`` turns them into exit 2).

Each check returns warning lines ``<file>: <what looks wrong>; <the likely fix>``:

- depth scale: the median valid depth (over sampled frames) after ``depth_scale`` is
  outside 0.1–10 m; names the common scale that would give a plausible median;
- intrinsics: fx or fy outside 0.3–3 × the image width / height, or the principal point
  outside the middle half of the image (K for another resolution, or for another camera);
- timestamps: ``timestamps.txt`` that does not pair with the frames (frames without a
  stamp, stamps for frames that do not exist, stamps that do not increase);
- models: an object model whose size is ~1,000× off for its class (millimetre meshes, or
  ones scaled down twice): the PROPS classes' sizes from `labeller.core.classes`, a
  generic 5 mm–2 m otherwise.

These never raise for a scene that `scene_problems` accepts; unreadable files are the
scene checks' business, not theirs.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME
from labeller.core.errors import BadInput

PLAUSIBLE_DEPTH_M = (0.1, 10.0)  # hand-held RGB-D of tabletop objects and rooms
# depth_scale values cameras and datasets use (units per metre): mm (RealSense, Kinect,
# 7-Scenes), TUM's 5000, BOP ycbv's 0.1 mm, metres, cm, 0.25 mm (some L515 settings).
COMMON_DEPTH_SCALES = (1000.0, 5000.0, 10000.0, 4000.0, 1.0, 100.0)
FX_PER_SIZE = (0.3, 3.0)  # fx / width (fy / height): 170°..19° field of view
# The principal point must be within the middle half of the image.
PRINCIPAL_POINT_MARGIN = 0.25
# A model is "~1000x off" when its extent is this far from the expected one.
MODEL_SCALE_RATIO = (100.0, 10000.0)
GENERIC_OBJECT_M = (0.005, 2.0)
SAMPLE_FRAMES = 30
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")


def depth_scale_warning(median_units: float, depth_scale: float, where: str | os.PathLike
                        ) -> str | None:
    """A warning when `median_units / depth_scale` metres is implausible, else None."""
    if not (median_units > 0 and depth_scale > 0):
        return None
    median_m = median_units / depth_scale
    lo, hi = PLAUSIBLE_DEPTH_M
    if lo <= median_m <= hi:
        return None
    plausible = [s for s in COMMON_DEPTH_SCALES if lo <= median_units / s <= hi]
    if plausible:
        best = min(plausible, key=lambda s: abs(math.log(median_units / s)))  # nearest 1 m
        fix = (f"depth_scale {best:g} would give {median_units / best:.2f} m (set it in "
               "camera.json, or give the importer the recording's depth units)")
    else:
        fix = "check the depth units of the recording"
    return (f"{where}: median depth {median_m:.4g} m is outside {lo:g}-{hi:g} m, so "
            f"depth_scale {depth_scale:g} units/m is likely wrong; {fix}")


def intrinsics_warnings(cam: CameraIntrinsics, where: str | os.PathLike) -> list[str]:
    """Warnings for a K that does not fit the image size."""
    out = []
    lo, hi = FX_PER_SIZE
    for name, f, size, dim in (("fx", cam.fx, cam.width, "width"),
                               ("fy", cam.fy, cam.height, "height")):
        if not lo * size <= f <= hi * size:
            out.append(f"{where}: {name} {f:g} is {f / size:.2f} x the image {dim} {size} "
                       f"(expected {lo:g}-{hi:g} x); the intrinsics are probably for another "
                       "camera or resolution: check camera.json (or the importer's "
                       "--intrinsics / camera_info)")
    m = PRINCIPAL_POINT_MARGIN
    for name, c, size in (("cx", cam.cx, cam.width), ("cy", cam.cy, cam.height)):
        if not m * size <= c <= (1 - m) * size:
            guess = (c + 0.5) * 2 / size  # what the image size would be for c at its centre
            hint = (f"; K looks like it is for an image {guess:.2g} x this size: scale fx fy "
                    f"cx cy by {1 / guess:.3g}" if guess > 1.5 else "")
            out.append(f"{where}: principal point {name} {c:g} is outside the middle half of "
                       f"the image (0-{size} px){hint}; check camera.json (or the importer's "
                       "--intrinsics / camera_info)")
    return out


def timestamps_warnings(stamps: dict[int, float], n_frames: int, where: str | os.PathLike
                        ) -> list[str]:
    """Warnings for timestamps that do not pair with the frames."""
    out = []
    missing = [t for t in range(n_frames) if t not in stamps]
    extra = sorted(t for t in stamps if not 0 <= t < n_frames)
    if missing:
        out.append(f"{where}: {len(missing)} of {n_frames} frames have no timestamp "
                   f"(first: frame {missing[0]}); colour and depth may not pair: re-import "
                   "the recording")
    if extra:
        out.append(f"{where}: timestamps for {len(extra)} frames that do not exist (first: "
                   f"{extra[0]}; the scene has {n_frames}); re-import the recording")
    ids = sorted(t for t in stamps if 0 <= t < n_frames)
    s = np.asarray([stamps[t] for t in ids])
    if len(s) > 1 and np.any(np.diff(s) <= 0):
        k = int(np.argmax(np.diff(s) <= 0))
        out.append(f"{where}: timestamps do not increase (frame {ids[k + 1]} at {s[k + 1]:.6f} s"
                   f" is not after frame {ids[k]} at {s[k]:.6f} s); frames are out of order: "
                   "re-import the recording")
    return out


@functools.lru_cache(maxsize=64)
def _extent_cached(path: str, mtime_ns: int) -> float | None:
    import open3d as o3d

    from labeller.core.errors import ModelError
    from labeller.formats.models import check_model_file

    try:
        check_model_file(path)  # a crafted PLY must not reach Open3D's reader
    except ModelError:
        return None
    mesh = o3d.io.read_triangle_mesh(Path(path), False)
    v = np.asarray(mesh.vertices)
    if len(v) == 0 or not np.all(np.isfinite(v)):
        return None
    return float((v.max(0) - v.min(0)).max())


def model_extent(path: Path) -> float | None:
    """Largest axis-aligned extent of a mesh in its own units; None when unreadable."""
    try:
        return _extent_cached(str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        return None


def model_size_warning(path: Path, class_name: str | None, extent: float,
                       where: str | os.PathLike | None = None) -> str | None:
    """A warning when a model `extent` units across is ~1000x off for its class."""
    where = where or path
    cls = BY_NAME.get(class_name or "")
    if not extent > 0:
        return None
    if cls is not None:
        expected = max(cls.size_m)
        ratio = extent / expected
        what = f"a {class_name} is about {expected:.3g} m"
        r_lo, r_hi = MODEL_SCALE_RATIO
        too_big, too_small = r_lo <= ratio <= r_hi, r_lo <= 1 / ratio <= r_hi
    else:  # no size for the class: outside the generic range, and inside it once fixed
        lo, hi = GENERIC_OBJECT_M
        what = f"objects are {lo:g}-{hi:g} m"
        too_big = extent > hi and lo <= extent / 1000 <= hi
        too_small = extent < lo and lo <= extent * 1000 <= hi
    if too_big:
        return (f"{where}: model is {extent:.4g} units across but {what}: it is probably in "
                "millimetres; scale it by 0.001 (models are in metres)")
    if too_small:
        return (f"{where}: model is {extent:.4g} units across but {what}: it is about 1000x "
                "too small (converted to metres twice?); scale it by 1000")
    return None


def scene_warnings(root: str | os.PathLike, models_dir: str | os.PathLike | None = None,
                   display_root: str | os.PathLike | None = None,
                   sample_frames: int = SAMPLE_FRAMES) -> list[str]:
    """Every sanity warning of a (valid) scene. Files are named under `display_root`
    (default `root`), so a scene checked in a temporary folder is reported where it will be."""
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.models import resolve_model_path
    from labeller.formats.scene import Scene

    root = Path(root)
    shown = Path(display_root) if display_root is not None else root

    def name(p: Path) -> Path:
        try:
            return shown / p.relative_to(root)
        except ValueError:
            return p

    try:
        scene = Scene(root)
        cam = scene.camera
        n = scene.n_frames
    except BadInput:
        return []  # not a valid scene: scene_problems says why
    out: list[str] = []
    ids = np.unique(np.linspace(0, n - 1, min(n, sample_frames)).round().astype(int))
    medians = []
    for t in ids:
        try:
            d = scene.depth_raw(int(t))
        except BadInput:
            continue
        valid = d[d > 0]
        if valid.size:
            medians.append(float(np.median(valid)))
    if medians:
        w = depth_scale_warning(float(np.median(medians)), cam.depth_scale,
                                name(scene.paths.camera))
        if w:
            out.append(w)
    out += intrinsics_warnings(cam, name(scene.paths.camera))
    try:
        stamps = scene.timestamps()
    except BadInput:
        stamps = None
    if stamps:
        out += timestamps_warnings(stamps, n, name(scene.paths.timestamps))
    checked: set[Path] = set()
    for doc_path in (scene.paths.annotations, scene.paths.gt_annotations):
        if not doc_path.is_file():
            continue
        try:
            doc = AnnotationDocument.read(doc_path)
        except BadInput:
            continue
        for o in doc.objects:
            try:
                p = resolve_model_path(o.model, root, models_dir)
            except BadInput:
                continue
            if p.resolve() in checked:
                continue
            checked.add(p.resolve())
            extent = model_extent(p)
            if extent is not None and (w := model_size_warning(p, o.class_name, extent,
                                                                name(p))):
                out.append(w)
    if scene.paths.models.is_dir():
        for p in sorted(scene.paths.models.rglob("*")):
            if p.suffix.lower() not in MESH_SUFFIXES or p.resolve() in checked:
                continue
            checked.add(p.resolve())
            cls = p.parent.name if p.parent != scene.paths.models else p.stem
            extent = model_extent(p)
            if extent is not None and (w := model_size_warning(p, cls, extent, name(p))):
                out.append(w)
    return out
