"""Turning about the object's own axes, yaw steps, copying a rotation and standing on the
support (labeller.annotate.pose_edit, labeller.annotate.support_plane), Qt-free, on a
synthetic scene whose table is tilted against the camera (`labeller synth`: the camera
looks down on the table at 35-41 deg of elevation), with the ground truth of gt/."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from labeller.annotate.pose_edit import (
    backproject_region,
    camera_up_world,
    copy_rotation,
    drag_rotate_object,
    quarter_turn,
    rotate_in_camera,
    rotate_in_object,
    up_axis,
)
from labeller.annotate.support_plane import (
    MIN_POINTS,
    SupportPlane,
    find_support,
    fit_support_plane,
    stand_on_plane,
)
from labeller.core.poses import (
    axis_angle_to_matrix,
    rotation_error_deg,
    transform_points,
)
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model, resolve_model_path
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from labeller.geometry.overlay import OverlayObject, OverlayRenderer, model_centre
from labeller.synth import SynthConfig, run


@pytest.fixture(scope="module")
def tilted(tmp_path_factory):
    """(scene, gt objects [(id, model, T_world_obj)], T_world_cam of frame 0, table normal
    in the world) of a 2-frame 320x240 synthetic scene."""
    out = tmp_path_factory.mktemp("axes") / "scene"
    run(SynthConfig(out, frames=2, seed=3, width=320, height=240))
    scene = Scene.open(out)
    doc = AnnotationDocument.read(out / "gt" / "annotations.json")
    traj = Trajectory.read(out / "gt" / "trajectory.txt", 2)
    objs = [(o.id, load_model(resolve_model_path(o.model, out)), np.asarray(o.T_world_obj))
            for o in doc.objects]
    # The synthetic objects stand on the table with their model z up (synth/layout.py).
    n_table = objs[0][2][:3, 2].copy()
    return scene, objs, np.asarray(traj[0]), n_table


def overlay(objs, T_override=None):
    T_override = T_override or {}
    return [OverlayObject(i, m, T_override.get(i, T), (255, 0, 0)) for i, m, T in objs]


def visible_ids(scene: Scene, min_px: int = 1500) -> list[int]:
    mask = cv2.imread(str(scene.root / "gt" / "masks" / "000000.png"), cv2.IMREAD_UNCHANGED)
    ids, counts = np.unique(mask[mask > 0], return_counts=True)
    return [int(i) for i, c in zip(ids, counts, strict=True) if c >= min_px]


def centre_world(T, model):
    return T[:3, :3] @ model_centre(model) + T[:3, 3]


def perturb(T, model, n_table, tilt_deg=20.0, lift_m=0.02, seed=0):
    """T tilted by tilt_deg about a horizontal (in-table) axis through the centre and
    lifted lift_m along the table normal."""
    rng = np.random.default_rng(seed)
    h = np.cross(n_table, rng.normal(size=3))
    T2 = np.array(T)
    R = axis_angle_to_matrix(h, math.radians(tilt_deg))
    c = centre_world(T, model)
    T2[:3, :3] = R @ T[:3, :3]
    T2[:3, 3] = R @ (T[:3, 3] - c) + c + lift_m * n_table
    return T2


def test_the_table_is_tilted_against_the_camera(tilted):
    _, _, T_wc, n_table = tilted
    tilt = math.degrees(math.acos(np.clip(n_table @ camera_up_world(T_wc), -1, 1)))
    assert 30.0 < tilt < 70.0


def test_turning_about_the_up_axis_keeps_it_fixed(tilted):
    _, objs, T_wc, n_table = tilted
    _, model, T = objs[0]
    c = model_centre(model)
    k, s = up_axis(T[:3, :3], n_table)
    assert (k, s) == (2, 1)  # model z is up on the table
    T2 = rotate_in_object(T, np.eye(3)[k] * s, math.radians(7.0), c)
    assert np.abs(T2[:3, 2] - T[:3, 2]).max() < 1e-12
    assert np.abs(centre_world(T2, model) - centre_world(T, model)).max() < 1e-12
    assert rotation_error_deg(T, T2) == pytest.approx(7.0, abs=1e-9)
    # The camera-axes turn the keys made before tilts the up axis on this tilted table.
    T3 = rotate_in_camera(T, T_wc, (0.0, 1.0, 0.0), math.radians(7.0), c)
    drift = math.degrees(math.acos(np.clip(T3[:3, 2] @ T[:3, 2], -1, 1)))
    assert drift > 3.0


def test_object_axis_drag_turns_about_model_axes_only(tilted):
    _, objs, T_wc, _ = tilted
    _, model, T = objs[1]
    c = model_centre(model)
    R_cam_obj = T_wc[:3, :3].T @ T[:3, :3]
    k_h = int(np.argmax(np.abs(R_cam_obj[1])))  # the model axis closest to camera y
    T2 = drag_rotate_object(T, T_wc, c, 40.0, 0.0, 0.5)
    assert np.abs(T2[:3, k_h] - T[:3, k_h]).max() < 1e-12
    assert rotation_error_deg(T, T2) == pytest.approx(20.0, abs=1e-9)
    # Dragging right turns the camera-facing side the way a camera-axes drag does.
    sign = np.sign(R_cam_obj[1, k_h])
    R_rel = T[:3, :3].T @ T2[:3, :3]
    axis_obj = np.array([R_rel[2, 1] - R_rel[1, 2], R_rel[0, 2] - R_rel[2, 0],
                         R_rel[1, 0] - R_rel[0, 1]])
    assert np.sign(axis_obj[k_h]) == -sign
    assert np.allclose(drag_rotate_object(T, T_wc, c, 0.0, 0.0), T)


def test_quarter_turns_are_exact(tilted):
    _, objs, _, n_table = tilted
    _, model, T = objs[2]
    c = model_centre(model)
    k, s = up_axis(T[:3, :3], n_table)
    T1 = T
    for _ in range(4):
        T_next = quarter_turn(T1, c, k, s, 1)
        assert rotation_error_deg(T1, T_next) == pytest.approx(90.0, abs=1e-9)
        assert np.abs(T_next[:3, k] - T1[:3, k]).max() == 0.0
        assert np.abs(centre_world(T_next, model) - centre_world(T, model)).max() < 1e-12
        T1 = T_next
    assert np.abs(T1[:3, :3] - T[:3, :3]).max() == 0.0  # four quarter turns: the same bits
    T_half = quarter_turn(quarter_turn(T, c, k, s, 2), c, k, s, 2)
    assert np.abs(T_half[:3, :3] - T[:3, :3]).max() == 0.0
    # +90 about +up: the model x goes to where the model y was.
    T90 = quarter_turn(T, c, k, s, 1)
    assert np.allclose(T90[:3, 0], T[:3, 1], atol=1e-15)


def test_copy_rotation_keeps_the_centre(tilted):
    _, objs, _, _ = tilted
    (_, m_a, T_a), (_, _, T_b) = objs[0], objs[1]
    T = copy_rotation(T_a, T_b[:3, :3], model_centre(m_a))
    assert np.array_equal(T[:3, :3], T_b[:3, :3])
    assert np.abs(centre_world(T, m_a) - centre_world(T_a, m_a)).max() < 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_stand_on_support_in_the_depth(tilted, seed):
    scene, objs, T_wc, n_table = tilted
    ids = visible_ids(scene)
    assert len(ids) >= 3
    depth = scene.depth(0)
    r = OverlayRenderer()
    by_id = {i: (m, T) for i, m, T in objs}
    for i in ids:
        model, T_gt = by_id[i]
        T_bad = perturb(T_gt, model, n_table, seed=seed)
        assert rotation_error_deg(T_bad, T_gt) == pytest.approx(20.0, abs=1e-6)
        obj = OverlayObject(i, model, T_bad, (255, 0, 0))
        others = [o for o in overlay(objs) if o.obj_id != i]
        found = find_support(scene.camera, T_wc, depth, 0, obj, others, r)
        assert found.plane is not None, found.message
        assert found.plane.source == "depth"
        normal_err = math.degrees(math.acos(np.clip(found.plane.normal_world @ n_table, -1, 1)))
        assert normal_err < 1.0
        T_new = stand_on_plane(T_bad, model_centre(model), model.extent_m, found.plane)
        # Back on the ground-truth contact: the model's lowest point on the true table
        # plane, its up axis along the table normal, and (yaw kept) its whole pose back.
        table_point = (transform_points(T_gt, model.vertices) @ n_table).min()
        heights = transform_points(T_new, model.vertices) @ n_table - table_point
        assert abs(heights.min()) < 0.002, (i, heights.min())
        assert math.degrees(math.acos(np.clip(T_new[:3, 2] @ n_table, -1, 1))) < 1.0
        assert np.linalg.norm(centre_world(T_new, model) - centre_world(T_gt, model)) < 0.002
        assert rotation_error_deg(T_new, T_gt) < 1.0


def test_stand_on_support_in_the_fused_cloud_when_the_depth_has_none(tilted, tmp_path):
    import open3d as o3d

    scene, objs, T_wc, n_table = tilted
    i, model, T_gt = next(o for o in objs if o[0] == visible_ids(scene)[0])
    # A fused cloud of both frames (what tracking writes to recon/cloud.ply), world frame.
    traj = Trajectory.read(scene.root / "gt" / "trajectory.txt", 2)
    pts = []
    for t in (0, 1):
        P_cam, _ = scene.camera.depth_to_points(scene.depth(t))
        pts.append(transform_points(np.asarray(traj[t]), P_cam))
    cloud = tmp_path / "cloud.ply"
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.concatenate(pts)))
    assert o3d.io.write_point_cloud(str(cloud), pcd.voxel_down_sample(0.003))
    T_bad = perturb(T_gt, model, n_table)
    obj = OverlayObject(i, model, T_bad, (255, 0, 0))
    others = [o for o in overlay(objs) if o.obj_id != i]
    no_depth = np.zeros_like(scene.depth(0))
    found = find_support(scene.camera, T_wc, no_depth, 0, obj, others, OverlayRenderer(),
                         cloud)
    assert found.plane is not None, found.message
    assert found.plane.source == "cloud"
    T_new = stand_on_plane(T_bad, model_centre(model), model.extent_m, found.plane)
    assert np.linalg.norm(centre_world(T_new, model) - centre_world(T_gt, model)) < 0.002
    assert rotation_error_deg(T_new, T_gt) < 1.0


def test_no_plane_message_says_where_it_looked(tilted, tmp_path):
    scene, objs, T_wc, _ = tilted
    i, model, T = objs[0]
    obj = OverlayObject(i, model, T, (255, 0, 0))
    empty = np.zeros_like(scene.depth(0))
    found = find_support(scene.camera, T_wc, empty, 0, obj, [], OverlayRenderer(),
                         tmp_path / "recon" / "cloud.ply")
    assert found.plane is None
    assert found.message.startswith("No support plane found within ")
    assert "m of its centre" in found.message
    assert f"depth of frame 0: only 0 points (a plane needs {MIN_POINTS})" in found.message
    assert "no fused cloud (recon/cloud.ply" in found.message


def test_no_plane_in_scattered_points():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.1, 0.1, (3000, 3))  # a cube of noise: no plane holds 25 %
    plane, why = fit_support_plane(pts, np.zeros(3), np.array([0.0, 0.0, 1.0]), "depth")
    assert plane is None
    assert why.startswith("3000 points, the largest plane holds ")
    assert "needs 750" in why


def test_a_plane_between_the_camera_and_the_object_is_not_its_support():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-0.1, 0.1, (2000, 2))
    ceiling = np.column_stack([xy, np.full(2000, 0.3)])
    # Seen from above (viewpoint at z = 1), the centre at z = 0 lies behind the plane at
    # z = 0.3 (say the top of a box in front of the object): not what it stands on.
    plane, why = fit_support_plane(ceiling, np.zeros(3), np.array([0.0, 0.0, 1.0]), "depth")
    assert plane is None
    assert "lie above the object's centre" in why
    plane, _ = fit_support_plane(ceiling, np.array([0.0, 0.0, 0.4]),
                                 np.array([0.0, 0.0, 1.0]), "depth")
    assert isinstance(plane, SupportPlane)
    assert abs(abs(plane.normal_world[2]) - 1.0) < 1e-9
    assert plane.normal_world[2] > 0  # towards the viewpoint


def test_backproject_region_clips_and_excludes():
    from labeller.core.camera import CameraIntrinsics

    cam = CameraIntrinsics(8, 6, 10.0, 10.0, 3.5, 2.5, 1000.0)
    depth = np.full((6, 8), 0.5, np.float32)
    depth[0, 0] = 0.0
    excl = np.zeros((6, 8), bool)
    excl[1, 1] = True
    P = backproject_region(cam, depth, (-2, -2, 5, 5), excl)
    assert len(P) == 9 - 2  # 3x3 inside the image, minus no depth, minus excluded
    assert np.allclose(P[:, 2], 0.5)
    assert len(backproject_region(cam, depth, (20, 20, 3, 3))) == 0

