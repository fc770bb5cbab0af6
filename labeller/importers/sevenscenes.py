"""Import a Microsoft 7-Scenes sequence (`labeller import 7scenes SRC SCENE`).

SRC is a folder of ``frame-XXXXXX.color.png|jpg``, ``frame-XXXXXX.depth.png`` (uint16,
depth ÷ 1000, 65535 = no measurement) and ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world,
i.e. T_world_cam, from KinectFusion), or the parent of exactly one such folder.
Frames are renumbered 0..N-1 in sorted order; depth 65535 becomes 0; intrinsics come
from ``camera-intrinsics.txt`` (a 3x3 K) in SRC or its parent, else 585 585 320 240
(the 7-Scenes depth camera); the poses become ``gt/trajectory.txt`` re-anchored to the
first frame. 7-Scenes has no timestamps. Colour and depth of 7-Scenes are not
registered to each other (the colour camera sits a few cm from the depth camera).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.fileio import read_image
from labeller.core.poses import rigid_or_none
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.formats.trajectory import Trajectory
from labeller.importers.writer import ImportResult, scene_writer

COLOR_RE = re.compile(r"^frame-(\d+)\.color\.(png|jpg|jpeg)$", re.IGNORECASE)
# 7-Scenes marks "no measurement" with 65535; our depth PNGs use 0 (docs/design.md).
SEVENSCENES_INVALID_DEPTH = 65535
SEVENSCENES_DEPTH_SCALE = 1000.0  # depth PNG units per metre (millimetres)
# The 7-Scenes depth camera's intrinsics, used when camera-intrinsics.txt is absent.
DEFAULT_K = (585.0, 585.0, 320.0, 240.0)
INTRINSICS_FILE = "camera-intrinsics.txt"


def _color_frames(d: Path) -> list[tuple[str, Path]]:
    """(frame stem 'frame-000012', colour path) sorted by frame number."""
    out = []
    if d.is_dir():
        for f in d.iterdir():
            m = COLOR_RE.match(f.name)
            if m:
                out.append((int(m.group(1)), f"frame-{m.group(1)}", f))
    out.sort()
    return [(stem, f) for _, stem, f in out]


def find_frames_dir(src: Path) -> Path:
    """The folder holding the frame files: SRC itself, or its one subfolder that has them."""
    if not src.is_dir():
        raise BadInput(src, "not a directory (expected a 7-Scenes folder of frame-XXXXXX.* files)")
    if _color_frames(src):
        return src
    subs = sorted(d for d in src.iterdir() if d.is_dir() and _color_frames(d))
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        names = ", ".join(d.name for d in subs[:5]) + (" ..." if len(subs) > 5 else "")
        raise BadInput(src, f"holds {len(subs)} 7-Scenes sequences ({names}); "
                            "give one of them as SRC")
    raise BadInput(src, "no 7-Scenes frames here or in a subfolder "
                        "(expected frame-000000.color.png|jpg with frame-000000.depth.png)")


def read_intrinsics_file(path: Path) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) from a 7-Scenes style 3x3 K text file."""
    try:
        K = np.loadtxt(path, dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise BadInput(path, f"expected a 3x3 matrix of numbers ({exc})") from None
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BadInput(path, "expected a 3x3 intrinsic matrix with fx, fy > 0, "
                             f"got shape {K.shape}")
    return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])


