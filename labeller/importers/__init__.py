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
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeller.core.errors import BadInput
from labeller.core.progress import ProgressFn
from labeller.importers.writer import ImportResult

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
    "progresslabeller": ImporterSpec(
        "labeller.importers.progresslabeller:import_progresslabeller",
        "ProgressLabeller project (data/rgb, data/depth, recon/campose.txt, label_pose.yaml)"),
    "rosbag": ImporterSpec("labeller.importers.rosbag:import_rosbag",
                           "ROS1 .bag or ROS2 bag folder (colour, aligned depth, camera_info)"),
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
                 **options: Any) -> ImportResult:
    """Import `src` (in format `fmt`) as a scene at `dest`.

    `options` are format-specific keyword arguments (e.g. ``intrinsics=(fx, fy, cx, cy)``);
    one the format does not take is a BadInput naming it. Importing into the source folder
    itself (or a folder that contains it) is refused.
    """
    func = get_importer(fmt)
    params = inspect.signature(func).parameters
    for name in options:
        if name not in params:
            raise BadInput(f"option '{name}' does not apply to format '{fmt}'")
    src_r, dest_r = Path(src).resolve(), Path(dest).resolve()
    if dest_r == src_r or dest_r in src_r.parents:
        raise BadInput(dest, f"would replace the source folder {src}; choose another SCENE")
    return func(Path(src), Path(dest), link=link, overwrite=overwrite, progress=progress,
                **options)
