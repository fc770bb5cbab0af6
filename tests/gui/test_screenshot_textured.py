"""Screenshot of the textured overlay with object axes (docs/images/gui_textured.png, in
the README): the YCB meshes drawn in their own colours over a frame rendered from the
same meshes, one of them turned 180 degrees so the screenshot shows what a flip looks like."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from labeller.core.poses import axis_angle_to_matrix, make_pose
from labeller.synth import SynthConfig, run
from tests.gui.conftest import wait_render
from tests.helpers import ROOT, SHARED_DATA

README_SCREENSHOT = ROOT / "docs" / "images" / "gui_textured.png"
YCB = SHARED_DATA / "ycb_models"


def _pixels(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, :3 * w].reshape(h, w, 3).copy()


def test_screenshot_textured_overlay_with_axes(qtbot, make_window, tmp_path):
    if not YCB.is_dir():
        pytest.skip(f"YCB models not found at {YCB}")
    scene = tmp_path / "kitchen_table"
    run(SynthConfig(scene, frames=2, seed=11, with_annotations=True, models_dir=YCB))
    w = make_window(YCB)
    w.resize(1280, 800)
    assert w.open_scene(scene)
    w.set_frame(1)
    # Turn the cracker box 180 degrees about its long axis through its centre: the same
    # outline, the back of the box where its front should be.
    box = next(o for o in w.model.objects() if o.class_name == "cracker_box")
    mesh = w.model.object_model(box.id)
    assert mesh is not None
    centre = (mesh.vertices.min(0) + mesh.vertices.max(0)) / 2
    axis = np.eye(3)[int(np.argmax(mesh.extent_m))]
    R = axis_angle_to_matrix(axis, np.pi)
    w.select(box.id)
    w.editor.push_pose(box.id, box.T_world_obj @ make_pose(R, centre - R @ centre),
                       "Turn 180°")
    assert w.state.overlay_style.mode == "textured"
    qtbot.keyClick(w, Qt.Key.Key_X)
    wait_render(qtbot, w)
    ov = w.last_result.overlay
    assert ov is not None and w.last_result.request.style.axes
    inside = (ov.inst > 0) & (ov.rgba[..., 3] < 255)
    assert len(np.unique(ov.rgba[..., :3][inside], axis=0)) > 500  # textures, not fills
    qtbot.wait(50)
    with_overlay = _pixels(w.view.grab().toImage())
    shot = w.grab()
    qtbot.keyClick(w, Qt.Key.Key_T)  # silhouette
    wait_render(qtbot, w)
    qtbot.wait(50)
    flat = _pixels(w.view.grab().toImage())
    changed = (np.abs(with_overlay.astype(int) - flat.astype(int)).sum(-1) > 30).mean()
    assert changed > 0.01, f"only {changed:.1%} of the view differs from the silhouettes"
    out = tmp_path / "gui_textured.png"
    assert shot.save(str(out))
    if os.environ.get("LABELLER_UPDATE_SCREENSHOTS"):
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, README_SCREENSHOT)
