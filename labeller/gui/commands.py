"""Undo commands: the only way the GUI changes the document model.

Each command stores the old and the new state (exact copies, so undo restores the very
same matrix) and calls `DocumentModel` methods in `redo`/`undo`. Pose changes of one
drag, or of a burst of key nudges on one object, merge into one undo step through
`QUndoCommand.id()`/`mergeWith` (SScanSS-2 style).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6.QtGui import QUndoCommand

from labeller.annotate.document import DocumentModel
from labeller.formats.annotations import ObjectAnnotation

# Merge ids (QUndoCommand.id): commands with the same id may merge.
SET_POSE_ID = 1001
# Key nudges on one object less than this far apart form one undo step.
NUDGE_BURST_S = 1.5


class SetPoseCommand(QUndoCommand):
    """Set one object's T_world_obj.

    merge_key: None (never merges), ("drag", serial) (all moves of one drag merge), or
    ("nudge",) (nudges on the same object merge while they come in a burst).
    clock: seconds (monotonic) when the command is made; it decides whether two nudges
    are one burst (tests pass their own).
    """

    def __init__(self, model: DocumentModel, obj_id: int, T_old: np.ndarray, T_new: np.ndarray,
                 text: str = "Move object", merge_key: tuple | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(text)
        self.model = model
        self.obj_id = obj_id
        self.T_old = np.array(T_old, dtype=np.float64)
        self.T_new = np.array(T_new, dtype=np.float64)
        self.merge_key = merge_key
        self.t_last = clock()

    def id(self) -> int:  # noqa: A003 - Qt's name
        return SET_POSE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, SetPoseCommand) or self.merge_key is None:
            return False
        if other.obj_id != self.obj_id or other.merge_key != self.merge_key:
            return False
        if self.merge_key[0] == "nudge" and other.t_last - self.t_last > NUDGE_BURST_S:
            return False
        self.T_new = other.T_new.copy()
        self.t_last = other.t_last
        self.setText(other.text())
        # A drag that ends where it started changes nothing: drop the step.
        if np.array_equal(self.T_new, self.T_old):
            self.setObsolete(True)
        return True

    def redo(self) -> None:
        self.model.set_pose(self.obj_id, self.T_new)

    def undo(self) -> None:
        self.model.set_pose(self.obj_id, self.T_old)


class AddObjectCommand(QUndoCommand):
    """Add an object (and its class to `classes` when new)."""

    def __init__(self, model: DocumentModel, obj: ObjectAnnotation, text: str | None = None):
        super().__init__(text or f"Add {obj.class_name} #{obj.id}")
        self.model = model
        self.obj = obj.copy()
        self.classes_before = model.classes

    def redo(self) -> None:
        self.model.insert_object(self.obj)

    def undo(self) -> None:
        self.model.remove_object(self.obj.id)
        if self.model.classes != self.classes_before:
            self.model.set_classes(self.classes_before)


class RemoveObjectCommand(QUndoCommand):
    """Delete an object; undo puts it back at the same place in the list."""

    def __init__(self, model: DocumentModel, obj_id: int):
        o = model.object(obj_id)
        super().__init__(f"Delete {o.class_name} #{obj_id}")
        self.model = model
        self.obj = o
        self.index = model.index_of(obj_id)

    def redo(self) -> None:
        self.obj, self.index = self.model.remove_object(self.obj.id)

    def undo(self) -> None:
        self.model.insert_object(self.obj, self.index)


class SetKeyframesCommand(QUndoCommand):
    """Set the keyframe lists of several objects at once: {obj_id: (old, new)}."""

    def __init__(self, model: DocumentModel, changes: dict[int, tuple[list[int], list[int]]],
                 text: str = "Keyframes"):
        super().__init__(text)
        self.model = model
        self.changes = {i: (list(a), list(b)) for i, (a, b) in changes.items()}

    def redo(self) -> None:
        for i, (_, new) in self.changes.items():
            self.model.set_keyframes(i, new)

    def undo(self) -> None:
        for i, (old, _) in self.changes.items():
            self.model.set_keyframes(i, old)
