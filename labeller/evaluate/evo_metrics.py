"""ATE and RPE computed by `evo` (the field's trajectory evaluation package).

`labeller track SCENE --evaluate GT` prints these, so the figures compare with papers that
use evo. `labeller.evaluate.trajectory` holds the project's own Umeyama/ATE/RPE, kept as
an independent second opinion (the tests check that the two agree).

Both trajectories hold T_world_cam per frame id (metres); only frames present in both are
used. ATE: evo's APE on the translation part after evo's Umeyama alignment (rigid, no
scale). RPE: evo's RPE on the translation and rotation parts between consecutive common
frames (delta = 1 frame: across an untracked frame the pair spans the gap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.formats.trajectory import Trajectory


@dataclass(frozen=True)
class EvoFigures:
    """evo's statistics; lengths in metres, angles in degrees."""

    n_frames: int  # frames in both trajectories
    ate_rmse_m: float
    ate_mean_m: float
    ate_median_m: float
    ate_max_m: float
    rpe_trans_rmse_m: float
    rpe_rot_rmse_deg: float

    def summary(self) -> str:
        return (f"evo over {self.n_frames} frames: ATE RMSE {self.ate_rmse_m * 1000:.2f} mm "
                f"(mean {self.ate_mean_m * 1000:.2f}, median {self.ate_median_m * 1000:.2f}, "
                f"max {self.ate_max_m * 1000:.2f} mm; rigid alignment, no scale), "
                f"RPE per frame {self.rpe_trans_rmse_m * 1000:.2f} mm / "
                f"{self.rpe_rot_rmse_deg:.3f} deg RMSE")


def evo_figures(est: Trajectory, gt: Trajectory) -> EvoFigures:
    """ATE and RPE of `est` against `gt` by evo. ValueError when fewer than 3 common frames."""
    # evo ships no type information (pyproject's mypy overrides do not list it yet).
    from evo.core import metrics
    from evo.core.trajectory import PosePath3D

    ids = sorted(set(est.poses) & set(gt.poses))
    if len(ids) < 3:
        raise ValueError(f"the trajectories share {len(ids)} frame(s); need at least 3")
    ref = PosePath3D(poses_se3=[np.asarray(gt[t], dtype=np.float64) for t in ids])
    traj = PosePath3D(poses_se3=[np.asarray(est[t], dtype=np.float64) for t in ids])
    traj.align(ref, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, traj))
    st = ape.get_all_statistics()
    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, delta=1,
                        delta_unit=metrics.Unit.frames)
    rpe_t.process_data((ref, traj))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=1,
                        delta_unit=metrics.Unit.frames)
    rpe_r.process_data((ref, traj))
    return EvoFigures(len(ids), float(st["rmse"]), float(st["mean"]), float(st["median"]),
                      float(st["max"]), float(rpe_t.get_statistic(metrics.StatisticsType.rmse)),
                      float(rpe_r.get_statistic(metrics.StatisticsType.rmse)))
