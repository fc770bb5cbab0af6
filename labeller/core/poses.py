"""Rigid poses as 4x4 float64 homogeneous matrices (docs/design.md conventions).

`T_a_b` maps coordinates in frame b into frame a: ``p_a = T_a_b @ p_b``. Translations
are in metres, angles in radians unless a name says degrees. Quaternion order is
always explicit in the function name: `xyzw` (TUM, scipy) or `wxyz` (PoseCNN,
ProgressLabeller).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Tolerances for "is this a rigid transform": float32 round trips and 4-decimal
# source files (BOP) stay well inside them; a scaled or sheared matrix does not.
ORTHO_TOL = 1e-4
DET_TOL = 1e-4


def pose_problem(T) -> str | None:
    """Why `T` is not a valid rigid pose, or None when it is.

    Checks shape 4x4, finiteness, last row (0, 0, 0, 1), R^T R = I and det R = +1.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        return f"pose must be 4x4, got shape {T.shape}"
    if not np.all(np.isfinite(T)):
        return "pose has NaN or infinite entries"
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        return f"pose's last row must be 0 0 0 1, got {T[3].tolist()}"
    R = T[:3, :3]
    err = np.abs(R.T @ R - np.eye(3)).max()
    if err > ORTHO_TOL:
        return f"pose is not rigid: rotation not orthonormal (max |RᵀR - I| = {err:.3g})"
    if abs(np.linalg.det(R) - 1.0) > DET_TOL:
        return f"pose is not rigid: det(R) = {np.linalg.det(R):.4f}, expected +1"
    return None


def is_valid_pose(T) -> bool:
    return pose_problem(T) is None


def make_pose(R, t) -> np.ndarray:
    """4x4 pose from rotation R (3, 3) and translation t (3,) in metres."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def inv_pose(T) -> np.ndarray:
    """Inverse of a rigid pose, exactly (Rᵀ, -Rᵀt), not a general matrix inverse."""
    T = np.asarray(T, dtype=np.float64)
    R, t = T[..., :3, :3], T[..., :3, 3]
    Ti = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    Ti[..., :3, :3] = Rt
    Ti[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    Ti[..., 3, 3] = 1.0
    return Ti


def compose(*poses) -> np.ndarray:
    """compose(T_a_b, T_b_c, ...) = T_a_b @ T_b_c @ ..."""
    out = np.eye(4)
    for T in poses:
        out = out @ np.asarray(T, dtype=np.float64)
    return out


def transform_points(T, pts) -> np.ndarray:
    """Apply T_a_b to points (N, 3) in frame b; returns (N, 3) in frame a."""
    T = np.asarray(T, dtype=np.float64)
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ T[:3, :3].T + T[:3, 3]


def quat_xyzw_to_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) from a quaternion in (qx, qy, qz, qw) order (normalised here)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_wxyz_to_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) from a quaternion in (qw, qx, qy, qz) order."""
    w, x, y, z = np.asarray(q, dtype=np.float64)
    return quat_xyzw_to_matrix([x, y, z, w])


def matrix_to_quat_xyzw(R) -> np.ndarray:
    """Unit quaternion (qx, qy, qz, qw) with qw >= 0 for a rotation matrix (3, 3)."""
    R = np.asarray(R, dtype=np.float64)[:3, :3]
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_to_quat_wxyz(R) -> np.ndarray:
    """Unit quaternion (qw, qx, qy, qz) with qw >= 0 for a rotation matrix (3, 3)."""
    x, y, z, w = matrix_to_quat_xyzw(R)
    return np.array([w, x, y, z])


def pose_from_tq_xyzw(t, q_xyzw) -> np.ndarray:
    """Pose from translation (tx, ty, tz) metres and quaternion (qx, qy, qz, qw): TUM order."""
    return make_pose(quat_xyzw_to_matrix(q_xyzw), t)


def pose_to_tq_xyzw(T) -> tuple[np.ndarray, np.ndarray]:
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].copy(), matrix_to_quat_xyzw(T[:3, :3])


