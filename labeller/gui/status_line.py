"""The permanent text at the right of the status bar: frame, selected object, render time,
updates per second while dragging; the "no camera pose" message of untracked frames; and
the notice: an outcome the user must read (a refused refine), kept beside the transient
messages so progress lines cannot overwrite it, until the user's next action."""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtWidgets import QLabel, QStatusBar

from labeller.annotate.document import DocumentModel
from labeller.gui.views import FrameView
from labeller.gui.worker import RenderResult

NOTICE_MAX_WIDTH_PX = 720


class StatusLine:
    """status: the window's status bar (gets `label` as a permanent widget); view: the
    main view (is a drag on?)."""

    def __init__(self, status: QStatusBar, view: FrameView):
        self.status = status
        self.view = view
        # The notice sits left of the frame text; permanent widgets are never hidden by
        # showMessage (preview progress), which is what makes it stay.
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setStyleSheet("color: #ffb000; font-weight: bold;")
        self.notice.setVisible(False)
        # Never wider than this (the full text is in its tooltip): a long notice must not
        # make the window wider than the screen or squeeze the frame text away.
        self.notice.setMinimumWidth(40)
        self.notice.setMaximumWidth(NOTICE_MAX_WIDTH_PX)
        status.addPermanentWidget(self.notice)
        self.label = QLabel()
        status.addPermanentWidget(self.label)
        self._shown_times: deque[float] = deque(maxlen=30)
        self._no_pose_msg = ""

    def show_notice(self, text: str) -> None:
        """Show `text` until `clear_notice` (the window calls it on the next key press,
        click or edit)."""
        self.notice.setText(text)
        self.notice.setToolTip(text)
        self.notice.setVisible(bool(text))

    def clear_notice(self) -> None:
        if self.notice.text():
            self.show_notice("")

    @property
    def notice_text(self) -> str:
        return self.notice.text()

    def frame_shown(self) -> None:
        """A render was drawn (for the updates-per-second figure)."""
        self._shown_times.append(time.perf_counter())

    def drag_began(self) -> None:
        self._shown_times.clear()

    def update(self, m: DocumentModel | None, t: int, selected_id: int | None,
               res: RenderResult | None = None) -> None:
        """Show frame t of `m` with the selected object (and the last render `res`)."""
        if m is None:
            self.label.setText("")
            return
        parts = [f"frame {t}/{m.n_frames - 1}"]
        if m.T_world_cam(t) is None:
            parts.append("no camera pose")
            self._no_pose_msg = (f"Frame {t} has no camera pose (not tracked): objects cannot "
                                 "be drawn or edited on it")
            self.status.showMessage(self._no_pose_msg, 0)
        elif self._no_pose_msg:
            if self.status.currentMessage() == self._no_pose_msg:
                self.status.clearMessage()  # only our own message, not e.g. "Saved"
            self._no_pose_msg = ""
        if selected_id is not None and m.has_object(selected_id):
            o = m.object(selected_id)
            x, y, z = o.T_world_obj[:3, 3]
            parts.append(f"#{o.id} {o.class_name} at ({x:+.3f}, {y:+.3f}, {z:+.3f}) m")
        if res is not None:
            parts.append(f"{'preview' if res.request.preview else 'render'} "
                         f"{res.seconds * 1000:.0f} ms")
        if len(self._shown_times) >= 2 and self.view.dragging:
            dt = self._shown_times[-1] - self._shown_times[0]
            if dt > 0:
                parts.append(f"{(len(self._shown_times) - 1) / dt:.0f} updates/s")
        self.label.setText("   ·   ".join(parts))
