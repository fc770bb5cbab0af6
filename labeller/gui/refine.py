"""Refine: ICP of the selected object against the depth (or the fused cloud), in the background.

`RefineController` runs the Qt-free `labeller.annotate.refine.refine_object` on a
`BackgroundTask`; a better pose comes back as one undo step (`SetPoseCommand`) and the
status bar's notice (`labeller.gui.status_line.StatusLine.show_notice`: it stays until the
user's next action, progress lines cannot overwrite it) shows the depth-consistency score
before → after, or why nothing changed: for a correction beyond the bounds, how far ICP
wanted to move and turn the object and what the bounds are (`refused_text`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QApplication, QStatusBar

from labeller.annotate.document import DocumentModel
from labeller.annotate.refine import RefineResult, frame_measures, refine_object
from labeller.gui.commands import SetPoseCommand
from labeller.gui.editing import EditTarget
from labeller.gui.state import WindowState
from labeller.gui.tasks import BackgroundTask, stop_task


def refused_text(obj_id: int, res: RefineResult) -> str:
    """The notice for a refinement that kept the pose: why, and what to do."""
    if np.isfinite(res.wanted_moved_m) and res.max_trans_m > 0:
        return (f"Refine #{obj_id} refused: ICP wanted to move it "
                f"{res.wanted_moved_m * 1000:.1f} mm and turn it {res.wanted_turned_deg:.1f}°, "
                f"beyond the bounds ({res.max_trans_m * 1000:.0f} mm, "
                f"{res.max_rot_deg:.0f}°): place it closer by hand, then refine again "
                f"(score {res.score_before:.3f}{_colour_part(res)})")
    return f"Refine #{obj_id}: {res.reason} (score {res.score_before:.3f}{_colour_part(res)})"


def _colour_part(res: RefineResult) -> str:
    """"; colour 0.85 ok" (the colour check, flip QA), or "" when it was not computed."""
    text = res.colour_text()
    return f"; {text}" if text else ""


class RefineController(QObject):
    """state: read for the model and the main view's frame; undo_stack: where a refined
    pose goes; status: the window's status bar; edit_target(): the selected object in
    the main view (None, with the reason shown, when there is none); other_frames():
    the multi-view frames shown (refined together with the main view's frame);
    notice(text): shows an outcome until the next user action (default: the status bar)."""

    def __init__(self, state: WindowState, undo_stack: QUndoStack, status: QStatusBar,
                 edit_target: Callable[[], EditTarget | None],
                 other_frames: Callable[[], list[int]], parent: QObject | None = None,
                 notice: Callable[[str], None] | None = None):
        super().__init__(parent)
        self.state = state
        self.undo_stack = undo_stack
        self.status = status
        self.notice = notice or (lambda text: status.showMessage(text, 0))
        self.edit_target = edit_target
        self.other_frames = other_frames
        self.task: BackgroundTask | None = None
        self.last_result: RefineResult | None = None

    def frames(self) -> list[int]:
        """The main view's frame, then the multi-view frames other than it."""
        t = self.state.frame
        return [t] + [f for f in self.other_frames() if f != t]

    def refine_selected(self, source: str = "depth",
                        frames: list[int] | None = None) -> bool:
        """Start ICP of the selected object against the depth of `frames` (default:
        `self.frames()`) or the fused cloud (source "cloud"), in the background. When it
        finishes, a better pose is pushed as one undo step and the status bar shows the
        depth-consistency score before and after (`last_result`). False when it cannot
        start (reason in the status bar)."""
        if self.task is not None and self.task.running():
            self.status.showMessage("A refinement is already running", 4000)
            return False
        target = self.edit_target()
        m = self.state.model
        if target is None or m is None:
            return False
        obj_id = target.obj_id
        frames = frames or self.frames()
        scene, objs, T_start = m.scene, m.posed_objects(), m.pose(obj_id)
        self.last_result = None
        task = BackgroundTask(lambda _p: refine_object(scene, objs, obj_id, frames, source),
                              self)
        task.finished.connect(lambda res: self._refined(m, obj_id, T_start, res))
        task.failed.connect(lambda msg: self._failed(msg))
        self.task = task
        self.status.showMessage(f"Refining #{obj_id} ({source}, frames "
                                f"{', '.join(map(str, frames))})…", 0)
        task.start()
        return True

    def _failed(self, msg: str) -> None:
        self.status.clearMessage()  # the "Refining…" line
        self.notice(f"Refine failed: {msg}")

    def _refined(self, model: DocumentModel, obj_id: int, T_start: np.ndarray,
                 res: RefineResult) -> None:
        self.last_result = res
        if model is not self.state.model or not model.has_object(obj_id):
            return
        self.status.clearMessage()  # the "Refining…" line
        if not np.array_equal(model.pose(obj_id), T_start):
            self.notice(f"Refine #{obj_id}: the object moved meanwhile; result dropped")
            return
        if res.T_world_obj is not None:
            self.undo_stack.push(SetPoseCommand(model, obj_id, T_start, res.T_world_obj,
                                                "Refine"))
            self.notice(
                f"Refined #{obj_id}: depth score {res.score_before:.3f} → {res.score_after:.3f}"
                f" (moved {res.moved_m * 1000:.1f} mm, turned {res.turned_deg:.1f}°"
                f"{_colour_part(res)}; Ctrl+Z undoes)")
        else:
            self.notice(refused_text(obj_id, res))

    def idle(self) -> bool:
        return self.task is None or not self.task.running()

    def refine_and_wait(self, source: str = "depth", frames: list[int] | None = None,
                        timeout_s: float = 120.0) -> RefineResult | None:
        """refine_selected, then process events until it is done (scripts and tests)."""
        if not self.refine_selected(source, frames):
            return None
        t0 = time.monotonic()
        while not (self.idle() and self.last_result is not None):
            QApplication.processEvents()
            if self.idle() and self.last_result is None and \
                    time.monotonic() - t0 > 1.0:  # failed: no result comes
                break
            if time.monotonic() - t0 > timeout_s:
                break
            time.sleep(0.005)
        return self.last_result

    def current_scores(self) -> dict[int, float]:
        """{obj_id: depth-consistency score} of every object in the main view's frame."""
        m = self.state.model
        if m is None:
            return {}
        ms = frame_measures(m.scene, m.posed_objects(), self.state.frame)
        return {i: s.score for i, s in ms.items()}

    def close(self) -> None:
        """Wait for a running refinement (the scene is closing); its result is dropped."""
        stop_task(self.task, cancel=False)
        self.task = None
