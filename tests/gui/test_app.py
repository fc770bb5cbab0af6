"""The annotation window, driven like a user would (offscreen): open, add, nudge, drag,
place, undo/redo, keyframes, save, reopen, close."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from labeller.annotate.pose_edit import rotate_in_camera, translate_in_camera
from labeller.core.fileio import read_image, sha256_file
from labeller.core.poses import inv_pose
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model
from labeller.formats.scene import Scene
from labeller.geometry.overlay import model_centre
from labeller.geometry.render import ObjectRenderer
from labeller.gui import scene_files, tracking
from tests.gui.conftest import wait_render


def _objects_drawn(window) -> set[int]:
    inst = window.view._inst
    return set(np.unique(inst).tolist()) - {0} if inst is not None else set()


def test_valid_scene_opens_without_dialog_and_draws_objects(qtbot, make_window, scene_copy,
                                                           dialogs):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    assert dialogs.calls == []
    assert not w.banner.isVisible()
    assert w.windowTitle().startswith("scene")
    assert not w.isWindowModified()
    doc = AnnotationDocument.read(scene / "annotations.json")
    assert w.panel.list.count() == len(doc.objects)
    # the objects visible in frame 0 of the ground truth are drawn where the truth is
    gt = read_image(scene / "gt" / "masks" / "000000.png")
    drawn = _objects_drawn(w)
    assert drawn and drawn <= {o.id for o in doc.objects}
    for i in drawn:
        a, b = w.view._inst == i, gt == i
        iou = (a & b).sum() / max((a | b).sum(), 1)
        assert iou > 0.8, (i, iou)


def test_add_nudge_undo_redo_save_reopen(qtbot, make_window, scene_copy, dialogs):
    scene = scene_copy(annotations=False)
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    # add a mug through the panel (the class combo, the Add button)
    combo = w.panel.class_combo
    combo.setCurrentIndex(combo.findData("mug"))
    qtbot.mouseClick(w.panel.add_button, Qt.LeftButton)
    assert w.model.object_ids == [1]
    assert w.selected_id == 1
    assert w.isWindowModified()
    wait_render(qtbot, w)
    assert 1 in _objects_drawn(w)
    T0 = w.model.pose(1)
    T_wc = w.model.T_world_cam(0)
    assert T_wc is not None

    # a burst of nudges: right (fine), up (coarse), away (PgUp), a turn (L)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_Right)
    T1 = w.model.pose(1)
    assert np.allclose(inv_pose(T_wc) @ T1 @ inv_pose(T0) @ T_wc,
                       np.array([[1, 0, 0, 0.001], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
                       atol=1e-12)
    qtbot.keyClick(w.view, Qt.Key_Up, Qt.ShiftModifier)
    qtbot.keyClick(w.view, Qt.Key_PageUp)
    mesh = w.model.object_model(1)
    T_before_turn = w.model.pose(1)
    qtbot.keyClick(w.view, Qt.Key_L)
    T_after = w.model.pose(1)
    expected = translate_in_camera(translate_in_camera(T1, T_wc, (0, -0.010, 0)), T_wc,
                                   (0, 0, 0.001))
    assert np.allclose(T_before_turn, expected, atol=1e-12)
    assert np.allclose(T_after, rotate_in_camera(T_before_turn, T_wc, (0, 1, 0), np.radians(1.0),
                                                 model_centre(mesh)), atol=1e-12)
    # the turn is about the object's centre: the centre does not move
    c = model_centre(mesh)
    assert np.allclose(T_after[:3, :3] @ c + T_after[:3, 3],
                       T_before_turn[:3, :3] @ c + T_before_turn[:3, 3], atol=1e-12)

    # the burst is one undo step, and undo restores the exact matrix
    assert w.undo_stack.count() == 2  # add + nudges
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(1), T0)
    w.undo_stack.redo()
    assert np.array_equal(w.model.pose(1), T_after)
    w.undo_stack.undo()
    w.undo_stack.undo()  # the add
    assert w.model.object_ids == []
    assert not w.isWindowModified()  # back to the state on disk (no annotations)
    w.undo_stack.redo()
    w.undo_stack.redo()
    assert np.array_equal(w.model.pose(1), T_after)

    # Ctrl+S saves atomically with the trajectory's sha256; the title loses its marker
    qtbot.keyClick(w, Qt.Key_S, Qt.ControlModifier)
    assert dialogs.calls == []
    assert not w.isWindowModified() and not w.model.dirty
    saved = json.loads((scene / "annotations.json").read_text())
    assert saved["trajectory_sha256"] == sha256_file(scene / "trajectory.txt")
    assert not list(scene.glob(".annotations*.tmp*"))

    # reopen in a fresh window: the very same matrix
    w2 = make_window()
    assert w2.open_scene(scene)
    assert w2.model.object_ids == [1]
    assert np.array_equal(w2.model.pose(1), T_after)
    assert w2.model.object(1).class_name == "mug"
    assert dialogs.calls == []


def test_drag_translate_and_rotate_are_one_undo_step_each(qtbot, make_window, scene_copy):
    scene = scene_copy()
    w = make_window()
    w.resize(900, 700)
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    obj = max(_objects_drawn(w), key=lambda i: (w.view._inst == i).sum())
    vs, us = np.nonzero(w.view._inst == obj)
    u, v = int(np.median(us)), int(np.median(vs))
    if w.view._inst[v, u] != obj:
        u, v = int(us[0]), int(vs[0])
    T0 = w.model.pose(obj)
    n0 = w.undo_stack.count()
    start = w.view.view_pos_of_pixel(u, v)
    vp = w.view.viewport()
    qtbot.mousePress(vp, Qt.LeftButton, pos=start)
    assert w.selected_id == obj and w.view.dragging
    for k in range(1, 6):
        qtbot.mouseMove(vp, start + QPoint(6 * k, 3 * k))
    qtbot.mouseRelease(vp, Qt.LeftButton, pos=start + QPoint(30, 15))
    T1 = w.model.pose(obj)
    assert not np.array_equal(T1, T0)
    assert w.undo_stack.count() == n0 + 1
    # the centre moved parallel to the image plane (same camera depth), right and down
    T_wc = w.model.T_world_cam(0)
    c = model_centre(w.model.object_model(obj))
    c0 = (inv_pose(T_wc) @ T0)[:3, :3] @ c + (inv_pose(T_wc) @ T0)[:3, 3]
    c1 = (inv_pose(T_wc) @ T1)[:3, :3] @ c + (inv_pose(T_wc) @ T1)[:3, 3]
    assert abs(c1[2] - c0[2]) < 1e-9 and c1[0] > c0[0] and c1[1] > c0[1]
    assert np.allclose(T1[:3, :3], T0[:3, :3])
    wait_render(qtbot, w)
    assert not w.last_result.request.preview  # the full render follows the drag

    # Ctrl+drag turns it about its centre, also one step
    start = w.view.view_pos_of_pixel(*_pixel_of(w, obj))
    qtbot.mousePress(vp, Qt.LeftButton, Qt.ControlModifier, pos=start)
    for k in range(1, 4):
        qtbot.mouseMove(vp, start + QPoint(5 * k, 0))
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.ControlModifier, pos=start + QPoint(15, 0))
    T2 = w.model.pose(obj)
    assert w.undo_stack.count() == n0 + 2
    assert not np.allclose(T2[:3, :3], T1[:3, :3])
    assert np.allclose(T2[:3, :3] @ c + T2[:3, 3], T1[:3, :3] @ c + T1[:3, 3], atol=1e-9)
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T1)
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T0)
    assert not w.model.dirty


def _pixel_of(w, obj):
    vs, us = np.nonzero(w.view._inst == obj)
    i = len(us) // 2
    return int(us[i]), int(vs[i])


def test_wheel_with_shift_moves_along_the_viewing_ray(qtbot, make_window, scene_copy):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    obj = w.model.object_ids[0]
    w.select(obj)
    T0 = w.model.pose(obj)
    vp = w.view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    for _ in range(2):  # Shift+wheel, two notches away from the camera
        ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                         QPoint(0, 120), Qt.NoButton, Qt.ShiftModifier, Qt.NoScrollPhase,
                         False)
        QApplication.sendEvent(vp, ev)
    assert w.undo_stack.count() == 1  # a burst of wheel notches is one step
    T1 = w.model.pose(obj)
    T_wc = w.model.T_world_cam(0)
    c = model_centre(w.model.object_model(obj))
    c0 = inv_pose(T_wc) @ np.r_[T0[:3, :3] @ c + T0[:3, 3], 1]
    c1 = inv_pose(T_wc) @ np.r_[T1[:3, :3] @ c + T1[:3, 3], 1]
    assert c1[2] - c0[2] == pytest.approx(0.010, abs=1e-9)
    assert np.allclose(c1[:2] / c1[2], c0[:2] / c0[2], atol=1e-12)  # same pixel


def test_numeric_entry_sets_the_pose(qtbot, make_window, scene_copy):
    from labeller.core.poses import euler_xyz_deg_to_matrix

    w = make_window()
    assert w.open_scene(scene_copy())
    obj = w.model.object_ids[0]
    w.select(obj)
    ed = w.panel.pose_editor
    T0 = w.model.pose(obj)
    assert ed.fields["z"].value() == pytest.approx(T0[2, 3] * 1000, abs=0.05)
    ed.fields["x"].setValue(123.4)
    ed.fields["x"].editingFinished.emit()
    T1 = w.model.pose(obj)
    assert T1[0, 3] == pytest.approx(0.1234, abs=1e-12)
    assert np.array_equal(T1[:3, :3], T0[:3, :3]) and np.array_equal(T1[1:3, 3], T0[1:3, 3])
    ed.fields["rz"].setValue(45.0)
    ed.fields["rz"].editingFinished.emit()
    T2 = w.model.pose(obj)
    shown = [ed.fields[k].value() for k in ("rx", "ry", "rz")]
    assert shown[2] == pytest.approx(45.0)
    assert np.allclose(T2[:3, :3], euler_xyz_deg_to_matrix(shown), atol=1e-12)
    ed.fields["rz"].editingFinished.emit()  # focus leaves without a change: no new step
    assert w.undo_stack.count() == 2
    w.undo_stack.undo()
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T0)
    assert ed.fields["x"].value() == pytest.approx(T0[0, 3] * 1000, abs=0.05)


@pytest.mark.parametrize("cls", ["cracker_box", "gelatin_box", "mustard_bottle"])
def test_click_to_place_lands_on_the_ground_truth_surface(qtbot, make_window, scene_copy, cls):
    scene = scene_copy()
    s = Scene(scene)
    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    objs = [o for o in gt.objects if o.class_name == cls]
    assert objs, f"seed 3 has no {cls}"
    o = objs[0]
    t = 0
    T_wc = s.trajectory[t]
    mesh = load_model(scene / o.model)
    # the pixel the object's centre projects to (it must be on the object's mask)
    c_cam = (inv_pose(T_wc) @ o.T_world_obj)[:3, :3] @ model_centre(mesh) \
        + (inv_pose(T_wc) @ o.T_world_obj)[:3, 3]
    u, v = (int(round(x)) for x in s.camera.project(c_cam[None])[0])
    gt_mask = read_image(scene.joinpath("gt", "masks", f"{t:06d}.png"))
    assert gt_mask[v, u] == o.id, "the centre's pixel should show the object"

    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    # start 5 cm off along a skew direction, right rotation
    T_off = np.array(o.T_world_obj)
    T_off[:3, 3] += np.array([0.03, -0.02, 0.035])
    w.select(o.id)
    w.editor.push_pose(o.id, T_off, "test offset")
    wait_render(qtbot, w)
    qtbot.keyClick(w, Qt.Key_P)
    assert w.view.place_mode
    qtbot.mouseClick(w.view.viewport(), Qt.LeftButton, pos=w.view.view_pos_of_pixel(u, v))
    assert not w.view.place_mode
    T_placed = w.model.pose(o.id)
    assert not np.array_equal(T_placed, T_off)

    # compare the surface point the click put the model on with the ground-truth surface
    # point at that pixel (noise-free render of the true pose)
    def surface_point(T_world_obj):
        r = ObjectRenderer([(1, mesh, T_world_obj)]).render(s.camera, T_wc, roi=(u, v, 1, 1))
        z = float(r.depth[0, 0])
        assert z > 0
        return s.camera.backproject(u, v, z).reshape(3)

    err_surface = np.linalg.norm(surface_point(T_placed) - surface_point(o.T_world_obj))
    assert err_surface < 0.01, err_surface
    # with the true rotation and the centre's pixel, the whole pose comes back
    assert np.linalg.norm(T_placed[:3, 3] - o.T_world_obj[:3, 3]) < 0.01
    assert np.array_equal(T_placed[:3, :3], T_off[:3, :3])
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(o.id), T_off)


def test_keyframes_toggle_on_timeline_and_undo(qtbot, make_window, scene_copy):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    ids = w.model.object_ids
    w.set_frame(4)
    qtbot.keyClick(w, Qt.Key_M)  # nothing selected: every object gets frame 4
    assert all(4 in w.model.keyframes(i) for i in ids)
    assert 4 in w.timeline.keyframes
    w.select(ids[0])
    qtbot.keyClick(w, Qt.Key_M)  # selected: only that one loses it
    assert 4 not in w.model.keyframes(ids[0])
    assert all(4 in w.model.keyframes(i) for i in ids[1:])
    w.undo_stack.undo()
    assert 4 in w.model.keyframes(ids[0])
    w.set_frame(0)
    qtbot.keyClick(w, Qt.Key_BracketRight)  # next keyframe
    assert w.current_frame == 4
    w.undo_stack.undo()
    assert w.model.all_keyframes() == []
    assert not w.model.dirty


def test_visibility_and_opacity_are_view_state(qtbot, make_window, scene_copy):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    drawn = _objects_drawn(w)
    hide = sorted(drawn)[0]
    row = w.model.index_of(hide)
    w.panel.list.item(row).setCheckState(Qt.Unchecked)
    wait_render(qtbot, w)
    assert hide not in _objects_drawn(w)
    assert not w.model.dirty and w.undo_stack.count() == 0
    alpha_before = w.last_result.overlay.rgba[..., 3].max()
    w.panel.opacity.setValue(10)
    wait_render(qtbot, w)
    rgba = w.last_result.overlay.rgba
    inner = rgba[..., 3][(rgba[..., 3] > 0) & (rgba[..., 3] < 255)]
    assert inner.size and int(inner.max()) == round(0.10 * 255) and alpha_before == 255


def test_depth_view_shows_false_colour(qtbot, make_window, scene_copy):
    scene = scene_copy()
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    rgb = w.last_result.background.copy()
    qtbot.keyClick(w, Qt.Key_D)
    wait_render(qtbot, w)
    assert w.last_result.request.background == "depth"
    assert not np.array_equal(w.last_result.background, rgb)


def test_frame_without_camera_pose_says_so(qtbot, make_window, scene_copy):
    scene = scene_copy()
    lines = (scene / "trajectory.txt").read_text().splitlines()
    (scene / "trajectory.txt").write_text(
        "\n".join(ln for ln in lines if not ln.startswith("3 ")) + "\n")
    w = make_window()
    assert w.open_scene(scene)
    obj = w.model.object_ids[0]
    w.select(obj)
    w.set_frame(3)
    wait_render(qtbot, w)
    assert "no camera pose" in w.statusBar().currentMessage()
    assert w.last_result.overlay is None
    T = w.model.pose(obj)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_Right)
    assert np.array_equal(w.model.pose(obj), T)
    assert "no camera pose" in w.statusBar().currentMessage()
    assert (3, 3) in w.timeline.untracked
    w.set_frame(4)
    wait_render(qtbot, w)
    assert w.last_result.overlay is not None


def test_close_with_unsaved_changes_asks(qtbot, make_window, scene_copy, dialogs):
    from PySide6.QtWidgets import QMessageBox

    scene = scene_copy()
    before = (scene / "annotations.json").read_bytes()
    w = make_window()
    assert w.open_scene(scene)
    obj = w.model.object_ids[0]
    w.select(obj)
    w.editor.nudge(0, +1)
    assert w.isWindowModified()
    dialogs.answer = QMessageBox.Cancel
    w.close()
    assert w.isVisible() and w.model is not None  # cancelled: still open, still dirty
    assert dialogs.kinds() == ["question"]
    dialogs.answer = QMessageBox.Save
    w.close()
    assert not w.isVisible()
    after = AnnotationDocument.read(scene / "annotations.json")
    assert after.to_json() != before.decode()
    assert np.allclose(after.object(obj).T_world_obj[:3, :3],
                       AnnotationDocument.read(scene / "gt" / "annotations.json")
                       .object(obj).T_world_obj[:3, :3])


def test_close_discard_leaves_file_alone(qtbot, make_window, scene_copy, dialogs):
    from PySide6.QtWidgets import QMessageBox

    scene = scene_copy()
    before = (scene / "annotations.json").read_bytes()
    w = make_window()
    assert w.open_scene(scene)
    w.select(w.model.object_ids[0])
    w.editor.nudge(1, -1, coarse=True)
    dialogs.answer = QMessageBox.Discard
    w.close()
    assert not w.isVisible()
    assert (scene / "annotations.json").read_bytes() == before


def test_clean_document_closes_without_asking(qtbot, make_window, scene_copy, dialogs):
    w = make_window()
    assert w.open_scene(scene_copy())
    w.select(w.model.object_ids[0])
    w.editor.nudge(0, +1)
    w.undo_stack.undo()  # back to the saved state
    w.close()
    assert not w.isVisible()
    assert dialogs.calls == []


def test_recent_scenes_are_remembered(qtbot, make_window, scene_copy):
    a, b = scene_copy(name="a"), scene_copy(name="b")
    w = make_window()
    assert w.open_scene(a) and w.open_scene(b)
    assert scene_files.recent_scenes()[:2] == [str(b.resolve()), str(a.resolve())]
    w.recent_menu.aboutToShow.emit()
    assert [x.text() for x in w.recent_menu.actions()][:2] == [str(b.resolve()),
                                                               str(a.resolve())]


def test_missing_trajectory_banner_runs_tracking_in_background(qtbot, make_window, scene_copy,
                                                              monkeypatch):
    """The banner's action runs the tracking stage on a worker thread with progress; the
    trajectory it writes is picked up and the objects drawn."""
    import shutil
    import threading

    scene = scene_copy(annotations=False, trajectory=False)
    calls = []

    def fake_track(scene_dir, progress):
        calls.append((scene_dir, threading.current_thread() is threading.main_thread()))
        for i in range(1, 11):
            if progress(i, 10) is False:
                raise RuntimeError("cancelled")
        shutil.copyfile(scene_dir / "gt" / "trajectory.txt", scene_dir / "trajectory.txt")
        return "ok"

    monkeypatch.setattr(tracking, "track_scene", fake_track)
    w = make_window()
    assert w.open_scene(scene)
    assert w.banner.isVisible() and "no camera trajectory" in w.banner.label.text()
    assert w.editor.add_object("mug") is None  # nowhere to put it yet
    qtbot.mouseClick(w.banner.action, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.model.has_trajectory, timeout=10000)
    assert calls == [(scene, False)]  # not on the UI thread
    assert not w.banner.isVisible()
    assert w.banner.progress.value() == 10
    assert w.editor.add_object("mug") == 1
    wait_render(qtbot, w)
    assert 1 in _objects_drawn(w)


def test_tracking_can_be_cancelled(qtbot, make_window, scene_copy, monkeypatch):
    import threading

    from labeller.core.progress import check_progress

    scene = scene_copy(trajectory=False, annotations=False)
    started = threading.Event()

    def slow_track(scene_dir, progress):
        i = 0
        while True:
            i += 1
            started.set()
            check_progress(progress, i, 1000)  # raises Cancelled, as the stages do
            threading.Event().wait(0.01)

    monkeypatch.setattr(tracking, "track_scene", slow_track)
    w = make_window()
    assert w.open_scene(scene)
    assert w.tracker.start()
    assert started.wait(5)
    qtbot.mouseClick(w.banner.cancel, Qt.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in w.banner.label.text(), timeout=10000)
    assert not w.model.has_trajectory
    assert not (scene / "trajectory.txt").exists()


def test_banner_runs_the_real_tracking_stage(qtbot, make_window, tmp_path):
    """The real `labeller.track` stage, started from the banner, in the background."""
    from labeller.synth import SynthConfig, run

    scene = tmp_path / "raw"
    run(SynthConfig(scene, frames=12, seed=3, width=320, height=240))  # no trajectory
    w = make_window()
    assert w.open_scene(scene)
    assert w.banner.isVisible() and w.banner.action.isVisible()
    seen = []
    qtbot.mouseClick(w.banner.action, Qt.LeftButton)
    assert w.tracker.task is not None
    w.tracker.task.progress.connect(lambda d, t: seen.append((d, t)))
    qtbot.waitUntil(lambda: w.model.has_trajectory or "failed" in w.banner.label.text(),
                    timeout=120000)
    assert w.model.has_trajectory, w.banner.label.text()
    assert seen and seen[-1][0] == seen[-1][1]
    assert not w.banner.isVisible()
    assert (scene / "trajectory.txt").is_file()
    assert w.editor.add_object("mug") == 1
    wait_render(qtbot, w)
    assert 1 in _objects_drawn(w)


def test_rendering_runs_off_the_ui_thread_and_drops_stale_requests(qtbot, make_window,
                                                                   scene_copy, monkeypatch):
    import threading

    w = make_window()
    assert w.open_scene(scene_copy())
    wait_render(qtbot, w)
    threads = []
    real = w.service.renderer.render

    def slow_render(*a, **k):
        threads.append(threading.current_thread())
        threading.Event().wait(0.05)  # a slow cast: requests pile up meanwhile
        return real(*a, **k)

    monkeypatch.setattr(w.service.renderer, "render", slow_render)
    obj = w.model.object_ids[0]
    w.select(obj)
    n0 = w.service.completed
    t0 = time.perf_counter()
    for _ in range(20):
        w.editor.nudge(0, +1)  # each asks for a render; the UI does not wait for any
    ui_s = time.perf_counter() - t0
    assert ui_s < 0.05 * 20 / 2, ui_s  # far less than 20 slow renders
    wait_render(qtbot, w)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert w.service.completed - n0 < 20 and w.service.dropped > 0
    assert w.view.shown_gen == w.service.latest_gen  # the newest one is what is shown


def test_delete_object_and_undo_puts_it_back(qtbot, make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy())
    ids = w.model.object_ids
    victim = ids[2]
    T = w.model.pose(victim)
    w.select(victim)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_Delete)
    assert victim not in w.model.object_ids and w.selected_id is None
    assert w.panel.list.count() == len(ids) - 1
    w.undo_stack.undo()
    assert w.model.object_ids == ids
    assert np.array_equal(w.model.pose(victim), T)
    assert not w.model.dirty


def test_zoom_and_pan(qtbot, make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy())
    wait_render(qtbot, w)
    vp = w.view.viewport()
    s0 = w.view.transform().m11()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 240),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)
    assert w.view.transform().m11() == pytest.approx(s0 * 1.15 ** 2)
    h0 = w.view.horizontalScrollBar().value()
    c = vp.rect().center()
    qtbot.mousePress(vp, Qt.MiddleButton, pos=c)
    qtbot.mouseMove(vp, c + QPoint(-60, 0))
    qtbot.mouseRelease(vp, Qt.MiddleButton, pos=c + QPoint(-60, 0))
    assert w.view.horizontalScrollBar().value() == h0 + 60
    assert w.undo_stack.count() == 0  # panning changed nothing in the document
    qtbot.keyClick(w, Qt.Key_F)
    assert w.view.transform().m11() == pytest.approx(s0)
