"""`labeller init --register` internals: clusters of a fused-like cloud, the colour that
settles a half turn, small clusters, and repeatable results (real Open3D throughout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labeller.core.poses import axis_angle_to_matrix, make_pose, transform_points
from labeller.formats.models import ObjectModel, load_model
from labeller.init_poses.registration import object_clusters, register_models
from labeller.init_poses.symmetry import Symmetry, pairwise_distance_deg

VOXEL_M = 0.005


def _model(tmp_path: Path, name: str) -> ObjectModel:
    from labeller.synth.procedural import write_class_model

    return load_model(write_class_model(name, tmp_path / f"{name}.ply"))


def _surface(model: ObjectModel, T_world_obj: np.ndarray, n: int, seed: int,
             facing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n', 3) world points of the model's surface with their vertex-interpolated colours
    as a camera would see them: lit (gain 0.6, offset 0.1) and, with `facing` (a world
    direction towards the camera), only the side facing it."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(model.path))
    mesh.compute_vertex_normals()
    o3d.utility.random.seed(seed)
    p = mesh.sample_points_uniformly(number_of_points=n, use_triangle_normal=True)
    pts, col, nrm = np.asarray(p.points), np.asarray(p.colors), np.asarray(p.normals)
    keep = np.ones(len(pts), bool) if facing is None else (nrm @ (T_world_obj[:3, :3].T @ facing)) > 0.1
    return transform_points(T_world_obj, pts[keep]), 0.1 + 0.6 * col[keep]


def _table(rng: np.random.Generator, z: float, n: int = 100000) -> np.ndarray:
    """(n, 3) points of a 1.2 m square table at height z: the cloud's largest plane, as
    in a fused scene (an object's face never holds 5 % of such a cloud)."""
    return np.c_[rng.uniform(-0.6, 0.6, (n, 2)), np.full(n, z)]


def test_a_surface_sampled_once_per_voxel_stays_one_cluster(tmp_path):
    """A fused cloud holds about one point per voxel; the clustering must not split one
    object into fragments (it did with DBSCAN asking 15 neighbours)."""
    m = _model(tmp_path, "cracker_box")
    T = make_pose(np.eye(3), [0.0, 0.0, 1.0])
    pts, _ = _surface(m, T, 20000, 0)
    # Thin out to one point per voxel, as the TSDF cloud is.
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).voxel_down_sample(1.2 * VOXEL_M)
    obj = np.asarray(pcd.points)
    rng = np.random.default_rng(1)
    cl = object_clusters(np.concatenate([obj, _table(rng, float(obj[:, 2].min()) - 0.002)]), VOXEL_M)
    big = [c for c, _ in cl if len(c) > 0.1 * len(obj)]
    assert len(big) == 1 and len(big[0]) > 0.8 * len(obj), [len(c) for c, _ in cl]


def test_colour_settles_the_half_turn_of_a_box(tmp_path):
    """A box fits its shape either way round; the colour pattern (under a gain and an
    offset, as the sensor's lit colours are) picks the right one, without the
    "orientation ambiguous" mark. Without colours the mark stays."""
    m = _model(tmp_path, "cracker_box")
    T = make_pose(axis_angle_to_matrix([0.3, 1, 0.2], 2.0), [0.1, 0.05, 0.9])
    pts, col = _surface(m, T, 20000, 3)
    rng = np.random.default_rng(0)
    plane = _table(rng, 1.2)
    cloud = np.concatenate([pts + rng.normal(0, 0.001, pts.shape), plane])
    colors = np.concatenate([col, np.full((len(plane), 3), 0.5)])
    (h,) = register_models(cloud, [("cracker_box", m)], VOXEL_M, cloud_colors=colors)
    assert h is not None
    deg = pairwise_distance_deg(h.T_world_obj[None, :3, :3], T[None, :3, :3], Symmetry())[0, 0]
    assert deg < 2 and np.linalg.norm(h.T_world_obj[:3, 3] - T[:3, 3]) < 0.003
    assert h.colour > 0.8 and not h.flip_ambiguous
    (h2,) = register_models(cloud, [("cracker_box", m)], VOXEL_M)
    assert h2 is not None and h2.flip_ambiguous


def test_a_small_partly_seen_object_is_found(tmp_path):
    """A tuna tin seen from one side (a few hundred points, too few for distinctive
    features) is still placed: tried from its cluster's centre in fixed orientations,
    ICP of the cluster onto the model."""
    m = _model(tmp_path, "tuna_fish_can")
    T = make_pose(axis_angle_to_matrix([1, 0, 0], 0.4), [0.0, 0.0, 0.8])
    pts, col = _surface(m, T, 3000, 1, facing=np.array([0.0, 0.0, -1.0]))
    rng = np.random.default_rng(2)
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.colors = o3d.utility.Vector3dVector(col)
    pcd = pcd.voxel_down_sample(1.2 * VOXEL_M)
    plane = _table(rng, 0.86)
    (h,) = register_models(np.concatenate([np.asarray(pcd.points), plane]), [("tuna_fish_can", m)], VOXEL_M,
                           cloud_colors=np.concatenate([np.asarray(pcd.colors), np.full((len(plane), 3), 0.5)]))
    assert h is not None
    assert np.linalg.norm(h.T_world_obj[:3, 3] - T[:3, 3]) < 0.005


@pytest.mark.parametrize("seed", [0, 7])
def test_registration_repeats_exactly(tmp_path, seed):
    """The same cloud and seed give the same pose twice (seeded RANSAC, fixed candidate
    set), so the benchmark and the tests are reproducible."""
    m = _model(tmp_path, "mug")
    T = make_pose(axis_angle_to_matrix([0, 0.3, 1], 1.0), [0.0, 0.1, 0.9])
    pts, col = _surface(m, T, 15000, 4)
    rng = np.random.default_rng(3)
    plane = _table(rng, 1.0)
    cloud = np.concatenate([pts + rng.normal(0, 0.001, pts.shape), plane])
    colors = np.concatenate([col, np.full((len(plane), 3), 0.5)])
    a, b = (register_models(cloud, [("mug", m)], VOXEL_M, seed=seed, cloud_colors=colors)[0] for _ in range(2))
    assert a is not None and b is not None
    np.testing.assert_allclose(a.T_world_obj, b.T_world_obj, atol=1e-9)
    assert np.linalg.norm(a.T_world_obj[:3, 3] - T[:3, 3]) < 0.005
