"""The Suggestions panel: initial poses from `labeller init` waiting for a person.

`labeller init` writes SCENE/suggestions.json (labeller.formats.suggestions). The panel
lists its pending suggestions in their own style (italic, tinted, "?" before the
name) beside the ordinary objects; Accept turns the selected ones into ordinary objects
in one undo step, Accept all takes every pending one in one step, Reject drops the
selected ones. The new status ("accepted" / "rejected", back to "pending" on undo) is
written to suggestions.json atomically at once, so a reopened scene offers only what is
still pending.

*Find by registration* runs `labeller init --register` (every class with a model and
no object yet, in the saved annotations.json) in the background, with progress and
Cancel, and shows what it found; the dock is shown for a scene that has
suggestions.json or the fused cloud `recon/cloud.ply` registration needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.core.errors import BadInput
from labeller.formats.annotations import ObjectAnnotation
from labeller.formats.suggestions import SuggestionFile, suggestions_path
from labeller.gui.tasks import BackgroundTask, stop_task

log = logging.getLogger(__name__)

# Pending suggestions look unlike placed objects: tinted, italic, a question mark.
SUGGESTION_TINT = QColor(255, 236, 179)
SUGGESTION_PREFIX = "? "


class AcceptSuggestionsCommand(QUndoCommand):
    """Add the objects of some suggestions (one undo step) and mark them accepted."""

    def __init__(self, model: DocumentModel, suggestions: SuggestionFile, indices: list[int],
                 on_change: Callable[[], None]):
        n = len(indices)
        first = suggestions.suggestions[indices[0]].class_name
        super().__init__(f"Accept suggestion {first}" if n == 1 else f"Accept {n} suggestions")
        self.model = model
        self.file = suggestions
        self.indices = list(indices)
        self.on_change = on_change
        self.classes_before = model.classes
        next_id = model.next_id()
        self.objects = []
        for k, i in enumerate(self.indices):
            s = suggestions.suggestions[i]
            self.objects.append(ObjectAnnotation(next_id + k, s.class_name, s.model, s.T_world_obj.copy()))

    def redo(self) -> None:
        for i, o in zip(self.indices, self.objects, strict=True):
            self.model.insert_object(o)
            s = self.file.suggestions[i]
            s.status, s.object_id = "accepted", o.id
        self.on_change()

    def undo(self) -> None:
        for i, o in zip(self.indices, self.objects, strict=True):
            self.model.remove_object(o.id)
            s = self.file.suggestions[i]
            s.status, s.object_id = "pending", None
        if self.model.classes != self.classes_before:
            self.model.set_classes(self.classes_before)
        self.on_change()


class SuggestionsPanel(QWidget):
    """The list of pending suggestions and the Accept / Accept all / Reject buttons."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setToolTip("Initial poses from `labeller init`, not yet objects")
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_all_button = QPushButton("Accept all")
        self.reject_button = QPushButton("Reject")
        for b in (self.accept_button, self.accept_all_button, self.reject_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.missing = QLabel()
        self.missing.setWordWrap(True)
        self.missing.setStyleSheet("color: #a66;")
        lay.addWidget(self.missing)
        run_row = QHBoxLayout()
        self.register_button = QPushButton("Find by registration")
        self.register_button.setToolTip("labeller init --register: match every class with a model "
                                        "and no object yet against recon/cloud.ply")
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        run_row.addWidget(self.register_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)
        lay.addLayout(run_row)
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        self.register_button.setEnabled(not running)
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        if running:
            self.progress.setRange(0, 0)

    def show_file(self, f: SuggestionFile | None) -> None:
        self.list.clear()
        pending = [] if f is None else [(i, s) for i, s in enumerate(f.suggestions) if s.status == "pending"]
        font = QFont()
        font.setItalic(True)
        for i, s in pending:
            bits = [s.source]
            if s.frames_used:
                bits.append(f"{s.frames_used} frames")
            if s.spread_mm is not None:
                bits.append(f"±{s.spread_mm:.0f} mm")
            if s.depth_score is not None:
                bits.append(f"depth {s.depth_score:.2f}")
            if s.note:
                bits.append(s.note)
            item = QListWidgetItem(f"{SUGGESTION_PREFIX}{s.class_name}  ({', '.join(bits)})")
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setFont(font)
            item.setBackground(QBrush(SUGGESTION_TINT))
            self.list.addItem(item)
        missing = [] if f is None else f.not_found
        self.missing.setText("Not found: " + "; ".join(f"{c} ({why})" for c, why in missing) if missing else "")
        has = bool(pending)
        self.accept_all_button.setEnabled(has)
        self.accept_button.setEnabled(has)
        self.reject_button.setEnabled(has)

    def selected_indices(self) -> list[int]:
        """Indices into the file's suggestions of the selected rows."""
        return sorted(int(it.data(Qt.ItemDataRole.UserRole)) for it in self.list.selectedItems())

    def all_indices(self) -> list[int]:
        return [int(self.list.item(r).data(Qt.ItemDataRole.UserRole)) for r in range(self.list.count())]


class SuggestionsController(QObject):
    """Loads a scene's suggestions.json, shows it, and turns Accept / Reject into changes."""

    def __init__(self, window: QMainWindow, undo_stack: QUndoStack, status, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = undo_stack
        self.status = status
        self.panel = SuggestionsPanel()
        self.dock = QDockWidget("Suggestions", window)
        self.dock.setObjectName("suggestions")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.model: DocumentModel | None = None
        self.file: SuggestionFile | None = None
        self.path: Path | None = None
        self.panel.accept_button.clicked.connect(lambda: self.accept(self.panel.selected_indices()))
        self.panel.accept_all_button.clicked.connect(lambda: self.accept(self.panel.all_indices()))
        self.panel.reject_button.clicked.connect(lambda: self.reject(self.panel.selected_indices()))
        self.panel.register_button.clicked.connect(self.run_register)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.task: BackgroundTask | None = None
        self.models_dir = getattr(window, "models_dir", None)

    def open(self, model: DocumentModel) -> None:
        """Show the scene's suggestions (the dock stays hidden when it has none)."""
        self.model = model
        self.path = suggestions_path(model.root)
        self.file = None
        if self.path.is_file():
            try:
                self.file = SuggestionFile.read(self.path)
            except BadInput as exc:
                self.status.showMessage(f"suggestions not shown: {exc}", 10000)
        if self.file is not None and self.file.trajectory_sha256 not in (None, model.trajectory_sha256):
            self.status.showMessage("suggestions.json refers to another trajectory.txt: not shown", 10000)
            self.file = None
        for s in self.file.suggestions if self.file is not None else []:
            # Accepted, but the document was never saved with it: offer it again.
            if s.status == "accepted" and not (s.object_id is not None and model.has_object(s.object_id)
                                               and model.object(s.object_id).class_name == s.class_name):
                s.status, s.object_id = "pending", None
        self.panel.show_file(self.file)
        has = self.file is not None and bool(self.file.suggestions or self.file.not_found)
        self.dock.setVisible(has or model.scene.paths.cloud.is_file())

    def close(self) -> None:
        self.cancel()
        stop_task(self.task)
        self.task = None
        self.panel.set_running(False)
        self.model = self.file = self.path = None
        self.panel.show_file(None)
        self.dock.hide()

    def _changed(self) -> None:
        if self.file is None or self.path is None:
            return
        self.file.write(self.path)
        self.panel.show_file(self.file)

    def accept(self, indices: list[int]) -> None:
        """Turn these suggestions into objects: one undo step."""
        if not indices or self.model is None or self.file is None:
            return
        self.undo_stack.push(AcceptSuggestionsCommand(self.model, self.file, indices, self._changed))

    def reject(self, indices: list[int]) -> None:
        """Drop these suggestions (not a document change, so not on the undo stack)."""
        if not indices or self.file is None:
            return
        for i in indices:
            self.file.suggestions[i].status = "rejected"
        self._changed()

    # -- init --register in the background -------------------------------------------
    def run_register(self) -> BackgroundTask | None:
        """Start `init --register` on the open scene; None when one is running already."""
        if self.model is None or (self.task is not None and self.task.running()):
            return None
        from labeller.init_poses import InitConfig
        from labeller.init_poses import run as init_run

        # The open scene's models folder (not the one the window started with).
        cfg = InitConfig(scene=self.model.root, register=True, models_dir=self.model.models_dir)
        model = self.model
        task = BackgroundTask(lambda progress: init_run(cfg, progress=progress), self)
        task.progress.connect(self._on_progress)
        task.finished.connect(lambda summary: self._on_done(model, summary))
        task.failed.connect(lambda msg: self._on_end(f"registration failed: {msg}"))
        task.cancelled.connect(lambda: self._on_end("registration cancelled; nothing written"))
        self.task = task
        self.panel.set_running(True)
        self.status.showMessage("registering the models against recon/cloud.ply ...")
        task.start()
        return task

    def cancel(self) -> None:
        if self.task is not None and self.task.running():
            self.task.cancel()

    def _on_progress(self, done: int, total: int) -> None:
        self.panel.progress.setRange(0, max(total, 1))
        self.panel.progress.setValue(done)

    def _on_end(self, message: str) -> None:
        self.panel.set_running(False)
        self.status.showMessage(message, 10000)

    def _on_done(self, model: DocumentModel, summary) -> None:
        self._on_end(f"registration: {len(summary.rows)} suggested, {len(summary.not_found)} not found")
        if model is self.model:
            self.open(model)
