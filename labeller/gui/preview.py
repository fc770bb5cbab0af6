"""The propagation preview: every frame scored as `labeller propagate` would, objects drawn
green (ok) or red (flagged), flagged frames marked on the timeline.

An object is flagged by its depth score or by the colour check (a label that looks
turned 180 degrees, `labeller.geometry.colour_consistency`); jumping to a flagged frame
says which objects and why (`frame_text`).

`PreviewController` reads the scores from labels/labels.h5 when that file matches the
document (`labeller.annotate.preview.read_preview`), else computes them in the
background (`compute_preview`); an edit drops them and, while the preview is on,
recomputes once the edits pause.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QStatusBar

from labeller.annotate.document import DocumentModel
from labeller.annotate.preview import Preview, compute_preview, read_preview
from labeller.gui.state import RequestRender, WindowState
from labeller.gui.tasks import BackgroundTask, stop_task
from labeller.gui.views import Timeline

OK_RGB = (40, 220, 90)
FLAGGED_RGB = (255, 40, 40)
# Edits (a drag sends dozens a second) recompute the preview once they pause.
PREVIEW_DEBOUNCE_MS = 400


class PreviewController(QObject):
    """state: read for the model and the main view's frame; timeline: where flagged
    frames are marked; status: the window's status bar; request_render(); set_frame(t).
    `result` is the current `Preview` (None: not computed or out of date); `active`
    whether objects are coloured by it. Emits `activeChanged(bool)`."""

    activeChanged = Signal(bool)

    def __init__(self, state: WindowState, timeline: Timeline, status: QStatusBar,
                 request_render: RequestRender, set_frame: Callable[[int], None],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.timeline = timeline
        self.status = status
        self.request_render = request_render
        self.set_frame = set_frame
        self.result: Preview | None = None
        self.active = False
        self.task: BackgroundTask | None = None
        self._unsub: list[Callable[[], None]] = []
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self.timer.timeout.connect(self.start)

    def open(self, model: DocumentModel) -> None:
        """Follow `model`'s edits (an edit makes the preview out of date)."""
        for ev in ("pose_changed", "object_added", "object_removed"):
            self._unsub.append(model.subscribe(ev, lambda *_: self._annotations_edited()))
        self._unsub.append(model.subscribe("trajectory_changed", self._annotations_edited))

    def close(self) -> None:
        """Stop and forget everything (the scene is closing)."""
        for u in self._unsub:
            u()
        self._unsub = []
        self.timer.stop()
        stop_task(self.task)
        self.task = None
        self.result = None
        self.active = False
        self.activeChanged.emit(False)
        self.timeline.set_flagged([])

    def colour(self, obj_id: int, rgb: tuple[int, int, int],
               frame: int) -> tuple[int, int, int]:
        """While the preview is on, objects are drawn green (ok) or red (flagged in
        `frame`); otherwise in `rgb` (their class colour)."""
        if not self.active or self.result is None:
            return rgb
        st = self.result.object_state(frame).get(obj_id)
        if st is None or not np.isfinite(st[0]):
            return rgb
        return FLAGGED_RGB if st[1] else OK_RGB

    def _annotations_edited(self) -> None:
        if self.result is not None:
            self.result = None
            self.timeline.set_flagged([])
            if self.active:
                self.status.showMessage("Annotations changed: the preview is being "
                                        "recomputed", 4000)
                self.timer.start()

    def toggle(self, on: bool | None = None) -> None:
        """Turn the preview on or off (on=None flips it)."""
        self.active = (not self.active) if on is None else bool(on)
        self.activeChanged.emit(self.active)
        if self.active and self.result is None:
            self.start()
        self.timeline.set_flagged(self.result.flagged_frames()
                                  if self.active and self.result else [])
        self.request_render()

    def start(self) -> bool:
        """labels.h5 when it matches the document; else score every frame in the background."""
        m = self.state.model
        if m is None or not m.has_trajectory:
            return False
        objs = m.posed_objects()
        pv, why = read_preview(m.scene.paths.labels, objs, m.trajectory_sha256)
        if pv is not None:
            self._ready(pv)
            return True
        stop_task(self.task)
        scene = m.scene
        task = BackgroundTask(lambda progress: compute_preview(scene, objs, progress), self)
        task.finished.connect(self._computed)
        task.failed.connect(lambda msg: self.status.showMessage(f"Preview failed: {msg}",
                                                                8000))
        task.progress.connect(lambda d, t: self.status.showMessage(
            f"Preview ({why}): scoring frame {d}/{t}…", 2000))
        self.task = task
        task.start()
        return True

    def _computed(self, pv: Preview | None) -> None:
        if pv is not None:  # None: cancelled
            self._ready(pv)

    def _ready(self, pv: Preview) -> None:
        self.result = pv
        flagged = pv.flagged_frames()
        if self.active:
            self.timeline.set_flagged(flagged)
        flips = pv.n_colour_flagged()
        self.status.showMessage(
            f"Preview ({pv.source}): {len(flagged)} of {len(pv.frame_ids)} frames flagged"
            + (f", {flips} label(s) look turned 180° by colour" if flips else "")
            + ("; N jumps to the next" if flagged else ""), 8000)
        self.request_render()

    def idle(self) -> bool:
        return not self.timer.isActive() and (self.task is None or not self.task.running())

    def jump_flagged(self, direction: int = 1) -> int | None:
        """Go to the next (direction +1) or previous (-1) flagged frame; its index."""
        if self.result is None:
            self.status.showMessage("Turn on the propagation preview (V) first", 4000)
            return None
        t = self.result.next_flagged(self.state.frame, direction)
        if t is None:
            self.status.showMessage("No more flagged frames that way", 4000)
            return None
        self.set_frame(t)
        why = self.frame_text(t)
        if why:
            self.status.showMessage(f"Frame {t}: {why}", 8000)
        return t

    def frame_text(self, t: int) -> str:
        """Each flagged object of frame t with its depth score and colour check, e.g.
        "#5 depth 0.97, colour 0.04 flip suspected"; "" when none (or no preview)."""
        if self.result is None:
            return ""
        parts = []
        for obj_id, (score, flagged) in self.result.object_state(t).items():
            if flagged:
                colour = self.result.colour_text(t, obj_id)
                parts.append(f"#{obj_id} depth {score:.2f}" + (f", {colour}" if colour else ""))
        return "; ".join(parts)
