"""Align by points in the window: `A`, four clicks on the model view and four on the
frame, Enter; the object lands on the ground truth from a start 10 cm / 40° off, in one
undo step. And the mode's refusals (no depth, too few pairs), Esc, no selection."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPoint, Qt

from labeller.core.poses import (
    axis_angle_to_matrix,
    inv_pose,
    rotation_error_deg,
    transform_points,
    translation_error_m,
)
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model, resolve_model_path
from labeller.geometry.overlay import model_centre
from labeller.geometry.render import ObjectRenderer
from tests.gui.conftest import wait_render

BOX = 3  # the cracker box of the seed-3 synthetic scene (non-symmetric, well visible)
# Pixels this far inside the object's visible silhouette: the depth is read as a median
# over a 5x5 window and must not reach the background.
EDGE_MARGIN_PX = 6


def _off_pose(T_gt: np.ndarray, centre_obj: np.ndarray) -> np.ndarray:
    """T_gt moved 10 cm and turned 40° about a tilted axis through the model's centre."""
    R = axis_angle_to_matrix(np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5]),
                             np.radians(40.0))
    T = np.array(T_gt, np.float64)
    c = T[:3, :3] @ centre_obj + T[:3, 3]
    T[:3, :3] = R @ T[:3, :3]
    T[:3, 3] = R @ (T[:3, 3] - c) + c + np.array([0.06, -0.03, 0.075])
    return T


