"""Turning about the object in the window (offscreen): the turn frame (G) for the keys and
Ctrl+drag, yaw steps about the up axis (Y, Shift+Y), stand on the support (S) and copy
rotation (Ctrl+Shift+C); each one undo step. The synthetic scene's table is tilted
against the camera (it looks down on it at 35-41 deg of elevation), its ground truth is
the top-level annotations.json."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PySide6.QtCore import QPoint, Qt

from labeller.core.fileio import read_image
from labeller.core.poses import axis_angle_to_matrix, rotation_error_deg
from labeller.geometry.overlay import model_centre
from labeller.gui.actions import keys_rows
from tests.gui.conftest import wait_render


def _open(qtbot, make_window, scene):
    w = make_window()
    w.resize(900, 700)
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    return w


def _largest_visible(scene) -> int:
    gt = read_image(scene / "gt" / "masks" / "000000.png")
    ids, counts = np.unique(gt[gt > 0], return_counts=True)
    return int(ids[np.argmax(counts)])


def _centre(w, obj, T=None):
    T = w.model.pose(obj) if T is None else T
    return T[:3, :3] @ model_centre(w.model.object_model(obj)) + T[:3, 3]


def _angle_deg(a, b) -> float:
    return math.degrees(math.acos(float(np.clip(np.dot(a, b), -1.0, 1.0))))


def test_turn_frame_toggle_turns_keys_about_the_objects_own_axes(qtbot, make_window,
                                                                 scene_copy):
    w = _open(qtbot, make_window, scene_copy())
    obj = _largest_visible(w.model.root)
    w.select(obj)
    ed, acts = w.editor, w.actions_
    assert not ed.turn_about_object and ed.turn_label.text() == "turn: camera axes"
    assert ("Edit", "G", "Turn about the object's own axes (now: camera axes)") in keys_rows(w)
    T0 = w.model.pose(obj)
    n0 = w.undo_stack.count()
    # Camera axes (today's keys): U turns about the camera's z, which tilts the model's
    # z (its up axis on the table) on this tilted view.
    qtbot.keyClick(w.view, Qt.Key_U, Qt.ShiftModifier)
    T_cam = w.model.pose(obj)
    assert _angle_deg(T_cam[:3, 2], T0[:3, 2]) > 1.0
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T0)

    qtbot.keyClick(w, Qt.Key_G)
    assert ed.turn_about_object and acts.turn_frame.isChecked()
    assert ed.turn_label.text() == "turn: object axes"
    assert "object's own" in w.statusBar().currentMessage()
    assert ("Edit", "G", "Turn about the object's own axes (now: object axes)") in keys_rows(w)
    for _ in range(3):
        qtbot.keyClick(w.view, Qt.Key_U)  # 1 deg each about the model's own z
    qtbot.keyClick(w.view, Qt.Key_U, Qt.ShiftModifier)  # 5 deg
    T1 = w.model.pose(obj)
    assert np.abs(T1[:3, 2] - T0[:3, 2]).max() < 1e-12  # the up axis did not move
    assert np.abs(_centre(w, obj, T1) - _centre(w, obj, T0)).max() < 1e-12
    assert abs(rotation_error_deg(T0, T1) - 8.0) < 1e-9
    assert w.undo_stack.count() == n0 + 1  # a burst of turns is one step
    qtbot.keyClick(w.view, Qt.Key_I, Qt.ShiftModifier)  # about the model's own x
    T2 = w.model.pose(obj)
    assert np.abs(T2[:3, 0] - T1[:3, 0]).max() < 1e-12
    assert abs(rotation_error_deg(T1, T2) - 5.0) < 1e-9
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T0)
    qtbot.keyClick(w, Qt.Key_G)  # back to the camera's axes
    assert not ed.turn_about_object and not acts.turn_frame.isChecked()
    assert ed.turn_label.text() == "turn: camera axes"


def test_ctrl_drag_in_the_object_frame_turns_about_a_model_axis(qtbot, make_window,
                                                               scene_copy):
    w = _open(qtbot, make_window, scene_copy())
    obj = _largest_visible(w.model.root)
    w.editor.set_turn_about_object(True)
    vs, us = np.nonzero(w.view._inst == obj)
    i = len(us) // 2
    start = w.view.view_pos_of_pixel(int(us[i]), int(vs[i]))
    T0 = w.model.pose(obj)
    R_cam_obj = w.model.T_world_cam(0)[:3, :3].T @ T0[:3, :3]
    k = int(np.argmax(np.abs(R_cam_obj[1])))  # the model axis closest to the camera's y
    n0 = w.undo_stack.count()
    vp = w.view.viewport()
    qtbot.mousePress(vp, Qt.LeftButton, Qt.ControlModifier, pos=start)
    assert w.selected_id == obj
    for j in range(1, 5):
        qtbot.mouseMove(vp, start + QPoint(6 * j, 0))
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.ControlModifier, pos=start + QPoint(24, 0))
    T1 = w.model.pose(obj)
    assert w.undo_stack.count() == n0 + 1
    assert rotation_error_deg(T0, T1) > 2.0
    assert np.abs(T1[:3, k] - T0[:3, k]).max() < 1e-12
    assert np.abs(_centre(w, obj, T1) - _centre(w, obj, T0)).max() < 1e-9
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj), T0)


def test_yaw_steps_are_exact_about_the_support_normal_one_step_each(qtbot, make_window,
                                                                    scene_copy):
    w = _open(qtbot, make_window, scene_copy())
    obj = _largest_visible(w.model.root)
    w.select(obj)
    T0 = w.model.pose(obj)
    n0 = w.undo_stack.count()
    qtbot.keyClick(w, Qt.Key_Y)
    assert "support plane in the depth" in w.statusBar().currentMessage()
    T1 = w.model.pose(obj)
    assert abs(rotation_error_deg(T0, T1) - 90.0) < 1e-9
    assert np.array_equal(T1[:3, 2], T0[:3, 2])  # about model z, the axis along the normal
    assert np.allclose(T1[:3, 0], T0[:3, 1], atol=1e-15)  # +90: x goes where y was
    assert np.abs(_centre(w, obj, T1) - _centre(w, obj, T0)).max() < 1e-12
    assert w.undo_stack.count() == n0 + 1
    for _ in range(3):
        qtbot.keyClick(w, Qt.Key_Y)
    assert w.undo_stack.count() == n0 + 4  # each press one step
    assert np.array_equal(w.model.pose(obj)[:3, :3], T0[:3, :3])  # a full turn, exactly
    qtbot.keyClick(w, Qt.Key_Y, Qt.ShiftModifier)
    T2 = w.model.pose(obj)
    # 180 deg about model z, exactly: x and y flip, z stays (the angle itself is
    # ill-conditioned near 180 deg, so compare the axes)
    assert np.array_equal(T2[:3, :2], -T0[:3, :2])
    assert np.array_equal(T2[:3, 2], T0[:3, 2])
    assert w.undo_stack.count() == n0 + 5
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(obj)[:3, :3], T0[:3, :3])


def _perturb(w, obj, n_table, tilt_deg=20.0, lift_m=0.02):
    """The object tilted about an in-table axis through its centre and lifted."""
    T = w.model.pose(obj)
    h = np.cross(n_table, [0.3, -0.5, 0.8])
    R = axis_angle_to_matrix(h, math.radians(tilt_deg))
    c = _centre(w, obj, T)
    T2 = np.array(T)
    T2[:3, :3] = R @ T[:3, :3]
    T2[:3, 3] = R @ (T[:3, 3] - c) + c + lift_m * n_table
    return T2


def test_stand_on_support_puts_a_tilted_lifted_object_back(qtbot, make_window, scene_copy):
    w = _open(qtbot, make_window, scene_copy())
    gt = read_image(w.model.root / "gt" / "masks" / "000000.png")
    ids, counts = np.unique(gt[gt > 0], return_counts=True)
    tested = 0
    for obj in (int(i) for i, c in zip(ids, counts, strict=True) if c >= 1500):
        T_gt = w.model.pose(obj)
        n_table = T_gt[:3, 2].copy()  # the synthetic objects stand on the table, z up
        T_bad = _perturb(w, obj, n_table)
        w.select(obj)
        w.editor.push_pose(obj, T_bad, "test tilt")
        n0 = w.undo_stack.count()
        qtbot.keyClick(w, Qt.Key_S)
        assert w.undo_stack.count() == n0 + 1
        assert w.statusBar().currentMessage().startswith(f"Stood #{obj} ")
        T_new = w.model.pose(obj)
        verts = w.model.object_model(obj).vertices
        lowest_gt = (verts @ T_gt[:3, :3].T + T_gt[:3, 3]) @ n_table
        lowest_new = (verts @ T_new[:3, :3].T + T_new[:3, 3]) @ n_table
        assert abs(lowest_new.min() - lowest_gt.min()) < 0.002  # on the table, +- 2 mm
        assert _angle_deg(T_new[:3, 2], n_table) < 1.0
        assert np.linalg.norm(_centre(w, obj, T_new) - _centre(w, obj, T_gt)) < 0.002
        assert rotation_error_deg(T_new, T_gt) < 1.0  # the yaw was kept
        w.undo_stack.undo()
        assert np.array_equal(w.model.pose(obj), T_bad)
        tested += 1
    assert tested >= 3


def test_stand_on_support_without_a_plane_says_where_it_looked(qtbot, make_window,
                                                               scene_copy):
    scene = scene_copy()
    d = cv2.imread(str(scene / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(scene / "depth" / "000000.png"), np.zeros_like(d))
    w = _open(qtbot, make_window, scene)
    obj = _largest_visible(scene)
    w.select(obj)
    T0 = w.model.pose(obj)
    n0 = w.undo_stack.count()
    qtbot.keyClick(w, Qt.Key_S)
    msg = w.statusBar().currentMessage()
    assert msg.startswith(f"Cannot stand #{obj} ")
    assert "No support plane found within " in msg and "m of its centre" in msg
    assert "depth of frame 0: only 0 points (a plane needs 150)" in msg
    assert "no fused cloud (recon/cloud.ply" in msg
    assert np.array_equal(w.model.pose(obj), T0)
    assert w.undo_stack.count() == n0
    # Y still turns, about the axis nearest the camera's -y, and says so.
    qtbot.keyClick(w, Qt.Key_Y)
    assert "camera's -y" in w.statusBar().currentMessage()
    assert w.undo_stack.count() == n0 + 1


def test_copy_rotation_from_another_object_is_one_step(qtbot, make_window, scene_copy):
    w = _open(qtbot, make_window, scene_copy())
    ids = w.model.object_ids
    a, b = ids[0], ids[1]
    # give b a rotation a does not have
    T_b = w.model.pose(b)
    T_b2 = np.array(T_b)
    T_b2[:3, :3] = axis_angle_to_matrix([0.2, 1.0, 0.4], 0.7) @ T_b[:3, :3]
    w.editor.push_pose(b, T_b2, "test turn")
    w.select(a)
    T_a = w.model.pose(a)
    n0 = w.undo_stack.count()
    menu = w.editor.copy_rotation_menu
    qtbot.keyClick(w, Qt.Key_C, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(menu.isVisible)
    entries = {act.data(): act for act in menu.actions()}
    assert set(entries) == set(ids) - {a}
    assert entries[b].text() == f"#{b} {w.model.object(b).class_name}"
    entries[b].trigger()
    menu.close()
    T_new = w.model.pose(a)
    assert np.array_equal(T_new[:3, :3], T_b2[:3, :3])
    assert np.abs(_centre(w, a, T_new) - _centre(w, a, T_a)).max() < 1e-12
    assert w.undo_stack.count() == n0 + 1
    assert w.undo_stack.undoText() == f"Copy rotation from #{b}"
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(a), T_a)
    # nothing selected: no menu, a message instead
    w.select(None)
    w.editor.popup_copy_rotation()
    assert not menu.isVisible()
    assert "Select an object first" in w.statusBar().currentMessage()


def test_stand_on_support_on_a_frame_without_depth_says_so(qtbot, make_window, scene_copy,
                                                           dialogs):
    scene = scene_copy()
    (scene / "depth" / "000000.png").unlink()  # the window opens it with frame 0 marked
    w = _open(qtbot, make_window, scene)
    obj = _largest_visible(scene)
    w.select(obj)
    T0 = w.model.pose(obj)
    qtbot.keyClick(w, Qt.Key_S)
    msg = w.statusBar().currentMessage()
    assert "No support plane found" in msg and "frame 0 has no depth" in msg
    assert np.array_equal(w.model.pose(obj), T0)
