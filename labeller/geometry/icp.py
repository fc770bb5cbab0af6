"""Correcting a posed model against the sensor depth: point-to-plane ICP (Open3D).

`icp_candidate` refines T_cam_obj from the model's visible surface points and the
sensor's points in the object's region (both (N, 3) camera frame, metres), in coarse to
fine stages, and refuses corrections beyond `IcpSettings`' bounds; `without_twist`
removes the turn about a symmetry axis that depth cannot observe.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from labeller.core.poses import rotation_error_deg, translation_error_m


@dataclass(frozen=True)
class IcpSettings:
    """Point-to-plane ICP of the sensor points onto the model's visible surface.

    max_trans_m / max_rot_deg: the largest correction accepted (object origin moved,
    rotation angle). The correspondence distance shrinks over `stages` multiples of
    max_trans_m so a correction up to the bound can be found without dragging in the
    background at the end.
    """

    max_trans_m: float = 0.02
    max_rot_deg: float = 5.0
    stages: tuple[float, ...] = (2.0, 1.0, 0.5)
    iterations: int = 20
    max_model_points: int = 1500
    max_sensor_points: int = 3000
    min_points: int = 50


def stride_pick(n: int, k: int) -> np.ndarray:
    """At most k indices spread evenly over range(n) (deterministic subsampling)."""
    if n <= k:
        return np.arange(n)
    return np.linspace(0, n - 1, k).astype(np.int64)


def without_twist(T_old: np.ndarray, T_new: np.ndarray, axis_obj) -> np.ndarray:
    """T_new without the part of its rotation (relative to T_old) about the model axis.

    For an object symmetric about `axis_obj` (model frame, through the model origin) that
    turn is invisible to the depth, so ICP may spin it freely; keep the annotated one.
    """
    from labeller.core.poses import matrix_to_quat_wxyz, quat_wxyz_to_matrix

    a = np.asarray(axis_obj, np.float64)
    a = a / np.linalg.norm(a)
    D = T_old[:3, :3].T @ T_new[:3, :3]  # R_new = R_old @ D
    q = matrix_to_quat_wxyz(D)
    w, v = q[0], np.asarray(q[1:])
    p = float(v @ a)
    n = np.hypot(w, p)
    if n < 1e-9:  # a half turn about an axis at right angles: no twist to take out
        return T_new
    tw, tv = w / n, p / n * a  # twist quaternion (about a)
    # swing = D * twist^-1 (quaternion product with the conjugate of the twist)
    sw_w = w * tw + v @ tv
    sw_v = -w * tv + tw * v - np.cross(v, tv)
    out = np.array(T_new, np.float64)
    out[:3, :3] = T_old[:3, :3] @ quat_wxyz_to_matrix([sw_w, *sw_v])
    return out


def icp_candidate(T_cam_obj: np.ndarray, model_pts_cam: np.ndarray, sensor_pts_cam: np.ndarray,
                  sensor_normals_cam: np.ndarray, settings: IcpSettings,
                  symmetry_axis=None) -> tuple[np.ndarray | None, float, float, str]:
    """A corrected T_cam_obj from Open3D point-to-plane ICP, or None with the reason.

    model_pts_cam: (N, 3) visible model surface at T_cam_obj (camera frame, metres).
    sensor_pts_cam / sensor_normals_cam: (M, 3) sensor points around the object and their
    unit normals (`depth_normals`). The model points are registered onto the sensor
    (model to sensor: correspondences are driven from the object, so the supporting
    table around it matters little); the motion found is applied to T_cam_obj. For an
    object with a continuous `symmetry_axis` (model frame) the turn about it is dropped.
    Returns (T_cam_obj_candidate | None, moved_m, turned_deg, reason).
    """
    import open3d as o3d

    if len(model_pts_cam) < settings.min_points or len(sensor_pts_cam) < settings.min_points:
        return None, float("nan"), float("nan"), "too few points"
    mi = stride_pick(len(model_pts_cam), settings.max_model_points)
    si = stride_pick(len(sensor_pts_cam), settings.max_sensor_points)
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(model_pts_cam[mi]))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sensor_pts_cam[si]))
    target.normals = o3d.utility.Vector3dVector(sensor_normals_cam[si])
    with single_thread():
        T_fix = _icp_stages(source, target, settings)
    if T_fix is None:
        return None, float("nan"), float("nan"), "too few correspondences"
    T_new = T_fix @ T_cam_obj
    if symmetry_axis is not None:
        T_new = without_twist(T_cam_obj, T_new, symmetry_axis)
    moved = translation_error_m(T_new, T_cam_obj)
    turned = rotation_error_deg(T_new, T_cam_obj)
    if moved > settings.max_trans_m or turned > settings.max_rot_deg:
        return None, moved, turned, "correction beyond the bounds"
    return T_new, moved, turned, "ok"


@contextlib.contextmanager
def single_thread():
    """Run Open3D on one thread inside the block (process-wide while it lasts).

    Open3D's ICP sums its normal equations in a TBB parallel reduction whose order
    depends on scheduling, so two runs can differ in the last bits; on one thread the
    order is fixed, and the batched (worker) and per-frame paths give identical poses.
    """
    import open3d as o3d

    before = o3d.utility.get_max_threads()
    o3d.utility.set_max_threads(1)
    try:
        yield
    finally:
        o3d.utility.set_max_threads(before)


def _icp_stages(source, target, settings: IcpSettings) -> np.ndarray | None:
    """The model-to-sensor motion (4, 4) after the coarse-to-fine stages; None if lost."""
    import open3d as o3d

    reg = o3d.pipelines.registration
    T_fix = np.eye(4)
    for k in settings.stages:
        # Tukey's loss down-weights the background caught at the larger distances.
        est = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=k * settings.max_trans_m))
        crit = reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                          max_iteration=settings.iterations)
        res = reg.registration_icp(source, target, k * settings.max_trans_m, T_fix, est, crit)
        if len(res.correspondence_set) < settings.min_points:
            return None
        T_fix = np.asarray(res.transformation, dtype=np.float64).copy()
    return T_fix