def axis_angle_to_matrix(axis, angle_rad: float) -> np.ndarray:
    """Rotation (3, 3) of `angle_rad` about the unit-normalised `axis` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * K + (1 - np.cos(angle_rad)) * (K @ K)


def rotation_angle_deg(T) -> float:
    """Angle in degrees of the rotation part of a 3x3 rotation or 4x4 pose."""
    R = np.asarray(T)[:3, :3]
    c = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(c)))


def rotation_error_deg(T_a, T_b) -> float:
    """Angle in degrees of the rotation taking T_a's rotation to T_b's."""
    return rotation_angle_deg(np.asarray(T_a)[:3, :3].T @ np.asarray(T_b)[:3, :3])


def translation_error_m(T_a, T_b) -> float:
    """Euclidean distance in metres between the translations of two poses."""
    return float(np.linalg.norm(np.asarray(T_a)[:3, 3] - np.asarray(T_b)[:3, 3]))


def add_error(pts_obj, T_est, T_gt) -> float:
    """ADD: mean distance (metres) between model points (N, 3) under the two poses."""
    a = transform_points(T_est, pts_obj)
    b = transform_points(T_gt, pts_obj)
    return float(np.linalg.norm(a - b, axis=1).mean())


def adds_error(pts_obj, T_est, T_gt) -> float:
    """ADD-S: mean distance (metres) from each estimated point to the closest gt point.

    For symmetric objects, where the pose is ambiguous; uses a KD-tree (Open3D).
    """
    import open3d as o3d

    a = transform_points(T_est, pts_obj)
    b = transform_points(T_gt, pts_obj)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(b))
    tree = o3d.geometry.KDTreeFlann(pcd)
    d = np.empty(len(a))
    for i, p in enumerate(a):
        _, _, dist2 = tree.search_knn_vector_3d(p, 1)
        d[i] = np.sqrt(dist2[0])
    return float(d.mean())


# A source rotation may be off orthonormal by this much and still be re-orthonormalised
# (KinectFusion's 7-Scenes poses are off by ~1.2e-4, more than ORTHO_TOL); anything
# further is a broken file, not rounding.
REORTHO_TOL = 1e-2


def rigid_or_none(T: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Re-orthonormalise a nearly rigid 4x4 pose (SVD); (None, why) if it is not close.

    Returns (pose, None) for a usable pose, (None, problem) otherwise.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        return None, f"pose must be 4x4, got shape {T.shape}"
    if not np.all(np.isfinite(T)):
        return None, "pose has NaN or infinite entries"
    R = T[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > REORTHO_TOL or np.linalg.det(R) <= 0:
        return None, (f"rotation is not a rotation (max |RᵀR - I| = {err:.3g}, "
                      f"det {np.linalg.det(R):.3f})")
    out = np.array(T, dtype=np.float64)
    out[:3, :3] = nearest_rotation(R)  # det(R) > 0 here, so no reflection to flip
    out[3] = (0.0, 0.0, 0.0, 1.0)
    problem = pose_problem(out)
    return (None, problem) if problem else (out, None)


def nearest_rotation(R: np.ndarray) -> np.ndarray:
    """The rotation nearest to a 3x3 matrix (SVD projection; a reflection is flipped)."""
    U, _, Vt = np.linalg.svd(R)
    out = U @ Vt
    if np.linalg.det(out) < 0:
        U[:, -1] *= -1
        out = U @ Vt
    return out


def nearest_rigid(T: np.ndarray) -> np.ndarray:
    """The nearest rigid transform to a 4x4 matrix (SVD projection of the rotation).

    Open3D's odometry works in float32 inside, so its rotations are orthonormal only to
    ~1e-7; chained through inverses such errors grow geometrically, so every estimate is
    projected back onto SE(3) before it is stored or composed.
    """
    out = np.eye(4)
    out[:3, :3] = nearest_rotation(T[:3, :3])
    out[:3, 3] = T[:3, 3]
    return out


def slerp_xyzw(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (x, y, z, w) at a in [0, 1]."""
    d = float(np.dot(q0, q1))
    if d < 0:  # the shorter way round
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
    else:
        th = np.arccos(np.clip(d, -1.0, 1.0))
        q = (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)
    return q / np.linalg.norm(q)


def interpolate_pose(T0: np.ndarray, T1: np.ndarray, a: float) -> np.ndarray:
    """The pose (4, 4) a of the way from T0 to T1 (a in [0, 1]): rotation by slerp,
    translation linearly."""
    q = slerp_xyzw(matrix_to_quat_xyzw(T0[:3, :3]), matrix_to_quat_xyzw(T1[:3, :3]), a)
    return make_pose(quat_xyzw_to_matrix(q), (1.0 - a) * T0[:3, 3] + a * T1[:3, 3])


# -- Euler angles (the GUI's numeric entry) ---------------------------------------------------
def matrix_to_euler_xyz_deg(R: np.ndarray) -> np.ndarray:
    """Angles (rx, ry, rz) in degrees with R = Rz(rz) @ Ry(ry) @ Rx(rx) (extrinsic x, y, z)."""
    R = np.asarray(R, dtype=np.float64)
    sy = -R[2, 0]
    ry = np.arcsin(np.clip(sy, -1.0, 1.0))
    if abs(sy) < 1 - 1e-9:
        rx = np.arctan2(R[2, 1], R[2, 2])
        rz = np.arctan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: rx and rz turn about the same axis; put it all in rz
        rx = 0.0
        rz = np.arctan2(-R[0, 1], R[1, 1])
    return np.degrees([rx, ry, rz])


def euler_xyz_deg_to_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Inverse of matrix_to_euler_xyz_deg: R = Rz @ Ry @ Rx (3, 3)."""
    rx, ry, rz = np.radians(np.asarray(angles_deg, dtype=np.float64))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx
