"""`contact_sheet`: an overview image of a scene (colour, depth, ground-truth masks) for
docs and quick looks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.fileio import read_image
from labeller.formats.scene import ScenePaths


def contact_sheet(scene_dir: str | os.PathLike, frames: Sequence[int], tile_width: int = 320,
                  depth_max_m: float = 2.5) -> np.ndarray:
    """A (rows, 3 tiles) RGB uint8 overview of a scene: per frame the colour image, the
    depth in false colour (black = no measurement) and the ground-truth masks over the
    colour (each instance id its own hue). For docs and quick looks.

    Raises BadInput naming a frame's image that is missing or unreadable."""
    import colorsys

    root = Path(scene_dir)
    paths = ScenePaths(root)
    cam = CameraIntrinsics.read(paths.camera)
    rows = []
    for t in frames:
        rgb = read_image(paths.rgb_path(t))
        depth = read_image(paths.depth_path(t)).astype(np.float32)
        depth /= cam.depth_scale
        dc = cv2.applyColorMap(np.clip(depth / depth_max_m * 255, 0, 255).astype(np.uint8),
                               cv2.COLORMAP_TURBO)[:, :, ::-1].copy()
        dc[depth == 0] = 0
        tiles = [rgb, dc]
        mp = paths.gt_mask(t)
        if mp.is_file():
            mask = read_image(mp)
            over = rgb.astype(np.float32) * 0.45
            for i in np.unique(mask):
                if i == 0:
                    continue
                col = np.array(colorsys.hsv_to_rgb((i * 0.137) % 1.0, 0.85, 1.0)) * 255
                over[mask == i] += col * 0.55
            edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            over[edges] = 255
            tiles.append(np.clip(over, 0, 255).astype(np.uint8))
        h = int(round(tile_width * rgb.shape[0] / rgb.shape[1]))
        rows.append(np.concatenate([cv2.resize(x, (tile_width, h), interpolation=cv2.INTER_AREA)
                                    for x in tiles], 1))
    return np.concatenate(rows, 0)
