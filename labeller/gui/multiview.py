"""The multi-view check: 2-4 other frames side by side, drawn with the same world-frame
poses as the main view, so an error along one view's ray shows in another.

`MultiView` is the dock's widget (one `FrameView` per frame); `MultiViewController`
gives each view its own `OverlayService`, connects it to the editing like the main view
(`EditController.attach_view`), renders it after each main render and picks frames
spread over the viewpoints (`labeller.annotate.keyframes.suggest_keyframes`), far from
the main view's: they are picked again whenever the main frame changes (`follow_main_frame`),
and the main frame itself is never one of them.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.keyframes import suggest_keyframes
from labeller.geometry.overlay import OverlayObject
from labeller.gui.editing import EditController
from labeller.gui.state import RequestRender, WindowState
from labeller.gui.views import FrameView
from labeller.gui.worker import OverlayService, RenderResult

MAX_OTHER_VIEWS = 4


class MultiView(QWidget):
    """The frames of the multi-view check in a grid, two per row, each under a label."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        self.suggest_button = QPushButton("Suggest keyframes")
        self.suggest_button.setToolTip("Pick frames spread over the camera's viewpoints")
        self.count = QSpinBox()
        self.count.setRange(2, MAX_OTHER_VIEWS)
        self.count.setValue(3)
        self.count.setPrefix("views ")
        row.addWidget(self.suggest_button)
        row.addWidget(self.count)
        row.addStretch(1)
        lay.addLayout(row)
        self.grid = QGridLayout()
        lay.addLayout(self.grid, 1)
        self.views: list[FrameView] = []
        self.labels: list[QLabel] = []

    def set_frames(self, frames: list[int]) -> list[FrameView]:
        """Show these frames (one view each); returns the views added."""
        while len(self.views) > len(frames):
            v, lab = self.views.pop(), self.labels.pop()
            v.setParent(None)
            lab.setParent(None)
        added = []
        while len(self.views) < len(frames):
            v = FrameView()
            v.setMinimumSize(200, 150)
            lab = QLabel()
            k = len(self.views)
            self.grid.addWidget(lab, 2 * (k // 2), k % 2)
            self.grid.addWidget(v, 2 * (k // 2) + 1, k % 2)
            self.views.append(v)
            self.labels.append(lab)
            added.append(v)
        for v, lab, t in zip(self.views, self.labels, frames, strict=True):
            v.frame = int(t)
            lab.setText(f"frame {t}")
        return added

    @property
    def frames(self) -> list[int]:
        return [v.frame for v in self.views]


class MultiViewController(QObject):
    """state: read for the model, the frame and the selection; dock: the dock holding
    `widget`; editor: connects each new view to the edits; request_render(); objects_on(t):
    what to draw on frame t (colours may depend on the frame). Emits `activeChanged(bool)`."""

    activeChanged = Signal(bool)

    def __init__(self, state: WindowState, widget: MultiView, dock: QDockWidget,
                 editor: EditController, request_render: RequestRender,
                 objects_on: Callable[[int], tuple[OverlayObject, ...]],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.widget = widget
        self.dock = dock
        self.editor = editor
        self.request_render = request_render
        self.objects_on = objects_on
        self.services: list[OverlayService] = []
        self._picked_for: int | None = None  # the main frame the shown frames were picked for
        widget.suggest_button.clicked.connect(self.suggest_views)
        widget.count.valueChanged.connect(
            lambda _n: self.suggest_views() if self.dock.isVisible() else None)

    @property
    def views(self) -> list[FrameView]:
        return self.widget.views

    @property
    def frames(self) -> list[int]:
        return self.widget.frames

    def shown_frames(self) -> list[int]:
        """The frames of the check while it is shown, else []."""
        return self.widget.frames if self.dock.isVisible() else []

    def toggle(self, on: bool | None = None) -> None:
        """Show or hide the check (on=None flips it); showing it picks the frames for the
        main frame unless they were picked for it already."""
        on = (not self.dock.isVisible()) if on is None else bool(on)
        self.activeChanged.emit(on)
        if on and self.state.model is not None and (
                not self.widget.views or self._picked_for != self.state.frame):
            self.suggest_views()
        self.dock.setVisible(on)
        self.request_render()

    def set_views(self, frames: list[int]) -> None:
        """Show these frames in the multi-view check (2-4 of them)."""
        m = self.state.model
        if m is None:
            return
        # The main view shows the main frame already: a copy of it checks nothing.
        frames = [int(t) for t in frames if int(t) != self.state.frame][:MAX_OTHER_VIEWS]
        while len(self.services) > len(frames):
            s = self.services.pop()
            s.shutdown()
            s.deleteLater()
        for v in self.widget.set_frames(frames):
            self.editor.attach_view(v)
        while len(self.services) < len(frames):
            v = self.widget.views[len(self.services)]
            s = OverlayService(m.scene, self)
            s.ready.connect(lambda res, v=v: self._ready(v, res))
            self.services.append(s)
        self.request_render()

    def suggest_views(self) -> list[int]:
        """3-6 frames over the viewpoints, starting from the main frame's; the ones other
        than the main frame are shown (returns all of them)."""
        m = self.state.model
        if m is None or not m.has_trajectory:
            return []
        n = self.widget.count.value()
        t = self.state.frame
        sug = suggest_keyframes(m.scene, min(max(n + 1, 3), 6), first=t)
        others = [f for f in sug if f != t][:n]
        self.set_views(others)
        self._picked_for = t
        return sug

    def follow_main_frame(self) -> None:
        """The main frame changed: pick the frames again while the check is shown (else
        when it is shown next)."""
        if self.dock.isVisible() and self._picked_for != self.state.frame:
            self.suggest_views()

    def render(self) -> None:
        """Render every shown frame (after each main render request)."""
        m = self.state.model
        if m is None or not self.dock.isVisible():
            return
        for v, s in zip(self.widget.views, self.services, strict=False):
            s.request(v.frame, m.T_world_cam(v.frame), self.objects_on(v.frame),
                      self.state.selected_id, self.state.overlay_style, False, "rgb")

    def _ready(self, view: FrameView, res: RenderResult) -> None:
        if res.error:
            return
        ov = res.overlay
        view.frame = res.request.frame
        view.set_images(res.background, ov.rgba if ov is not None else None,
                        ov.inst if ov is not None else None)
        view.shown_gen = res.gen

    def idle(self) -> bool:
        return all(s.idle() for s in self.services)

    def close(self) -> None:
        """Drop the views and their renderers (the scene is closing)."""
        for s in self.services:
            s.shutdown()
            s.deleteLater()
        self.services = []
        self.widget.set_frames([])
        self._picked_for = None
        self.dock.hide()
        self.activeChanged.emit(False)
