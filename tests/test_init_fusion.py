"""Fusion of per-frame estimates: outliers, several instances, symmetric classes."""

from __future__ import annotations

import numpy as np
import pytest

from labeller.core.poses import (
    axis_angle_to_matrix,
    make_pose,
    quat_xyzw_to_matrix,
    rotation_error_deg,
)
from labeller.init_poses.fusion import FusionSettings, fuse_class
from labeller.init_poses.symmetry import (
    Symmetry,
    class_symmetry,
    mean_rotation,
    pairwise_distance_deg,
    rotation_between,
)


def _noisy(T: np.ndarray, rng, trans_m=(0.01, 0.03), rot_deg=(5, 15)) -> np.ndarray:
    out = np.array(T)
    d = rng.normal(size=3)
    out[:3, 3] += rng.uniform(*trans_m) * d / np.linalg.norm(d)
    out[:3, :3] = T[:3, :3] @ axis_angle_to_matrix(rng.normal(size=3), np.radians(rng.uniform(*rot_deg)))
    return out


def _random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    return quat_xyzw_to_matrix(q / np.linalg.norm(q))


def test_outliers_are_rejected_and_the_mean_is_close():
    rng = np.random.default_rng(0)
    T_true = make_pose(axis_angle_to_matrix([1, 2, 3], 1.0), [0.1, -0.2, 0.9])
    Ts, frames = [], []
    for t in range(200):
        if rng.random() < 0.2:  # an outlier: anywhere near, any rotation
            d = rng.normal(size=3)
            Ts.append(make_pose(_random_rotation(rng), T_true[:3, 3] + rng.uniform(0.08, 0.4) * d / np.linalg.norm(d)))
        else:
            Ts.append(_noisy(T_true, rng))
        frames.append(t)
    (inst,) = fuse_class(np.stack(Ts), np.array(frames), np.ones(len(Ts)), Symmetry(), FusionSettings())
    assert np.linalg.norm(inst.T_world_obj[:3, 3] - T_true[:3, 3]) < 0.005
    assert rotation_error_deg(inst.T_world_obj, T_true) < 2.0
    assert 140 <= len(inst.inliers) <= 175
    assert 10 < 1000 * inst.spread_m < 30 and 5 < inst.spread_deg < 15


def test_two_instances_of_one_class_stay_apart():
    rng = np.random.default_rng(1)
    A = make_pose(np.eye(3), [0.0, 0.0, 1.0])
    B = make_pose(axis_angle_to_matrix([0, 0, 1], 2.0), [0.25, 0.0, 1.0])
    Ts, frames = [], []
    for t in range(60):
        for T in (A, B):
            if rng.random() > 0.1:
                Ts.append(_noisy(T, rng))
                frames.append(t)
    inst = fuse_class(np.stack(Ts), np.array(frames), np.ones(len(Ts)), Symmetry(), FusionSettings())
    assert len(inst) == 2
    found = sorted(inst, key=lambda i: i.T_world_obj[0, 3])
    for i, T in zip(found, (A, B), strict=True):
        assert np.linalg.norm(i.T_world_obj[:3, 3] - T[:3, 3]) < 0.008
        assert rotation_error_deg(i.T_world_obj, T) < 3.0
    # each frame contributes at most one estimate to an instance
    for i in inst:
        assert len(set(np.array(frames)[i.inliers].tolist())) == len(i.inliers)


def test_too_few_agreeing_frames_is_no_object():
    rng = np.random.default_rng(2)
    Ts = np.stack([make_pose(_random_rotation(rng), rng.uniform(-1, 1, 3)) for _ in range(30)])
    assert fuse_class(Ts, np.arange(30), np.ones(30), Symmetry(), FusionSettings()) == []


def test_symmetric_class_estimates_that_differ_by_a_free_turn_agree():
    """A can's estimates turn about its axis at random: without the symmetry they would
    not agree; with it they fuse to the right axis direction."""
    rng = np.random.default_rng(3)
    sym = class_symmetry("tomato_soup_can")
    assert sym.axis_obj is not None
    axis = sym.axis_obj
    T_true = make_pose(axis_angle_to_matrix([1, 0, 0], 0.4), [0.0, 0.1, 0.8])
    Ts = []
    for _ in range(80):
        T = np.array(T_true)
        T[:3, :3] = T[:3, :3] @ axis_angle_to_matrix(axis, rng.uniform(-np.pi, np.pi))
        Ts.append(_noisy(T, rng, rot_deg=(2, 6)))
    Ts = np.stack(Ts)
    plain = fuse_class(Ts, np.arange(80), np.ones(80), Symmetry(), FusionSettings())
    assert not plain or len(plain[0].inliers) < 40
    (inst,) = fuse_class(Ts, np.arange(80), np.ones(80), sym, FusionSettings())
    assert len(inst.inliers) == 80
    d = pairwise_distance_deg(inst.T_world_obj[None, :3, :3], T_true[None, :3, :3], sym)[0, 0]
    assert d < 1.5 and rotation_error_deg(inst.T_world_obj, T_true) > 5  # the twist is free


def test_discrete_symmetry_half_turn():
    flip = axis_angle_to_matrix([0, 0, 1], np.pi)
    sym = Symmetry(None, (np.eye(3), flip))
    R = axis_angle_to_matrix([1, 1, 0], 0.3)
    assert pairwise_distance_deg(R[None], (R @ flip)[None], sym)[0, 0] == pytest.approx(0, abs=1e-5)
    assert pairwise_distance_deg(R[None], (R @ flip)[None], Symmetry())[0, 0] == pytest.approx(180, abs=1e-4)
    M = mean_rotation(R, np.stack([R, R @ flip]), np.ones(2), sym)
    assert rotation_error_deg(M, R) < 1e-4  # arccos near 1 resolves ~1e-6 degrees


def test_rotation_between_opposite_vectors():
    u = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(rotation_between(u, -u) @ u, -u, atol=1e-12)
    v = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(rotation_between(u, v) @ u, v / np.linalg.norm(v), atol=1e-12)
