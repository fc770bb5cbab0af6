"""The Suggestions panel: init's suggestions shown apart, Accept (one undo step), Accept
all, Reject; statuses written back to suggestions.json."""

from __future__ import annotations

import numpy as np
import pytest

from labeller.core.fileio import sha256_file
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.suggestions import Suggestion, SuggestionFile, suggestions_path


@pytest.fixture
def scene_with_suggestions(scene_copy):
    """The synthetic scene without annotations, its true poses as three suggestions."""
    scene = scene_copy(annotations=False)
    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    sugg = [Suggestion(o.class_name, o.model, o.T_world_obj, "register", depth_score=0.9)
            for o in gt.objects[:3]]
    SuggestionFile(sugg, [("mug", "no cluster of the cloud matched the model")],
                   sha256_file(scene / "trajectory.txt")).write(suggestions_path(scene))
    return scene, gt


def test_accept_is_one_undo_step_and_becomes_an_object(make_window, scene_with_suggestions):
    scene, gt = scene_with_suggestions
    w = make_window()
    assert w.open_scene(scene)
    panel = w.suggester.panel
    assert w.suggester.dock.isVisibleTo(w) and panel.list.count() == 3
    item = panel.list.item(0)
    assert item.text().startswith("? ") and item.font().italic()
    assert "mug (no cluster" in panel.missing.text()
    assert w.model.objects() == []
    panel.list.item(1).setSelected(True)
    panel.accept_button.click()
    (o,) = w.model.objects()
    assert o.class_name == gt.objects[1].class_name and np.allclose(o.T_world_obj, gt.objects[1].T_world_obj)
    assert panel.list.count() == 2
    f = SuggestionFile.read(suggestions_path(scene))
    assert [s.status for s in f.suggestions] == ["pending", "accepted", "pending"]
    w.undo_stack.undo()
    assert w.model.objects() == [] and panel.list.count() == 3
    assert [s.status for s in SuggestionFile.read(suggestions_path(scene)).suggestions] == ["pending"] * 3


def test_accept_all_then_reject_and_save(make_window, scene_with_suggestions):
    scene, gt = scene_with_suggestions
    w = make_window()
    assert w.open_scene(scene)
    panel = w.suggester.panel
    panel.list.item(2).setSelected(True)
    panel.reject_button.click()
    assert panel.list.count() == 2 and w.undo_stack.count() == 0
    panel.accept_all_button.click()
    assert len(w.model.objects()) == 2 and w.undo_stack.count() == 1 and panel.list.count() == 0
    assert not panel.accept_all_button.isEnabled()
    assert w.save()
    doc = AnnotationDocument.read(scene / "annotations.json")
    assert sorted(o.class_name for o in doc.objects) == sorted(o.class_name for o in gt.objects[:2])
    # reopened, nothing is pending any more
    w.close_scene()
    assert w.open_scene(scene)
    assert w.suggester.panel.list.count() == 0


def test_accepted_but_unsaved_is_offered_again(make_window, scene_with_suggestions, dialogs):
    scene, _ = scene_with_suggestions
    w = make_window()
    assert w.open_scene(scene)
    w.suggester.panel.accept_all_button.click()
    from PySide6.QtWidgets import QMessageBox

    dialogs.answer = QMessageBox.Discard  # close without saving
    w.close_scene()
    assert w.open_scene(scene)
    assert w.suggester.panel.list.count() == 3


def test_no_suggestions_file_no_dock(make_window, scene_copy):
    w = make_window()
    assert w.open_scene(scene_copy())
    assert not w.suggester.dock.isVisibleTo(w)


def test_find_by_registration_in_the_background(make_window, scene_copy, qtbot):
    """The panel runs `init --register` on a thread (progress, result in the list);
    Cancel stops it and leaves nothing written."""
    from labeller.track import TrackConfig
    from labeller.track import run as track_run

    scene = scene_copy(annotations=False)
    track_run(TrackConfig(scene=scene, force=True))
    w = make_window()
    assert w.open_scene(scene)
    c = w.suggester
    assert c.dock.isVisibleTo(w)  # the cloud is there: registration can run
    task = c.run_register()
    assert task is not None and c.panel.cancel_button.isVisibleTo(w)
    c.cancel()
    qtbot.waitUntil(lambda: not c.panel.cancel_button.isVisibleTo(w), timeout=120000)
    assert not suggestions_path(scene).exists()
    seen: list[tuple[int, int]] = []
    task = c.run_register()
    task.progress.connect(lambda d, t: seen.append((d, t)))
    qtbot.waitUntil(lambda: not c.panel.cancel_button.isVisibleTo(w), timeout=300000)
    f = SuggestionFile.read(suggestions_path(scene))
    assert seen and seen[-1][0] == seen[-1][1]
    n_pending = sum(s.status == "pending" for s in f.suggestions)
    assert c.panel.list.count() == n_pending
    assert n_pending + len(f.not_found) == len({o.class_name for o in AnnotationDocument.read(
        scene / "gt" / "annotations.json").objects})
