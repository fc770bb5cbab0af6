"""Shared helpers for importers: write a scene atomically in the native layout.

An importer builds the whole scene inside a temporary directory beside the destination
and renames it into place only when every frame has been written and the result passes
the scene checks, so an interrupted or failed import never leaves a half-written scene
and never touches an existing one (unless asked to replace it).

    with scene_writer(dest, overwrite=False, link=False) as w:
        w.write_camera(camera)
        for t, (rgb, depth) in enumerate(frames):
            w.add_rgb(t, rgb)          # copied (or hard-linked), byte-identical
            w.add_depth_file(t, depth) # or w.write_depth(t, depth_uint16)
        w.write_gt_trajectory(traj)    # re-anchored to its first posed frame
        w.write_timestamps({t: seconds})
    result = w.result(...)
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_dir, atomic_write_json, read_image, write_image
from labeller.formats.scene import ScenePaths, scene_problems
from labeller.formats.trajectory import Trajectory

IMPORT_INFO = "import.json"  # beside camera.json: the importer's account of the scene


@dataclass
class ImportResult:
    """What an importer wrote."""

    scene: Path
    n_frames: int
    has_gt_trajectory: bool = False
    has_timestamps: bool = False
    n_linked: int = 0
    n_copied: int = 0
    n_rewritten: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational lines for the summary


class SceneWriter:
    """Writes frames and metadata into a (temporary) scene directory."""

    def __init__(self, root: Path, link: bool = False):
        self.root = Path(root)
        self.paths = ScenePaths(self.root)
        self.link = link
        self.n_linked = 0
        self.n_copied = 0
        self.n_rewritten = 0
        self.warnings: list[str] = []
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the first frame
        self._link_failed = False
        self.paths.rgb_dir.mkdir(parents=True, exist_ok=True)
        self.paths.depth_dir.mkdir(parents=True, exist_ok=True)

    def check_frame(self, rgb_path: Path, depth: np.ndarray | Path,
                    where_depth: Path | None = None) -> tuple[int, int]:
        """`check_frame_pair`, and every frame of the scene has the first frame's size.

        Returns (width, height); the first frame's is kept in `frame_size`."""
        wh = check_frame_pair(rgb_path, depth, where_depth)
        if self.frame_size is None:
            self.frame_size = wh
        elif wh != self.frame_size:
            raise BadInput(rgb_path, f"size {wh[0]}x{wh[1]} differs from the first frame's "
                                     f"{self.frame_size[0]}x{self.frame_size[1]}")
        return wh

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _place(self, src: Path, dest: Path) -> None:
        """Hard-link (when asked and possible) or copy `src` to `dest`."""
        if self.link and not self._link_failed:
            try:
                os.link(src, dest)
                self.n_linked += 1
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                # Another file system (or no hard links there): copy instead, say so once.
                self._link_failed = True
                self.warn(f"{src}: cannot hard-link into {self.root.parent} "
                          f"({os.strerror(exc.errno)}); copying the frames instead")
        shutil.copyfile(src, dest)
        self.n_copied += 1

    def add_rgb(self, t: int, src: Path) -> Path:
        """Copy/link a colour frame byte-identical; keeps .png / .jpg."""
        ext = src.suffix.lower()
        ext = ".jpg" if ext == ".jpeg" else ext
        if ext not in (".png", ".jpg"):
            raise BadInput(src, f"colour frames must be .png or .jpg, got '{src.suffix}'")
        dest = self.paths.rgb_path(t, ext)
        self._place(src, dest)
        return dest

    def add_depth_file(self, t: int, src: Path) -> Path:
        """Copy/link a uint16 depth PNG as is."""
        dest = self.paths.depth_path(t)
        self._place(src, dest)
        return dest

    def write_depth(self, t: int, depth: np.ndarray) -> Path:
        """Write a (H, W) uint16 depth image (used when the source needs changing)."""
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise ValueError(f"depth must be (H, W) uint16, got {depth.dtype} {depth.shape}")
        dest = self.paths.depth_path(t)
        write_image(dest, depth, atomic=False)  # the whole directory is renamed at the end
        self.n_rewritten += 1
        return dest

    def write_camera(self, camera: CameraIntrinsics) -> None:
        if (p := camera.problem()) is not None:
            raise BadInput(self.paths.camera, p)
        camera.write(self.paths.camera)

    def write_gt_trajectory(self, traj: Trajectory) -> bool:
        """Write gt/trajectory.txt re-anchored to its first posed frame; False if empty."""
        if len(traj) == 0:
            return False
        self.paths.gt.mkdir(parents=True, exist_ok=True)
        traj.reanchored().write(self.paths.gt_trajectory)
        return True

    def write_provenance(self, fmt: str, src: Path, depth_alignment: str) -> None:
        """Write import.json: what the scene was imported from and how depth relates to
        colour ("aligned ...", "registered ...", "not registered ..."), for `labeller info`."""
        atomic_write_json(self.root / IMPORT_INFO, {"format": fmt, "source": str(src),
                                                   "depth": depth_alignment})

    def write_timestamps(self, stamps: dict[int, float]) -> bool:
        """Write timestamps.txt ("frame_id seconds"); False if empty."""
        if not stamps:
            return False
        lines = ["# frame_id seconds"] + [f"{t} {stamps[t]:.6f}" for t in sorted(stamps)]
        (self.paths.timestamps).write_text("\n".join(lines) + "\n")
        return True


