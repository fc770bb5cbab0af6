"""The whole flow in the window, offscreen: a raw synthetic scene (no trajectory, no
annotations) is tracked, every object placed and refined, previewed and exported as a
PROPS set, all through the window's actions."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
from PySide6.QtCore import Qt

from labeller.core.fileio import read_image, sha256_file
from labeller.formats.annotations import AnnotationDocument
from tests.gui.conftest import wait_render


def test_raw_scene_to_props_without_leaving_the_gui(qtbot, make_window, tmp_path):
    from labeller.synth import SynthConfig, run

    scene = tmp_path / "raw"
    run(SynthConfig(scene, frames=12, seed=3, width=320, height=240))  # no trajectory
    assert not (scene / "trajectory.txt").exists() and not (scene / "annotations.json").exists()
    w = make_window()
    assert w.open_scene(scene)
    # 1. track from the banner
    qtbot.mouseClick(w.banner.action, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.model.has_trajectory or "failed" in w.banner.label.text(),
                    timeout=180000)
    assert w.model.has_trajectory, w.banner.label.text()
    # 2. place every object: add its class, click its middle where it is best seen
    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    n = w.model.n_frames
    for g in gt.objects:
        masks = [read_image(w.model.scene.paths.gt_mask(t)) == g.id for t in range(n)]
        best = int(np.argmax([m.sum() for m in masks]))
        w.set_frame(best)
        oid = w.editor.add_object(g.class_name)
        assert oid is not None
        dt = cv2.distanceTransform(masks[best].astype(np.uint8), cv2.DIST_L2, 5)
        v, u = np.unravel_index(int(np.argmax(dt)), dt.shape)
        assert w.editor.place_at(int(u), int(v))
        # 3. refine against this frame's depth
        res = w.refiner.refine_and_wait("depth", frames=[best])
        assert res is not None
        w.editor.toggle_keyframe()
    assert len(w.model.object_ids) == len(gt.objects)
    assert w.save()
    saved = AnnotationDocument.read(scene / "annotations.json")
    assert saved.trajectory_sha256 == sha256_file(scene / "trajectory.txt")
    # 4. preview
    w.previewer.toggle(True)
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=120000)
    assert len(w.previewer.result.frame_ids) >= n - 1
    w.previewer.toggle(False)
    # 5. export a PROPS set
    dlg = w.export_dialog_open()
    dlg.format.setCurrentIndex(dlg.format.findData("props"))
    out = tmp_path / "props"
    dlg.out.setText(str(out))
    dlg.per_class.setValue(4)
    assert dlg.start()
    qtbot.waitUntil(lambda: not dlg.task.running() and dlg.run_button.isEnabled(),
                    timeout=300000)
    assert dlg.summary is not None, dlg.status.text()
    root = out / "Progress-Objects-Sample"
    pkls = [p for p in root.glob("*.pkl") if p.name != "meta.pkl"]
    assert pkls
    with open(pkls[0], "rb") as f:
        d = pickle.load(f, encoding="latin1")
    assert d["data"].shape[1:] == (32, 32, 3)
    assert not dlg.sheet.pixmap().isNull()
    dlg.close()
    wait_render(qtbot, w)
