"""The 3D view's Qt-free parts: reading the fused cloud for display, the orbit camera,
the CPU picture (cloud behind models, camera path cut at the near plane) and picking."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import pytest

from labeller.annotate.scene_cloud import load_scene_cloud
from labeller.annotate.scene_view import (
    BACKGROUND_RGB,
    PATH_RGB,
    OrbitCamera,
    SceneViewRenderer,
    camera_path,
    pick,
    scene_up_world,
)
from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import SceneError
from labeller.core.poses import inv_pose, make_pose
from labeller.formats.models import ObjectModel
from labeller.geometry.overlay import OverlayObject


def _write_cloud(path, pts, colors=None):
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(colors)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert o3d.io.write_point_cloud(path, pcd)


def test_cloud_is_downsampled_to_the_display_budget(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (60_000, 3))
    _write_cloud(tmp_path / "c.ply", pts, np.full((60_000, 3), 0.5))
    c = load_scene_cloud(tmp_path / "c.ply", max_points=5_000)
    assert c.n_points_file == 60_000 and 0 < len(c) <= 5_000 and c.voxel_m > 0
    assert c.points_world.dtype == np.float32 and c.colors_rgb.dtype == np.uint8
    assert np.all(c.colors_rgb == 128)
    small = load_scene_cloud(tmp_path / "c.ply", max_points=100_000)
    assert len(small) == 60_000 and small.voxel_m == 0  # small enough: kept as it is


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    (b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n", "holds no points"),
    (b"\x00\x01 not a ply at all", "holds no points"),
])
def test_bad_cloud_files_say_why(tmp_path, content, message):
    path = tmp_path / "recon" / "cloud.ply"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    with pytest.raises(SceneError, match=message) as e:
        load_scene_cloud(path)
    assert "\n" not in str(e.value) and "cloud.ply" in str(e.value)


def test_orbit_camera_looks_at_its_target_and_keeps_its_distance():
    pts = np.random.default_rng(1).uniform([-0.3, -0.1, 0.5], [0.3, 0.1, 1.2], (500, 3))
    up = np.array([0.0, -1.0, 0.0])
    v = OrbitCamera.fit(pts, up, np.array([0.0, 0.0, 1.0]))
    for cam in (v, v.orbit(40, -25), v.orbit(-300, 500), v.zoom(0.5)):
        T = cam.T_world_view
        assert np.allclose(T[:3, :3].T @ T[:3, :3], np.eye(3)) and np.linalg.det(T[:3, :3]) > 0
        to_target = np.array(cam.target_world) - T[:3, 3]
        assert np.isclose(np.linalg.norm(to_target), cam.distance_m)
        assert np.allclose(T[:3, 2], to_target / cam.distance_m)  # z looks at the target
        assert T[:3, 1] @ up < 0 + 1e-9  # image down is not world up
    assert abs(v.orbit(0, 1e6).pitch_rad) <= math.radians(89) + 1e-12
    # the fitted view sees the points: all inside the image
    K = v.intrinsics(640, 480)
    p = (inv_pose(v.T_world_view)[:3, :3] @ pts.T).T + inv_pose(v.T_world_view)[:3, 3]
    uv = K.project(p)
    assert (p[:, 2] > 0).all() and (uv >= 0).all() and (uv[:, 0] < 640).all() \
        and (uv[:, 1] < 480).all()
    # panning moves the target in the view's image plane, right drag -> target left
    moved = v.pan(10, 0, 480)
    d = np.array(moved.target_world) - np.array(v.target_world)
    assert d @ v.T_world_view[:3, 0] < 0 and abs(d @ v.T_world_view[:3, 2]) < 1e-9


def test_scene_up_is_the_cameras_up():
    R = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # the cameras' up (-y) is world +z
    ups = scene_up_world([make_pose(R, [0, 0, 0]), make_pose(R, [1, 0, 0])])
    assert np.allclose(ups, R @ [0, -1, 0])
    assert np.allclose(scene_up_world([]), [0, -1, 0])


def _box_model(tmp_path, half=0.05) -> ObjectModel:
    mesh = o3d.geometry.TriangleMesh.create_box(2 * half, 2 * half, 2 * half)
    mesh.translate([-half, -half, -half])
    return ObjectModel(tmp_path / "box.ply", np.asarray(mesh.vertices),
                       np.asarray(mesh.triangles).astype(np.int32))


def test_cloud_behind_a_model_is_hidden_and_picking_finds_it(tmp_path):
    # a wall of points at z = 1.5 behind a box at z = 1 (world = view camera at origin)
    g = np.linspace(-0.4, 0.4, 200)
    wall = np.array([[x, y, 1.5] for x in g for y in g])
    _write_cloud(tmp_path / "c.ply", wall, np.full((len(wall), 3), 1.0))
    cloud = load_scene_cloud(tmp_path / "c.ply")
    view = OrbitCamera((0.0, 0.0, 1.0), 1.0, 0.0, 0.0, (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
    assert np.allclose(view.T_world_view, np.eye(4))  # sits at the origin, looks along z
    box = OverlayObject(7, _box_model(tmp_path), make_pose(np.eye(3), [0, 0, 1.0]), (200, 0, 0))
    img = SceneViewRenderer(cloud).render(view, 160, 120, [box], selected=None)
    cu, cv_ = 80, 60
    assert img.inst[cv_, cu] == 7 and img.rgb[cv_, cu, 0] > img.rgb[cv_, cu, 1]  # the red box
    assert np.isclose(img.depth[cv_, cu], 0.95, atol=1e-3)
    assert pick(img, cu, cv_) == 7 and pick(img, 2, 2) is None
    # around the box: the white wall, not the background
    assert (img.rgb[35, 80] > 150).all() and (img.rgb[2, 2] == BACKGROUND_RGB).all()
    edge_u = int(np.nonzero(img.inst[cv_])[0].max())
    assert pick(img, edge_u + 2, cv_) == 7  # a click just off the edge still picks it


def test_camera_path_crossing_the_view_plane_is_cut_not_mirrored(tmp_path):
    view = OrbitCamera((0.0, 0.0, 1.0), 1.0, 0.0, 0.0, (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
    cam = CameraIntrinsics(64, 48, 50, 50, 31.5, 23.5)
    # frames 0..2 run from behind the view camera to in front of it, right of centre;
    # frame 4 (after an untracked gap) far to the left must not be joined to them
    poses = {t: make_pose(np.eye(3), p) for t, p in
             {0: [0.2, 0, -1.0], 1: [0.2, 0, 0.5], 2: [0.2, 0, 1.0], 4: [-0.3, 0, 1.0]}.items()}
    path = camera_path(poses, 2, cam)
    assert path.breaks.tolist() == [True, False, False, True]
    img = SceneViewRenderer(None).render(view, 160, 120, [], None, path, frustum_m=0.05)
    yellow = np.abs(img.rgb.astype(int) - PATH_RGB).sum(-1) < 60
    cols = np.nonzero(yellow.any(0))[0]
    assert len(cols) > 0 and cols.min() > 80  # only right of the centre: nothing mirrored
    assert not yellow[:, :60].any()  # the gap to frame 4 is not drawn
