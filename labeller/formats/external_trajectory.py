"""Readers of camera trajectories that other tools write (ProgressLabeller/COLMAP
``campose.txt``, Open3D/Redwood ``.log``). TUM-style files are read by
`labeller.formats.trajectory.TimedTrajectory`.

Each reader returns what the file holds in this project's frames (T_world_cam, metres)
or raises `FormatError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
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


def read_campose_frames(path: Path) -> dict[int, np.ndarray]:
    """frame id (NAME's number) -> T_world_cam from a COLMAP-style campose.txt."""
    out: dict[int, np.ndarray] = {}
    for name, T_cam_world in read_campose(path).items():
        t = frame_id_of_name(name)
        if t is None:
            raise FormatError(path, f"image name '{name}' is not a frame number "
                                    "(expected names like 000012.png)")
        out[t] = inv_pose(T_cam_world)
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
