"""Autosave and recovery: the side file `.annotations.autosave.json` and its offer.

`AutosaveController` writes the open document to the scene's autosave side file on a
timer while there are unsaved changes (`DocumentModel.write_autosave`; annotations.json
is never touched), and on opening offers a newer autosave for recovery.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMessageBox, QStatusBar, QWidget

from labeller.annotate.document import DocumentModel

# Autosave period; LABELLER_AUTOSAVE_MS overrides it (tests, or a nervous lab).
AUTOSAVE_INTERVAL_MS = 60_000


def autosave_interval_ms() -> int:
    try:
        return max(int(os.environ.get("LABELLER_AUTOSAVE_MS", "")), 50)
    except ValueError:
        return AUTOSAVE_INTERVAL_MS


class AutosaveController(QObject):
    """The autosave timer and the recovery offer of one open document at a time.

    undo_stack: cleared when an autosave is recovered (it is not an undo step);
    status: the window's status bar; dialog_parent: parent of the recovery question."""

    def __init__(self, undo_stack: QUndoStack, status: QStatusBar, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.undo_stack = undo_stack
        self.status = status
        self.dialog_parent = dialog_parent
        self.model: DocumentModel | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(autosave_interval_ms())
        self.timer.timeout.connect(self.autosave)

    def open(self, model: DocumentModel) -> bool:
        """Start autosaving `model` and offer its autosave; True when one was recovered."""
        self.model = model
        self.timer.start()
        return self._offer_recovery()

    def close(self) -> None:
        self.timer.stop()
        self.model = None

    def autosave(self) -> Path | None:
        """Write the side file when there are unsaved changes (the timer calls it)."""
        if self.model is None or not self.model.dirty:
            return None
        try:
            return self.model.write_autosave()
        except OSError as exc:
            self.status.showMessage(f"Autosave failed: {exc}", 8000)
            return None

    def _offer_recovery(self) -> bool:
        m = self.model
        assert m is not None
        doc, why = m.autosave_offer()
        if doc is None:
            return False
        ans = QMessageBox.question(
            self.dialog_parent, "Recover unsaved work?",
            f"An autosave of this scene exists ({m.autosave_path.name}, {len(doc.objects)} "
            f"objects) and {why}.\n\nRecover it? (Discard deletes the autosave.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Yes)
        if ans == QMessageBox.StandardButton.Yes:
            m.replace_document(doc)
            self.undo_stack.clear()
            self.status.showMessage("Recovered the autosave: save (Ctrl+S) to keep it", 0)
            return True
        m.discard_autosave()
        return False
