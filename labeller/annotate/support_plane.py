"""The surface an object stands on, and standing the object on it (Qt-free).

`find_support` looks for the plane under an object: first in the frame's depth around
the object (the valid depth pixels inside the image box of a ball about the object's
centre, minus the pixels the annotated models cover, cast at half resolution, all
back-projected into the world), then, when the depth gives no plane, in the fused cloud
`recon/cloud.ply` inside the same ball (minus the points inside the annotated models' boxes). The plane is Open3D's
RANSAC `PointCloud.segment_plane`, refined by least squares on its inliers, its normal
turned towards the camera (the side the camera sees is the top), and accepted only when
the object's centre is above it. `stand_on_plane` then turns the object by the smallest
rotation that puts its up axis (`labeller.annotate.pose_edit.up_axis`: the model axis
closest to the plane's normal) along the normal, which keeps its yaw about the normal,
and moves it along the normal until the face of its bounding box on that axis lies on
the plane.

Frames and units: T_world_obj, T_world_cam 4x4 float64 (metres); points (N, 3) float64
metres in the world frame; planes as a unit normal and a point, world frame.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeller.annotate.pose_edit import backproject_region, keep_centre, up_axis
from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import axis_angle_to_matrix, inv_pose, transform_points
from labeller.geometry.overlay import OverlayObject, OverlayRenderer, model_centre

# Where the support is looked for: a ball about the object's centre this much wider than
# the object's half diameter (a table ring a few cm wide around its footprint).
SUPPORT_REACH_M = 0.08
# Pixels around the annotated models' silhouettes left out too: the real object's edge
# when the model sits a little off.
SILHOUETTE_MARGIN_PX = 3
# Points inside the annotated models' boxes grown by this are left out of the fused cloud.
BOX_MARGIN_M = 0.005
# RANSAC: a point within this of a plane is on it (sensor noise at ~1 m is a few mm).
RANSAC_DIST_M = 0.004
RANSAC_ITERATIONS = 1000
# At most this many points go into RANSAC (a fixed random subset): enough for a plane.
MAX_RANSAC_POINTS = 20_000
# A support needs at least this many points in the ball, and its plane this many inliers
# and this fraction of the points: a box's face or the edge of a neighbour does not count.
MIN_POINTS = 150
MIN_INLIERS = 100
MIN_INLIER_FRACT = 0.25
# Planes tried, largest first, before giving up (the first ones may lie above the object).
MAX_PLANES = 3
# The object's centre may sit at most this far below the plane (a model sunk into the
# table by a rough placement) for the plane to count as under it.
MAX_CENTRE_BELOW_M = 0.01


@dataclass(frozen=True)
class SupportPlane:
    """A plane in the world frame: unit `normal_world` (3,) pointing to the side the
    camera sees, `point_world` (3,) on it (metres), found in `source` ("depth" or
    "cloud") with `n_inliers` of `n_points` points."""

    normal_world: np.ndarray
    point_world: np.ndarray
    source: str
    n_inliers: int
    n_points: int

    def height_m(self, p_world: np.ndarray) -> np.ndarray:
        """Signed distance (metres) of points (..., 3) above the plane."""
        return (np.asarray(p_world, np.float64) - self.point_world) @ self.normal_world


@dataclass(frozen=True)
class SupportSearch:
    """What `find_support` found: the plane (None: none) and, for the status line, where
    it looked and what it saw (one line)."""

    plane: SupportPlane | None
    message: str


def search_radius_m(model_diameter_m: float) -> float:
    """Radius (metres) of the ball about the object's centre the support is looked for in."""
    return 0.5 * float(model_diameter_m) + SUPPORT_REACH_M


