"""Robust fusion of one class's per-frame pose estimates into object poses in the world.

Each estimate, lifted into the world through the trajectory
(``T_world_obj = T_world_cam[t] @ T_cam_obj``), votes for where the object is. Several
instances of a class and outliers are handled by sequential RANSAC over the estimates:

1. every estimate is a hypothesis; its support is the summed weight of the estimates
   within `inlier_m` and `inlier_deg` of it (rotation modulo the class's symmetries);
2. the best-supported hypothesis is refined: the weighted mean of its inliers (the
   rotation a chordal mean of their symmetric representatives nearest to it), then the
   inliers are chosen again around that mean, three times, keeping at most one estimate
   per frame (the nearest);
3. an instance with enough inlier frames is kept and its inliers are removed (and any
   estimate standing where it stands, whatever its rotation); the next
   instance is searched among the rest, until no hypothesis has enough support.

Weights are the estimator's score times the depth-consistency score of that estimate
in its own frame (an estimate the depth contradicts counts little).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.poses import make_pose
from labeller.init_poses.symmetry import Symmetry, mean_rotation, pairwise_distance_deg

REFINE_ROUNDS = 3


@dataclass(frozen=True)
class FusionSettings:
    """inlier_m / inlier_deg: agreement thresholds; an instance needs at least
    `min_frames` inlier frames and `min_fraction` of the frames that saw the class."""

    inlier_m: float = 0.05
    inlier_deg: float = 30.0
    min_frames: int = 3
    min_fraction: float = 0.1
    max_instances: int = 8


@dataclass
class FusedInstance:
    """One fused object: T_world_obj (4, 4), the indices of its inlier estimates, and the
    RMS deviation of those from the fused pose (metres, degrees modulo symmetry)."""

    T_world_obj: np.ndarray
    inliers: np.ndarray
    spread_m: float
    spread_deg: float


def _weighted_mean(T: np.ndarray, w: np.ndarray, R_ref: np.ndarray, sym: Symmetry) -> np.ndarray:
    t = (w[:, None] * T[:, :3, 3]).sum(0) / w.sum()
    return make_pose(mean_rotation(R_ref, T[:, :3, :3], w, sym), t)


def _inliers_of(T_ref: np.ndarray, T: np.ndarray, frames: np.ndarray, cand: np.ndarray,
                sym: Symmetry, s: FusionSettings) -> np.ndarray:
    """Indices (into T) among `cand` that agree with T_ref, at most one per frame."""
    dt = np.linalg.norm(T[cand, :3, 3] - T_ref[:3, 3], axis=1)
    dr = pairwise_distance_deg(T_ref[None, :3, :3], T[cand, :3, :3], sym)[0]
    ok = (dt < s.inlier_m) & (dr < s.inlier_deg)
    idx, cost = cand[ok], (dt / s.inlier_m + dr / s.inlier_deg)[ok]
    best: dict[int, tuple[float, int]] = {}
    for i, c in zip(idx.tolist(), cost.tolist(), strict=True):
        f = int(frames[i])
        if f not in best or c < best[f][0]:
            best[f] = (c, i)
    return np.array(sorted(i for _, i in best.values()), dtype=np.int64)


def fuse_class(T_world_obj: np.ndarray, frames: np.ndarray, weights: np.ndarray,
               sym: Symmetry, settings: FusionSettings) -> list[FusedInstance]:
    """The instances of one class found among its estimates.

    T_world_obj: (N, 4, 4) lifted estimates; frames: (N,) their frame ids; weights: (N,)
    > 0. Returns the instances, best supported first.
    """
    T = np.asarray(T_world_obj, np.float64)
    frames = np.asarray(frames)
    w = np.maximum(np.asarray(weights, np.float64), 1e-9)
    n_seen = len(np.unique(frames))
    need = max(settings.min_frames, int(np.ceil(settings.min_fraction * n_seen)))
    remaining = np.arange(len(T))
    out: list[FusedInstance] = []
    while len(out) < settings.max_instances and len(np.unique(frames[remaining])) >= need:
        Tr = T[remaining]
        dt = np.linalg.norm(Tr[:, None, :3, 3] - Tr[None, :, :3, 3], axis=-1)
        dr = pairwise_distance_deg(Tr[:, :3, :3], Tr[:, :3, :3], sym)
        support = ((dt < settings.inlier_m) & (dr < settings.inlier_deg)) @ w[remaining]
        T_hyp = Tr[int(np.argmax(support))]
        inl = _inliers_of(T_hyp, T, frames, remaining, sym, settings)
        for _ in range(REFINE_ROUNDS):
            if len(inl) == 0:
                break
            T_hyp = _weighted_mean(T[inl], w[inl], T_hyp[:3, :3], sym)
            inl = _inliers_of(T_hyp, T, frames, remaining, sym, settings)
        if len(inl) < need:
            break
        T_fused = _weighted_mean(T[inl], w[inl], T_hyp[:3, :3], sym)
        dt_in = np.linalg.norm(T[inl, :3, 3] - T_fused[:3, 3], axis=1)
        dr_in = pairwise_distance_deg(T_fused[None, :3, :3], T[inl, :3, :3], sym)[0]
        out.append(FusedInstance(T_fused, inl, float(np.sqrt(np.mean(dt_in ** 2))),
                                 float(np.sqrt(np.mean(dr_in ** 2)))))
        # Whatever else lies where this instance stands is this instance too (two objects
        # cannot share a place), whatever its rotation: an outlier of it, not another one.
        near = np.linalg.norm(T[remaining, :3, 3] - T_fused[:3, 3], axis=1) < settings.inlier_m
        remaining = np.setdiff1d(remaining, np.concatenate([inl, remaining[near]]))
    return out
