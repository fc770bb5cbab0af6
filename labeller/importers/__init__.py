"""Importers: convert other RGB-D layouts into the native scene directory (docs/design.md).

`FORMATS` maps a format name (the FORMAT of `labeller import FORMAT SRC SCENE`) to the
importer function, named as "module:function" so that a format's dependencies load only
when it is used. Every importer has the signature

    importer(src, dest, *, link=False, overwrite=False, progress=None, **options) -> ImportResult

writes `dest` all at once through `labeller.importers.writer.scene_writer` (a temporary
directory renamed at the end) and raises `BadInput` naming the file for malformed input.
`progress(done, total)` (`labeller.core.progress.ProgressFn`) follows the frames; when it
returns False the import stops with `labeller.core.errors.Cancelled`, nothing written.
To add a format, write `labeller/importers/<name>.py` and add one line to `FORMATS`.

`import_scene` writes the importer's scene into a hidden staging folder beside `dest`,
runs the sanity checks (`labeller.formats.sanity`: depth scale, intrinsics, timestamps,
model sizes) on it, and only then moves it into place; with `strict` any warning (the
importer's or the checks') refuses the import and nothing is written.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labeller.core.errors import BadInput
from labeller.core.lazy import lazy_exports
from labeller.core.progress import ProgressFn

if TYPE_CHECKING:
    from labeller.importers.writer import ImportResult

# `labeller --help` lists FORMATS from here: the writer (and OpenCV with it) loads only
# when an import runs.
__getattr__ = lazy_exports(__name__, {"ImportResult": "writer"})

__all__ = ["FORMATS", "ImportResult", "ImporterSpec", "get_importer", "import_scene"]


@dataclass(frozen=True)
class ImporterSpec:
    target: str  # "module:function"
    summary: str  # one line for --help


FORMATS: dict[str, ImporterSpec] = {
    "7scenes": ImporterSpec("labeller.importers.sevenscenes:import_7scenes",
                            "Microsoft 7-Scenes sequence (frame-XXXXXX.color/depth/pose files)"),
    "bop": ImporterSpec("labeller.importers.bop:import_bop",
                        "one BOP scene folder (scene_camera.json, rgb/, depth/, scene_gt.json)"),
    "realsense": ImporterSpec("labeller.importers.realsense:import_realsense",
                              "RealSense SDK .bag (realsense-viewer / rs-record): colour, depth "
                              "registered at import"),
    "progresslabeller": ImporterSpec(
        "labeller.importers.progresslabeller:import_progresslabeller",
        "ProgressLabeller project (data/rgb, data/depth, recon/campose.txt, label_pose.yaml)"),
    "rosbag": ImporterSpec("labeller.importers.rosbag:import_rosbag",
                           "ROS1 .bag or ROS2 bag folder (raw or compressed colour/depth, "
                           "camera_info)"),
    "tum": ImporterSpec("labeller.importers.tum:import_tum",
                        "TUM RGB-D sequence (rgb.txt, depth.txt, optional groundtruth.txt)"),
}


def get_importer(fmt: str) -> Callable[..., ImportResult]:
    """The importer function for a format name; BadInput listing the formats if unknown."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise BadInput(f"unknown import format '{fmt}' (known: {', '.join(sorted(FORMATS))})")
    module, func = spec.target.split(":")
    return getattr(importlib.import_module(module), func)


def import_scene(fmt: str, src: str | os.PathLike, dest: str | os.PathLike, *, link: bool = False,
                 overwrite: bool = False, progress: ProgressFn | None = None,
                 strict: bool = False, models_dir: str | os.PathLike | None = None,
                 **options: Any) -> ImportResult:
    """Import `src` (in format `fmt`) as a scene at `dest`, sanity warnings included.

    `options` are format-specific keyword arguments (e.g. ``intrinsics=(fx, fy, cx, cy)``);
    one the format does not take is a BadInput naming it. Importing into the source folder
    itself (or a folder that contains it) is refused. With `strict`, a warning is a
    BadInput and nothing is written. `models_dir` is the models library the sanity check
    looks in for the annotations' models.
    """
    from labeller.core.fileio import atomic_dir, temp_dir_beside
    from labeller.importers.writer import SCENE_LAYOUT_TEXT, is_replaceable_scene

    func = get_importer(fmt)
    params = inspect.signature(func).parameters
    for name in options:
        if name not in params:
            raise BadInput(f"option '{name}' does not apply to format '{fmt}'")
    src_r, dest_r = Path(src).resolve(), Path(dest).resolve()
    if dest_r == src_r or dest_r in src_r.parents:
        raise BadInput(dest, f"would replace the source folder {src}; choose another SCENE")
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BadInput(dest, "already exists (pass --overwrite to replace it)")
    if dest.is_dir() and any(dest.iterdir()) and not is_replaceable_scene(dest):
        # Checked before any work too (atomic_dir checks again at the swap): --overwrite
        # replaces only a scene, never a folder of the user's.
        raise BadInput(dest, f"exists and is not {SCENE_LAYOUT_TEXT}; refusing to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_dir_beside(dest, suffix=".staged")
    staged = staging / dest.name
    try:
        result = func(Path(src), staged, link=link, overwrite=False, progress=progress,
                      **options)
        from labeller.formats.sanity import scene_warnings

        warnings = [w.replace(str(staged), str(dest)) for w in result.warnings]
        warnings += scene_warnings(staged, models_dir=models_dir, display_root=dest)
        if strict and warnings:
            more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
            raise BadInput(dest, f"not written (--strict): {warnings[0]}{more}")
        with atomic_dir(dest, overwrite=overwrite, ours=is_replaceable_scene,
                        what=SCENE_LAYOUT_TEXT) as tmp:
            os.rmdir(tmp)  # an empty folder atomic_dir made: the staged scene takes its place
            os.replace(staged, tmp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.scene = dest
    result.warnings = warnings
    result.notes = [n.replace(str(staged), str(dest)) for n in result.notes]
    return result
