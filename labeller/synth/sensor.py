"""The simulated sensor: depth noise, edge holes, dropouts and range; colour noise.

Distances are metres; depth images are uint16 in DEPTH_SCALE units (mm); colour noise is
in 8-bit levels.
"""

from __future__ import annotations

import cv2
import numpy as np

from labeller.synth.config import DEPTH_SCALE

# Depth sensor model (metres). Noise grows with distance like a structured-light camera.
DEPTH_MIN_M, DEPTH_MAX_M = 0.15, 4.0
EDGE_JUMP_M = 0.02            # a 3x3 neighbourhood spanning more than this (+2% of z) is an edge
EDGE_DROP_P = 0.7             # chance an edge pixel has no measurement
DROPOUT_P = 0.003             # random isolated missing pixels
GRAZING_COS = 0.1             # surfaces seen more edge-on than this return nothing
RGB_NOISE_SIGMA = 1.5         # 8-bit levels
RGB_NOISE_BANK = 8


def depth_noise_sigma_m(z_m: np.ndarray) -> np.ndarray:
    """Standard deviation (metres) of the simulated depth noise at distance z (metres)."""
    return 0.0012 + 0.0019 * (np.asarray(z_m) - 0.4) ** 2


def sensor_depth(z: np.ndarray, cos_view: np.ndarray, rng: np.random.Generator,
                 noisy: bool) -> np.ndarray:
    """uint16 mm depth (H, W) as a sensor gives it: noise, edge holes, dropouts, range limits.

    z: (H, W) float32 noise-free depth in metres (0 = nothing hit); cos_view: (H, W) |cos|
    of the angle between ray and surface normal. With noisy=False only the range limits
    and the rounding to mm apply (and `rng` is not drawn from).
    """
    valid = (z > DEPTH_MIN_M) & (z < DEPTH_MAX_M)
    if noisy:
        zf = np.where(z > 0, z, np.float32(10.0))
        k = np.ones((3, 3), np.uint8)
        span = cv2.dilate(zf, k) - cv2.erode(zf, k)
        edge = span > EDGE_JUMP_M + 0.02 * zf
        u = rng.random(z.shape, dtype=np.float32)
        valid &= ~(edge & (u < EDGE_DROP_P))
        valid &= cos_view > GRAZING_COS
        valid &= rng.random(z.shape, dtype=np.float32) >= DROPOUT_P
        sigma = depth_noise_sigma_m(z).astype(np.float32)
        z = z + rng.standard_normal(z.shape, dtype=np.float32) * sigma
    mm = np.rint(z * np.float32(DEPTH_SCALE))
    return np.where(valid, np.clip(mm, 0, 65535), 0).astype(np.uint16)


def rgb_noise_bank(seed: int, height: int, width: int) -> list[np.ndarray]:
    """RGB_NOISE_BANK patterns (height, width, 3) float32 of Gaussian colour noise (levels).

    Drawing 0.9 M normals a frame costs more than the shading, so the patterns are drawn
    once (from ``default_rng([seed, 8])``) and each frame picks one by its own draw.
    """
    nrng = np.random.default_rng([seed, 8])
    return [nrng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(RGB_NOISE_SIGMA)
            for _ in range(RGB_NOISE_BANK)]