def read_pose_file(path: Path) -> np.ndarray:
    """T_world_cam (4x4) from a 7-Scenes pose file; BadInput when malformed.

    Returns an all-NaN matrix for a pose the file marks as unknown (non-finite values),
    which the caller reports as a frame without ground truth.
    """
    try:
        T = np.loadtxt(path, dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise BadInput(path, f"expected a 4x4 matrix of numbers ({exc})") from None
    if T.shape != (4, 4):
        raise BadInput(path, f"expected a 4x4 matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        return np.full((4, 4), np.nan)
    fixed, problem = rigid_or_none(T)
    if fixed is None:
        raise BadInput(path, f"not a rigid pose: {problem}")
    return fixed


def import_7scenes(src: str | Path, dest: str | Path, *, link: bool = False,
                   overwrite: bool = False,
                   intrinsics: tuple[float, float, float, float] | None = None,
                   progress: ProgressFn | None = None) -> ImportResult:
    """Convert a 7-Scenes sequence folder into a scene at `dest` (see the module doc).

    `intrinsics` (fx, fy, cx, cy) overrides camera-intrinsics.txt. `link` hard-links
    colour frames and depth frames that need no change. Raises BadInput for a missing or
    malformed file; `dest` is written all at once or not at all.
    """
    src, dest = Path(src), Path(dest)
    frames_dir = find_frames_dir(src)
    frames = _color_frames(frames_dir)
    warnings: list[str] = []

    # Every file is checked before anything is written.
    depth_paths: list[Path] = []
    pose_paths: list[Path | None] = []
    for stem, color in frames:
        d = frames_dir / f"{stem}.depth.png"
        if not d.is_file():
            raise BadInput(d, f"missing depth frame for {color.name}")
        depth_paths.append(d)
        p = frames_dir / f"{stem}.pose.txt"
        pose_paths.append(p if p.is_file() else None)

    if intrinsics is not None:
        fx, fy, cx, cy = intrinsics
        k_source = "--intrinsics"
    else:
        k_file = next((d / INTRINSICS_FILE for d in (frames_dir, frames_dir.parent, src)
                       if (d / INTRINSICS_FILE).is_file()), None)
        if k_file is not None:
            fx, fy, cx, cy = read_intrinsics_file(k_file)
            k_source = str(k_file)
        else:
            fx, fy, cx, cy = DEFAULT_K
            k_source = "default"
            warnings.append(f"{frames_dir}: no {INTRINSICS_FILE} here or in the parent; using the "
                            f"7-Scenes depth camera's K {fx:g} {fy:g} {cx:g} {cy:g}")

    poses: dict[int, np.ndarray] = {}
    no_pose: list[str] = []
    for t, pose_path in enumerate(pose_paths):
        if pose_path is None:
            no_pose.append(frames[t][0])
            continue
        T = read_pose_file(pose_path)
        if np.all(np.isfinite(T)):
            poses[t] = T
        else:
            no_pose.append(frames[t][0])
    if not poses:
        warnings.append(f"{frames_dir}: no usable frame-XXXXXX.pose.txt files; imported without "
                        "ground truth (gt/trajectory.txt not written)")
    elif no_pose:
        warnings.append(f"{frames_dir}: {len(no_pose)} of {len(frames)} frames have no usable pose "
                        f"(first: {no_pose[0]}.pose.txt); they are left out of gt/trajectory.txt")

    with scene_writer(dest, overwrite=overwrite, link=link) as w:
        with bar(len(frames), "import 7scenes") as frames_bar:
            for t, ((_stem, color), dpath) in enumerate(zip(frames, depth_paths, strict=True)):
                depth = read_image(dpath)
                w.check_frame(color, depth, dpath)
                w.add_rgb(t, color)
                invalid = depth == SEVENSCENES_INVALID_DEPTH
                if invalid.any():
                    w.write_depth(t, np.where(invalid, 0, depth).astype(np.uint16))
                else:
                    w.add_depth_file(t, dpath)
                frames_bar.update(1)
                check_progress(progress, t + 1, len(frames),
                               f"{dest}: import cancelled; nothing written")
        size = w.frame_size
        assert size is not None
        w.write_camera(CameraIntrinsics(size[0], size[1], fx, fy, cx, cy,
                                        SEVENSCENES_DEPTH_SCALE))
        has_gt = w.write_gt_trajectory(Trajectory(poses))
        warnings = warnings + w.warnings
        result = ImportResult(Path(dest), len(frames), has_gt_trajectory=has_gt,
                              n_linked=w.n_linked, n_copied=w.n_copied,
                              n_rewritten=w.n_rewritten, warnings=warnings,
                              notes=[f"intrinsics: {fx:g} {fy:g} {cx:g} {cy:g} (from {k_source})"])
    return result
