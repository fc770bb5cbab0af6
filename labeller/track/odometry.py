"""Hybrid RGB-D odometry between two prepared frames, and the check of its result.

`hybrid_odometry` runs Open3D's tensor odometry kernels (Method.Hybrid: photometric +
geometric, Park et al. 2017) coarse to fine on the cached pyramids of `PreparedFrame`,
with the update scheme of ``o3d.t.pipelines.odometry.rgbd_odometry_multi_scale``.
`check_alignment` warps the source into the target with the estimate and measures how
much of it agrees in depth and intensity (an estimate the images do not explain is
rejected by the tracker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.poses import nearest_rigid
from labeller.geometry.open3d_tensor import tensor
from labeller.track.pyramid import DEPTH_OUTLIER_TRUNC_M, PreparedFrame

# Iterations per level, coarse to fine. rgbd_odometry_multi_scale's default is (10, 5, 3);
# each full-resolution iteration costs as much as the whole coarse level. Tracking a frame
# uses one (ATE on the synthetic / 7-Scenes clips 0.16 / 6.07 mm against 0.11 / 6.04 mm
# with two, at 25% less CPU); the few pose-graph edges (skip and loop) use the default.
ITERATIONS = (10, 5, 1)
ITERATIONS_EDGE = (10, 5, 3)
ITERATIONS_REFINE = (0, 0, 2)
# Loss parameters and convergence: Open3D's defaults for rgbd_odometry_multi_scale.
DEPTH_HUBER_DELTA_M = 0.05
INTENSITY_HUBER_DELTA = 0.1  # intensities in [0, 1]
CONVERGED_REL = 1e-6

# Validation of an odometry result (warp the source into the target with the estimate).
CHECK_DEPTH_TOL_M = 0.01  # |dz| within this (+ CHECK_DEPTH_TOL_REL * z) is a depth inlier
CHECK_DEPTH_TOL_REL = 0.015
CHECK_INTENSITY_TOL = 0.1  # |dI| (after removing the median brightness change) on [0, 1]


class OdometryFailed(Exception):
    """The odometry found no correspondence or diverged; the message says which."""


def hybrid_odometry(src: PreparedFrame, tgt: PreparedFrame, init_T_tgt_src: np.ndarray,
                    iterations: tuple[int, ...] = ITERATIONS, geometric_only: bool = False
                    ) -> tuple[np.ndarray, float, float]:
    """Hybrid RGB-D odometry: (T_tgt_src (4, 4), fitness, inlier_rmse).

    Same kernels and coarse-to-fine scheme as rgbd_odometry_multi_scale (Method.Hybrid,
    default criteria and loss parameters), on cached pyramids. fitness = share of all
    pixels of the finest level with a correspondence. `geometric_only` uses the
    point-to-plane kernel (Method.PointToPlane) instead: it converges from further away
    (a loop closure's PnP pose) and does not depend on how well colour is registered to
    depth. Raises OdometryFailed.
    """
    import open3d as o3d

    od = o3d.t.pipelines.odometry
    if geometric_only:
        tgt.as_geometric_target()
    else:
        tgt.as_target()
    T = tensor(np.asarray(init_T_tgt_src, dtype=np.float64))
    fitness, rmse = 1.0, 0.0
    try:
        for lvl, n_iter in enumerate(iterations):
            s, g = src.levels[lvl], tgt.levels[lvl]
            for _ in range(n_iter):
                if geometric_only:
                    assert g.normals is not None  # as_geometric_target() above set them
                    r = od.compute_odometry_result_point_to_plane(
                        s.vm, g.vm, g.normals, s.K, T, DEPTH_OUTLIER_TRUNC_M,
                        DEPTH_HUBER_DELTA_M)
                else:
                    # as_target() above set the gradients
                    assert g.ddx is not None and g.ddy is not None and g.idx is not None \
                        and g.idy is not None
                    r = od.compute_odometry_result_hybrid(
                        s.depth, g.depth, s.inten, g.inten, g.ddx, g.ddy, g.idx, g.idy, s.vm,
                        s.K, T, DEPTH_OUTLIER_TRUNC_M, DEPTH_HUBER_DELTA_M,
                        INTENSITY_HUBER_DELTA)
                T = r.transformation @ T
                converged = (abs(fitness - r.fitness) / max(fitness, 1e-12) < CONVERGED_REL
                             and abs(rmse - r.inlier_rmse) / max(rmse, 1e-12) < CONVERGED_REL)
                fitness, rmse = r.fitness, r.inlier_rmse
                if converged:
                    break
    except RuntimeError as exc:  # Open3D raises when no pixel corresponds
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise OdometryFailed(f"odometry failed ({msg[:120]})") from None
    T_np = T.numpy().astype(np.float64)
    if not np.all(np.isfinite(T_np)):
        raise OdometryFailed("odometry diverged (non-finite pose)")
    return nearest_rigid(T_np), float(fitness), float(rmse)


@dataclass
class AlignmentCheck:
    """How well an odometry estimate explains the images (shares in [0, 1])."""

    overlap: float  # valid source pixels that land on valid target depth (share of valid)
    depth_inliers: float  # of those, share within the depth tolerance
    intensity_inliers: float  # of the depth inliers, share within the intensity tolerance

    @property
    def inlier_ratio(self) -> float:
        """Valid source pixels explained in depth and intensity."""
        return self.overlap * self.depth_inliers * self.intensity_inliers


def check_alignment(src: PreparedFrame, tgt: PreparedFrame, T_tgt_src: np.ndarray
                    ) -> AlignmentCheck:
    """Warp the source into the target with T_tgt_src (4, 4; source camera → target
    camera, metres) and measure how well it agrees, on each frame's `check_level`."""
    s, g = src.levels[src.check_level], tgt.levels[tgt.check_level]
    vm = s.vm.numpy().reshape(-1, 3)
    si = s.inten.numpy().reshape(-1)
    ok = np.isfinite(vm[:, 2])
    n_valid = int(ok.sum())
    if n_valid == 0:
        return AlignmentCheck(0.0, 0.0, 0.0)
    p = vm[ok].astype(np.float64) @ T_tgt_src[:3, :3].T + T_tgt_src[:3, 3]
    si = si[ok]
    K = g.K_np
    gd = g.depth.numpy()[:, :, 0]
    gi = g.inten.numpy()[:, :, 0]
    h, w = gd.shape
    z = p[:, 2]
    front = z > 1e-6
    u = np.full(len(z), -1, np.int64)
    v = np.full(len(z), -1, np.int64)
    u[front] = np.round(K[0, 0] * p[front, 0] / z[front] + K[0, 2]).astype(np.int64)
    v[front] = np.round(K[1, 1] * p[front, 1] / z[front] + K[1, 2]).astype(np.int64)
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    zt = np.full(len(z), np.nan, np.float32)
    zt[inside] = gd[v[inside], u[inside]]
    on = inside & np.isfinite(zt)
    n_on = int(on.sum())
    if n_on == 0:
        return AlignmentCheck(0.0, 0.0, 0.0)
    dz = np.abs(zt[on] - z[on])
    d_in = dz <= CHECK_DEPTH_TOL_M + CHECK_DEPTH_TOL_REL * z[on]
    n_d = int(d_in.sum())
    if n_d == 0:
        return AlignmentCheck(n_on / n_valid, 0.0, 0.0)
    di = gi[v[on][d_in], u[on][d_in]] - si[on][d_in]
    di = di - np.median(di)  # a global brightness change (auto exposure) is not a mismatch
    n_i = int((np.abs(di) <= CHECK_INTENSITY_TOL).sum())
    return AlignmentCheck(n_on / n_valid, n_d / n_on, n_i / n_d)

