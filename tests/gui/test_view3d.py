"""The 3D view (View ▸ 3D view, Ctrl+3) on a tracked synthetic scene: it shows the
models where they project, the fused cloud and the camera path; orbiting, panning and
zooming change the picture; a click on a model selects it, a selection in the list
highlights it; a pose change draws again; a scene without (or with a broken)
recon/cloud.ply shows a note instead of failing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from labeller.annotate.scene_view import BACKGROUND_RGB, FRUSTUM_RGB, SELECTED_RGB
from labeller.core.poses import inv_pose, transform_points
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.scene import Scene
from labeller.synth import SynthConfig
from labeller.synth import run as synth
from labeller.track import TrackConfig
from labeller.track import run as track
from tests.gui.conftest import wait_render
from tests.helpers import ROOT, SHARED_DATA

README_SCREENSHOT = ROOT / "docs" / "images" / "gui_3d_view.png"


@pytest.fixture(scope="module")
def tracked_master(synth_master, tmp_path_factory) -> Path:
    """The GUI tests' synthetic scene, tracked by `labeller track` (recon/cloud.ply
    fused from its frames; trajectory.txt replaced by the tracked one)."""
    out = tmp_path_factory.mktemp("view3d") / "scene"
    shutil.copytree(synth_master, out)
    track(TrackConfig(out, force=True))
    assert Scene(out).paths.cloud.is_file()
    return out


@pytest.fixture
def tracked(tracked_master, tmp_path) -> Path:
    dst = tmp_path / "scene"
    shutil.copytree(tracked_master, dst)
    return dst


def _open_3d(qtbot, make_window, scene: Path):
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    c = w.view3d
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert c.dock.isVisible() and w.actions_.view3d.isChecked()
    c.dock.setFloating(True)  # a known size, whatever the docks around it
    c.dock.resize(640, 480)
    qtbot.waitUntil(lambda: c.last_image is not None and c.idle(), timeout=10000)
    return w, c


def _settle(qtbot, c) -> None:
    qtbot.waitUntil(c.idle, timeout=10000)
    c.render_now()


def _projected_box(c, w, obj_id):
    """Box (u0, v0, u1, v1) of the model's vertices projected into the 3D view's camera
    (independent of the ray casting)."""
    img = c.last_image
    h, wd = img.inst.shape
    cam = c.view.intrinsics(wd, h)
    T_view_obj = inv_pose(c.view.T_world_view) @ w.model.pose(obj_id)
    p = transform_points(T_view_obj, w.model.object_model(obj_id).vertices)
    uv = cam.project(p[p[:, 2] > 0.01])
    return uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()


def _interior_pixel(img, obj_id) -> tuple[int, int]:
    m = cv2.erode((img.inst == obj_id).astype(np.uint8), np.ones((5, 5), np.uint8))
    vs, us = np.nonzero(m if m.any() else img.inst == obj_id)
    k = len(us) // 2
    return int(us[k]), int(vs[k])


def test_3d_view_shows_models_cloud_and_camera_path(qtbot, make_window, tracked):
    w, c = _open_3d(qtbot, make_window, tracked)
    img = c.last_image
    assert c.widget.note == ""  # cloud and trajectory are there
    bg = np.all(img.rgb == BACKGROUND_RGB, axis=-1)
    seen = set(np.unique(img.inst).tolist()) - {0}
    assert len(seen) >= 4, seen  # models drawn (a few may hide each other)
    for i in seen:
        m = img.inst == i
        assert not bg[m].any()  # drawn where the object is
        u0, v0, u1, v1 = _projected_box(c, w, i)
        vs, us = np.nonzero(m)
        # the ray-cast pixels lie inside the projection of the model's vertices
        assert us.min() >= u0 - 2 and us.max() <= u1 + 2 and vs.min() >= v0 - 2 \
            and vs.max() <= v1 + 2, (i, (u0, v0, u1, v1), (us.min(), vs.min()))
    assert img.n_points > 2000  # the fused cloud
    assert (~bg & (img.inst == 0)).mean() > 0.02
    # the current frame's camera: a frustum drawn at its projected position
    T_view_cam = inv_pose(c.view.T_world_view) @ w.model.T_world_cam(w.current_frame)
    h, wd = img.inst.shape
    u, v = c.view.intrinsics(wd, h).project(T_view_cam[:3, 3][None])[0]
    u, v = int(round(u)), int(round(v))
    near = img.rgb[max(v - 3, 0):v + 4, max(u - 3, 0):u + 4].reshape(-1, 3).astype(int)
    assert (np.abs(near - FRUSTUM_RGB).sum(1) < 90).any()


def test_orbit_pan_zoom_change_the_picture(qtbot, make_window, tracked):
    w, c = _open_3d(qtbot, make_window, tracked)
    before, view0 = c.last_image.rgb.copy(), c.view
    wid = c.widget
    start = QPoint(wid.width() // 2, wid.height() // 2)
    qtbot.mousePress(wid, Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, 6):
        qtbot.mouseMove(wid, start + QPoint(12 * k, 4 * k))
    assert c._drag  # drawn at half resolution while the button is held
    qtbot.mouseRelease(wid, Qt.MouseButton.LeftButton, pos=start + QPoint(60, 20))
    _settle(qtbot, c)
    after = c.last_image.rgb
    assert after.shape == before.shape  # full resolution again
    assert c.view.yaw_rad != view0.yaw_rad and c.view.pitch_rad != view0.pitch_rad
    assert np.allclose(c.view.target_world, view0.target_world)
    changed = (np.abs(after.astype(int) - before.astype(int)).sum(-1) > 30).mean()
    assert changed > 0.05, f"orbiting changed only {changed:.1%} of the picture"

    target = np.array(c.view.target_world)
    qtbot.mousePress(wid, Qt.MouseButton.RightButton, pos=start)
    for k in range(1, 4):
        qtbot.mouseMove(wid, start + QPoint(-10 * k, 0))
    qtbot.mouseRelease(wid, Qt.MouseButton.RightButton, pos=start + QPoint(-30, 0))
    _settle(qtbot, c)
    assert not np.allclose(c.view.target_world, target)

    d0 = c.view.distance_m
    pos = QPointF(start)
    ev = QWheelEvent(pos, QPointF(wid.mapToGlobal(start)), QPoint(0, 0), QPoint(0, 120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(wid, ev)
    _settle(qtbot, c)
    assert c.view.distance_m < d0  # wheel forward comes closer


def test_click_selects_and_list_selection_highlights(qtbot, make_window, tracked):
    w, c = _open_3d(qtbot, make_window, tracked)
    img = c.last_image
    seen = sorted(set(np.unique(img.inst).tolist()) - {0},
                  key=lambda i: -(img.inst == i).sum())
    obj = seen[0]
    assert w.selected_id is None
    assert not np.all(img.rgb == SELECTED_RGB, axis=-1).any()
    pos = c.widget_pos(*_interior_pixel(img, obj)).toPoint()
    qtbot.mouseClick(c.widget, Qt.MouseButton.LeftButton, pos=pos)
    assert w.selected_id == obj
    assert w.panel.list.currentItem() is not None
    _settle(qtbot, c)
    white = np.all(c.last_image.rgb == SELECTED_RGB, axis=-1)
    near_obj = cv2.dilate((c.last_image.inst == obj).astype(np.uint8), np.ones((3, 3))) > 0
    assert (white & near_obj).sum() > 10  # outlined
    # empty space keeps the selection
    bg = np.argwhere((c.last_image.inst == 0)
                     & np.all(c.last_image.rgb == BACKGROUND_RGB, axis=-1))
    v, u = bg[len(bg) // 2]
    qtbot.mouseClick(c.widget, Qt.MouseButton.LeftButton, pos=c.widget_pos(u, v).toPoint())
    assert w.selected_id == obj

    other = seen[1]
    w.panel.selectionRequested.emit(other)  # picked in the object list
    assert w.selected_id == other
    _settle(qtbot, c)
    white = np.all(c.last_image.rgb == SELECTED_RGB, axis=-1)
    near_other = cv2.dilate((c.last_image.inst == other).astype(np.uint8),
                            np.ones((3, 3))) > 0
    near_obj = cv2.dilate((c.last_image.inst == obj).astype(np.uint8), np.ones((3, 3))) > 0
    assert (white & near_other).sum() > 10 and (white & near_obj & ~near_other).sum() == 0


def test_pose_change_draws_again(qtbot, make_window, tracked):
    w, c = _open_3d(qtbot, make_window, tracked)
    img = c.last_image
    obj = max(set(np.unique(img.inst).tolist()) - {0}, key=lambda i: (img.inst == i).sum())
    n0, before = c.renders, (img.inst == obj)
    T = w.model.pose(obj)
    T[:3, 3] += 0.08 * c.view.T_world_view[:3, 0]  # 8 cm to the view's right
    w.editor.push_pose(obj, T, "test move")  # an undo step, as the GUI does it
    qtbot.waitUntil(lambda: c.renders > n0 and c.idle(), timeout=10000)
    moved = c.last_image.inst == obj
    assert np.nonzero(moved)[1].mean() > np.nonzero(before)[1].mean() + 5
    w.undo_stack.undo()
    qtbot.waitUntil(lambda: c.renders > n0 + 1 and c.idle(), timeout=10000)
    assert np.array_equal(c.last_image.inst == obj, before)


def test_scene_without_cloud_shows_a_note(qtbot, make_window, scene_copy):
    scene = scene_copy()  # tracked ground truth, but nothing fused
    assert not Scene(scene).paths.cloud.exists()
    w, c = _open_3d(qtbot, make_window, scene)
    note = c.widget.note
    assert "No fused cloud" in note and "cloud.ply: file not found" in note, note
    assert c.last_image.n_points == 0
    assert len(set(np.unique(c.last_image.inst).tolist()) - {0}) >= 4  # models still drawn


def test_broken_cloud_shows_a_note(qtbot, make_window, tracked):
    Scene(tracked).paths.cloud.write_bytes(b"ply\nformat ascii 1.0\nthis is not a cloud\n")
    w, c = _open_3d(qtbot, make_window, tracked)
    assert "cloud.ply: holds no points" in c.widget.note, c.widget.note


def test_scene_without_trajectory_shows_a_note(qtbot, make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy(trajectory=False))
    w.view3d.toggle(True)
    qtbot.waitUntil(lambda: w.view3d.last_image is not None, timeout=10000)
    assert "no trajectory.txt" in w.view3d.widget.note
    w.view3d.toggle(False)
    assert not w.view3d.dock.isVisible() and not w.actions_.view3d.isChecked()
    w.actions_.view3d.trigger()
    assert w.view3d.dock.isVisible() and w.actions_.view3d.isChecked()
    w.view3d.dock.close()  # its title bar's close button
    assert not w.actions_.view3d.isChecked()


def test_screenshot_3d_view(qtbot, make_window, tmp_path):
    """docs/images/gui_3d_view.png: a 640x480 scene with the YCB meshes, tracked, one
    object selected (written to docs/ only with LABELLER_UPDATE_SCREENSHOTS=1)."""
    scene = tmp_path / "kitchen_table"
    lib = SHARED_DATA / "ycb_models"
    synth(SynthConfig(scene, frames=30, seed=11, with_annotations=True,
                      models_dir=lib if lib.is_dir() else None))
    track(TrackConfig(scene, force=True))
    doc = AnnotationDocument.read(scene / "annotations.json")  # placed on the tracked path
    doc.trajectory_sha256 = Scene(scene).trajectory_sha256()
    doc.write(scene / "annotations.json")
    w = make_window(lib if lib.is_dir() else None)
    w.resize(1400, 860)
    assert w.open_scene(scene)
    w.set_frame(12)
    w.select(next(o.id for o in w.model.objects() if o.class_name == "cracker_box"))
    c = w.view3d
    w.actions_.view3d.trigger()
    wait_render(qtbot, w)
    qtbot.waitUntil(lambda: c._sized and c.idle(), timeout=10000)
    assert c.widget.height() > 0.35 * w.height()  # a useful size, not a strip
    c.view = c.view.orbit(-40, 10).zoom(0.7)
    qtbot.wait(50)
    img = c.render_now()
    assert img is not None and img.n_points > 5000 and c.widget.note == ""
    assert len(set(np.unique(img.inst).tolist()) - {0}) >= 4
    out = tmp_path / "gui_3d_view.png"
    assert w.grab().save(str(out))
    if os.environ.get("LABELLER_UPDATE_SCREENSHOTS"):
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, README_SCREENSHOT)
