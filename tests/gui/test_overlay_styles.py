"""Overlay styles (textured / silhouette / outline) and object axes: the Qt-free renderer
(labeller.geometry.overlay) and the window's T / X keys."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from labeller.core.poses import inv_pose
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import load_model
from labeller.formats.scene import Scene
from labeller.geometry.overlay import (
    AXIS_RGB,
    OVERLAY_MODES,
    OverlayObject,
    OverlayRenderer,
    OverlayStyle,
    axis_length_m,
    axis_points_px,
    compose_overlay,
    next_overlay_mode,
)
from labeller.geometry.textured_render import TexturedRenderer, load_textured_model
from labeller.gui.actions import keys_rows
from tests.gui.conftest import wait_render

FLAT = (200, 0, 0)


@pytest.fixture(scope="module")
def posed(synth_master):
    s = Scene(synth_master)
    doc = AnnotationDocument.read(synth_master / "gt" / "annotations.json")
    objs = [OverlayObject(o.id, load_model(synth_master / o.model), o.T_world_obj, FLAT)
            for o in doc.objects]
    return s, objs


def _interior(inst: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Object pixels that are not outline (the outline is opaque)."""
    return (inst > 0) & (rgba[..., 3] < 255)


def test_silhouette_output_is_the_flat_fill(posed):
    s, objs = posed
    T_wc = s.trajectory[3]
    style = OverlayStyle()
    assert style.mode == "silhouette" and not style.axes  # the library default is unchanged
    sel = objs[0].obj_id
    out = OverlayRenderer().render(s.camera, T_wc, objs, sel, style)
    _, inst, _ = OverlayRenderer().cast(s.camera, T_wc, objs)
    ref = compose_overlay(inst, {o.obj_id: o.color_rgb for o in objs}, sel, style)
    assert out.rgba.tobytes() == ref.tobytes()
    inside = _interior(out.inst, out.rgba)
    assert inside.sum() > 1000
    assert np.all(out.rgba[inside] == (*FLAT, round(0.45 * 255)))


def test_textured_draws_each_models_own_shaded_colours(posed):
    s, objs = posed
    T_wc = s.trajectory[3]
    style = OverlayStyle(mode="textured")
    out = OverlayRenderer().render(s.camera, T_wc, objs, None, style)
    sil = OverlayRenderer().render(s.camera, T_wc, objs, None, OverlayStyle())
    assert np.array_equal(out.inst, sil.inst)
    inside = _interior(out.inst, out.rgba)
    assert np.all(out.rgba[inside, 3] == round(0.45 * 255))
    # Outlines stay in the object colour, exactly as in the silhouette style.
    edge = sil.rgba[..., 3] == 255
    assert np.array_equal(out.rgba[edge], sil.rgba[edge])
    # Inside: the models' own colours, shaded; the joint textured cast agrees.
    ref = TexturedRenderer([(o.obj_id, load_textured_model(o.model.path), o.T_world_obj)
                            for o in objs]).render(s.camera, T_wc)
    both = inside & (ref.inst == out.inst)
    assert both.sum() > 0.99 * inside.sum()
    diff = np.abs(out.rgba[..., :3][both].astype(int) - ref.shaded_rgb8()[both].astype(int))
    assert np.percentile(diff, 99) <= 2
    assert len(np.unique(out.rgba[..., :3][inside], axis=0)) > 50  # not a flat fill
    # The half-resolution preview keeps the colours too.
    pv = OverlayRenderer().render(s.camera, T_wc, objs, None, style, preview=True)
    assert pv.preview and pv.rgba.shape == out.rgba.shape
    assert len(np.unique(pv.rgba[..., :3][_interior(pv.inst, pv.rgba)], axis=0)) > 50


def test_outline_style_leaves_the_inside_clear(posed):
    s, objs = posed
    T_wc = s.trajectory[3]
    out = OverlayRenderer().render(s.camera, T_wc, objs, objs[1].obj_id,
                                   OverlayStyle(mode="outline"))
    sil = OverlayRenderer().render(s.camera, T_wc, objs, objs[1].obj_id, OverlayStyle())
    edge = sil.rgba[..., 3] == 255
    assert edge.sum() > 100
    assert np.array_equal(out.rgba[edge], sil.rgba[edge])
    assert np.all(out.rgba[~edge, 3] == 0)


