"""The export dialog: propagate + export (any `labeller export` format) in the background, with
progress and cancel, and the contact sheet (props) when done.

It runs the stages themselves (`labeller.propagate.run`, then `labeller.export.run`,
one scene) on a `BackgroundTask`; export reads the saved annotations.json, so unsaved
changes are saved first.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.core.progress import ProgressFn
from labeller.export.config import FORMATS
from labeller.gui.tasks import BackgroundTask


class ExportDialog(QDialog):
    """Export the document's scene. model: the document it was opened for (`model`);
    current_model(): the window's open document when Run is pressed (None: closed);
    models_dir: the `--models` library; save(): saves the open document, False when it
    failed."""

    def __init__(self, model: DocumentModel, current_model: Callable[[], DocumentModel | None],
                 models_dir: Path | None, save: Callable[[], bool],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.current_model = current_model
        self.models_dir = models_dir
        self.save = save
        self.setWindowTitle("Export dataset")
        self.task: BackgroundTask | None = None
        self.summary: object = None
        self.warnings: list[str] = []
        lay = QVBoxLayout(self)
        g = QGridLayout()
        self.format = QComboBox()
        for f in FORMATS:
            self.format.addItem(f, f)
        self.out = QLineEdit(str(model.root.parent / f"{model.root.name}_export"))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.per_class = QSpinBox()
        self.per_class.setRange(1, 100000)
        self.per_class.setValue(50)
        g.addWidget(QLabel("format"), 0, 0)
        g.addWidget(self.format, 0, 1)
        g.addWidget(QLabel("output folder"), 1, 0)
        g.addWidget(self.out, 1, 1)
        g.addWidget(browse, 1, 2)
        g.addWidget(QLabel("crops per class (props)"), 2, 0)
        g.addWidget(self.per_class, 2, 1)
        lay.addLayout(g)
        self.status = QLabel("Propagates the saved annotations, then exports.")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        lay.addWidget(self.status)
        lay.addWidget(self.progress)
        self.sheet = QLabel()
        self.sheet.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.sheet)
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(200)
        lay.addWidget(scroll, 1)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(close)
        lay.addLayout(row)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        close.clicked.connect(self.close)
        self.resize(640, 520)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Output folder", self.out.text())
        if d:
            self.out.setText(d)

    def start(self) -> bool:
        """Save if needed, then propagate and export in the background; False when it
        did not start (the reason in the dialog)."""
        m = self.current_model()
        if m is None or (self.task is not None and self.task.running()):
            return False
        if m.dirty and not self.save():
            self.status.setText("Save the annotations first (export reads annotations.json).")
            return False
        from labeller.export import ExportConfig
        from labeller.export import run as export_run
        from labeller.propagate import PropagateConfig
        from labeller.propagate import run as propagate_run

        scene, models = m.root, self.models_dir
        fmt, out, n = self.format.currentData(), Path(self.out.text()), self.per_class.value()
        if out.exists() and any(out.iterdir()):
            ans = QMessageBox.question(self, "Replace the export?",
                                       f"{out} is not empty. Replace it with this export?",
                                       QMessageBox.StandardButton.Yes
                                       | QMessageBox.StandardButton.No,
                                       QMessageBox.StandardButton.No)
            if ans != QMessageBox.StandardButton.Yes:
                self.status.setText("Choose another output folder (nothing was changed).")
                return False

        def job(progress: ProgressFn) -> tuple[object, list[str]]:
            # Propagation is the first half of the bar, the export the second.
            propagate_run(PropagateConfig(scene=scene, models_dir=models),
                          progress=lambda d, t: progress(d, 2 * max(t, 1)) if t else True)
            cfg = ExportConfig(format=fmt, out=out, scenes=[scene], models_dir=models,
                               train_per_class=n, test_per_class=max(n // 5, 1),
                               allow_short=True, workers=1, overwrite=True,
                               progress_bars=False)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                summary = export_run(cfg, lambda d, t, *_: progress(t + d, 2 * max(t, 1)))
            return summary, [str(c.message) for c in caught]

        self.task = BackgroundTask(job, self)
        self.task.progress.connect(self._progress)
        self.task.finished.connect(self._finished)
        self.task.failed.connect(lambda msg: self._stopped(f"Export failed: {msg}"))
        self.task.cancelled.connect(lambda: self._stopped("Cancelled; nothing was exported."))
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Propagating {scene.name}, then exporting {fmt} to {out}…")
        self.task.start()
        return True

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")

    def _stopped(self, text: str) -> None:
        self.status.setText(text)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _finished(self, result: tuple[object, list[str]]) -> None:
        self.summary, self.warnings = result
        out = Path(self.out.text())
        text = f"Exported to {out}."
        sheet = out / "contact_sheet.png"
        if sheet.is_file():
            self.sheet.setPixmap(QPixmap(str(sheet)))
            text += f" Contact sheet: {sheet}"
        self._stopped(text + "".join(f"\n⚠ {m}" for m in self.warnings))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.task is not None and self.task.running():
            self.task.cancel()
            self.task.wait()
        event.accept()