def check_frame_pair(rgb_path: Path, depth: np.ndarray | Path, where_depth: Path | None = None
                     ) -> tuple[int, int]:
    """Decode a colour frame (and a depth frame given as a path or an array) and check them.

    Returns (width, height). Raises BadInput naming the file for an unreadable image, a
    colour frame that is not 8-bit, depth that is not single-channel uint16, or
    different sizes.
    """
    rgb = read_image(rgb_path)
    if rgb.dtype != np.uint8:
        raise BadInput(rgb_path, f"colour frame must be 8-bit, got {rgb.dtype}")
    if isinstance(depth, Path):
        where_depth = depth
        depth = read_image(depth)
    where_depth = where_depth or Path("depth")
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise BadInput(where_depth, f"depth must be a single-channel 16-bit PNG, got {depth.dtype} "
                                    f"with {1 if depth.ndim == 2 else depth.shape[2]} channel(s)")
    if depth.shape != rgb.shape[:2]:
        raise BadInput(where_depth, f"depth size {depth.shape[1]}x{depth.shape[0]} differs from "
                                    f"{rgb_path.name}'s {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb.shape[1], rgb.shape[0]


# What `import --overwrite` may replace: a scene (any other folder is the user's).
SCENE_LAYOUT_TEXT = "a scene (camera.json and rgb/, or an import.json)"


def is_replaceable_scene(path: Path) -> bool:
    """True for a folder in the scene layout (camera.json and rgb/) or one an importer
    wrote (import.json): what `--overwrite` may replace."""
    return ((path / "camera.json").is_file() and (path / "rgb").is_dir()) \
        or (path / IMPORT_INFO).is_file()


@contextlib.contextmanager
def scene_writer(dest: str | os.PathLike, overwrite: bool = False, link: bool = False
                 ) -> Iterator[SceneWriter]:
    """Yield a SceneWriter on a temporary directory that replaces `dest` on success.

    An existing `dest` is refused before any work unless `overwrite`, and even then
    unless it is a scene (`is_replaceable_scene`). On an exception the
    temporary directory is removed and `dest` is untouched. Before the rename the result
    is checked like `labeller info` does (layout, first frame); a problem there is a bug
    in the importer and raised as RuntimeError.
    """
    dest = Path(dest)
    src_check = dest.resolve()
    with atomic_dir(dest, overwrite=overwrite, ours=is_replaceable_scene,
                    what=SCENE_LAYOUT_TEXT) as tmp:
        writer = SceneWriter(tmp, link=link)
        yield writer
        problems = scene_problems(tmp, deep=False)
        if problems:
            raise RuntimeError(f"importer wrote an invalid scene for {src_check}: {problems[0]}")
