"""Import a Microsoft 7-Scenes sequence (`labeller import 7scenes SRC SCENE`).

SRC is a folder of ``frame-XXXXXX.color.png|jpg``, ``frame-XXXXXX.depth.png`` (uint16,
depth ÷ 1000, 65535 = no measurement) and ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world,
i.e. T_world_cam, from KinectFusion), or the parent of exactly one such folder.
Frames are renumbered 0..N-1 in sorted order; depth 65535 becomes 0; the poses become
``gt/trajectory.txt`` re-anchored to the first frame. 7-Scenes has no timestamps.

7-Scenes colour and depth come from the two cameras of a Kinect v1 and are not registered
to each other; the dataset gives only the depth camera's K (``camera-intrinsics.txt`` in
SRC or its parent, else 585 585 320 240). When that K is the 7-Scenes depth camera's,
depth is registered into the colour camera with the Kinect v1 defaults
(`KINECT_V1_COLOUR_K`, `KINECT_V1_T_COLOUR_DEPTH`), as the published 7-Scenes pipelines
do, and the poses, KinectFusion's poses of the depth camera, become the colour camera's:
``T_world_color = T_world_depth @ inv(T_color_depth)``. ``register=False``
(``--no-register``) or an explicit `intrinsics` keeps both images in the depth camera's
K, unregistered (the behaviour before the defaults were used).

When the calibration of the rig is known, put it beside ``camera-intrinsics.txt`` (which
is then the colour camera's K): ``depth-intrinsics.txt`` (the depth camera's 3x3 K) and
``depth-to-color-extrinsics.txt`` (4x4 T_color_depth, p_color = T @ p_depth, metres);
depth is then registered with it (`labeller.geometry.depth_registration`) unless
``register=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.fileio import read_image
from labeller.core.poses import inv_pose, rigid_or_none
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.formats.trajectory import Trajectory
from labeller.geometry.depth_registration import register_depth
from labeller.importers.writer import ImportResult, scene_writer

COLOR_RE = re.compile(r"^frame-(\d+)\.color\.(png|jpg|jpeg)$", re.IGNORECASE)
# 7-Scenes marks "no measurement" with 65535; our depth PNGs use 0 (docs/design.md).
SEVENSCENES_INVALID_DEPTH = 65535
SEVENSCENES_DEPTH_SCALE = 1000.0  # depth PNG units per metre (millimetres)
# The 7-Scenes depth camera's intrinsics, used when camera-intrinsics.txt is absent.
DEFAULT_K = (585.0, 585.0, 320.0, 240.0)
# The Kinect v1 colour camera's factory-default intrinsics (OpenNI's defaults, which the
# TUM RGB-D benchmark also gives for its Kinect v1 recordings): fx fy cx cy, pixels.
KINECT_V1_COLOUR_K = (525.0, 525.0, 319.5, 239.5)
# T_colour_depth of a Kinect v1 (p_colour = T @ p_depth, metres): the factory layout, the
# colour camera 2.5 cm along the depth camera's +x, axes parallel (ROS rgbd_launch's
# default Kinect frames). A unit's own small rotation is unknown and left out: the
# rotation of one published unit's calibration (0.45 degrees) moves 7-Scenes depth edges
# further from the colour edges than none.
KINECT_V1_T_COLOUR_DEPTH = np.array([[1.0, 0.0, 0.0, -0.025],
                                     [0.0, 1.0, 0.0, 0.0],
                                     [0.0, 0.0, 1.0, 0.0],
                                     [0.0, 0.0, 0.0, 1.0]])
KINECT_V1_DEFAULTS = "the Kinect v1 default calibration"
INTRINSICS_FILE = "camera-intrinsics.txt"
DEPTH_INTRINSICS_FILE = "depth-intrinsics.txt"
EXTRINSICS_FILE = "depth-to-color-extrinsics.txt"


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


def read_extrinsics_file(path: Path) -> np.ndarray:
    """T_color_depth (4x4, metres) from a text file; BadInput when not a rigid 4x4."""
    try:
        T = np.loadtxt(path, dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise BadInput(path, f"expected a 4x4 matrix of numbers ({exc})") from None
    if T.shape != (4, 4):
        raise BadInput(path, f"expected a 4x4 matrix (T_color_depth), got shape {T.shape}")
    fixed, problem = rigid_or_none(T)
    if fixed is None:
        raise BadInput(path, f"not a rigid transform: {problem}")
    return fixed


def _calibration_file(dirs: list[Path], name: str) -> Path | None:
    return next((d / name for d in dirs if (d / name).is_file()), None)


def import_7scenes(src: str | Path, dest: str | Path, *, link: bool = False,
                   overwrite: bool = False,
                   intrinsics: tuple[float, float, float, float] | None = None,
                   register: bool = True,
                   progress: ProgressFn | None = None) -> ImportResult:
    """Convert a 7-Scenes sequence folder into a scene at `dest` (see the module doc).

    `intrinsics` (fx, fy, cx, cy) overrides camera-intrinsics.txt (and, without the
    calibration files, is used for both images, unregistered). `link` hard-links
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

    calib_dirs = [frames_dir, frames_dir.parent, src]
    depth_k_file = _calibration_file(calib_dirs, DEPTH_INTRINSICS_FILE)
    ext_file = _calibration_file(calib_dirs, EXTRINSICS_FILE)
    if (depth_k_file is None) != (ext_file is None):
        have, lack = ((depth_k_file, EXTRINSICS_FILE) if depth_k_file is not None
                      else (ext_file, DEPTH_INTRINSICS_FILE))
        raise BadInput(have, f"needs {lack} beside it to register depth into the colour camera")
    K_depth = T_color_depth = None
    if depth_k_file is not None and ext_file is not None:
        K_depth = np.eye(3)
        K_depth[0, 0], K_depth[1, 1], K_depth[0, 2], K_depth[1, 2] = \
            read_intrinsics_file(depth_k_file)
        T_color_depth = read_extrinsics_file(ext_file)
    calibration = f"{depth_k_file}, {ext_file}"

    if intrinsics is not None:
        fx, fy, cx, cy = intrinsics
        k_source = "--intrinsics"
    else:
        k_file = _calibration_file(calib_dirs, INTRINSICS_FILE)
        if k_file is not None:
            fx, fy, cx, cy = read_intrinsics_file(k_file)
            k_source = str(k_file)
        else:
            fx, fy, cx, cy = DEFAULT_K
            k_source = "default"
            warnings.append(f"{frames_dir}: no {INTRINSICS_FILE} here or in the parent; using the "
                            f"7-Scenes depth camera's K {fx:g} {fy:g} {cx:g} {cy:g}")
    # A 7-Scenes recording (the depth camera's K and no calibration of its own): a Kinect
    # v1, whose colour camera has its own, wider K and sits beside the depth camera.
    kinect_defaults = (K_depth is None and intrinsics is None and register
                       and np.allclose((fx, fy, cx, cy), DEFAULT_K))
    if kinect_defaults:
        K_depth = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        T_color_depth = KINECT_V1_T_COLOUR_DEPTH
        k_source = f"{KINECT_V1_DEFAULTS}; depth camera {fx:g} {fy:g} {cx:g} {cy:g} from {k_source}"
        fx, fy, cx, cy = KINECT_V1_COLOUR_K
        calibration = KINECT_V1_DEFAULTS
    registering = K_depth is not None and register

    poses: dict[int, np.ndarray] = {}
    no_pose: list[str] = []
    for t, pose_path in enumerate(pose_paths):
        if pose_path is None:
            no_pose.append(frames[t][0])
            continue
        T = read_pose_file(pose_path)
        if np.all(np.isfinite(T)):
            # KinectFusion tracked the depth camera; registered frames are the colour's.
            poses[t] = T @ inv_pose(T_color_depth) if registering and T_color_depth is not None \
                else T
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
                invalid = depth == SEVENSCENES_INVALID_DEPTH if depth.dtype == np.uint16 \
                    else np.zeros(depth.shape[:2], bool)
                if registering:
                    assert K_depth is not None and T_color_depth is not None
                    if depth.dtype != np.uint16 or depth.ndim != 2:
                        raise BadInput(dpath, "depth must be a single-channel 16-bit PNG, got "
                                              f"{depth.dtype}")
                    # The colour size: the first frame's (check_frame holds every frame to it).
                    if w.frame_size is not None:
                        colour_size = w.frame_size
                    else:
                        rgb_img = read_image(color)
                        colour_size = (rgb_img.shape[1], rgb_img.shape[0])
                    registered = register_depth(np.where(invalid, 0, depth).astype(np.uint16),
                                                K_depth, np.array([[fx, 0, cx], [0, fy, cy],
                                                                   [0, 0, 1.0]]),
                                                colour_size, T_color_depth,
                                                SEVENSCENES_DEPTH_SCALE)
                    w.check_frame(color, registered, dpath)
                    w.add_rgb(t, color)
                    w.write_depth(t, registered)
                    frames_bar.update(1)
                    check_progress(progress, t + 1, len(frames),
                                   f"{dest}: import cancelled; nothing written")
                    continue
                w.check_frame(color, depth, dpath)
                w.add_rgb(t, color)
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
        if registering:
            alignment = (f"registered into the colour camera at import ({calibration}); "
                         "poses moved to the colour camera")
        elif K_depth is not None:
            alignment = ("not registered (--no-register): depth is in its own camera, not "
                         "aligned to colour")
        elif not register:
            alignment = ("not registered (--no-register): depth in its own camera, the depth "
                         "camera's K used for colour too")
        else:
            alignment = ("not registered: 7-Scenes colour and depth come from two cameras "
                         f"without a calibration ({DEPTH_INTRINSICS_FILE}, {EXTRINSICS_FILE})")
        w.write_provenance("7scenes", src, alignment)
        result = ImportResult(Path(dest), len(frames), has_gt_trajectory=has_gt,
                              n_linked=w.n_linked, n_copied=w.n_copied,
                              n_rewritten=w.n_rewritten, warnings=warnings,
                              notes=[f"intrinsics: {fx:g} {fy:g} {cx:g} {cy:g} (from {k_source})",
                                     f"depth {alignment}"])
    return result
