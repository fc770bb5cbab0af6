"""The light of a synthetic scene and its baking into the static geometry's textures.

Light (a scalar, before the light colour) = ambient + SKY_C + SKY_K * n_z
+ KEY_K * max(0, n . L) * visible, for a unit normal n and the direction L towards the
key light (table frame). Lighting is view-independent, as photometric tracking assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from labeller.geometry.open3d_tensor import tensor
from labeller.synth.layout import Surface

# Ambient is drawn per scene; these are fixed.
SKY_K, SKY_C, KEY_K = 0.06, 0.06, 0.7


@dataclass(frozen=True)
class Lighting:
    """dir_table: (3,) unit vector towards the key light (table frame); rgb: (3,) float32
    light colour; ambient: the ambient light level."""

    dir_table: np.ndarray
    rgb: np.ndarray
    ambient: float

    @classmethod
    def draw(cls, seed: int) -> Lighting:
        """A warm-white key light from 45-70 degrees above the table, from ``default_rng([seed, 5])``."""
        rng = np.random.default_rng([seed, 5])
        el = rng.uniform(math.radians(45), math.radians(70))
        az = rng.uniform(-math.pi, math.pi)
        dir_table = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                              math.sin(el)])
        rgb = np.array([1.0, 0.97, 0.92], np.float32) * rng.uniform(0.85, 1.0)
        ambient = float(rng.uniform(0.3, 0.4))
        return cls(dir_table, rgb, ambient)

    def factor(self, n_z: np.ndarray | np.floating, ndl_visible: np.ndarray | np.floating,
               ) -> np.ndarray:
        """Scalar light (before the light colour) for unit normal z components and
        max(0, n . L) * visibility, same shapes; float32."""
        return np.asarray(np.float32(self.ambient + SKY_C) + np.float32(SKY_K) * n_z
                          + np.float32(KEY_K) * ndl_visible).astype(np.float32)


def bake_lighting(surf: Surface, lighting: Lighting, scene: Any) -> np.ndarray:
    """The surface's texture (H, W, 3) uint8 with its lighting (shadows included) applied.

    Each triangle is rasterised in texture space on a grid every `bake_step` texels
    (dilated by 1.5 cells so bilinear lookups at the edges stay lit); a shadow ray goes
    from every cell's 3-D point to the light through `scene` (an Open3D RaycastingScene
    of the whole scene, table frame). The light map is then upsampled.
    """

    tex = surf.texture
    assert tex is not None
    h, w = tex.shape[:2]
    step = surf.bake_step
    gh, gw = -(-h // step), -(-w // step)
    factor = np.full((gh, gw), np.nan, np.float32)
    L = lighting.dir_table
    pts_all, cells_all, ndl_all, nz_all = [], [], [], []
    for f in range(len(surf.triangles)):
        P = surf.vertices[surf.triangles[f]]
        n = np.cross(P[1] - P[0], P[2] - P[0])
        n /= np.linalg.norm(n)
        uv = surf.corner_uvs[f].astype(np.float64)
        # Grid-cell coordinates of the corners (cell centres at integers).
        q = np.stack([(uv[:, 0] * w - 0.5) / step, ((1.0 - uv[:, 1]) * h - 0.5) / step], 1)
        M = np.stack([q[1] - q[0], q[2] - q[0]], 1)  # columns: edges in cell units
        det = np.linalg.det(M)
        if abs(det) < 1e-12:
            continue
        longest = max(np.linalg.norm(q[1] - q[2]), np.linalg.norm(q[2] - q[0]),
                      np.linalg.norm(q[0] - q[1]))
        eps = 1.5 / (abs(det) / longest)  # 1.5 cells in barycentric units
        x0, y0 = np.floor(q.min(0) - 2).astype(int)
        x1, y1 = np.ceil(q.max(0) + 2).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, gw - 1), min(y1, gh - 1)
        if x1 < x0 or y1 < y0:
            continue
        X, Y = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        rel = np.stack([X.ravel() - q[0, 0], Y.ravel() - q[0, 1]], 0)
        b = np.linalg.solve(M, rel)  # (2, m): weights of corners 1 and 2
        inside = (b[0] >= -eps) & (b[1] >= -eps) & (b[0] + b[1] <= 1 + eps)
        b = b[:, inside]
        cells = Y.ravel()[inside] * gw + X.ravel()[inside]
        ndl = float(n @ L)
        if ndl <= 0:  # facing away from the light: ambient and sky only
            factor.ravel()[cells] = lighting.factor(np.float32(n[2]), np.float32(0.0))
            continue
        pts = P[0] + np.outer(b[0], P[1] - P[0]) + np.outer(b[1], P[2] - P[0])
        pts_all.append(pts + n * 1e-3)
        cells_all.append(cells)
        ndl_all.append(np.full(len(cells), ndl, np.float32))
        nz_all.append(np.full(len(cells), n[2], np.float32))
    if pts_all:
        pts = np.concatenate(pts_all).astype(np.float32)
        rays = np.empty((len(pts), 6), np.float32)
        rays[:, :3] = pts
        rays[:, 3:] = L.astype(np.float32)
        occluded = scene.test_occlusions(tensor(rays), nthreads=0).numpy()
        visible = np.where(occluded, np.float32(0.0), np.concatenate(ndl_all))
        factor.ravel()[np.concatenate(cells_all)] = lighting.factor(np.concatenate(nz_all), visible)
    factor = np.where(np.isnan(factor), np.float32(lighting.ambient + SKY_C), factor)
    if step > 1:
        factor = cv2.resize(factor, (gw * step, gh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
    lit = tex.astype(np.float32) * factor[..., None] * lighting.rgb[None, None].astype(np.float32)
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)
