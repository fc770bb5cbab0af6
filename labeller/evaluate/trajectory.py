"""Trajectory accuracy: ATE after rigid alignment and RPE, shared by tests and benchmarks.

Both take `Trajectory` objects (T_world_cam per frame id, metres) and use only the frames
present in both. ATE (absolute trajectory error, Sturm et al. 2012) aligns the estimate
to the ground truth with the least-squares rigid transform of the camera centres
(Umeyama / Horn, no scale: our trajectories are metric) and reports the residual camera
position error. RPE (relative pose error) compares the motion between frame t and
t + delta in the two trajectories, so it measures drift per step and needs no alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.poses import inv_pose, rotation_angle_deg
from labeller.formats.trajectory import Trajectory


def umeyama_alignment(src: np.ndarray, dst: np.ndarray, with_scale: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """(R (3, 3), t (3,), s) minimising sum |dst_i - (s R src_i + t)|^2 (Umeyama 1991).

    `src`, `dst`: (N, 3) corresponding points, N >= 3 for a unique rotation (fewer give
    the best translation with R = I). `s` is 1 unless `with_scale`.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"expected two (N, 3) arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    if len(src) < 3:
        return np.eye(3), mu_d - mu_s, 1.0
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0  # a reflection is not a rotation
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / xs.var(0).sum()) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return R, t, s


@dataclass(frozen=True)
class ATEResult:
    rmse_m: float
    mean_m: float
    median_m: float
    max_m: float
    n_frames: int  # frames present in both trajectories
    T_gt_est: np.ndarray  # (4, 4) the alignment applied to the estimate


@dataclass(frozen=True)
class RPEResult:
    trans_rmse_m: float
    rot_rmse_deg: float
    trans_mean_m: float
    rot_mean_deg: float
    n_pairs: int


def common_frames(est: Trajectory, gt: Trajectory) -> list[int]:
    return sorted(set(est.poses) & set(gt.poses))


def ate(est: Trajectory, gt: Trajectory, align: bool = True) -> ATEResult:
    """Absolute trajectory error of `est` against `gt` over their common frames.

    With `align` the estimate is first moved by the best rigid transform (no scale);
    without it both are compared as they are (same world frame assumed).
    Raises ValueError when the trajectories share no frame.
    """
    ids = common_frames(est, gt)
    if not ids:
        raise ValueError("the trajectories share no frame")
    p_est = np.array([est[t][:3, 3] for t in ids])
    p_gt = np.array([gt[t][:3, 3] for t in ids])
    T = np.eye(4)
    if align:
        R, tr, _ = umeyama_alignment(p_est, p_gt)
        T[:3, :3], T[:3, 3] = R, tr
    err = np.linalg.norm(p_est @ T[:3, :3].T + T[:3, 3] - p_gt, axis=1)
    return ATEResult(float(np.sqrt(np.mean(err**2))), float(err.mean()), float(np.median(err)),
                     float(err.max()), len(ids), T)


def rpe(est: Trajectory, gt: Trajectory, delta: int = 1) -> RPEResult:
    """Relative pose error over frame pairs (t, t + delta) present in both trajectories.

    For each pair, E = inv(inv(G_t) G_t+d) @ inv(P_t) P_t+d; reports the RMSE and mean of
    |translation(E)| (metres) and angle(E) (degrees). n_pairs = 0 gives NaN figures.
    """
    trans, rot = [], []
    for t in common_frames(est, gt):
        u = t + delta
        if u not in est.poses or u not in gt.poses:
            continue
        d_gt = inv_pose(gt[t]) @ gt[u]
        d_est = inv_pose(est[t]) @ est[u]
        E = inv_pose(d_gt) @ d_est
        trans.append(np.linalg.norm(E[:3, 3]))
        rot.append(rotation_angle_deg(E))
    if not trans:
        nan = float("nan")
        return RPEResult(nan, nan, nan, nan, 0)
    tr, ro = np.array(trans), np.array(rot)
    return RPEResult(float(np.sqrt(np.mean(tr**2))), float(np.sqrt(np.mean(ro**2))),
                     float(tr.mean()), float(ro.mean()), len(tr))


def tracked_fraction(est: Trajectory, n_frames: int) -> float:
    """Share of the scene's frames that have a pose."""
    return len([t for t in est.poses if 0 <= t < n_frames]) / n_frames if n_frames else 0.0


def longest_gap(est: Trajectory, n_frames: int) -> int:
    """Length of the longest run of frames without a pose."""
    return max((b - a + 1 for a, b in est.gaps(n_frames)), default=0)