def fit_support_plane(points_world: np.ndarray, centre_world: np.ndarray,
                      viewpoint_world: np.ndarray, source: str
                      ) -> tuple[SupportPlane | None, str]:
    """The largest plane in `points_world` (N, 3) with `centre_world` (3,) above it, the
    normal turned towards `viewpoint_world` (3,); or (None, why not)."""
    import open3d as o3d

    pts = np.asarray(points_world, np.float64)
    n_total = len(pts)
    if n_total < MIN_POINTS:
        return None, f"only {n_total} points (a plane needs {MIN_POINTS})"
    if n_total > MAX_RANSAC_POINTS:
        pick = np.random.default_rng(0).choice(n_total, MAX_RANSAC_POINTS, replace=False)
        pts = pts[np.sort(pick)]
    n_used = len(pts)
    need = max(MIN_INLIERS, int(math.ceil(MIN_INLIER_FRACT * n_used)))
    rest = pts
    largest = 0
    above = 0
    for _ in range(MAX_PLANES):
        if len(rest) < need:
            break
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(rest))
        o3d.utility.random.seed(0)  # segment_plane samples at random: same points, same plane
        _, inl_list = pcd.segment_plane(RANSAC_DIST_M, 3, RANSAC_ITERATIONS)
        inl = np.asarray(inl_list, np.int64)
        largest = max(largest, len(inl))
        if len(inl) < need:
            break
        on = rest[inl]
        p0 = on.mean(0)
        # Least squares on the inliers: the normal is the direction of least spread.
        normal = np.linalg.svd(on - p0, full_matrices=False)[2][2]
        if normal @ (np.asarray(viewpoint_world, np.float64) - p0) < 0:
            normal = -normal
        h = float(normal @ (np.asarray(centre_world, np.float64) - p0))
        if h >= -MAX_CENTRE_BELOW_M:
            return SupportPlane(normal, p0, source, len(inl), n_total), ""
        above += 1
        rest = np.delete(rest, inl, axis=0)
    if above:
        return None, (f"{n_total} points, but the {above} plane(s) found lie above the "
                      "object's centre")
    return None, (f"{n_total} points, the largest plane holds {largest} "
                  f"({100.0 * largest / max(n_used, 1):.0f} %, needs {need})")


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def depth_support_points(camera: CameraIntrinsics, T_world_cam: np.ndarray,
                         depth_m: np.ndarray, target: OverlayObject,
                         others: Sequence[OverlayObject], renderer: OverlayRenderer
                         ) -> tuple[np.ndarray, float]:
    """World points (N, 3) of the depth frame `depth_m` ((H, W) metres) inside the ball
    about `target`'s centre, without the pixels the models of `target` and `others` cover
    (grown by SILHOUETTE_MARGIN_PX); and the ball's radius (metres)."""
    T_wc = np.asarray(T_world_cam, np.float64)
    radius = search_radius_m(target.model.diameter_m)
    T_wo = np.asarray(target.T_world_obj, np.float64)
    c_world = T_wo[:3, :3] @ model_centre(target.model) + T_wo[:3, 3]
    c_cam = transform_points(inv_pose(T_wc), c_world[None])[0]
    if c_cam[2] <= 1e-6:
        return np.zeros((0, 3)), radius
    # The ball's image box: its centre's pixel +- the radius at the ball's near side.
    z_near = max(float(c_cam[2]) - radius, 0.05)
    u = camera.fx * c_cam[0] / c_cam[2] + camera.cx
    v = camera.fy * c_cam[1] / c_cam[2] + camera.cy
    ru, rv = camera.fx * radius / z_near, camera.fy * radius / z_near
    box = (int(math.floor(u - ru)), int(math.floor(v - rv)),
           int(math.ceil(2 * ru)) + 1, int(math.ceil(2 * rv)) + 1)
    if box[0] >= camera.width or box[1] >= camera.height or box[0] + box[2] <= 0 \
            or box[1] + box[3] <= 0:
        return np.zeros((0, 3)), radius
    # The silhouettes at the preview's half resolution (a quarter of the rays): the mask
    # is grown by a few pixels anyway.
    _, inst, _ = renderer.cast(camera, T_wc, [target, *others], preview=True)
    inst = cv2.resize(inst, (camera.width, camera.height), interpolation=cv2.INTER_NEAREST)
    covered = _dilate(inst > 0, SILHOUETTE_MARGIN_PX)
    P_cam = backproject_region(camera, np.asarray(depth_m, np.float32), box, covered)
    P_world = transform_points(T_wc, P_cam) if len(P_cam) else P_cam
    keep = np.linalg.norm(P_world - c_world, axis=1) <= radius
    return P_world[keep], radius


@functools.lru_cache(maxsize=2)
def _cloud_points_cached(path: str, _mtime_ns: int, _size: int) -> np.ndarray:
    import open3d as o3d

    pts = np.asarray(o3d.io.read_point_cloud(Path(path)).points, np.float64).copy()
    pts.setflags(write=False)
    return pts


def read_cloud_points(path: Path) -> np.ndarray:
    """The points (N, 3) of a point cloud file (world frame, metres), cached until the
    file changes; empty when it cannot be read."""
    st = os.stat(path)
    return _cloud_points_cached(str(path), st.st_mtime_ns, st.st_size)


