"""Autosave + recovery (a killed app, a corrupt annotations.json), the export
dialog (propagate + export in the background, progress, cancel, contact sheet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QMessageBox

from labeller.core.fileio import sha256_file
from labeller.formats.annotations import AnnotationDocument
from tests.gui.conftest import wait_render

BOX = 3
ROOT = Path(__file__).resolve().parents[2]

KILLED_APP = textwrap.dedent("""
    import json, os, signal, sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from labeller.gui.app import MainWindow
    scene, out = sys.argv[1], sys.argv[2]
    app = QApplication([])
    w = MainWindow()
    w.show()
    assert w.open_scene(scene)
    w.select(3)
    w.editor.nudge(0, +1, True)      # 1 cm right (Shift+Right)
    w.editor.rotate_step(2, +1, True)  # 5 degrees about the camera z (Shift+O)
    json.dump(w.model.pose(3).tolist(), open(out, "w"))
    def poll():
        if w.model.autosave_path.is_file():
            os.kill(os.getpid(), signal.SIGKILL)  # no save, no close, no cleanup
        QTimer.singleShot(50, poll)
    QTimer.singleShot(50, poll)
    app.exec()
""")


def test_killed_app_edit_is_recovered_on_reopen(qtbot, make_window, scene_copy, dialogs,
                                                tmp_path):
    scene = scene_copy()
    ann = scene / "annotations.json"
    sha_before = sha256_file(ann)
    expected = tmp_path / "expected.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LABELLER_AUTOSAVE_MS="200",
               LABELLER_CONFIG_DIR=str(tmp_path / "cfg"), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", KILLED_APP, str(scene), str(expected)], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]  # SIGKILL, as after a crash
    T_edit = np.array(json.loads(expected.read_text()))
    assert sha256_file(ann) == sha_before  # nothing was saved
    assert (scene / ".annotations.autosave.json").is_file()
    # reopen: the only dialog is the recovery offer; accept it
    dialogs.answer = QMessageBox.Yes
    w = make_window()
    assert w.open_scene(scene)
    assert dialogs.kinds() == ["question"]
    assert "autosave is newer" in dialogs.calls[0][2]
    assert np.array_equal(w.model.pose(BOX), T_edit)
    others = AnnotationDocument.read(ann)
    for o in others.objects:
        if o.id != BOX:
            assert np.array_equal(w.model.pose(o.id), o.T_world_obj)
    assert w.model.dirty and w.isWindowModified()
    assert sha256_file(ann) == sha_before  # recovering does not write annotations.json
    assert w.save()
    assert np.array_equal(AnnotationDocument.read(ann).object(BOX).T_world_obj, T_edit)
    assert not (scene / ".annotations.autosave.json").exists()  # saved: side file gone
    wait_render(qtbot, w)


def test_autosave_timer_writes_side_file_only_when_dirty(qtbot, make_window, scene_copy,
                                                         dialogs):
    from labeller.gui.autosave import AUTOSAVE_INTERVAL_MS

    assert AUTOSAVE_INTERVAL_MS == 60_000
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    assert w.autosaver.timer.isActive() and w.autosaver.timer.interval() == 60_000
    side = scene / ".annotations.autosave.json"
    assert w.autosaver.autosave() is None and not side.exists()  # clean: nothing to autosave
    w.select(BOX)
    w.editor.nudge(2, +1)
    assert w.autosaver.autosave() == side and side.is_file()
    doc = AnnotationDocument.read(side)
    assert np.array_equal(doc.object(BOX).T_world_obj, w.model.pose(BOX))
    # closing and choosing Discard drops the autosave with the changes
    dialogs.answer = QMessageBox.Discard
    w.close()
    assert not side.exists()


def test_older_autosave_is_not_offered_and_discard_deletes_it(qtbot, make_window, scene_copy,
                                                              dialogs):
    scene = scene_copy()
    side = scene / ".annotations.autosave.json"
    doc = AnnotationDocument.read(scene / "annotations.json")
    doc.object(BOX).T_world_obj[0, 3] += 0.05
    doc.write(side)
    st = (scene / "annotations.json").stat()
    os.utime(side, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # older than the saved file
    w = make_window()
    assert w.open_scene(scene)
    assert dialogs.calls == []  # a valid scene with an older autosave: no dialog
    assert not w.model.dirty
    # newer now: offered; "Discard" removes the side file and keeps annotations.json
    os.utime(side, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    dialogs.answer = QMessageBox.Discard
    assert w.open_scene(scene)
    assert dialogs.kinds() == ["question"]
    assert not side.exists() and not w.model.dirty


def test_corrupt_annotations_offers_the_autosave(qtbot, make_window, scene_copy, dialogs):
    scene = scene_copy()
    ann = scene / "annotations.json"
    good = AnnotationDocument.read(ann)
    good.write(scene / ".annotations.autosave.json")
    ann.write_text("{ broken json")
    dialogs.answer = QMessageBox.Yes
    w = make_window()
    assert w.open_scene(scene)
    assert dialogs.kinds() == ["question"], dialogs.text()  # the offer, not the warning
    assert "cannot be read" in dialogs.calls[0][2]
    assert w.model.object_ids == [o.id for o in good.objects]
    assert ann.read_text() == "{ broken json"  # untouched until the user saves
    assert w.save()
    assert [o.id for o in AnnotationDocument.read(ann).objects] == w.model.object_ids
    assert list(scene.glob("annotations.unreadable-*.json"))  # the broken file kept aside


def test_export_dialog_propagates_exports_and_shows_contact_sheet(qtbot, make_window,
                                                                  scene_copy, dialogs, tmp_path):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    dlg = w.export_dialog_open()
    dlg.format.setCurrentIndex(dlg.format.findData("props"))
    out = tmp_path / "props_out"
    dlg.out.setText(str(out))
    dlg.per_class.setValue(5)
    seen = []
    dlg.task = None
    assert dlg.start()
    dlg.task.progress.connect(lambda d, t: seen.append((d, t)))
    qtbot.waitUntil(lambda: not dlg.task.running() and dlg.run_button.isEnabled(),
                    timeout=180000)
    assert dlg.summary is not None, dlg.status.text()
    assert (scene / "labels" / "labels.h5").is_file()
    assert (out / "Progress-Objects-Sample" / "meta.pkl").is_file()
    assert not dlg.sheet.pixmap().isNull()  # the contact sheet is shown
    assert "contact_sheet.png" in dlg.status.text()
    dlg.close()


def test_export_dialog_cancel_leaves_nothing(qtbot, make_window, scene_copy, dialogs, tmp_path):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    dlg = w.export_dialog_open()
    dlg.format.setCurrentIndex(dlg.format.findData("bop"))
    out = tmp_path / "bop_out"
    dlg.out.setText(str(out))
    assert dlg.start()
    dlg.cancel()  # before the first progress report comes back
    qtbot.waitUntil(lambda: not dlg.task.running() and dlg.run_button.isEnabled(),
                    timeout=180000)
    assert "Cancelled" in dlg.status.text(), dlg.status.text()
    assert not out.exists()
    dlg.close()


def test_export_dialog_asks_before_replacing_a_folder(qtbot, make_window, scene_copy, dialogs,
                                                      tmp_path):
    scene = scene_copy()
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    w = make_window()
    assert w.open_scene(scene)
    dlg = w.export_dialog_open()
    dlg.out.setText(str(out))
    dialogs.answer = QMessageBox.No
    assert not dlg.start()
    assert dialogs.kinds() == ["question"] and "not empty" in dialogs.calls[0][2]
    assert (out / "keep.txt").read_text() == "mine"
    assert "nothing was changed" in dlg.status.text()
    dlg.close()
