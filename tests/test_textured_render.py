"""Textured ray casting (labeller.geometry.textured_render) against synthetic frames and
hand-made meshes whose colours are known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import ModelError
from labeller.core.poses import axis_angle_to_matrix, make_pose
from labeller.formats.models import resolve_model_path
from labeller.geometry.textured_render import (
    AMBIENT,
    TexturedRenderer,
    load_textured_model,
    sample_texture,
)
from labeller.synth import SynthConfig, run
from tests.helpers import SHARED_DATA

YCB = SHARED_DATA / "ycb_models"
CLASSES = ["cracker_box", "mustard_bottle", "tomato_soup_can"]


@pytest.fixture(scope="module")
def ycb_scene(tmp_path_factory):
    """A one-frame 320x240 synthetic scene rendered from the YCB meshes and textures."""
    if not YCB.is_dir():
        pytest.skip(f"YCB models not found at {YCB}")
    out = tmp_path_factory.mktemp("textured") / "scene"
    res = run(SynthConfig(out, frames=1, seed=3, classes=CLASSES, models_dir=YCB,
                          width=320, height=240))
    rgb = cv2.imread(str(out / "rgb" / "000000.png"))[..., ::-1].astype(np.float32) / 255
    mask = cv2.imread(str(out / "gt" / "masks" / "000000.png"), cv2.IMREAD_UNCHANGED)
    models = {o.id: load_textured_model(resolve_model_path(o.model, out, YCB)) for o in res.objects}
    return res, rgb, mask, models


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _turned_about_centre(T_world_obj: np.ndarray, centre_obj: np.ndarray, axis_obj,
                         deg: float) -> np.ndarray:
    """T_world_obj turned by `deg` about the model-frame axis through `centre_obj`."""
    R = axis_angle_to_matrix(np.asarray(axis_obj, float), np.radians(deg))
    return T_world_obj @ make_pose(R, centre_obj - R @ centre_obj)


def test_render_matches_synthetic_colour_inside_the_mask(ycb_scene):
    res, rgb, mask, models = ycb_scene
    assert all(m.has_texture and m.colour_source == "texture" for m in models.values())
    r = TexturedRenderer([(o.id, models[o.id], o.T_world_obj) for o in res.objects])
    out = r.render(res.camera, np.eye(4))  # the world is camera 0
    assert out.albedo.shape == (240, 320, 3) and out.albedo.dtype == np.float32
    assert out.inst.dtype == np.int32
    # Same meshes, same poses: the ids agree with the ground-truth masks everywhere.
    assert np.mean(out.inst == mask) > 0.995
    assert np.all((out.depth_m > 0) == (out.inst > 0))
    on = out.inst > 0
    assert out.shade[on].min() >= AMBIENT - 1e-6 and out.shade[on].max() <= 1 + 1e-6
    shaded = out.shaded()
    for o in res.objects:
        sel = (mask == o.id) & (out.inst == o.id)
        assert sel.sum() > 500, o.class_name
        # The frame has the scene's light, shadows, lens blur and noise; the texture
        # still explains most of it.
        assert _corr(shaded[sel], rgb[sel]) > 0.6, o.class_name


def test_a_model_turned_180_degrees_renders_other_colours(ycb_scene):
    res, rgb, mask, models = ycb_scene
    o = res.objects[0]  # the cracker box: nearly the same silhouette turned about its axes
    m = models[o.id]
    v = m.geometry.vertices
    centre = (v.min(0) + v.max(0)) / 2
    right = TexturedRenderer([(o.id, m, o.T_world_obj)]).render(res.camera, np.eye(4))
    sel_r = right.inst == o.id
    c_right = _corr(right.shaded()[sel_r], rgb[sel_r])
    for axis in np.eye(3):
        T = _turned_about_centre(o.T_world_obj, centre, axis, 180.0)
        turned = TexturedRenderer([(o.id, m, T)]).render(res.camera, np.eye(4))
        both = sel_r & (turned.inst == o.id)
        assert both.sum() > 0.5 * sel_r.sum()  # the box still covers most of its pixels
        c_turned = _corr(turned.shaded()[both], rgb[both])
        assert c_turned < c_right - 0.15, (axis, c_right, c_turned)
        # ...and the colours themselves differ, not only their agreement with the frame.
        diff = np.abs(turned.albedo[both] - right.albedo[both]).mean()
        assert diff > 0.1, axis


def _write_quad_obj(folder: Path, texture_rgb: np.ndarray) -> Path:
    """A 0.2 m square in the z = 0 plane facing -z (towards a camera at z < 0), UVs
    (0, 0) at x = y = -0.1 and (1, 1) at x = y = +0.1, with `texture_rgb` as its map."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "tex.png"), texture_rgb[..., ::-1])
    (folder / "quad.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    (folder / "quad.obj").write_text(
        "mtllib quad.mtl\n"
        "v -0.1 -0.1 0\nv 0.1 -0.1 0\nv 0.1 0.1 0\nv -0.1 0.1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "usemtl m\nf 1/1 3/3 2/2\nf 1/1 4/4 3/3\n")
    return folder / "quad.obj"


CAM = CameraIntrinsics(64, 64, 80.0, 80.0, 31.5, 31.5)


def test_texture_orientation_follows_the_file(tmp_path):
    """Texture row 0 is v = 1 (the file's top row): a camera with y down sees v = 1 at
    the bottom of the image when it looks at the quad's front (-z) with y down."""
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:4] = (255, 0, 0)  # top half red: v in (0.5, 1], model y > 0
    tex[4:] = (0, 0, 255)  # bottom half blue
    m = load_textured_model(_write_quad_obj(tmp_path / "q", tex))
    assert m.has_texture
    T_world_cam = make_pose(np.eye(3), (0.0, 0.0, -0.5))  # looks along +z at the quad
    out = TexturedRenderer([(7, m, np.eye(4))]).render(CAM, T_world_cam)
    assert set(np.unique(out.inst)) == {0, 7}
    # Image y down = model +y: rows below the centre see v > 0.5, the red half.
    below, above = out.albedo[45, 32], out.albedo[18, 32]
    np.testing.assert_allclose(below, (1, 0, 0), atol=1e-3)
    np.testing.assert_allclose(above, (0, 0, 1), atol=1e-3)
    # Seen head-on: full headlight.
    np.testing.assert_allclose(out.shade[32, 32], 1.0, atol=1e-4)
    # depth_m is the camera z of the plane
    np.testing.assert_allclose(out.depth_m[32, 32], 0.5, atol=1e-5)


