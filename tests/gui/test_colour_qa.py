"""The colour check (flip QA) in the window: the preview flags a label turned 180 degrees
that the depth scores as perfect, says why when N jumps to it, and refine shows the colour
score. Real data: a PoseCNN demo frame with the YCB meshes (../shared)."""

from __future__ import annotations

import numpy as np

from labeller.core.classes import BY_NAME
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.models import resolve_model_path
from labeller.geometry.colour_consistency import model_half_turns
from tests.gui.conftest import wait_render
from tests.helpers import POSECNN, SHARED_DATA

YCB = SHARED_DATA / "ycb_models"


def _scene_with_flipped_box(tmp_path):
    """PoseCNN frame 000001 at its refined poses, the gelatin box turned 180 degrees about
    its up axis (the depth cannot see it: the box's shape is the same). Returns (scene,
    gelatin box id)."""
    import pytest

    from tests.test_propagate import posecnn_scene

    if not POSECNN.is_dir() or not YCB.is_dir():
        pytest.skip(f"{POSECNN} or {YCB} not found")
    scene = posecnn_scene(tmp_path / "s", "000001")
    doc = AnnotationDocument.read(scene / "annotations.json")
    box = next(o for o in doc.objects if o.class_name == "gelatin_box")
    turns = model_half_turns(resolve_model_path(box.model, scene, YCB),
                             BY_NAME["gelatin_box"].symmetry_axis)
    z_turn = next(S for S in turns if np.allclose(S[:3, :3] @ [0, 0, 1.0], [0, 0, 1.0]))
    box.T_world_obj = box.T_world_obj @ z_turn
    doc.write(scene / "annotations.json")
    return scene, box.id


def test_preview_flags_a_turned_box_and_says_why(qtbot, make_window, dialogs, tmp_path):
    scene, box = _scene_with_flipped_box(tmp_path)
    w = make_window(YCB)
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    w.previewer.toggle(True)
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=120000)
    pv = w.previewer.result
    k = pv.ids.index(box)
    score, flagged = pv.object_state(0)[box]
    assert score > 0.8 and flagged  # the depth sees nothing wrong; the colour does
    assert pv.colour_of(0)[box][1] == "flip suspected"
    assert not np.delete(pv.flagged, k, axis=1).any()  # the others are the given poses
    assert "look turned 180° by colour" in w.statusBar().currentMessage()
    assert w.previewer.frame_text(0).startswith(f"#{box} depth ")
    assert "flip suspected" in w.previewer.frame_text(0)
    assert {o.obj_id: o.color_rgb for o in w.overlay_objects()}[box] == (255, 40, 40)
    assert dialogs.calls == []


def test_refine_notice_shows_the_colour_score(qtbot, make_window, dialogs, tmp_path):
    scene, box = _scene_with_flipped_box(tmp_path)
    w = make_window(YCB)
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    w.select(box)
    res = w.refiner.refine_and_wait(timeout_s=120)
    assert res is not None and res.colour_after is not None
    assert res.colour_after.state_name == "flip suspected"
    text = w.status_line.notice_text
    assert "colour" in text and "flip suspected" in text, text
    assert f"{res.colour_after.score:.2f}" in text
