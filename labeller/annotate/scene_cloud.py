"""The fused cloud `recon/cloud.ply` (written by `labeller track`), read for display.

The 3D view draws every point of the cloud each time the view moves, so the cloud is
voxel-downsampled to at most `max_points` (Open3D's `voxel_down_sample`, the voxel grown
until it fits). Points are in the world frame of `trajectory.txt` (metres).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.errors import SceneError

# A cloud this size is drawn at 640x480 in a few tens of milliseconds on 2 cores.
MAX_DISPLAY_POINTS = 150_000
# The first voxel tried, and how much it grows per try: the fused cloud of `labeller
# track` is already on a 6 mm grid, so 4 mm keeps a small cloud as it is.
FIRST_VOXEL_M = 0.004
VOXEL_GROWTH = 1.4
# Points without colour (a cloud written by another tool) are drawn in this grey.
NO_COLOUR_RGB = (170, 170, 170)


@dataclass(frozen=True)
class SceneCloud:
    """points_world: (N, 3) float32 metres, world frame; colors_rgb: (N, 3) uint8;
    n_points_file: how many points the file held; voxel_m: the downsampling voxel
    (0 when the file was small enough as it is)."""

    points_world: np.ndarray
    colors_rgb: np.ndarray
    n_points_file: int
    voxel_m: float

    def __len__(self) -> int:
        return len(self.points_world)


def load_scene_cloud(path: str | os.PathLike, max_points: int = MAX_DISPLAY_POINTS) -> SceneCloud:
    """Read a PLY point cloud and downsample it to at most `max_points` for display.

    Raises SceneError (one line) when the file is missing, cannot be read as a point
    cloud, holds no points, or holds non-finite coordinates.
    """
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise SceneError(path, "file not found (run tracking to fuse it)")
    try:
        # Open3D only warns on a broken file and returns an empty cloud
        pcd = o3d.io.read_point_cloud(path, format="ply")
    except (RuntimeError, OSError) as exc:
        raise SceneError(path, f"cannot read it as a point cloud ({exc})") from None
    n_file = len(pcd.points)
    if n_file == 0:
        raise SceneError(path, "holds no points (empty, or not a PLY point cloud)")
    pts = np.asarray(pcd.points)
    if not np.isfinite(pts).all():
        raise SceneError(path, "holds non-finite point coordinates")
    voxel = 0.0
    if n_file > max_points:
        voxel = FIRST_VOXEL_M
        small = pcd.voxel_down_sample(voxel)
        while len(small.points) > max_points:
            voxel *= VOXEL_GROWTH
            small = pcd.voxel_down_sample(voxel)
        pcd = small
    points = np.asarray(pcd.points, dtype=np.float32)
    if pcd.has_colors():
        colors = np.clip(np.asarray(pcd.colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        colors = np.tile(np.array(NO_COLOUR_RGB, np.uint8), (len(points), 1))
    return SceneCloud(points, colors, n_file, voxel)


__all__ = ["MAX_DISPLAY_POINTS", "SceneCloud", "load_scene_cloud"]