def test_shade_falls_with_the_angle_to_the_camera(tmp_path):
    tex = np.full((4, 4, 3), 200, np.uint8)
    m = load_textured_model(_write_quad_obj(tmp_path / "q", tex))
    T_world_obj = make_pose(axis_angle_to_matrix(np.array([0.0, 1.0, 0.0]), np.radians(60)),
                            (0.0, 0.0, 0.0))
    T_world_cam = make_pose(np.eye(3), (0.0, 0.0, -0.5))
    cam = CameraIntrinsics(64, 64, 80.0, 80.0, 32.0, 32.0)  # pixel (32, 32) looks along z
    out = TexturedRenderer([(1, m, T_world_obj)]).render(cam, T_world_cam)
    # The centre ray hits the plane at 60 deg: cos = 0.5.
    np.testing.assert_allclose(out.shade[32, 32], AMBIENT + (1 - AMBIENT) * 0.5, atol=2e-3)


def test_sample_texture_is_bilinear_with_rows_from_the_top():
    tex = np.array([[[0, 0, 0], [100, 100, 100]],
                    [[200, 200, 200], [250, 250, 250]]], np.uint8)  # row 0 = v in (0.5, 1]
    uv = np.array([[0.25, 0.75], [0.75, 0.75], [0.25, 0.25], [0.5, 0.5]], np.float32)
    s = sample_texture(tex, uv) * 255
    np.testing.assert_allclose(s[:, 0], [0, 100, 200, 137.5], atol=0.6)


def _ply(path: Path, colours: bool) -> Path:
    """A triangle in z = 0 facing -z, vertex colours red/green/blue (or none)."""
    v = np.array([[-0.1, -0.1, 0], [0.1, -0.1, 0], [0.0, 0.1, 0]], np.float32)
    head = ["ply", "format ascii 1.0", "element vertex 3", "property float x",
            "property float y", "property float z"]
    rows = [f"{a} {b} {c}" for a, b, c in v]
    if colours:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
        rows = [r + " " + c for r, c in zip(rows, ["255 0 0", "0 255 0", "0 0 255"], strict=True)]
    head += ["element face 1", "property list uchar int vertex_indices", "end_header"]
    path.write_text("\n".join(head + rows + ["3 0 2 1"]) + "\n")
    return path


def test_models_without_a_texture_use_vertex_colours_or_a_flat_colour(tmp_path):
    T_world_cam = make_pose(np.eye(3), (0.0, 0.0, -0.5))
    vc = load_textured_model(_ply(tmp_path / "vc.ply", True))
    assert not vc.has_texture and vc.colour_source == "vertex colours"
    out = TexturedRenderer([(1, vc, np.eye(4))]).render(CAM, T_world_cam)
    centre = out.albedo[out.inst == 1].mean(0)
    np.testing.assert_allclose(centre.sum(), 1.0, atol=0.05)  # a blend of the three
    assert np.all(centre > 0.15)
    flat = load_textured_model(_ply(tmp_path / "flat.ply", False)).with_flat_colour((10, 200, 30))
    assert not flat.has_texture and flat.colour_source == "flat colour"
    out = TexturedRenderer([(2, flat, np.eye(4))]).render(CAM, T_world_cam)
    np.testing.assert_allclose(out.albedo[out.inst == 2], np.float32([10, 200, 30]) / 255 +
                               np.zeros((int((out.inst == 2).sum()), 3)), atol=1e-6)


def test_models_are_cached_and_bad_files_are_one_line_errors(tmp_path):
    p = _ply(tmp_path / "vc.ply", True)
    assert load_textured_model(p) is load_textured_model(p)
    with pytest.raises(ModelError, match="model file not found"):
        load_textured_model(tmp_path / "missing.obj")
    bad = tmp_path / "bad.ply"
    bad.write_text("not a mesh\n")
    with pytest.raises(ModelError, match="not a PLY file"):
        load_textured_model(bad)


def test_empty_roi_and_mask(tmp_path):
    m = load_textured_model(_ply(tmp_path / "vc.ply", True))
    r = TexturedRenderer([(1, m, np.eye(4))])
    T_world_cam = make_pose(np.eye(3), (0.0, 0.0, -0.5))
    empty = r.render(CAM, T_world_cam, roi=(0, 0, 0, 0))
    assert empty.albedo.shape == (0, 0, 3)
    mask = np.zeros((64, 64), bool)
    mask[30:34, 30:34] = True
    part = r.render(CAM, T_world_cam, mask=mask)
    assert np.all(part.inst[~mask] == 0) and np.all(part.inst[mask] == 1)
