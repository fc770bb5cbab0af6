"""The synthetic camera: its intrinsics and its hand-held orbit about the objects."""

from __future__ import annotations

import math

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import axis_angle_to_matrix, make_pose
from labeller.synth.config import (
    BASE_CX,
    BASE_CY,
    BASE_FX,
    BASE_FY,
    BASE_HEIGHT,
    BASE_WIDTH,
    DEPTH_SCALE,
)


def make_camera(width: int = BASE_WIDTH, height: int = BASE_HEIGHT) -> CameraIntrinsics:
    """The default intrinsics for a width x height image (pixel centres at integers).

    Focal lengths scale with the width (same horizontal field of view, square-ish pixels
    whatever the aspect ratio); the principal point keeps its relative position.
    """
    sx, sy = width / BASE_WIDTH, height / BASE_HEIGHT
    return CameraIntrinsics(int(width), int(height), BASE_FX * sx, BASE_FY * sx,
                            (BASE_CX + 0.5) * sx - 0.5, (BASE_CY + 0.5) * sy - 0.5, DEPTH_SCALE)


def camera_path(seed: int, n: int, target_table: np.ndarray) -> np.ndarray:
    """T_table_cam (n, 4, 4): a smooth hand-held orbit about `target_table` (3,), with shake.

    Speeds are per frame (30 fps-like), independent of n: at most ~0.6 deg and ~8 mm a
    frame, so frame-to-frame tracking is easy; longer scenes sweep further round. Draws
    from ``default_rng([seed, 6])``.
    """
    rng = np.random.default_rng([seed, 6])
    t = np.arange(n, dtype=np.float64)

    def wave(amp, w_lo, w_hi):
        return amp * np.sin(rng.uniform(w_lo, w_hi) * t + rng.uniform(0, 2 * np.pi))

    az = rng.uniform(-0.3, 0.3) + wave(rng.uniform(0.6, 0.9), 0.006, 0.009)
    el = rng.uniform(0.6, 0.72) + wave(0.15, 0.008, 0.013)
    dist = rng.uniform(0.72, 0.8) + wave(rng.uniform(0.2, 0.25), 0.007, 0.011)

    def shake(amp, n_waves=3, w_lo=0.08, w_hi=0.3):
        return sum(wave(amp, w_lo, w_hi) for _ in range(n_waves))

    target = target_table[None] + np.stack([shake(0.01, 2, 0.01, 0.04) for _ in range(3)], 1)
    pos = target + dist[:, None] * np.stack(
        [np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)], 1)
    pos = pos + np.stack([shake(0.0012) for _ in range(3)], 1)
    roll = wave(math.radians(3), 0.01, 0.03) + shake(math.radians(0.15))
    T = np.zeros((n, 4, 4))
    up = np.array([0.0, 0.0, 1.0])
    for i in range(n):
        z = target[i] - pos[i]
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z], 1) @ axis_angle_to_matrix(np.array([0.0, 0.0, 1.0]), roll[i])
        T[i] = make_pose(R, pos[i])
    return T
