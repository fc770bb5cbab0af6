"""Camera trajectories: `trajectory.txt` (frame ids) and TUM files (timestamps).

A scene's `trajectory.txt` holds T_world_cam, one line per tracked frame, in TUM order
``frame_id tx ty tz qx qy qz qw`` (metres). A frame without a line has no pose: it was
not tracked. The world frame is the camera of the first frame that has a pose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import SceneError
from labeller.core.fileio import atomic_write_text
from labeller.core.poses import inv_pose, matrix_to_quat_xyzw, pose_problem, quat_xyzw_to_matrix

# A stored quaternion must be unit length to this tolerance; a longer or shorter one
# means the file is not what it claims (a scaled pose), not a rounding error.
QUAT_NORM_TOL = 1e-3


@dataclass
class Trajectory:
    """Camera poses T_world_cam (4x4 float64) keyed by frame id (0-based)."""

    poses: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.poses)

    def __contains__(self, t: int) -> bool:
        return t in self.poses

    def __getitem__(self, t: int) -> np.ndarray:
        return self.poses[t]

    def get(self, t: int) -> np.ndarray | None:
        return self.poses.get(t)

    @property
    def frame_ids(self) -> list[int]:
        return sorted(self.poses)

    def gaps(self, n_frames: int) -> list[tuple[int, int]]:
        """Runs of untracked frames as (first, last) inclusive, within 0..n_frames-1."""
        out, start = [], None
        for t in range(n_frames):
            if t not in self.poses:
                start = t if start is None else start
            elif start is not None:
                out.append((start, t - 1))
                start = None
        if start is not None:
            out.append((start, n_frames - 1))
        return out

    def reanchored(self) -> Trajectory:
        """The same trajectory with the first posed frame as the world: T_world_cam[first] = I."""
        if not self.poses:
            return Trajectory()
        T0_inv = inv_pose(self.poses[self.frame_ids[0]])
        return Trajectory({t: T0_inv @ T for t, T in sorted(self.poses.items())})

    def to_text(self) -> str:
        lines = ["# frame_id tx ty tz qx qy qz qw  (T_world_cam, metres)"]
        for t in self.frame_ids:
            T = self.poses[t]
            q = matrix_to_quat_xyzw(T[:3, :3])
            vals = " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q))
            lines.append(f"{t} {vals}")
        return "\n".join(lines) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_text())

    @classmethod
    def read(cls, path: str | os.PathLike, n_frames: int | None = None) -> Trajectory:
        """Read a scene `trajectory.txt`, validating every line.

        Raises SceneError naming the file and line for: a malformed line, a frame id that
        is duplicated or outside 0..n_frames-1, a NaN or non-unit quaternion.
        """
        path = Path(path)
        if not path.is_file():
            raise SceneError(path, "file not found")
        poses: dict[int, np.ndarray] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.split()
            where = f"{path}:{lineno}"
            if len(parts) != 8:
                raise SceneError(where, f"expected 8 values 'frame_id tx ty tz qx qy qz qw', got {len(parts)}")
            try:
                t = int(parts[0])
            except ValueError:
                raise SceneError(where, f"frame id '{parts[0]}' is not an integer") from None
            try:
                vals = np.array([float(x) for x in parts[1:]])
            except ValueError:
                raise SceneError(where, "pose values must be numbers") from None
            if t in poses:
                raise SceneError(where, f"duplicated frame id {t}")
            if t < 0 or (n_frames is not None and t >= n_frames):
                hi = "" if n_frames is None else f"..{n_frames - 1}"
                raise SceneError(where, f"frame id {t} outside the scene's frames 0{hi}")
            if not np.all(np.isfinite(vals)):
                raise SceneError(where, f"frame {t}: pose has NaN or infinite values")
            qn = np.linalg.norm(vals[3:])
            if abs(qn - 1.0) > QUAT_NORM_TOL:
                raise SceneError(where, f"frame {t}: pose is not rigid (quaternion norm {qn:.4f}, expected 1)")
            T = np.eye(4)
            T[:3, :3] = quat_xyzw_to_matrix(vals[3:])
            T[:3, 3] = vals[:3]
            poses[t] = T
        return cls(poses)


@dataclass
class TimedTrajectory:
    """A TUM-format trajectory: `timestamp tx ty tz qx qy qz qw` per line (seconds, metres)."""

    stamps: np.ndarray  # (N,) float64 seconds, sorted
    poses: np.ndarray  # (N, 4, 4) float64 T_world_cam

    @classmethod
    def read_tum(cls, path: str | os.PathLike) -> TimedTrajectory:
        path = Path(path)
        if not path.is_file():
            raise SceneError(path, "file not found")
        stamps, poses = [], []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.replace(",", " ").split()
            if len(parts) != 8:
                raise SceneError(f"{path}:{lineno}", f"expected 8 values 'timestamp tx ty tz qx qy qz qw', got {len(parts)}")
            try:
                vals = [float(x) for x in parts]
            except ValueError:
                raise SceneError(f"{path}:{lineno}", "values must be numbers") from None
            if not np.all(np.isfinite(vals)) or abs(np.linalg.norm(vals[4:]) - 1.0) > QUAT_NORM_TOL:
                raise SceneError(f"{path}:{lineno}", "pose is NaN or its quaternion is not unit length")
            T = np.eye(4)
            T[:3, :3] = quat_xyzw_to_matrix(vals[4:])
            T[:3, 3] = vals[1:4]
            stamps.append(vals[0])
            poses.append(T)
        order = np.argsort(stamps, kind="stable")
        return cls(np.asarray(stamps)[order], np.asarray(poses).reshape(-1, 4, 4)[order])

    def to_text(self) -> str:
        lines = ["# timestamp tx ty tz qx qy qz qw"]
        for s, T in zip(self.stamps, self.poses, strict=True):
            q = matrix_to_quat_xyzw(T[:3, :3])
            lines.append(f"{s:.6f} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q)))
        return "\n".join(lines) + "\n"

    def write_tum(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_text())


def validate_poses(traj: Trajectory, where: str | os.PathLike) -> None:
    for t, T in traj.poses.items():
        if (p := pose_problem(T)) is not None:
            raise SceneError(where, f"frame {t}: {p}")
