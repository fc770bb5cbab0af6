"""Sanity checks on open and import (`labeller.formats.sanity`): depth scale, intrinsics,
timestamps, model units; `labeller info --strict`, `labeller import --strict`, the GUI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.sanity import (
    depth_scale_warning,
    intrinsics_warnings,
    model_size_warning,
    scene_warnings,
    timestamps_warnings,
)
from tests.helpers import SHARED_DATA, write_tiny_scene

MUG = SHARED_DATA / "ycb_models/025_mug/textured.obj"


def _set_camera(scene: Path, **fields) -> None:
    cam = json.loads((scene / "camera.json").read_text())
    cam.update(fields)
    (scene / "camera.json").write_text(json.dumps(cam))


def test_plausible_scene_has_no_warnings(tiny_scene, capsys):
    assert scene_warnings(tiny_scene) == []
    assert cli(["info", str(tiny_scene), "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_depth_scale_off_by_1000_names_the_file_and_the_scale(tmp_path, capsys):
    # mm depth (0.8 m = 800) with camera.json saying metres (depth_scale 1): 800 m.
    scene = write_tiny_scene(tmp_path / "s", depth_scale=1000.0, depth_m=0.8)
    _set_camera(scene, depth_scale=1.0)
    assert cli(["info", str(scene)]) == 0
    err = capsys.readouterr().err
    assert (f"labeller info: warning: {scene / 'camera.json'}: median depth 800 m is outside "
            "0.1-10 m, so depth_scale 1 units/m is likely wrong; depth_scale 1000 would give "
            "0.80 m") in err
    assert cli(["info", str(scene), "--strict"]) == 2
    assert "1 warning(s) and --strict" in capsys.readouterr().err
    # The other way: depth_scale 1e6 (mm PNG read as micrometres): 0.8 mm.
    w = depth_scale_warning(800.0, 1e6, "cam.json")
    assert w is not None and "median depth 0.0008 m" in w and "depth_scale 1000 would" in w
    assert depth_scale_warning(800.0, 1000.0, "cam.json") is None
    # TUM-like 5000 units/m read as mm: 1.2 m * 5000 = 6000 -> 6 m is still plausible, but
    # 2.4 m at 10000 units/m read as mm is 24 m: the check names 10000.
    w = depth_scale_warning(24000.0, 1000.0, "cam.json")
    assert w is not None and "depth_scale 10000 would give 2.40 m" in w


def test_intrinsics_for_another_resolution(tmp_path, capsys):
    from labeller.core.camera import CameraIntrinsics

    # K of a 1280x960 image kept for a 640x480 one: fx fine, principal point at the edge.
    cam = CameraIntrinsics(640, 480, 1170.0, 1170.0, 639.5, 479.5)
    ws = intrinsics_warnings(cam, "camera.json")
    assert len(ws) == 2
    assert ("camera.json: principal point cx 639.5 is outside the middle half of the image "
            "(0-640 px); K looks like it is for an image 2 x this size: scale fx fy cx cy by "
            "0.5") in ws[0]
    wide = CameraIntrinsics(640, 480, 100.0, 2000.0, 320.0, 240.0)
    ws = intrinsics_warnings(wide, "camera.json")
    assert [w.split(" is ")[0] for w in ws] == ["camera.json: fx 100", "camera.json: fy 2000"]
    assert "0.16 x the image width 640 (expected 0.3-3 x)" in ws[0]
    assert intrinsics_warnings(CameraIntrinsics(640, 480, 585, 585, 320, 240), "c") == []
    scene = write_tiny_scene(tmp_path / "s")
    _set_camera(scene, fx=500.0)
    assert cli(["info", str(scene), "--strict"]) == 2
    assert f"{scene / 'camera.json'}: fx 500 is 15.62 x the image width 32" in \
        capsys.readouterr().err


def test_timestamps_that_do_not_pair(tmp_path, capsys):
    ws = timestamps_warnings({0: 1.0, 1: 1.1, 2: 1.05, 7: 2.0}, 4, "timestamps.txt")
    assert any("1 of 4 frames have no timestamp (first: frame 3)" in w for w in ws)
    assert any("timestamps for 1 frames that do not exist (first: 7; the scene has 4)" in w
               for w in ws)
    assert any("timestamps do not increase (frame 2 at 1.050000 s is not after frame 1" in w
               for w in ws)
    scene = write_tiny_scene(tmp_path / "s", n=3)
    (scene / "timestamps.txt").write_text("0 10.0\n1 10.03\n")
    assert cli(["info", str(scene)]) == 0
    assert f"{scene / 'timestamps.txt'}: 1 of 3 frames have no timestamp (first: frame 2)" in \
        capsys.readouterr().err


def _mesh_in_mm(dest: Path) -> Path:
    import open3d as o3d

    if not MUG.is_file():
        pytest.skip(f"real data not found at {MUG}")
    mesh = o3d.io.read_triangle_mesh(str(MUG), False)
    mesh.scale(1000.0, center=np.zeros(3))
    dest.parent.mkdir(parents=True, exist_ok=True)
    o3d.io.write_triangle_mesh(str(dest), mesh)
    return dest


def test_model_in_mm_warns_with_the_fix(tmp_path, capsys):
    assert model_size_warning(Path("m.ply"), "mug", 0.117) is None
    w = model_size_warning(Path("m.ply"), "mug", 117.0)
    assert w == ("m.ply: model is 117 units across but a mug is about 0.117 m: it is probably "
                 "in millimetres; scale it by 0.001 (models are in metres)")
    assert "1000x too small" in model_size_warning(Path("m.ply"), "mug", 0.000117)
    assert "probably in millimetres" in model_size_warning(Path("x.ply"), "drill", 180.0)
    assert model_size_warning(Path("x.ply"), "drill", 0.18) is None
    # In a scene: the ground-truth objects' models and everything under models/.
    scene = write_tiny_scene(tmp_path / "s")
    mm = _mesh_in_mm(scene / "models" / "mug.ply")
    doc = AnnotationDocument([ObjectAnnotation(1, "mug", "models/mug.ply", np.eye(4))])
    (scene / "gt").mkdir()
    doc.write(scene / "gt/annotations.json")
    assert cli(["info", str(scene)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {mm}: model is " in err and "but a mug is about 0.117 m: it is probably " \
        "in millimetres; scale it by 0.001" in err
    assert err.count("probably in millimetres") == 1  # one file, one warning
    assert cli(["info", str(scene), "--strict"]) == 2


def test_progresslabeller_mm_model_warns_and_keeps_objects_as_gt(tmp_path, capsys):
    from labeller.synth import SynthConfig, run
    from tests.test_importers_formats import _write_progresslabeller

    synth = tmp_path / "synth"
    run(SynthConfig(synth, frames=3, seed=3, width=96, height=72, classes=["mug"],
                    n_objects=1))
    src = _write_progresslabeller(synth, tmp_path / "pl")
    model_dir = src / "model" / "mug"
    for f in model_dir.iterdir():
        f.unlink()
    _mesh_in_mm(model_dir / "mug.ply")
    dest = tmp_path / "scene"
    assert cli(["import", "progresslabeller", str(src), str(dest)]) == 0
    err = capsys.readouterr().err
    assert f"{model_dir / 'mug.ply'}: model is " in err and "scale it by 0.001" in err
    assert "models in the wrong units (above); the 1 objects went to gt/annotations.json" in err
    assert not (dest / "annotations.json").exists() and (dest / "gt/annotations.json").exists()
    shutil.rmtree(dest)
    assert cli(["import", "progresslabeller", str(src), str(dest), "--strict"]) == 2
    assert "not written (--strict)" in capsys.readouterr().err and not dest.exists()


def test_gui_shows_sanity_warnings_without_blocking(tmp_path, qtbot):
    from PySide6.QtWidgets import QWidget

    from labeller.annotate.document import DocumentModel
    from labeller.gui.scene_files import show_sanity_warnings

    scene = write_tiny_scene(tmp_path / "s")
    parent = QWidget()
    qtbot.addWidget(parent)
    assert show_sanity_warnings(parent, DocumentModel.open(scene)) is None
    _set_camera(scene, depth_scale=1.0)
    box = show_sanity_warnings(parent, DocumentModel.open(scene))
    assert box is not None and box.isVisible()  # open(), not exec(): the call returned
    assert f"{scene / 'camera.json'}: median depth 800 m" in box.text()
    assert "depth_scale 1000 would give 0.80 m" in box.text()
    box.close()