def _visible_pixels(scene, t: int) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Pixels (N, 2) (u, v) well inside the box's visible part in frame t (ground-truth
    render of every object, so other objects hide it), {id: T_world_obj} and the
    rendered depth (H, W) metres."""
    doc = AnnotationDocument.read(scene / "annotations.json")
    objs = [(o.id, load_model(resolve_model_path(o.model, scene)), o.T_world_obj)
            for o in doc.objects]
    from labeller.formats.scene import Scene

    sc = Scene(scene)
    r = ObjectRenderer(objs).render(sc.camera, sc.trajectory[t])
    mask = (r.inst == BOX).astype(np.uint8)
    k = 2 * EDGE_MARGIN_PX + 1
    inner = cv2.erode(mask, np.ones((k, k), np.uint8)) > 0
    inner &= cv2.erode((sc.depth(t) > 0).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    vs, us = np.nonzero(inner)
    return np.stack([us, vs], 1), {i: T for i, _, T in objs}, r.depth


def _spread(points: np.ndarray, n: int) -> list[int]:
    """Indices of n points spread out (farthest-point sampling from the first)."""
    chosen = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
    d = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < n:
        chosen.append(int(np.argmax(d)))
        d = np.minimum(d, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def _open_aligned_window(qtbot, make_window, scene):
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    w.select(BOX)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_A)  # Edit ▸ Align by points
    assert w.point_aligner.active
    return w, w.point_aligner


def test_align_by_points_lands_on_ground_truth_in_one_undo_step(qtbot, make_window,
                                                                scene_copy, dialogs):
    scene = scene_copy()
    t = 0
    pix, poses, depth_gt = _visible_pixels(scene, t)
    T_gt = poses[BOX]
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    assert w.current_frame == t
    mesh = w.model.object_model(BOX)
    T_start = _off_pose(T_gt, model_centre(mesh))
    w.model.set_pose(BOX, T_start)  # as if the user had placed it roughly
    assert translation_error_m(T_start, T_gt) > 0.1 and rotation_error_deg(T_start, T_gt) > 39
    w.select(BOX)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_A)
    pa = w.point_aligner
    assert pa.active and pa.dialog.isVisible()
    assert pa.dialog.refine_box.isChecked()  # refine after aligning: on by default
    mv = pa.dialog.model_view
    # Orbit the model view a little with a drag (a person turns it to match the frame).
    cam0 = mv.camera
    start = QPoint(mv.width() // 2, mv.height() // 2)
    qtbot.mousePress(mv, Qt.LeftButton, pos=start)
    for k in range(1, 5):
        qtbot.mouseMove(mv, start + QPoint(-5 * k, 2 * k))
    qtbot.mouseRelease(mv, Qt.LeftButton, pos=start + QPoint(-20, 8))
    assert rotation_error_deg(mv.camera.T_vcam_obj, cam0.T_vcam_obj) > 5
    assert pa.model_points == []  # a drag is not a pick

    # The true surface points under the box's visible pixels, and whether the model view
    # shows them too (the ray through their pixel there hits them, not another face).
    cam, T_wc = w.model.camera, w.model.T_world_cam(t)
    p_cam = cam.backproject(pix[:, 0], pix[:, 1], depth_gt[pix[:, 1], pix[:, 0]])
    p_obj = transform_points(inv_pose(T_gt) @ T_wc, p_cam)
    seen = []
    for i in range(0, len(pix), 7):
        u, v, _ = mv.pixel_of(p_obj[i])
        hit = mv.caster.render(mv.camera.intrinsics, inv_pose(mv.camera.T_vcam_obj),
                               roi=(int(round(u)), int(round(v)), 1, 1))
        if 0 <= round(u) < mv.width() and 0 <= round(v) < mv.height() and hit.depth[0, 0] > 0:
            q = transform_points(inv_pose(mv.camera.T_vcam_obj), mv.camera.intrinsics
                                 .backproject(round(u), round(v), hit.depth[0, 0]))
            if np.linalg.norm(q - p_obj[i]) < 0.003:
                seen.append(i)
    assert len(seen) >= 4, len(seen)
    picks = [seen[j] for j in _spread(p_obj[seen], 4)]

    for n, i in enumerate(picks, start=1):
        u, v, _ = mv.pixel_of(p_obj[i])
        qtbot.mouseClick(mv, Qt.LeftButton, pos=QPoint(int(round(u)), int(round(v))))
        assert len(pa.model_points) == n
        assert np.linalg.norm(pa.model_points[-1] - p_obj[i]) < 0.003
        qtbot.mouseClick(w.view.viewport(), Qt.LeftButton,
                         pos=w.view.view_pos_of_pixel(*pix[i]))
        assert len(pa.frame_points) == n
        assert (pa.frame_points[-1].u, pa.frame_points[-1].v) == tuple(pix[i])
    assert w.selected_id == BOX  # the frame clicks picked points, not objects
    assert len(mv.markers) == 4 and pa.dialog.table.rowCount() == 4
    markers = pa.frame_markers
    assert len(markers) == 4 and all(it.isVisible() for it in markers)
    assert w.undo_stack.count() == 0 and np.array_equal(w.model.pose(BOX), T_start)

    qtbot.keyClick(w.view, Qt.Key_Return)  # Apply, from the frame view
    fit = pa.last_fit
    assert fit is not None and fit.rms_mm < 5.0
    assert pa.dialog.table.item(0, 2).text() != ""  # residuals shown
    qtbot.waitUntil(lambda: pa.idle() and pa.last_refine is not None, timeout=120000)
    T_end = w.model.pose(BOX)
    assert translation_error_m(T_end, T_gt) < 0.005, translation_error_m(T_end, T_gt)
    assert rotation_error_deg(T_end, T_gt) < 2.0, rotation_error_deg(T_end, T_gt)
    assert w.undo_stack.count() == 1  # the fit and its refinement: one step
    assert "Align by points" in w.undo_stack.text(0)
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(BOX), T_start)
    w.undo_stack.redo()
    assert np.array_equal(w.model.pose(BOX), T_end)
    qtbot.keyClick(w.view, Qt.Key_Escape)  # leaves the mode, keeps the pose
    assert not pa.active and w.selected_id == BOX
    assert not any(it.scene() is w.view.scene() for it in markers)
    assert dialogs.calls == []


def test_align_mode_refuses_bad_clicks_and_esc_cancels(qtbot, make_window, scene_copy,
                                                       dialogs):
    scene = scene_copy()
    d = cv2.imread(str(scene / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    d[:40, :40] = 0  # the sensor measured nothing in the top-left corner
    cv2.imwrite(str(scene / "depth" / "000000.png"), d)
    w, pa = _open_aligned_window(qtbot, make_window, scene)
    T0 = w.model.pose(BOX)
    mv = pa.dialog.model_view
    qtbot.mouseClick(w.view.viewport(), Qt.LeftButton, pos=w.view.view_pos_of_pixel(10, 12))
    assert pa.frame_points == []
    assert "pixel (10, 12) of frame 0 has no depth: click a point the sensor measured" \
        in pa.dialog.message.text()
    assert w.selected_id == BOX
    # two pairs: Apply says three are needed and changes nothing
    assert mv.image is not None
    vs, us = np.nonzero(mv.image.depth > 0)
    for k in (0, len(us) - 1):
        qtbot.mouseClick(mv, Qt.LeftButton, pos=QPoint(int(us[k]), int(vs[k])))
    for u, v in ((160, 150), (200, 160)):
        qtbot.mouseClick(w.view.viewport(), Qt.LeftButton, pos=w.view.view_pos_of_pixel(u, v))
    assert len(pa.model_points) == 2 and len(pa.frame_points) == 2
    qtbot.mouseClick(pa.dialog.apply_button, Qt.LeftButton)
    assert "2 point pair(s): at least 3 are needed" in pa.dialog.message.text()
    # a third model point without its frame point: the counts do not match
    qtbot.mouseClick(mv, Qt.LeftButton, pos=QPoint(int(us[len(us) // 2]), int(vs[len(us) // 2])))
    pa.apply()
    assert "3 model point(s) but 2 frame point(s)" in pa.dialog.message.text()
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_Backspace)  # removes the last point (the model one)
    assert len(pa.model_points) == 2
    assert w.undo_stack.count() == 0 and np.array_equal(w.model.pose(BOX), T0)
    w.panel.list.setFocus()
    qtbot.keyClick(w.panel.list, Qt.Key_Escape)  # cancels, from the panel too: no change,
    assert not pa.active and w.selected_id == BOX  # and the object stays selected
    assert w.undo_stack.count() == 0 and np.array_equal(w.model.pose(BOX), T0)
    assert dialogs.calls == []


def test_align_without_selection_says_so(qtbot, make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy())
    wait_render(qtbot, w)
    w.select(None)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_A)
    assert not w.point_aligner.active
    assert "Select an object first" in w.statusBar().currentMessage()
