"""Keyboard focus and feedback in the annotation window (offscreen): keys keep working after
typing in a field, Esc, clicks on empty image, the refused-refine notice, Help ▸ Keys,
actions without a scene, the toolbar at 1280x800, remembered geometry, a missing depth
frame, the models folder of a second scene, and the multi-view frames."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QToolBar

from labeller.core.errors import SceneError
from labeller.core.poses import rotation_error_deg
from labeller.formats.scene import Scene
from labeller.gui.actions import shortcut_text
from labeller.gui.views import VIEW_KEYS, FrameView
from tests.gui.conftest import wait_render

MUG = 2  # the mug of the seed-3 synthetic scene


def _open(qtbot, make_window, scene_copy, **kw):
    w = make_window(**kw)
    assert w.open_scene(scene_copy())
    wait_render(qtbot, w)
    return w


def _type_into(qtbot, field, text: str) -> None:
    qtbot.mouseClick(field, Qt.LeftButton)  # as a user does: click the field
    field.selectAll()
    qtbot.keyClicks(field, text)


def _empty_pixel(w) -> tuple[int, int]:
    inst = w.view._inst
    assert inst is not None
    vs, us = np.nonzero(inst == 0)
    return int(us[len(us) // 2]), int(vs[len(vs) // 2])


# -- focus traps -------------------------------------------------------------------------
def test_keys_work_after_typing_in_a_pose_field(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.select(MUG)
    x = w.panel.pose_editor.fields["x"]
    _type_into(qtbot, x, "123.0")
    assert QApplication.focusWidget() is x
    # a letter cannot be part of a number: it reaches the shortcuts while the field is
    # being edited (M toggles the keyframe) and the view's keys (L turns the object)
    qtbot.keyClick(x, Qt.Key_M)
    assert w.model.keyframes(MUG) == [w.current_frame]
    T0 = w.model.pose(MUG)
    qtbot.keyClick(x, Qt.Key_L)
    assert rotation_error_deg(w.model.pose(MUG), T0) == pytest.approx(1.0, abs=1e-6)
    # Enter commits the field and gives the keys back to the frame view
    qtbot.keyClick(x, Qt.Key_Return)
    assert w.model.pose(MUG)[0, 3] == pytest.approx(0.123)
    assert QApplication.focusWidget() is w.view
    T1 = w.model.pose(MUG)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Right)  # the view's own key
    assert w.model.pose(MUG)[0, 3] != T1[0, 3]


def test_frame_box_enter_then_shortcuts(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    _type_into(qtbot, w.frame_spin, "3")
    qtbot.keyClick(w.frame_spin, Qt.Key_Return)
    assert w.current_frame == 3
    assert QApplication.focusWidget() is w.view
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Period)  # next frame
    assert w.current_frame == 4
    # ',' and '.' are number characters: while the box is edited they stay in it
    _type_into(qtbot, w.frame_spin, "7")
    qtbot.keyClick(w.frame_spin, Qt.Key_Comma)
    assert w.current_frame == 4


def test_escape_in_a_field_reverts_it_and_keeps_the_selection(qtbot, make_window, scene_copy,
                                                              dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.select(MUG)
    T0 = w.model.pose(MUG)
    x = w.panel.pose_editor.fields["x"]
    _type_into(qtbot, x, "555")
    qtbot.keyClick(x, Qt.Key_Escape)
    assert QApplication.focusWidget() is w.view
    assert w.selected_id == MUG  # Esc in a field is not a deselect
    assert x.value() == pytest.approx(T0[0, 3] * 1000, abs=0.05)
    assert np.array_equal(w.model.pose(MUG), T0) and w.undo_stack.count() == 0
    # Esc with the focus on the view deselects
    qtbot.keyClick(w.view, Qt.Key_Escape)
    assert w.selected_id is None


def test_edit_deselect_and_click_on_empty_image(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.select(MUG)
    u, v = _empty_pixel(w)
    x = w.panel.pose_editor.fields["x"]
    _type_into(qtbot, x, "1")
    qtbot.mouseClick(w.view.viewport(), Qt.LeftButton, pos=w.view.view_pos_of_pixel(u, v))
    assert w.selected_id == MUG  # empty image: the selection stays
    assert QApplication.focusWidget() is w.view  # ... and the keys come back
    w.actions_.deselect.trigger()  # Edit ▸ Deselect
    assert w.selected_id is None


def test_panel_clicks_leave_the_keys_with_the_view(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    lst = w.panel.list
    item = next(lst.item(i) for i in range(lst.count())
                if lst.item(i).data(Qt.ItemDataRole.UserRole) == MUG)
    qtbot.mouseClick(lst.viewport(), Qt.LeftButton, pos=lst.visualItemRect(item).center())
    assert w.selected_id == MUG
    assert QApplication.focusWidget() is w.view
    T0 = w.model.pose(MUG)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Down)  # not the list's next item
    assert w.selected_id == MUG and not np.array_equal(w.model.pose(MUG), T0)


# -- feedback ----------------------------------------------------------------------------
def test_refused_refine_says_how_far_and_stays(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    T = w.model.pose(MUG)
    T[0, 3] += 0.07  # 7 cm off: ICP wants more than the 4 cm it may move
    w.model.set_pose(MUG, T)
    w.select(MUG)
    res = w.refiner.refine_and_wait("depth")
    assert res is not None and res.T_world_obj is None, res
    assert res.reason == "correction beyond the bounds"
    note = w.status_line.notice_text
    assert f"{res.wanted_moved_m * 1000:.1f} mm" in note
    assert f"{res.wanted_turned_deg:.1f}°" in note
    assert "(40 mm, 20°)" in note and "refused" in note
    assert res.wanted_moved_m > res.max_trans_m
    # preview progress lines do not overwrite it
    lines: list[str] = []
    w.statusBar().messageChanged.connect(lines.append)
    w.previewer.toggle(True)
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=120000)
    assert any("scoring frame" in x for x in lines), lines
    assert w.status_line.notice_text == note and w.status_line.notice.isVisible()
    # the next user action clears it
    qtbot.keyClick(w.view, Qt.Key_Period)
    assert w.status_line.notice_text == ""


def test_keys_help_lists_every_shortcut(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.actions_.keys.trigger()  # Help ▸ Keys
    d = w.actions_.keys_dialog
    assert d is not None and d.isVisible()
    listed = {(k, what) for _, k, what in d.rows}
    text = d.browser.toPlainText()
    with_keys = [a for a in w.actions() if shortcut_text(a)]
    assert len(with_keys) >= 25
    for a in with_keys:
        label = str(a.property("keys_label") or a.text().replace("&", ""))
        assert (shortcut_text(a), label) in listed, label
        assert shortcut_text(a) in text and label in text
    for k in ("R", "Shift+R", "V", "N", "Ctrl+M", "Ctrl+E"):  # missing from the old text
        assert any(keys == k for keys, _ in listed), k
    for k, what in VIEW_KEYS:
        assert (k, what) in listed


def test_actions_need_a_scene(qtbot, make_window, scene_copy, dialogs):
    w = make_window()
    acts = w.actions_
    needing = acts.needing_scene()
    assert {acts.refine, acts.preview, acts.multiview, acts.export, acts.next_flag,
            acts.fit, acts.deselect} <= set(needing)
    assert [a.text() for a in needing if a.isEnabled()] == []
    assert all(a.isEnabled() for a in (acts.open, acts.quit, acts.keys))
    assert w.open_scene(scene_copy())
    assert [a.text() for a in acts.needing_scene() if not a.isEnabled()] == []
    w.close_scene()
    assert [a.text() for a in acts.needing_scene() if a.isEnabled()] == []


def test_toolbar_fits_at_1280x800(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.resize(1280, 800)
    qtbot.waitUntil(lambda: w.width() == 1280)
    QApplication.processEvents()
    bars = w.findChildren(QToolBar)
    assert len(bars) >= 2 and set(w.actions_.toolbars) <= set(bars)
    shown = 0
    for tb in bars:
        ext = [c for c in tb.children() if c.objectName() == "qt_toolbar_ext_button"]
        assert ext and not any(e.isVisible() for e in ext), tb.objectName()
        for a in tb.actions():
            if not a.isSeparator():
                wid = tb.widgetForAction(a)
                assert wid is not None and wid.isVisible(), a.text()
                shown += 1
    assert shown >= 16
    on_bars = {id(a) for tb in bars for a in tb.actions()}
    assert {id(w.actions_.multiview), id(w.actions_.export)} <= on_bars


def test_window_geometry_and_docks_are_remembered(qtbot, make_window, dialogs):
    w1 = make_window()
    # within the offscreen screen (800x600): restoreGeometry keeps a window on its screen
    w1.resize(760, 560)
    dock = next(d for d in w1.findChildren(type(w1.multiview_dock)) if d.objectName() == "objects")
    w1.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    qtbot.waitUntil(lambda: w1.width() != 1280)
    size = (w1.width(), w1.height())
    assert size != (1280, 800)
    w1.close()
    w2 = make_window()
    assert (w2.width(), w2.height()) == size
    dock2 = next(d for d in w2.findChildren(type(w2.multiview_dock))
                 if d.objectName() == "objects")
    assert w2.dockWidgetArea(dock2) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert not w2.multiview_dock.isVisible()  # scene docks wait for a scene


def test_missing_depth_frame_opens_marked(qtbot, make_window, scene_copy, dialogs):
    scene = scene_copy()
    (scene / "depth" / "000004.png").unlink()
    with pytest.raises(SceneError, match="missing depth frame 4"):
        Scene(scene)  # the stages still refuse it
    w = make_window()
    assert w.open_scene(scene)
    assert [k for k in dialogs.kinds() if k == "critical"] == []
    assert w.timeline.no_depth == [4]
    assert "frame(s) 4" in w.status_line.notice_text
    w.set_frame(4)
    wait_render(qtbot, w)
    assert w.view._note.isVisible() and "no depth image" in w.view._note.text()
    w.toggle_depth(True)
    wait_render(qtbot, w)
    assert w.last_result is not None and not w.last_result.error
    w.set_frame(3)
    wait_render(qtbot, w)
    assert not w.view._note.isVisible()
    # the checks (refine, preview) score the frames that have depth
    scores = w.refiner.current_scores()
    assert scores and max(scores.values()) > 0.5


def test_second_scene_does_not_keep_the_models_folder(qtbot, make_window, scene_copy,
                                                      tmp_path, dialogs):
    a, b = scene_copy(name="a"), scene_copy(name="b")
    models = tmp_path / "extra_models"
    shutil.copytree(a / "models", models)
    w = make_window(models_dir=models)
    assert w.open_scene(a)
    assert w.model.models_dir == models
    assert w.open_scene(b)
    assert w.model.models_dir is None and w.models_dir is None
    assert w.open_scene(a)  # a remembers the folder it was opened with
    assert w.model.models_dir is not None and w.model.models_dir.resolve() == models.resolve()


def test_multiview_follows_the_main_frame(qtbot, make_window, scene_copy, dialogs):
    w = _open(qtbot, make_window, scene_copy)
    w.multiview.toggle(True)
    first = list(w.multiview.frames)
    assert first and w.current_frame not in first
    w.set_frame(first[0])  # go to one of the shown frames
    now = list(w.multiview.frames)
    assert w.current_frame not in now and len(now) == len(first)
    assert now != first
    for v in w.multiview.views:
        assert isinstance(v, FrameView) and v.frame != w.current_frame
    # hidden, then shown after the main frame moved: picked again for the new frame
    w.multiview.toggle(False)
    w.set_frame(now[0])
    w.multiview.toggle(True)
    assert w.current_frame not in w.multiview.frames
