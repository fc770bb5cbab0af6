"""TSDF fusion of the tracked frames into recon/cloud.ply.

Open3D's tensor `VoxelBlockGrid` (the legacy ``ScalableTSDFVolume`` returns empty meshes
in open3d 0.20); the surface points with their colours (world frame, metres; 8-bit RGB in
the PLY) are what the GUI and ICP use.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labeller.core.diskspace import check_room
from labeller.core.errors import BadInput, ModelError
from labeller.core.fileio import atomic_path
from labeller.core.poses import inv_pose
from labeller.formats.models import ply_header
from labeller.formats.trajectory import Trajectory
from labeller.geometry.open3d_tensor import tensor
from labeller.track.config import TrackConfig
from labeller.track.frames import FrameSource

if TYPE_CHECKING:
    import open3d as o3d

logger = logging.getLogger(__name__)

TSDF_BLOCK_RESOLUTION = 8
TSDF_TRUNC_VOXELS = 4.0  # truncation distance in voxels (2.4 cm at 6 mm)


def fuse(src: FrameSource, traj: Trajectory, frames: list[int], cfg: TrackConfig,
         tick: Callable[[], bool]) -> o3d.t.geometry.PointCloud | None:
    """TSDF-fuse `frames` with their T_world_cam from `traj` (voxel `cfg.voxel_m`, depth up
    to `cfg.depth_max_m`); an Open3D t.PointCloud in the world frame, or None when
    `tick()` (called after every frame, unreadable ones included) returned False."""
    import open3d as o3d

    cam = src.camera
    vbg = o3d.t.geometry.VoxelBlockGrid(
        ("tsdf", "weight", "color"), (o3d.core.float32, o3d.core.float32, o3d.core.float32),
        ((1), (1), (3)), cfg.voxel_m, TSDF_BLOCK_RESOLUTION, 4096)  # type: ignore[arg-type]
    K = tensor(cam.K)
    n_done = 0
    for t in frames:
        try:
            rgb, depth = src.read(t)
        except BadInput:
            if not tick():
                return None
            continue
        extrinsic = tensor(inv_pose(traj[t]))  # T_cam_world
        dimg = o3d.t.geometry.Image(np.ascontiguousarray(depth))
        cimg = o3d.t.geometry.Image(np.ascontiguousarray(rgb))
        coords = vbg.compute_unique_block_coordinates(dimg, K, extrinsic, cam.depth_scale,
                                                      cfg.depth_max_m, TSDF_TRUNC_VOXELS)
        vbg.integrate(coords, dimg, cimg, K, extrinsic, cam.depth_scale, cfg.depth_max_m,
                      TSDF_TRUNC_VOXELS)
        n_done += 1
        if not tick():
            return None
    if n_done == 0:
        return o3d.t.geometry.PointCloud()
    # Surfaces seen at least a few times (fewer when only a few frames were fused).
    # (Open3D keeps voxels whose weight is strictly above the threshold.)
    weight = float(min(3.0, max(0.5, (n_done - 1) / 3.0)))
    return vbg.extract_point_cloud(weight_threshold=weight)


def write_cloud(pcd: o3d.t.geometry.PointCloud, dest: Path) -> int:
    """Write the fused t.PointCloud `pcd` as a binary PLY at `dest` (atomically); returns
    its number of points (0: nothing written).

    Raises OSError (ENOSPC or EFBIG, naming `dest`) when there is no room for it or the
    file came out short; the previous `dest` is then left as it was."""
    import open3d as o3d

    n = 0 if pcd.is_empty() else int(pcd.point.positions.shape[0])
    if n == 0:
        # Open3D refuses to write an empty cloud; a very short scene can fuse to nothing
        # above the TSDF weight threshold. The trajectory is still good: say so, go on.
        logger.warning("%s not written: the fused cloud is empty "
                       "(too few frames fused for the TSDF)", dest)
        return 0
    if "colors" in pcd.point:
        # Fused colours come back as float; 8-bit channels make a standard coloured PLY
        # (red/green/blue uchar) that every reader, Open3D's legacy one included, gets right.
        c = pcd.point.colors.numpy().astype(np.float64)
        if c.size and float(c.max()) <= 1.0 + 1e-6:
            c = c * 255.0
        pcd.point.colors = tensor(np.clip(np.round(c), 0, 255).astype(np.uint8))
    # Open3D's PLY writer (RPly) only prints a complaint when a write fails (a full disk):
    # ask for the room first, and check the file it wrote before renaming it into place.
    check_room(dest, PLY_HEADER_BYTES + n * _row_bytes(pcd), size_now=0)
    with atomic_path(dest) as tmp:
        if not o3d.t.io.write_point_cloud(tmp, pcd, write_ascii=False):
            raise OSError(errno.ENOSPC, "Open3D could not write the point cloud", str(dest))
        _check_written_cloud(tmp, dest, n)
    return n


# A PLY header Open3D writes: format, comment, element and one line per property.
PLY_HEADER_BYTES = 4096


def _row_bytes(pcd: o3d.t.geometry.PointCloud) -> int:
    """Bytes per point of the binary PLY: every attribute's values."""
    total = 0
    for key in pcd.point:
        t = pcd.point[key]
        total += math.prod(int(d) for d in list(t.shape)[1:]) * int(t.dtype.byte_size())
    return total


def _check_written_cloud(path: Path, dest: Path, n: int) -> None:
    """OSError (ENOSPC, naming `dest`) unless `path` is a whole binary PLY of `n` points:
    its header reads back, declares `n` vertices, and the file holds exactly the header
    and `n` rows of the declared properties."""
    size = path.stat().st_size
    try:
        fmt, elements, header_bytes = ply_header(path)
    except ModelError:
        raise OSError(errno.ENOSPC, f"only {size} bytes were written (no whole PLY header)",
                      str(dest)) from None
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if fmt == "ascii" or vertex is None or vertex.count != n:
        raise OSError(f"{dest}: Open3D wrote an unexpected PLY header ({fmt}, "
                      f"{vertex.count if vertex else 0} of {n} vertices)")
    expected = header_bytes + sum(e.count * e.min_row_bytes(True) for e in elements)
    if size != expected:
        raise OSError(errno.ENOSPC, f"only {size} of {expected} bytes were written", str(dest))
