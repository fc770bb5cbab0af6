"""The Qt-free overlay renderer and the geometry of pose editing (labeller.geometry.overlay)."""

from __future__ import annotations

import numpy as np
import pytest

from labeller.annotate.pose_edit import (
    drag_rotate,
    drag_translate,
    move_along_ray,
    place_at_pixel,
    rotate_in_camera,
    translate_in_camera,
)
from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import (
    axis_angle_to_matrix,
    euler_xyz_deg_to_matrix,
    inv_pose,
    make_pose,
    matrix_to_euler_xyz_deg,
    rotation_error_deg,
)
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model
from labeller.formats.scene import Scene
from labeller.geometry.overlay import (
    OverlayObject,
    OverlayRenderer,
    OverlayStyle,
    compose_overlay,
    depth_false_colour,
    model_centre,
)
from labeller.geometry.render import ObjectRenderer


@pytest.fixture(scope="module")
def posed(synth_master):
    s = Scene(synth_master)
    doc = AnnotationDocument.read(synth_master / "gt" / "annotations.json")
    objs = [OverlayObject(o.id, load_model(synth_master / o.model), o.T_world_obj, (200, 0, 0))
            for o in doc.objects]
    return s, objs


def test_per_object_casts_agree_with_one_joint_cast(posed):
    """Two implementations: casting each object in its own frame and z-buffering must
    give what one ray-casting scene of all objects gives."""
    s, objs = posed
    for t in (0, 5, 9):
        T_wc = s.trajectory[t]
        depth, inst, n = OverlayRenderer().cast(s.camera, T_wc, objs)
        ref = ObjectRenderer([(o.obj_id, o.model, o.T_world_obj) for o in objs]).render(
            s.camera, T_wc)
        assert n == sum(1 for o in objs if (ref.inst == o.obj_id).any()) or n >= 1
        agree = (inst == ref.inst).mean()
        assert agree > 0.999, agree
        both = (inst == ref.inst) & (inst > 0)
        assert both.sum() > 1000
        assert np.abs(depth[both] - ref.depth[both]).max() < 1e-4


def test_unmoved_objects_are_reused_and_preview_is_close(posed):
    s, objs = posed
    r = OverlayRenderer()
    T_wc = s.trajectory[0]
    full = r.render(s.camera, T_wc, objs)
    assert full.casts >= 1 and full.rgba.shape == (s.camera.height, s.camera.width, 4)
    moved = list(objs)
    o = moved[0]
    moved[0] = OverlayObject(o.obj_id, o.model, translate_in_camera(o.T_world_obj, T_wc,
                                                                   (0.01, 0, 0)), o.color_rgb)
    again = r.render(s.camera, T_wc, moved)
    assert again.casts <= 1
    same = r.render(s.camera, T_wc, moved)
    assert same.casts == 0 and np.array_equal(same.inst, again.inst)
    prev = r.render(s.camera, T_wc, moved, preview=True)
    assert prev.preview and prev.inst.shape == again.inst.shape
    for i in np.unique(again.inst[again.inst > 0]):
        a, b = again.inst == i, prev.inst == i
        if a.sum() > 200:
            assert (a & b).sum() / (a | b).sum() > 0.8


def test_compose_overlay_colours_opacity_outline_selection():
    inst = np.zeros((20, 30), np.uint16)
    inst[5:15, 5:12] = 1
    inst[5:15, 12:20] = 2
    rgba = compose_overlay(inst, {1: (255, 0, 0), 2: (0, 0, 255)}, selected=2,
                           style=OverlayStyle(opacity=0.5))
    assert tuple(rgba[0, 0]) == (0, 0, 0, 0)
    assert tuple(rgba[10, 8]) == (255, 0, 0, 128)  # inside object 1
    assert tuple(rgba[5, 8]) == (255, 0, 0, 255)  # its outline, opaque
    assert tuple(rgba[10, 19]) == (255, 255, 255, 255)  # selected outline
    assert tuple(rgba[10, 16]) == (0, 0, 255, 128)


def test_depth_false_colour():
    d = np.zeros((4, 4), np.float32)
    d[0] = [0.5, 1.0, 1.5, 2.0]
    img = depth_false_colour(d, 0.5, 2.0)
    assert img.shape == (4, 4, 3) and img.dtype == np.uint8
    assert (img[1:] == 0).all()
    assert len({tuple(p) for p in img[0]}) == 4


CAM = CameraIntrinsics(640, 480, 600.0, 610.0, 320.0, 240.0)
RNG = np.random.default_rng(0)


def _random_pose():
    return make_pose(axis_angle_to_matrix(RNG.normal(size=3), RNG.uniform(0, np.pi)),
                     RNG.normal(size=3) * 0.3)


