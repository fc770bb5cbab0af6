"""Screenshots of the multi-view check and the propagation preview
(docs/images/gui_multiview.png, docs/images/gui_preview.png). Written to tmp_path;
copied into docs/ only with LABELLER_UPDATE_SCREENSHOTS=1 (a test run must not rewrite
tracked files). Each must show what it is about: the multi-view frames draw the
objects, the preview shows flagged frames on the timeline and red/green objects."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PySide6.QtGui import QImage

from labeller.formats.annotations import AnnotationDocument
from labeller.synth import SynthConfig, run
from tests.gui.conftest import wait_render
from tests.helpers import ROOT

DOCS = ROOT / "docs" / "images"


def _pixels(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, :3 * w].reshape(h, w, 3).copy()


def _save(shot, tmp_path, name: str) -> None:
    out = tmp_path / name
    assert shot.save(str(out))
    if os.environ.get("LABELLER_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOCS / name)


def _scene(tmp_path, off_by_m: float = 0.0):
    scene = tmp_path / "kitchen_table"
    run(SynthConfig(scene, frames=24, seed=11, with_annotations=True))  # 640x480
    if off_by_m:
        doc = AnnotationDocument.read(scene / "annotations.json")
        box = next(o for o in doc.objects if o.class_name == "cracker_box")
        box.T_world_obj[:3, 3] += np.array([off_by_m, 0.0, off_by_m])  # off ~2.8 cm
        doc.write(scene / "annotations.json")
    return scene


def test_screenshot_multiview(qtbot, make_window, tmp_path):
    scene = _scene(tmp_path)
    w = make_window()
    w.resize(1400, 980)
    assert w.open_scene(scene)
    box = next(o.id for o in w.model.objects() if o.class_name == "cracker_box")
    w.select(box)
    w.editor.nudge(2, +1, coarse=True)  # 2 cm along the main view's ray: hard to see here,
    w.editor.nudge(2, +1, coarse=True)  # obvious in the other views
    w.multiview.widget.count.setValue(3)
    w.multiview.toggle(True)
    wait_render(qtbot, w)
    qtbot.waitUntil(w.multiview.idle, timeout=30000)
    qtbot.waitUntil(lambda: all(v.shown_gen > 0 for v in w.multiview.views), timeout=30000)
    qtbot.wait(100)
    assert len(w.multiview.views) == 3
    for v in w.multiview.views:
        assert box in np.unique(v._inst)
        assert _pixels(v.grab().toImage()).std() > 20
    _save(w.grab(), tmp_path, "gui_multiview.png")


def test_screenshot_preview(qtbot, make_window, tmp_path):
    scene = _scene(tmp_path, off_by_m=0.02)
    w = make_window()
    w.resize(1400, 860)
    assert w.open_scene(scene)
    w.previewer.toggle(True)
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=120000)
    assert w.previewer.result.flagged_frames()
    w.set_frame(0)
    w.previewer.jump_flagged(+1) if w.current_frame not in w.previewer.result.flagged_frames() else None
    wait_render(qtbot, w)
    qtbot.wait(100)
    cols = {o.color_rgb for o in w.overlay_objects()}
    assert (255, 40, 40) in cols and (40, 220, 90) in cols
    assert w.timeline.flagged
    _save(w.grab(), tmp_path, "gui_preview.png")