def _inside_box(points_world: np.ndarray, obj: OverlayObject, margin_m: float) -> np.ndarray:
    p_obj = transform_points(inv_pose(np.asarray(obj.T_world_obj, np.float64)), points_world)
    lo = obj.model.vertices.min(0) - margin_m
    hi = obj.model.vertices.max(0) + margin_m
    return np.all((p_obj >= lo) & (p_obj <= hi), axis=1)


def cloud_support_points(cloud_world: np.ndarray, target: OverlayObject,
                         others: Sequence[OverlayObject]) -> tuple[np.ndarray, float]:
    """Fused-cloud points (N, 3) inside the ball about `target`'s centre, without those
    inside the boxes of `target` and `others` (grown by BOX_MARGIN_M); and the radius."""
    radius = search_radius_m(target.model.diameter_m)
    T_wo = np.asarray(target.T_world_obj, np.float64)
    c_world = T_wo[:3, :3] @ model_centre(target.model) + T_wo[:3, 3]
    pts = np.asarray(cloud_world, np.float64)
    pts = pts[np.linalg.norm(pts - c_world, axis=1) <= radius] if len(pts) else pts
    for o in (target, *others):
        if len(pts):
            pts = pts[~_inside_box(pts, o, BOX_MARGIN_M)]
    return pts, radius


def find_support(camera: CameraIntrinsics, T_world_cam: np.ndarray,
                 depth_m: np.ndarray | None, frame: int, target: OverlayObject,
                 others: Sequence[OverlayObject], renderer: OverlayRenderer,
                 cloud_path: Path | None = None) -> SupportSearch:
    """The plane under `target` seen from T_world_cam: in the depth of `frame`, else in
    the fused cloud at `cloud_path` (when that file exists); see the module docstring.
    `others`: the other annotated objects (their pixels and points are left out)."""
    T_wo = np.asarray(target.T_world_obj, np.float64)
    c_world = T_wo[:3, :3] @ model_centre(target.model) + T_wo[:3, 3]
    eye_world = np.asarray(T_world_cam, np.float64)[:3, 3]
    radius = search_radius_m(target.model.diameter_m)
    where = f"within {radius:.2f} m of its centre"
    tried = []
    if depth_m is not None:
        P, _ = depth_support_points(camera, T_world_cam, depth_m, target, others, renderer)
        plane, why = fit_support_plane(P, c_world, eye_world, "depth")
        if plane is not None:
            return SupportSearch(plane, "")
        tried.append(f"depth of frame {frame}: {why}")
    else:
        tried.append(f"frame {frame} has no depth")
    if cloud_path is not None and Path(cloud_path).is_file():
        P, _ = cloud_support_points(read_cloud_points(Path(cloud_path)), target, others)
        plane, why = fit_support_plane(P, c_world, eye_world, "cloud")
        if plane is not None:
            return SupportSearch(plane, "")
        tried.append(f"fused cloud {Path(cloud_path).name}: {why}")
    else:
        tried.append("no fused cloud (recon/cloud.ply: run tracking)")
    return SupportSearch(None, f"No support plane found {where}: " + "; ".join(tried))


def stand_on_plane(T_world_obj: np.ndarray, centre_obj: np.ndarray, extent_m: np.ndarray,
                   plane: SupportPlane) -> np.ndarray:
    """T_world_obj stood on `plane`: its up axis (the model axis closest to the plane's
    normal) turned onto the normal by the smallest rotation (so its yaw about the normal
    stays), its centre moved along the normal only, until the face of its bounding box
    (centre `centre_obj`, sizes `extent_m` (3,), model frame, metres) on that axis lies
    on the plane."""
    T = np.asarray(T_world_obj, np.float64)
    R = T[:3, :3]
    n = plane.normal_world
    k, s = up_axis(R, n)
    a_world = s * R[:, k]
    cross = np.cross(a_world, n)
    sin_a, cos_a = float(np.linalg.norm(cross)), float(a_world @ n)
    Q = (axis_angle_to_matrix(cross, math.atan2(sin_a, cos_a)) if sin_a > 1e-12
         else np.eye(3))
    T_turned = keep_centre(T, Q @ R, centre_obj)
    c_world = T_turned[:3, :3] @ centre_obj + T_turned[:3, 3]
    lift = 0.5 * float(np.asarray(extent_m, np.float64)[k]) - float(plane.height_m(c_world))
    T_turned[:3, 3] += lift * n
    return T_turned