def test_translate_and_rotate_in_camera_axes():
    T_wc = _random_pose()
    T_wo = T_wc @ make_pose(axis_angle_to_matrix([0, 1, 0], 0.3), [0.05, 0.02, 0.6])
    T = translate_in_camera(T_wo, T_wc, (0.001, -0.01, 0.002))
    d_cam = (inv_pose(T_wc) @ T)[:3, 3] - (inv_pose(T_wc) @ T_wo)[:3, 3]
    assert np.allclose(d_cam, [0.001, -0.01, 0.002], atol=1e-12)
    c = np.array([0.01, 0.02, 0.03])
    for axis in np.eye(3):
        R = rotate_in_camera(T_wo, T_wc, axis, np.radians(5), c)
        assert np.allclose(R[:3, :3] @ c + R[:3, 3], T_wo[:3, :3] @ c + T_wo[:3, 3], atol=1e-12)
        assert rotation_error_deg(R, T_wo) == pytest.approx(5.0, abs=1e-6)
        # the rotation axis, seen from the camera, is the camera axis asked for
        dR = inv_pose(T_wc)[:3, :3] @ R[:3, :3] @ T_wo[:3, :3].T @ T_wc[:3, :3]
        assert np.allclose(dR @ axis, axis, atol=1e-12)


def test_drag_translate_follows_the_mouse_and_wheel_keeps_the_pixel():
    T_wc = _random_pose()
    c = np.array([0.0, 0.0, 0.04])
    T_wo = T_wc @ make_pose(np.eye(3), [0.05, 0.02, 0.7])
    T = drag_translate(T_wo, T_wc, CAM, c, 30.0, -12.0)

    def pix(T):
        p = (inv_pose(T_wc) @ T)[:3, :3] @ c + (inv_pose(T_wc) @ T)[:3, 3]
        return CAM.project(p[None])[0], p[2]

    (uv0, z0), (uv1, z1) = pix(T_wo), pix(T)
    assert np.allclose(uv1 - uv0, [30.0, -12.0], atol=1e-9) and z1 == pytest.approx(z0)
    T2 = move_along_ray(T, T_wc, c, 0.05)
    uv2, z2 = pix(T2)
    assert np.allclose(uv2, uv1, atol=1e-9) and z2 == pytest.approx(z1 + 0.05)


def test_drag_rotate_turns_the_front_the_way_the_mouse_goes():
    T_wc = np.eye(4)
    c = np.zeros(3)
    T_wo = make_pose(np.eye(3), [0, 0, 0.5])
    assert np.array_equal(drag_rotate(T_wo, T_wc, c, 0, 0), T_wo)
    front = np.array([0, 0, -0.05])  # the point of the object facing the camera
    T = drag_rotate(T_wo, T_wc, c, 20, 0)
    assert (T[:3, :3] @ front)[0] > 0.005  # moved right
    T = drag_rotate(T_wo, T_wc, c, 0, 20)
    assert (T[:3, :3] @ front)[1] > 0.005  # moved down


def test_euler_round_trip():
    for _ in range(50):
        R = axis_angle_to_matrix(RNG.normal(size=3), RNG.uniform(0, np.pi))
        a = matrix_to_euler_xyz_deg(R)
        assert np.allclose(euler_xyz_deg_to_matrix(a), R, atol=1e-9)
    a = np.array([10.0, -20.0, 30.0])
    assert np.allclose(matrix_to_euler_xyz_deg(euler_xyz_deg_to_matrix(a)), a)


def test_place_at_pixel_puts_the_surface_on_the_depth(posed):
    s, objs = posed
    box = min(objs, key=lambda o: o.obj_id)
    depth = np.full((CAM.height, CAM.width), 0.8, np.float32)
    depth[:, :3] = 0  # holes must not matter elsewhere
    T_wc = _random_pose()
    R = T_wc[:3, :3] @ axis_angle_to_matrix([1, 0, 0], 0.4)
    for u, v in ((320, 240), (100, 400), (600, 30)):
        T = place_at_pixel(CAM, T_wc, depth, u, v, box.model, R)
        assert np.array_equal(T[:3, :3], R)
        r = ObjectRenderer([(1, box.model, T)]).render(CAM, T_wc, roi=(u, v, 1, 1))
        assert float(r.depth[0, 0]) == pytest.approx(0.8, abs=1e-4)
        # the centre lies on the clicked pixel's ray
        c = (inv_pose(T_wc) @ T)[:3, :3] @ model_centre(box.model) + (inv_pose(T_wc) @ T)[:3, 3]
        assert np.allclose(CAM.project(c[None])[0], [u, v], atol=1e-6)
    assert place_at_pixel(CAM, T_wc, depth, 0, 100, box.model, R) is None  # no depth there
