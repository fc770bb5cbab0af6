"""The undo commands (labeller.gui.commands) against a DocumentModel: redo / undo restore
the exact state, consecutive drags and nudge bursts merge into one step (the merge clock
is the test's), and the stack's clean state follows saving."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QUndoStack

from labeller.annotate.document import DocumentModel
from labeller.core.poses import make_pose
from labeller.gui.commands import (
    NUDGE_BURST_S,
    AddObjectCommand,
    RemoveObjectCommand,
    SetKeyframesCommand,
    SetPoseCommand,
)


class Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def model(scene_copy) -> DocumentModel:
    return DocumentModel.open(scene_copy())


def _moved(T: np.ndarray, dx_m: float) -> np.ndarray:
    out = np.array(T)
    out[0, 3] += dx_m
    return out


def test_set_pose_redo_undo_restores_exact_matrix(qapp, model):
    obj = model.object_ids[0]
    T0 = model.pose(obj)
    T1 = _moved(T0, 0.0123456789)
    stack = QUndoStack()
    stack.push(SetPoseCommand(model, obj, T0, T1, "Move"))  # push runs redo
    assert np.array_equal(model.pose(obj), T1) and model.dirty
    assert stack.count() == 1 and stack.undoText() == "Move"
    stack.undo()
    assert np.array_equal(model.pose(obj), T0) and not model.dirty
    stack.redo()
    assert np.array_equal(model.pose(obj), T1)


def test_moves_of_one_drag_merge_and_a_new_drag_does_not(qapp, model):
    obj = model.object_ids[0]
    T0 = model.pose(obj)
    stack = QUndoStack()
    T = T0
    for k in range(1, 6):
        T_new = _moved(T0, 0.001 * k)
        stack.push(SetPoseCommand(model, obj, T, T_new, "Drag", ("drag", 1)))
        T = T_new
    assert stack.count() == 1
    stack.push(SetPoseCommand(model, obj, T, _moved(T, 0.01), "Drag", ("drag", 2)))
    assert stack.count() == 2
    stack.undo()
    assert np.array_equal(model.pose(obj), T)
    stack.undo()
    assert np.array_equal(model.pose(obj), T0)


def test_a_drag_back_to_its_start_leaves_no_step(qapp, model):
    obj = model.object_ids[0]
    T0 = model.pose(obj)
    stack = QUndoStack()
    T1 = _moved(T0, 0.02)
    stack.push(SetPoseCommand(model, obj, T0, T1, "Drag", ("drag", 7)))
    stack.push(SetPoseCommand(model, obj, T1, T0, "Drag", ("drag", 7)))
    assert stack.count() == 0  # obsolete: dropped
    assert np.array_equal(model.pose(obj), T0) and not model.dirty


def test_nudges_merge_within_a_burst_only(qapp, model):
    obj = model.object_ids[0]
    clock = Clock()
    stack = QUndoStack()
    T0 = model.pose(obj)

    def nudge(T_from, dx):
        T_to = _moved(T_from, dx)
        stack.push(SetPoseCommand(model, obj, T_from, T_to, "Nudge", ("nudge",), clock=clock))
        return T_to

    T1 = nudge(T0, 0.001)
    clock.t += NUDGE_BURST_S * 0.9
    T2 = nudge(T1, 0.001)
    clock.t += NUDGE_BURST_S * 0.9  # measured from the last nudge of the burst
    T3 = nudge(T2, 0.001)
    assert stack.count() == 1
    clock.t += NUDGE_BURST_S * 1.1  # a pause: a new step
    nudge(T3, 0.001)
    assert stack.count() == 2
    stack.undo()
    assert np.array_equal(model.pose(obj), T3)
    stack.undo()
    assert np.array_equal(model.pose(obj), T0)


def test_nudges_on_another_object_or_unmerged_moves_do_not_merge(qapp, model):
    a, b = model.object_ids[:2]
    clock = Clock()
    stack = QUndoStack()
    Ta, Tb = model.pose(a), model.pose(b)
    stack.push(SetPoseCommand(model, a, Ta, _moved(Ta, 0.001), "Nudge", ("nudge",), clock=clock))
    stack.push(SetPoseCommand(model, b, Tb, _moved(Tb, 0.001), "Nudge", ("nudge",), clock=clock))
    assert stack.count() == 2
    Ta1 = model.pose(a)
    stack.push(SetPoseCommand(model, a, Ta1, _moved(Ta1, 0.001), "Enter pose", clock=clock))
    stack.push(SetPoseCommand(model, a, model.pose(a), _moved(model.pose(a), 0.001),
                              "Enter pose", clock=clock))
    assert stack.count() == 4  # merge_key None never merges


def test_add_object_and_undo_remove_its_new_class(qapp, model):
    classes = model.classes
    obj = model.new_object("mug", make_pose(np.eye(3), [0.0, 0.0, 0.5]), obj_id=99)
    stack = QUndoStack()
    stack.push(AddObjectCommand(model, obj))
    assert stack.undoText() == "Add mug #99"
    assert 99 in model.object_ids and "mug" in model.classes
    assert np.array_equal(model.pose(99), obj.T_world_obj)
    stack.undo()
    assert 99 not in model.object_ids and model.classes == classes and not model.dirty
    stack.redo()
    assert model.object_ids[-1] == 99


def test_remove_object_undo_puts_it_back_at_its_place(qapp, model):
    ids = model.object_ids
    victim = ids[1]
    before = model.object(victim)
    stack = QUndoStack()
    stack.push(RemoveObjectCommand(model, victim))
    assert victim not in model.object_ids and model.dirty
    stack.undo()
    assert model.object_ids == ids and not model.dirty
    back = model.object(victim)
    assert np.array_equal(back.T_world_obj, before.T_world_obj)
    assert back.class_name == before.class_name and back.keyframes == before.keyframes


def test_set_keyframes_of_several_objects_is_one_step(qapp, model):
    a, b = model.object_ids[:2]
    old_a, old_b = model.keyframes(a), model.keyframes(b)
    stack = QUndoStack()
    stack.push(SetKeyframesCommand(model, {a: (old_a, old_a + [4]), b: (old_b, [2, 4])},
                                   "Add keyframe 4"))
    assert model.keyframes(a) == sorted(set(old_a) | {4}) and model.keyframes(b) == [2, 4]
    assert stack.count() == 1
    stack.undo()
    assert model.keyframes(a) == old_a and model.keyframes(b) == old_b and not model.dirty


def test_clean_state_follows_the_saved_document(qapp, model):
    obj = model.object_ids[0]
    stack = QUndoStack()
    assert stack.isClean()
    T0 = model.pose(obj)
    stack.push(SetPoseCommand(model, obj, T0, _moved(T0, 0.003)))
    assert not stack.isClean() and model.dirty
    model.save()
    stack.setClean()  # what the window does after a save
    assert stack.isClean() and not model.dirty
    stack.undo()
    assert not stack.isClean() and model.dirty  # the file now holds the moved pose
    stack.redo()
    assert stack.isClean() and not model.dirty
