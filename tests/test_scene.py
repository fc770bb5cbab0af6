"""Scene reading, real-data depth scales, the real-data render oracle, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, ModelError
from labeller.core.poses import make_pose, quat_wxyz_to_matrix
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.models import load_model
from labeller.formats.scene import Scene, scene_problems
from labeller.geometry.render import ObjectRenderer
from tests.helpers import snapshot, write_tiny_scene


def link_scene(root: Path, rgb: Path, depth: Path, camera: dict) -> Path:
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    os.symlink(rgb.resolve(), root / "rgb" / "000000.png")
    os.symlink(depth.resolve(), root / "depth" / "000000.png")
    (root / "camera.json").write_text(json.dumps(camera))
    return root


def test_tiny_scene_reads(tiny_scene):
    s = Scene(tiny_scene)
    assert s.n_frames == 3
    rgb, d = s.rgb(1), s.depth(1)
    assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
    assert d.shape == (24, 32) and d.dtype == np.float32
    assert d.mean() == pytest.approx(0.8)
    assert not s.has_trajectory and not s.has_annotations
    assert scene_problems(tiny_scene) == []


def test_rgb_is_rgb_not_bgr(tmp_path):
    root = write_tiny_scene(tmp_path / "s", n=1)
    img = np.zeros((24, 32, 3), np.uint8)
    img[..., 0] = 255  # red in RGB
    from labeller.core.fileio import write_image

    write_image(root / "rgb" / "000000.png", img)
    assert Scene(root).rgb(0)[0, 0].tolist() == [255, 0, 0]
    assert cv2.imread(str(root / "rgb" / "000000.png"))[0, 0].tolist() == [0, 0, 255]  # BGR on disk


def test_info_on_valid_scene(tiny_scene, capsys):
    assert cli(["info", str(tiny_scene)]) == 0
    out = capsys.readouterr().out
    assert "3 (32x24" in out and "trajectory  none" in out


def test_posecnn_depth_scale(tmp_path, shared_data):
    d = shared_data / "rgbd" / "posecnn_ycb"
    cam = {"width": 640, "height": 480, "fx": 618.0173, "fy": 618.0034, "cx": 312.3770,
           "cy": 232.3753, "depth_scale": 1000.0}
    s = Scene(link_scene(tmp_path / "p", d / "000000-color.png", d / "000000-depth.png", cam))
    depth = s.depth(0)
    assert np.median(depth[depth > 0]) == pytest.approx(0.73, abs=0.03)


def test_ycbv_depth_scale(tmp_path, shared_data):
    d = shared_data / "rgbd" / "ycbv_629"
    # BOP ycbv depth_scale 0.1 mm per unit = 10000 units per metre.
    cam = {"width": 640, "height": 480, "fx": 1066.778, "fy": 1067.487, "cx": 312.9869,
           "cy": 241.3109, "depth_scale": 10000.0}
    s = Scene(link_scene(tmp_path / "y", d / "rgb" / "000629.png", d / "depth" / "000629.png", cam))
    depth = s.depth(0)
    assert np.median(depth[depth > 0]) == pytest.approx(0.907, abs=0.03)


def test_tum_depth_scale(tmp_path):
    # TUM RGB-D stores depth * 5000; no real sample is in shared/, so build one.
    root = write_tiny_scene(tmp_path / "tum", n=2, depth_scale=5000.0, depth_m=1.234)
    assert cv2.imread(str(root / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)[0, 0] == 6170
    assert Scene(root).depth(0)[0, 0] == pytest.approx(1.234)


def test_real_data_oracle_posecnn(shared_data):
    """YCB meshes at PoseCNN's poses_refined, projected with the frame's K, match the real
    depth: this pins units, quaternion order, intrinsics and the renderer together."""
    d = shared_data / "rgbd" / "posecnn_ycb"
    named = json.loads((d / "posecnn_results_named.json").read_text())
    cam = CameraIntrinsics(640, 480, 618.0173, 618.0034, 312.3770, 232.3753, 1000.0)
    checked = 0
    for frame, dets in named["frames"].items():
        depth = cv2.imread(str(d / f"{frame}-depth.png"), cv2.IMREAD_UNCHANGED) / 1000.0
        objs = []
        for i, det in enumerate(dets, 1):
            mesh = shared_data / "ycb_models" / det["ycb_name"] / "textured.obj"
            if mesh.is_file():
                T_cam_obj = make_pose(quat_wxyz_to_matrix(det["q_wxyz"]), det["t_m"])
                objs.append((i, load_model(mesh), T_cam_obj))
        r = ObjectRenderer(objs).render(cam, np.eye(4))
        for obj_id, _, _ in objs:
            m = (r.inst == obj_id) & (depth > 0)
            if m.sum() < 200:
                continue
            dz = np.median(np.abs(r.depth[m] - depth[m]))
            assert dz < 0.015, (frame, obj_id, dz)
            checked += 1
    assert checked >= 10


# --- bad input: one parametrised case each -------------------------------------------

def _del(rel):
    return lambda root: (root / rel).unlink()


def _write_depth(dtype, shape=(24, 32)):
    return lambda root: cv2.imwrite(str(root / "depth" / "000001.png"), np.full(shape, 200, dtype))


def _camera(**changes):
    def f(root):
        cam = json.loads((root / "camera.json").read_text())
        for k, v in changes.items():
            if v is None:
                cam.pop(k)
            else:
                cam[k] = v
        (root / "camera.json").write_text(json.dumps(cam))
    return f


def _traj(text):
    return lambda root: (root / "trajectory.txt").write_text(text)


def _annotations(mutate):
    def f(root):
        doc = AnnotationDocument([ObjectAnnotation(1, "mug", "models/mug.ply", np.eye(4))])
        d = doc.to_dict()
        mutate(d)
        (root / "annotations.json").write_text(json.dumps(d))
    return f


def _mm_mesh(root):
    import open3d as o3d

    (root / "models").mkdir(exist_ok=True)
    box = o3d.geometry.TriangleMesh.create_box(100.0, 80.0, 60.0)  # millimetres
    o3d.io.write_triangle_mesh(str(root / "models" / "mug.ply"), box)
    _annotations(lambda d: None)(root)


def _garbage_png(root):
    (root / "rgb" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")


IDENTITY_LINE = "0 0 0 0 0 0 0 1\n"
BAD_INPUTS = {
    "missing rgb frame": (_del("rgb/000001.png"), "rgb/000001.png", "missing rgb frame 1"),
    "missing depth frame": (_del("depth/000002.png"), "depth/000002.png", "missing depth frame 2"),
    "rgb/depth size mismatch": (_write_depth(np.uint16, (12, 16)), "depth/000001.png", "differs"),
    "depth not 16-bit": (_write_depth(np.uint8), "depth/000001.png", "16-bit"),
    "camera missing field": (_camera(fy=None), "camera.json", "missing field 'fy'"),
    "camera fx <= 0": (_camera(fx=0.0), "camera.json", "'fx' must be > 0"),
    "trajectory duplicated id": (_traj(IDENTITY_LINE * 2), "trajectory.txt:2", "duplicated frame id 0"),
    "trajectory id outside": (_traj("7 0 0 0 0 0 0 1\n"), "trajectory.txt:1", "outside the scene's frames 0..2"),
    "trajectory NaN pose": (_traj("0 nan 0 0 0 0 0 1\n"), "trajectory.txt:1", "NaN"),
    "trajectory non-rigid pose": (_traj("0 0 0 0 0 0 0 2\n"), "trajectory.txt:1", "not rigid"),
    "annotations unknown key": (_annotations(lambda d: d.update(colour="red")), "annotations.json", "colour: unknown key"),
    "annotations unknown object key": (_annotations(lambda d: d["objects"][0].update(scale=2)), "annotations.json", "objects[0].scale: unknown key"),
    "annotations non-rigid pose": (_annotations(lambda d: d["objects"][0].update(T_world_obj=np.diag([2.0, 1, 1, 1]).tolist())), "annotations.json", "objects[0].T_world_obj: pose is not rigid"),
    "annotations newer version": (_annotations(lambda d: d.update(version=99)), "annotations.json", "version: 99 is newer"),
    "unreadable png": (_garbage_png, "rgb/000002.png", "damaged image (PNG chunk runs past the end"),
    "mesh in mm": (_mm_mesh, "models/mug.ply", "millimetres"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_info(case, tmp_path, capsys):
    root = write_tiny_scene(tmp_path / "bad")
    breaker, where, words = BAD_INPUTS[case]
    breaker(root)
    before = snapshot(root)
    rc = cli(["info", str(root)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 4 and "Traceback" not in err
    assert where in lines[0] and words in lines[0], lines[0]
    assert snapshot(root) == before  # nothing written or changed


@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if not c.startswith(("annotations", "trajectory", "mesh"))])
def test_bad_input_scene_open(case, tmp_path):
    """Opening (what every stage does) fails with the same message, for layout problems."""
    root = write_tiny_scene(tmp_path / "bad")
    breaker, where, words = BAD_INPUTS[case]
    breaker(root)
    with pytest.raises(BadInput) as exc:
        s = Scene(root)
        for t in range(s.n_frames):
            s.rgb(t), s.depth(t)
    assert where in str(exc.value) and words in str(exc.value)


def test_many_problems_are_capped(tmp_path, capsys):
    root = write_tiny_scene(tmp_path / "bad", n=8)
    for t in range(1, 7):
        (root / "depth" / f"{t:06d}.png").unlink()
    assert cli(["info", str(root)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and lines[-1] == "… and 3 more"


def test_mm_mesh_rejected_by_loader(tmp_path):
    _mm_mesh(tmp_path)
    with pytest.raises(ModelError, match="millimetres"):
        load_model(tmp_path / "models" / "mug.ply")
