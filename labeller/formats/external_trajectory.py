"""Readers of camera trajectories that other tools write (ProgressLabeller/COLMAP
``campose.txt``, Open3D/Redwood ``.log``). TUM-style files are read by
`labeller.formats.trajectory.TimedTrajectory`.

Each reader returns what the file holds in this project's frames (T_world_cam, metres)
or raises `FormatError` naming the file and line.

``campose.txt`` does not say which way its poses point: COLMAP writes world-to-camera,
ProgressLabeller writes camera-to-world for its KinectFusion and ORB-SLAM2/3 runs, and the
translations are in the reconstruction's units. ProgressLabeller records both in its
project's ``configuration.json`` (``camera.inverse_pose``: true = world-to-camera, and
``reconstruction.scale``: metres per reconstruction unit); `find_campose_config` finds that
file beside or above the campose file and `read_campose_conventions` reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
from labeller.core.fileio import read_json_object
from labeller.core.poses import inv_pose, quat_wxyz_to_matrix, rigid_or_none
from labeller.formats.trajectory import QUAT_NORM_TOL


def read_campose(path: Path) -> dict[str, np.ndarray]:
    """NAME -> the 4x4 pose as stored (world-to-camera for COLMAP), translation as stored.

    BadInput naming the line for a malformed line or a quaternion that is not unit length.
    """
    if not path.is_file():
        raise FormatError(path, "file not found")
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        where = f"{path}:{lineno}"
        if len(parts) != 10:
            raise FormatError(where, "expected 10 fields 'IMAGE_ID QW QX QY QZ TX TY TZ "
                                     f"CAMERA_ID NAME', got {len(parts)}")
        try:
            vals = np.array([float(x) for x in parts[1:8]])
        except ValueError:
            raise FormatError(where, "QW QX QY QZ TX TY TZ must be numbers") from None
        if not np.all(np.isfinite(vals)):
            raise FormatError(where, "pose has NaN or infinite values")
        qn = float(np.linalg.norm(vals[:4]))
        if abs(qn - 1.0) > QUAT_NORM_TOL:
            raise FormatError(where, f"bad quaternion (norm {qn:.4f}, expected 1)")
        T = np.eye(4)
        T[:3, :3] = quat_wxyz_to_matrix(vals[:4] / qn)
        T[:3, 3] = vals[4:]
        if parts[9] in out:
            raise FormatError(where, f"image {parts[9]} listed twice")
        out[parts[9]] = T
    if not out:
        raise FormatError(path, "holds no poses")
    return out


def frame_id_of_name(name: str) -> int | None:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


CONVENTIONS = ("c2w", "w2c")  # camera-to-world (T_world_cam) / world-to-camera (T_cam_world)
CAMPOSE_CONFIG = "configuration.json"
CAMPOSE_CONFIG_LEVELS = 3  # the campose file's folder and two above (project/recon/campose.txt)


def find_campose_config(path: Path) -> Path | None:
    """ProgressLabeller's configuration.json in the folder of `path` or up to two above."""
    d = path.resolve().parent
    for _ in range(CAMPOSE_CONFIG_LEVELS):
        if (d / CAMPOSE_CONFIG).is_file():
            return d / CAMPOSE_CONFIG
        if d.parent == d:
            break
        d = d.parent
    return None


def read_campose_conventions(cfg_path: Path) -> tuple[str, float]:
    """(convention 'c2w'|'w2c', scale) from a ProgressLabeller configuration.json:
    ``camera.inverse_pose`` (true: the poses are world-to-camera) and
    ``reconstruction.scale`` (metres per unit). FormatError naming a missing key."""
    cfg = read_json_object(cfg_path)
    camera = cfg.get("camera")
    recon = cfg.get("reconstruction")
    if not isinstance(camera, dict) or "inverse_pose" not in camera:
        raise FormatError(cfg_path, "no 'camera.inverse_pose': it cannot say whether "
                                    "campose.txt is camera-to-world or world-to-camera")
    if not isinstance(recon, dict) or "scale" not in recon:
        raise FormatError(cfg_path, "no 'reconstruction.scale': the campose translations' "
                                    "units are unknown")
    inverse = camera["inverse_pose"]
    if not isinstance(inverse, bool):
        raise FormatError(cfg_path, f"'camera.inverse_pose' must be true or false, got "
                                    f"{inverse!r}")
    try:
        scale = float(recon["scale"])
    except (TypeError, ValueError):
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise FormatError(cfg_path, f"'reconstruction.scale' must be a number > 0, got "
                                    f"{recon['scale']!r}")
    return ("w2c" if inverse else "c2w"), scale


def read_campose_frames(path: Path, convention: str, scale: float) -> dict[int, np.ndarray]:
    """frame id (NAME's number) -> T_world_cam (metres) from a campose.txt.

    convention: 'w2c' (the lines are T_cam_world, COLMAP) or 'c2w' (T_world_cam); the
    stored translation is multiplied by `scale` first, then the pose inverted for 'w2c',
    as ProgressLabeller's own loader does."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    out: dict[int, np.ndarray] = {}
    for name, P in read_campose(path).items():
        t = frame_id_of_name(name)
        if t is None:
            raise FormatError(path, f"image name '{name}' is not a frame number "
                                    "(expected names like 000012.png)")
        P = P.copy()
        P[:3, 3] *= scale
        out[t] = inv_pose(P) if convention == "w2c" else P
    return out


def read_open3d_log(path: Path) -> dict[int, np.ndarray]:
    """frame id (first header integer) -> T_world_cam from an Open3D/Redwood .log."""
    if not path.is_file():
        raise FormatError(path, "file not found")
    lines = [(i, s.strip()) for i, s in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if s.strip() and not s.strip().startswith("#")]
    if not lines:
        raise FormatError(path, "holds no poses")
    if len(lines) % 5:
        raise FormatError(path, f"expected entries of 5 lines (3 integers, then a 4x4 matrix); "
                                f"{len(lines)} lines is not a multiple of 5")
    out: dict[int, np.ndarray] = {}
    for k in range(0, len(lines), 5):
        lineno, head = lines[k]
        hp = head.split()
        if len(hp) != 3 or not all(p.lstrip("-").isdigit() for p in hp):
            raise FormatError(f"{path}:{lineno}", f"expected 3 integers, got '{head}'")
        t = int(hp[0])
        try:
            M = np.array([[float(x) for x in lines[k + r][1].split()] for r in range(1, 5)])
        except ValueError:
            raise FormatError(f"{path}:{lines[k + 1][0]}",
                              "matrix entries must be numbers") from None
        if M.shape != (4, 4):
            raise FormatError(f"{path}:{lines[k + 1][0]}", "expected 4 rows of 4 numbers")
        T, problem = rigid_or_none(M)
        if T is None:
            raise FormatError(f"{path}:{lines[k + 1][0]}", f"frame {t}: {problem}")
        if t in out:
            raise FormatError(f"{path}:{lineno}", f"frame {t} listed twice")
        out[t] = T
    return out