def test_axes_start_at_the_projected_origin(posed):
    s, objs = posed
    T_wc = s.trajectory[3]
    base = OverlayRenderer().render(s.camera, T_wc, objs, None, OverlayStyle(mode="outline"))
    out = OverlayRenderer().render(s.camera, T_wc, objs, None,
                                   OverlayStyle(mode="outline", axes=True))
    checked = 0
    for o in objs:
        T_cam_obj = inv_pose(T_wc) @ o.T_world_obj
        L = axis_length_m(o.model)
        assert L == pytest.approx(0.5 * o.model.extent_m.max())
        uv = axis_points_px(s.camera, T_cam_obj, L)
        assert uv is not None
        np.testing.assert_allclose(uv[0], s.camera.project(T_cam_obj[:3, 3][None])[0])
        u0, v0 = np.rint(uv[0]).astype(int)
        if not (2 <= u0 < s.camera.width - 2 and 2 <= v0 < s.camera.height - 2):
            continue
        assert out.rgba[v0, u0, 3] == 255  # the origin is drawn on
        for k in range(3):
            # Half-way along each axis the pixel is that axis' colour (unless another
            # axis of an object crosses there).
            m = np.rint((uv[0] + uv[k + 1]) / 2).astype(int)
            if np.linalg.norm(uv[k + 1] - uv[0]) < 8 or not (
                    0 <= m[0] < s.camera.width and 0 <= m[1] < s.camera.height):
                continue
            px = out.rgba[m[1], m[0]]
            assert px[3] > 200 and int(np.argmax(px[:3])) == int(np.argmax(AXIS_RGB[k])), (k, px)
            checked += 1
    assert checked >= 6
    assert (out.rgba[..., 3] != base.rgba[..., 3]).sum() > 100


def test_mode_names_and_cycle():
    assert OVERLAY_MODES == ("textured", "silhouette", "outline")
    assert [next_overlay_mode(m) for m in OVERLAY_MODES] == ["silhouette", "outline", "textured"]
    with pytest.raises(ValueError, match="overlay mode 'shiny' is not one of textured"):
        OverlayStyle(mode="shiny")


def test_t_cycles_the_style_and_x_shows_the_axes(qtbot, make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy())
    wait_render(qtbot, w)
    # Textured is the window's default.
    assert w.state.overlay_style.mode == "textured"
    res = w.last_result
    assert res is not None and res.overlay is not None and res.request.style.mode == "textured"
    inside = _interior(res.overlay.inst, res.overlay.rgba)
    assert inside.sum() > 200
    assert len(np.unique(res.overlay.rgba[..., :3][inside], axis=0)) > 30
    colours = {o.obj_id: o.color_rgb for o in w.overlay_objects()}

    qtbot.keyClick(w, Qt.Key.Key_T)
    wait_render(qtbot, w)
    ov = w.last_result.overlay
    assert w.last_result.request.style.mode == "silhouette"
    inside = _interior(ov.inst, ov.rgba)
    for i in np.unique(ov.inst[inside]):
        assert np.all(ov.rgba[..., :3][inside & (ov.inst == i)] == colours[int(i)])
    assert "silhouette" in w.statusBar().currentMessage()
    assert ("View", "T", "Overlay style (now: silhouette)") in keys_rows(w)
    assert ("View", "X", "Object axes") in keys_rows(w)

    qtbot.keyClick(w, Qt.Key.Key_T)
    wait_render(qtbot, w)
    ov = w.last_result.overlay
    assert w.last_result.request.style.mode == "outline"
    assert np.all(ov.rgba[..., 3][(ov.inst > 0) & (ov.rgba[..., 3] < 255)] == 0)
    qtbot.keyClick(w, Qt.Key.Key_T)
    wait_render(qtbot, w)
    assert w.last_result.request.style.mode == "textured"

    before = w.last_result.overlay.rgba.copy()
    assert not w.actions_.axes.isChecked()
    qtbot.keyClick(w, Qt.Key.Key_X)
    wait_render(qtbot, w)
    assert w.actions_.axes.isChecked() and w.last_result.request.style.axes
    with_axes = w.last_result.overlay.rgba
    red = (with_axes[..., 0] > 200) & (with_axes[..., 1] < 80) & (with_axes[..., 3] == 255)
    red_before = (before[..., 0] > 200) & (before[..., 1] < 80) & (before[..., 3] == 255)
    assert red.sum() > red_before.sum() + 20
    qtbot.keyClick(w, Qt.Key.Key_X)
    wait_render(qtbot, w)
    assert not w.actions_.axes.isChecked()
    assert np.array_equal(w.last_result.overlay.rgba, before)
    # View state only: nothing to save, nothing to undo.
    assert not w.model.dirty and w.undo_stack.count() == 0
    # Both are in the View menu.
    view = next(a.menu() for a in w.menuBar().actions() if a.text() == "&View")
    assert {w.actions_.overlay_mode, w.actions_.axes} <= set(view.actions())
