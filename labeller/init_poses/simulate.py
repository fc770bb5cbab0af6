"""Simulated pose-estimator output from a synthetic scene's ground truth (seeded).

What the demo and the benchmark start from instead of a real estimator: every object
whose origin projects into a frame is "detected" there, unless missed; a detection is
the true T_cam_obj moved by `trans_m` (a uniform length in that range, a random
direction) and turned by `rot_deg` (likewise, about a random axis); an outlier is a
detection anywhere near the object (`outlier_m` off) with any rotation, and a score
drawn lower than the others'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME
from labeller.core.poses import axis_angle_to_matrix, inv_pose
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.bop_results import PoseEstimate
from labeller.formats.trajectory import Trajectory


@dataclass(frozen=True)
class EstimatorNoise:
    """Per-detection noise: trans_m / rot_deg (low, high) ranges; outlier_rate and
    miss_rate per detection; outliers land outlier_m (low, high) away, any rotation."""

    trans_m: tuple[float, float] = (0.01, 0.03)
    rot_deg: tuple[float, float] = (5.0, 15.0)
    outlier_rate: float = 0.2
    miss_rate: float = 0.1
    outlier_m: tuple[float, float] = (0.08, 0.4)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    from labeller.core.poses import quat_xyzw_to_matrix

    return quat_xyzw_to_matrix(q)


def simulate_estimates(doc: AnnotationDocument, trajectory: Trajectory, camera: CameraIntrinsics,
                       noise: EstimatorNoise = EstimatorNoise(), seed: int = 0,
                       frames: list[int] | None = None) -> list[PoseEstimate]:
    """Detections of the objects of `doc` (ground truth) in the frames of `trajectory`.

    obj_id is the class's YCB-V id (classes outside PROPS are left out); T_cam_obj in
    metres. Same inputs and seed, same estimates.
    """
    rng = np.random.default_rng(seed)
    out: list[PoseEstimate] = []
    for t in frames if frames is not None else trajectory.frame_ids:
        T_cam_world = inv_pose(trajectory[t])
        for o in doc.objects:
            cls = BY_NAME.get(o.class_name)
            if cls is None:
                continue
            T = T_cam_world @ o.T_world_obj
            z = T[2, 3]
            if z <= 0.05:
                continue
            u, v = camera.project(T[None, :3, 3])[0]
            if not (0 <= u < camera.width and 0 <= v < camera.height):
                continue
            if rng.random() < noise.miss_rate:
                continue
            T_est = np.array(T)
            if rng.random() < noise.outlier_rate:
                T_est[:3, 3] += rng.uniform(*noise.outlier_m) * _unit(rng)
                T_est[:3, :3] = _random_rotation(rng)
                score = float(rng.uniform(0.2, 0.7))
            else:
                T_est[:3, 3] += rng.uniform(*noise.trans_m) * _unit(rng)
                R = axis_angle_to_matrix(_unit(rng), np.radians(rng.uniform(*noise.rot_deg)))
                T_est[:3, :3] = T[:3, :3] @ R
                score = float(rng.uniform(0.5, 1.0))
            out.append(PoseEstimate(t, cls.ycbv_id, score, T_est, f"simulated: frame {t}"))
    return out
