"""Screenshot of the main window with a scene loaded and objects overlaid
(docs/images/gui_main.png, shown in the README). It must show the overlays: the test
compares the view with and without them."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PySide6.QtGui import QImage

from labeller.synth import SynthConfig, run
from tests.gui.conftest import wait_render
from tests.helpers import ROOT, SHARED_DATA

# The README's screenshot is refreshed only on request (LABELLER_UPDATE_SCREENSHOTS=1):
# a test run must not rewrite tracked files.
README_SCREENSHOT = ROOT / "docs" / "images" / "gui_main.png"


def _pixels(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, :3 * w].reshape(h, w, 3).copy()


def test_screenshot_main_window_with_overlays(qtbot, make_window, tmp_path):
    scene = tmp_path / "kitchen_table"
    run(SynthConfig(scene, frames=3, seed=11, with_annotations=True))  # 640x480
    lib = SHARED_DATA / "ycb_models"
    w = make_window(lib if lib.is_dir() else None)
    w.resize(1400, 860)
    assert w.open_scene(scene)
    # This screenshot shows the silhouettes (the textured style has its own,
    # test_screenshot_textured.py).
    w.overlay_toggles.set_mode("silhouette")
    ids = w.model.object_ids
    w.set_frame(1)
    w.editor.toggle_keyframe()
    # the selected object mid-edit: moved 3 cm right and 2 cm up, turned 10 degrees, so
    # its silhouette stands apart from the real object
    sel = next(o.id for o in w.model.objects() if o.class_name == "cracker_box")
    w.select(sel)
    for _ in range(3):
        w.editor.nudge(0, +1, coarse=True)
    for _ in range(2):
        w.editor.nudge(1, -1, coarse=True)
    w.editor.rotate_step(2, +1, coarse=True)
    w.editor.rotate_step(2, +1, coarse=True)
    wait_render(qtbot, w)
    drawn = set(np.unique(w.view._inst).tolist()) - {0}
    assert len(drawn) >= 4, drawn
    qtbot.wait(50)
    with_overlay = _pixels(w.view.grab().toImage())
    shot = w.grab()

    for i in ids:
        w.model.set_visible(i, False)
    wait_render(qtbot, w)
    qtbot.wait(50)
    without = _pixels(w.view.grab().toImage())
    changed = (np.abs(with_overlay.astype(int) - without.astype(int)).sum(-1) > 30).mean()
    assert changed > 0.05, f"only {changed:.1%} of the view shows the overlay"
    assert with_overlay.std() > 20  # a real picture, not a blank widget

    out = tmp_path / "gui_main.png"
    assert shot.save(str(out))
    back = _pixels(QImage(str(out)))
    assert back.shape[0] >= 800 and back.shape[1] >= 1300
    if os.environ.get("LABELLER_UPDATE_SCREENSHOTS"):
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, README_SCREENSHOT)
