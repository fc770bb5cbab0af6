"""The banner over the frame view and the tracking it offers.

`Banner` shows one message (missing or unreadable trajectory, tracking progress,
annotations saved against another trajectory) with an optional action button, progress
and cancel. `TrackingController` keeps it in step with the open document and runs the
`labeller.track` stage in the background (`labeller.gui.tasks.BackgroundTask`) when the
user asks; the trajectory it writes is reloaded into the document.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStatusBar,
    QWidget,
)

from labeller.core.progress import ProgressFn
from labeller.gui.state import WindowState
from labeller.gui.tasks import BackgroundTask, stop_task


def track_scene(scene_dir: Path, progress: ProgressFn) -> object:
    """Run `labeller track` on a scene; the GUI shows the progress (no terminal bar)."""
    from labeller.track import TrackConfig, run

    return run(TrackConfig(scene=Path(scene_dir), progress_bar=False), progress=progress)


class Banner(QFrame):
    """A strip above the view: a message, an optional action button, progress, cancel."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("Banner { background: #5a4a1a; } QLabel { color: #fff3c4; }")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.cancel = QPushButton("Cancel")
        self.close_button = QPushButton("×")
        self.close_button.setFlat(True)
        self.close_button.setMaximumWidth(28)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.action)
        lay.addWidget(self.cancel)
        lay.addWidget(self.close_button)
        self.close_button.clicked.connect(self.hide)
        self.kind = ""
        self.hide()

    def show_message(self, kind: str, text: str, action: str | None = None,
                     progress: bool = False, cancel: bool = False) -> None:
        self.kind = kind
        self.label.setText(text)
        self.action.setVisible(action is not None)
        if action is not None:
            self.action.setText(action)
            self.action.setEnabled(True)
        self.progress.setVisible(progress)
        self.cancel.setVisible(cancel)
        self.show()


class TrackingController(QObject):
    """The banner's messages about the trajectory, and tracking in the background.

    state: read for the open document; banner: where it reports; status: the window's
    status bar (for "finished")."""

    def __init__(self, state: WindowState, banner: Banner, status: QStatusBar,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.banner = banner
        self.status = status
        self.task: BackgroundTask | None = None
        banner.action.clicked.connect(self._banner_action)
        banner.cancel.clicked.connect(self.cancel)

    def update_banner(self) -> None:
        """Show what is wrong with the document's trajectory, or hide the banner."""
        m = self.state.model
        if m is None:
            self.banner.hide()
            return
        if m.trajectory_error is not None:
            self.banner.show_message(
                "trajectory", f"trajectory.txt cannot be read ({m.trajectory_error}); objects "
                "cannot be drawn. Fix it or run tracking again.", "Run tracking")
        elif not m.has_trajectory:
            self.banner.show_message(
                "trajectory", "This scene has no camera trajectory (trajectory.txt), so objects "
                "cannot be placed yet. Run tracking in the background?", "Run tracking")
        elif m.trajectory_mismatch:
            self.banner.show_message(
                "mismatch", "annotations.json was saved against a different trajectory.txt: "
                "the poses may be off. Saving stamps them with the current one.")
        else:
            self.banner.hide()

    def _banner_action(self) -> None:
        if self.banner.kind == "trajectory":
            self.start()

    def start(self) -> bool:
        """Run the tracking stage in the background; False if a scene is not open or
        tracking already runs."""
        if self.state.model is None or (self.task is not None and self.task.running()):
            return False
        root = self.state.model.root
        task = BackgroundTask(lambda progress: track_scene(root, progress), self)
        task.progress.connect(self._progress)
        task.finished.connect(self._finished)
        task.failed.connect(lambda msg: self.banner.show_message(
            "trajectory", f"Tracking failed: {msg}", "Run tracking again"))
        task.cancelled.connect(lambda: self.banner.show_message(
            "trajectory", "Tracking cancelled; the scene still has no trajectory.",
            "Run tracking"))
        self.task = task
        self.banner.show_message("tracking", "Tracking the camera…", None, progress=True,
                                 cancel=True)
        self.banner.progress.setRange(0, 0)
        task.start()
        return True

    def _progress(self, done: int, total: int) -> None:
        self.banner.progress.setRange(0, max(total, 1))
        self.banner.progress.setValue(done)
        self.banner.label.setText(f"Tracking the camera… frame {done}/{total}")

    def _finished(self, _result: object) -> None:
        if self.state.model is not None:
            self.state.model.reload_trajectory()
        self.status.showMessage("Tracking finished: trajectory.txt written", 8000)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.banner.label.setText("Cancelling…")

    def close(self) -> None:
        """Stop tracking (the scene is closing)."""
        stop_task(self.task)
        self.task = None
