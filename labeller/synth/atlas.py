"""One texture atlas for a whole synthetic scene, and its mip-mapped lookups.

Every surface's texture is packed into one image and every triangle's UVs turned into
atlas pixels, so that one gather and a few `cv2.remap`s colour a whole frame, whatever it
shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.synth.layout import Surface

MIP_LEVELS = 3  # texture pyramid levels (full, 1/2, 1/4)
MISS_RGB = np.array([0.10, 0.10, 0.11], np.float32)  # colour of rays that hit nothing
PAD_PX = 8  # replicated border around every texture, in level-0 texels


@dataclass(frozen=True)
class TextureAtlas:
    """levels: MIP_LEVELS images (H_k, W_k, 3) uint8 RGB, each half the size of the one
    before; tri_uv: (F_total + 1, 6) float32, per triangle the level-0 atlas pixel
    position of corner 0 and the steps to corners 1 and 2, the last row "no hit";
    tri_tpm: (F_total + 1,) float32 texels per metre of each triangle (for the mip level);
    prim_offset: (G + 1,) int64 index in tri_uv of each geometry's first triangle."""

    levels: list[np.ndarray]
    tri_uv: np.ndarray
    tri_tpm: np.ndarray
    prim_offset: np.ndarray

    @classmethod
    def build(cls, geoms: Sequence[Surface], geom_T: Sequence[np.ndarray],
              textures: Sequence[np.ndarray]) -> TextureAtlas:
        """Pack `textures` (one (H, W, 3) uint8 per geometry, as it is to be seen) of
        `geoms` (placed by `geom_T`, (4, 4) each, into the table frame).

        Textures sit at multiples of 4 texels with PAD_PX texels of replicated border, so
        that no mip level bleeds between textures.
        """
        pad = PAD_PX
        miss = np.empty((8, 8, 3), np.uint8)
        miss[:] = np.rint(MISS_RGB * 255).astype(np.uint8)
        texs = [*textures, miss]
        width = max(2048, max(t.shape[1] for t in texs) + 2 * pad)
        # Shelf packing, tallest first.
        order = sorted(range(len(texs)), key=lambda i: (-texs[i].shape[0], i))
        pos = [(0, 0)] * len(texs)
        x = y = shelf_h = 0

        def up4(a: int) -> int:
            return -(-a // 4) * 4

        width = up4(width)
        for i in order:
            h, w = up4(texs[i].shape[0] + 2 * pad), up4(texs[i].shape[1] + 2 * pad)
            if x + w > width:
                x, y, shelf_h = 0, y + shelf_h, 0
            pos[i] = (x, y)
            x += w
            shelf_h = max(shelf_h, h)
        atlas = np.zeros((up4(y + shelf_h), width, 3), np.uint8)
        for i, t in enumerate(texs):
            ox, oy = pos[i]
            # Replicated borders: bilinear lookups at a texture's edge stay inside it.
            atlas[oy:oy + t.shape[0] + 2 * pad, ox:ox + t.shape[1] + 2 * pad] = cv2.copyMakeBorder(
                t, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rows, tpm = [], []
        for i, s in enumerate(geoms):
            h, w = texs[i].shape[:2]
            ox, oy = pos[i][0] + pad, pos[i][1] + pad
            if s.texture is None:
                uv = np.full((len(s.triangles), 3, 2), 0.5, np.float32)
            else:
                uv = np.clip(s.corner_uvs, 0.0, 1.0)
            px = np.empty_like(uv)
            px[..., 0] = uv[..., 0] * w - 0.5 + ox
            px[..., 1] = (1.0 - uv[..., 1]) * h - 0.5 + oy  # texture row = (1 - v) * H
            rows.append(np.concatenate([px[:, 0], px[:, 1] - px[:, 0], px[:, 2] - px[:, 0]], 1))
            # Texels per metre: sqrt(texture area / surface area) of each triangle.
            T = geom_T[i]
            P = (s.vertices @ T[:3, :3].T)[s.triangles]
            a3 = np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1)
            e1, e2 = px[:, 1] - px[:, 0], px[:, 2] - px[:, 0]
            a2 = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
            tpm.append(np.sqrt(a2 / np.maximum(a3, 1e-12)))
        mx, my = pos[-1][0] + pad + 3.5, pos[-1][1] + pad + 3.5
        rows.append(np.array([[mx, my, 0, 0, 0, 0]], np.float32))
        tpm.append(np.zeros(1))
        tri_uv = np.ascontiguousarray(np.concatenate(rows).astype(np.float32))
        tri_tpm = np.concatenate(tpm).astype(np.float32)
        counts = [len(s.triangles) for s in geoms]
        prim_offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        levels = [atlas]
        for _ in range(MIP_LEVELS - 1):
            levels.append(np.asarray(cv2.pyrDown(levels[-1])))
        return cls(levels, tri_uv, tri_tpm, prim_offset)

    def sample(self, mx: np.ndarray, my: np.ndarray, fid: np.ndarray, t_hit: np.ndarray,
               cos_view: np.ndarray, camera: CameraIntrinsics,
               inv_ray_len: np.ndarray) -> np.ndarray:
        """(H*W, 3) float32 colours at atlas positions (mx, my) (level-0 pixels), mip-mapped.

        All inputs are (H*W,) per pixel of `camera`: fid the hit triangle's row in tri_uv,
        t_hit the ray parameter (rays with z_cam = 1; inf = no hit), cos_view |cos| of the
        viewing angle, inv_ray_len 1 / |ray|. Level of detail = log2(texels per pixel): a
        pixel at distance r (metres) seeing the surface at |cos| c covers r / (f sqrt(c))
        metres (geometric mean of its two axes); levels are blended linearly (trilinear
        filtering), so distant or slanted texture neither aliases nor flickers from frame
        to frame.
        """
        f = np.float32(0.5 * (camera.fx + camera.fy))
        dist = np.where(np.isfinite(t_hit), t_hit, np.float32(0.0)) / inv_ray_len
        rho = self.tri_tpm[fid] * dist / (f * np.sqrt(np.maximum(cos_view, np.float32(0.1))))
        lod = np.clip(np.log2(np.maximum(rho, np.float32(1e-6))), 0.0, MIP_LEVELS - 1).astype(np.float32)
        H, W = camera.height, camera.width
        lod = lod.reshape(H, W)
        mx, my = mx.reshape(H, W), my.reshape(H, W)
        out = None
        for k, level in enumerate(self.levels):
            if k and not np.any(lod > k - 1):
                break
            s = np.float32(0.5 ** k)
            sample = cv2.remap(level, (mx + 0.5) * s - 0.5, (my + 0.5) * s - 0.5, cv2.INTER_LINEAR)
            if out is None:
                out = sample
                continue
            # Blend this level in where lod > k - 1 (weight lod - (k - 1), capped at 1).
            w = np.clip(lod - np.float32(k - 1), 0.0, 1.0).astype(np.float32)
            out = cv2.blendLinear(out, sample, 1.0 - w, w)
        assert out is not None
        return np.asarray(out).reshape(-1, 3).astype(np.float32)
