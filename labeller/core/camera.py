"""Pinhole camera intrinsics (`camera.json`), projection and back-projection.

OpenCV convention: x right, y down, z forward; pixel (u, v) has its centre at integer
coordinates. `depth_scale` is depth-PNG units per metre (metres = value / depth_scale).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from labeller.core.errors import SceneError
from labeller.core.fileio import atomic_write_json

CAMERA_FIELDS = ("width", "height", "fx", "fy", "cx", "cy", "depth_scale")


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    depth_scale: float = 1000.0

    @property
    def K(self) -> np.ndarray:
        """3x3 float64 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def problem(self) -> str | None:
        for f in ("width", "height"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                return f"field '{f}' must be a positive integer, got {v!r}"
        for f in ("fx", "fy", "cx", "cy", "depth_scale"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                return f"field '{f}' must be a finite number, got {v!r}"
        for f in ("fx", "fy", "depth_scale"):
            if getattr(self, f) <= 0:
                return f"field '{f}' must be > 0, got {getattr(self, f)!r}"
        return None

    @classmethod
    def from_dict(cls, d: dict, where: str | os.PathLike = "camera.json") -> CameraIntrinsics:
        if not isinstance(d, dict):
            raise SceneError(where, "must hold a JSON object")
        missing = [f for f in CAMERA_FIELDS if f not in d]
        if missing:
            raise SceneError(where, f"missing field '{missing[0]}'" + (
                f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""))
        unknown = sorted(set(d) - set(CAMERA_FIELDS))
        if unknown:
            raise SceneError(where, f"unknown field '{unknown[0]}'")
        cam = cls(**{f: d[f] for f in CAMERA_FIELDS})
        if (p := cam.problem()) is not None:
            raise SceneError(where, p)
        return cam

    @classmethod
    def read(cls, path: str | os.PathLike) -> CameraIntrinsics:
        path = Path(path)
        if not path.is_file():
            raise SceneError(path, "file not found")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SceneError(path, f"not valid JSON ({exc})") from None
        return cls.from_dict(d, path)

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    def scaled(self, s: float) -> CameraIntrinsics:
        """Intrinsics of the image resized by `s` (pixel centres stay at integers)."""
        return CameraIntrinsics(
            int(round(self.width * s)), int(round(self.height * s)),
            self.fx * s, self.fy * s, (self.cx + 0.5) * s - 0.5, (self.cy + 0.5) * s - 0.5,
            self.depth_scale,
        )

    def project(self, pts_cam) -> np.ndarray:
        """Pixel coordinates (N, 2) (u, v) of points (N, 3) in the camera frame (metres)."""
        p = np.asarray(pts_cam, dtype=np.float64)
        z = p[:, 2]
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=1)

    def backproject(self, u, v, z) -> np.ndarray:
        """Points (N, 3) in the camera frame for pixels (u, v) at depth z (metres)."""
        u, v, z = (np.asarray(a, dtype=np.float64) for a in (u, v, z))
        return np.stack([(u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z], axis=-1)

    def depth_to_points(self, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Back-project a depth image (H, W) float metres: (points (N, 3), flat pixel index (N,))."""
        v, u = np.nonzero(depth_m > 0)
        z = depth_m[v, u]
        return self.backproject(u, v, z), v * depth_m.shape[1] + u
