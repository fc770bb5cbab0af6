"""The native scene directory (docs/design.md) and its validated, lazy reader.

    <scene>/rgb/000000.png        8-bit RGB (.png or .jpg)
    <scene>/depth/000000.png      uint16, metres = value / depth_scale, 0 = no measurement
    <scene>/camera.json           CameraIntrinsics
    <scene>/trajectory.txt        optional, T_world_cam per tracked frame
    <scene>/timestamps.txt        optional, "frame_id seconds"
    <scene>/annotations.json      optional, AnnotationDocument
    <scene>/models/               optional meshes
    <scene>/gt/                   ground truth of synthetic / imported scenes

`Scene.open` checks the layout (camera, frame files, first frame) and raises SceneError
naming the file; frames are read on demand and checked as they are read.
`scene_problems` runs every check and returns all problems (for `labeller info`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, SceneError
from labeller.core.fileio import read_image, sha256_file
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.trajectory import Trajectory

FRAME_RE = re.compile(r"^(\d{6})\.(png|jpg|jpeg)$", re.IGNORECASE)


@dataclass(frozen=True)
class ScenePaths:
    """Every path a stage reads or writes inside a scene, built in one place."""

    root: Path

    @property
    def rgb_dir(self) -> Path:
        return self.root / "rgb"

    @property
    def depth_dir(self) -> Path:
        return self.root / "depth"

    @property
    def camera(self) -> Path:
        return self.root / "camera.json"

    @property
    def trajectory(self) -> Path:
        return self.root / "trajectory.txt"

    @property
    def timestamps(self) -> Path:
        return self.root / "timestamps.txt"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations.json"

    @property
    def autosave(self) -> Path:
        return self.root / ".annotations.autosave.json"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def recon(self) -> Path:
        return self.root / "recon"

    @property
    def cloud(self) -> Path:
        return self.root / "recon" / "cloud.ply"

    @property
    def tracking_report(self) -> Path:
        return self.root / "recon" / "tracking.json"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def labels(self) -> Path:
        return self.root / "labels" / "labels.h5"

    @property
    def gt(self) -> Path:
        return self.root / "gt"

    @property
    def gt_trajectory(self) -> Path:
        return self.root / "gt" / "trajectory.txt"

    @property
    def gt_annotations(self) -> Path:
        return self.root / "gt" / "annotations.json"

    def gt_mask(self, t: int) -> Path:
        return self.root / "gt" / "masks" / f"{t:06d}.png"

    def rgb_path(self, t: int, ext: str = ".png") -> Path:
        return self.rgb_dir / f"{t:06d}{ext}"

    def depth_path(self, t: int) -> Path:
        return self.depth_dir / f"{t:06d}.png"


def list_frame_files(d: Path, pattern: re.Pattern = FRAME_RE) -> dict[int, Path]:
    """Frame id -> file for the files in a folder whose names match `pattern` (group 1 =
    the id; default `000000.png|jpg`); {} when the folder is missing."""
    out: dict[int, Path] = {}
    if d.is_dir():
        for f in d.iterdir():
            m = pattern.match(f.name)
            if m:
                out[int(m.group(1))] = f
    return out


def _layout_problems(root: Path) -> tuple[list[str], CameraIntrinsics | None, list[Path], list[Path]]:
    """Problems of the layout (not of frame contents), the camera, and the frame paths."""
    paths = ScenePaths(root)
    problems: list[str] = []
    camera = None
    if not root.is_dir():
        return [f"{root}: not a directory"], None, [], []
    try:
        camera = CameraIntrinsics.read(paths.camera)
    except BadInput as exc:
        problems.append(str(exc))
    rgb = list_frame_files(paths.rgb_dir)
    depth = list_frame_files(paths.depth_dir)
    if not paths.rgb_dir.is_dir():
        problems.append(f"{paths.rgb_dir}: missing (colour frames go in rgb/000000.png ...)")
    if not paths.depth_dir.is_dir():
        problems.append(f"{paths.depth_dir}: missing (depth frames go in depth/000000.png ...)")
    n = max(max(rgb, default=-1), max(depth, default=-1)) + 1
    if paths.rgb_dir.is_dir() and paths.depth_dir.is_dir() and n == 0:
        problems.append(f"{paths.rgb_dir}: no frames (expected files named 000000.png, 000001.png, ...)")
    for t in range(n):
        if t not in rgb:
            problems.append(f"{paths.rgb_dir / f'{t:06d}.png'}: missing rgb frame {t}")
        if t not in depth:
            problems.append(f"{paths.depth_path(t)}: missing depth frame {t}")
    rgb_list = [rgb.get(t, paths.rgb_path(t)) for t in range(n)]
    depth_list = [depth.get(t, paths.depth_path(t)) for t in range(n)]
    return problems, camera, rgb_list, depth_list


class Scene:
    """A validated scene directory with lazy random access to its frames.

    allow_missing_depth (the annotation GUI): a depth frame missing from depth/ is not a
    problem; it is listed in `missing_depth` and reads as all zeros (no measurement).
    Every stage keeps the default and refuses such a scene."""

    def __init__(self, root: str | os.PathLike, allow_missing_depth: bool = False):
        self.root = Path(root)
        self.paths = ScenePaths(self.root)
        problems, camera, self._rgb, self._depth = _layout_problems(self.root)
        self.missing_depth: tuple[int, ...] = ()
        if allow_missing_depth and self.paths.depth_dir.is_dir():
            have = list_frame_files(self.paths.depth_dir)
            self.missing_depth = tuple(t for t in range(len(self._depth)) if t not in have)
            skip = {f"{self.paths.depth_path(t)}: missing depth frame {t}"
                    for t in self.missing_depth}
            problems = [p for p in problems if p not in skip]
        if problems:
            msg = problems[0]
            path, _, problem = msg.partition(": ")
            more = f" (and {len(problems) - 1} more problem(s); run `labeller info`)" if len(problems) > 1 else ""
            raise SceneError(path, problem + more)
        assert camera is not None
        self.camera: CameraIntrinsics = camera
        # Cheap check of the first frame so a wrong size fails at open, not mid-run.
        self.rgb(0)
        self.depth_raw(0)
        self._trajectory: Trajectory | None = None

    @classmethod
    def open(cls, root: str | os.PathLike) -> Scene:
        return cls(root)

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def n_frames(self) -> int:
        return len(self._rgb)

    def __len__(self) -> int:
        return self.n_frames

    def rgb_file(self, t: int) -> Path:
        return self._rgb[t]

    def depth_file(self, t: int) -> Path:
        return self._depth[t]

    def rgb(self, t: int) -> np.ndarray:
        """Colour frame t: (H, W, 3) uint8 RGB."""
        path = self._rgb[t]
        img = read_image(path)
        if img.dtype != np.uint8:
            raise SceneError(path, f"colour frame must be 8-bit, got {img.dtype}")
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.shape[:2] != (self.camera.height, self.camera.width):
            raise SceneError(path, f"size {img.shape[1]}x{img.shape[0]} differs from camera.json's "
                                   f"{self.camera.width}x{self.camera.height}")
        return img

    def depth_raw(self, t: int) -> np.ndarray:
        """Depth frame t as stored: (H, W) uint16 (zeros for a `missing_depth` frame)."""
        if t in self.missing_depth:
            return np.zeros((self.camera.height, self.camera.width), np.uint16)
        path = self._depth[t]
        d = read_image(path)
        if d.dtype != np.uint16 or d.ndim != 2:
            raise SceneError(path, f"depth must be a single-channel 16-bit PNG, got {d.dtype} "
                                   f"with {1 if d.ndim == 2 else d.shape[2]} channel(s)")
        if d.shape != (self.camera.height, self.camera.width):
            raise SceneError(path, f"depth size {d.shape[1]}x{d.shape[0]} differs from rgb/camera "
                                   f"{self.camera.width}x{self.camera.height}")
        return d

    def depth(self, t: int) -> np.ndarray:
        """Depth frame t in metres: (H, W) float32, 0 where there is no measurement."""
        return (self.depth_raw(t).astype(np.float32) / np.float32(self.camera.depth_scale))

    # -- optional parts ---------------------------------------------------------------
    @property
    def has_trajectory(self) -> bool:
        return self.paths.trajectory.is_file()

    @property
    def trajectory(self) -> Trajectory:
        """The top-level trajectory (T_world_cam per tracked frame); SceneError if absent."""
        if self._trajectory is None:
            if not self.has_trajectory:
                raise SceneError(self.paths.trajectory, "missing: run `labeller track` first "
                                                        "(or import a trajectory)")
            self._trajectory = Trajectory.read(self.paths.trajectory, self.n_frames)
        return self._trajectory

    def trajectory_sha256(self) -> str | None:
        return sha256_file(self.paths.trajectory) if self.has_trajectory else None

    @property
    def has_annotations(self) -> bool:
        return self.paths.annotations.is_file()

    def annotations(self) -> AnnotationDocument:
        return AnnotationDocument.read(self.paths.annotations)

    def gt_trajectory(self) -> Trajectory | None:
        p = self.paths.gt_trajectory
        return Trajectory.read(p, self.n_frames) if p.is_file() else None

    def timestamps(self) -> dict[int, float] | None:
        p = self.paths.timestamps
        if not p.is_file():
            return None
        out: dict[int, float] = {}
        for i, line in enumerate(p.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.split()
            try:
                out[int(parts[0])] = float(parts[1])
            except (ValueError, IndexError):
                raise SceneError(f"{p}:{i}", "expected 'frame_id seconds'") from None
        return out


def scene_problems(root: str | os.PathLike, deep: bool = True,
                   models_dir: str | os.PathLike | None = None) -> list[str]:
    """Every problem with a scene, one line each ('<file>: <problem>'); [] when valid.

    `deep` reads every frame (sizes, bit depth, readability); otherwise only the first.
    Also validates top-level trajectory.txt and annotations.json when present, and loads
    the annotations' models (scene first, then `models_dir`).
    """
    root = Path(root)
    problems, camera, rgb, depth = _layout_problems(root)
    if camera is None or not rgb:
        return problems
    ids = range(len(rgb)) if deep else range(min(1, len(rgb)))
    for t in ids:
        for path, kind in ((rgb[t], "rgb"), (depth[t], "depth")):
            if not path.is_file():
                continue
            try:
                img = read_image(path)
            except BadInput as exc:
                problems.append(str(exc))
                continue
            if kind == "depth" and (img.dtype != np.uint16 or img.ndim != 2):
                problems.append(f"{path}: depth must be a single-channel 16-bit PNG, got {img.dtype}"
                                f" with {1 if img.ndim == 2 else img.shape[2]} channel(s)")
            elif kind == "rgb" and img.dtype != np.uint8:
                problems.append(f"{path}: colour frame must be 8-bit, got {img.dtype}")
            elif img.shape[:2] != (camera.height, camera.width):
                problems.append(f"{path}: size {img.shape[1]}x{img.shape[0]} differs from camera.json's "
                                f"{camera.width}x{camera.height}")
    paths = ScenePaths(root)
    if paths.trajectory.is_file():
        try:
            Trajectory.read(paths.trajectory, len(rgb))
        except BadInput as exc:
            problems.append(str(exc))
    if paths.annotations.is_file():
        try:
            doc = AnnotationDocument.read(paths.annotations)
        except BadInput as exc:
            problems.append(str(exc))
        else:
            from labeller.formats.models import load_model, resolve_model_path

            for o in doc.objects:
                try:
                    load_model(resolve_model_path(o.model, root, models_dir))
                except BadInput as exc:
                    problems.append(f"{exc} (object {o.id}, {o.class_name})")
    return problems
