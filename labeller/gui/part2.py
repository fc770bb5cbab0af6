"""Part 2 of the annotation window: refine, propagation preview, autosave and recovery,
multi-view check, export dialog.

`Part2Mixin` is mixed into `labeller.gui.app.MainWindow`; it adds actions and docks and hooks into
opening, closing and rendering. The work itself is Qt-free (`labeller.annotate.refine`,
`labeller.propagate`, `labeller.export`); long runs go through `labeller.gui.tasks.BackgroundTask`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDockWidget,
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

from labeller.annotate.keyframes import suggest_keyframes
from labeller.annotate.preview import Preview, compute_preview, read_preview
from labeller.annotate.refine import RefineResult, frame_measures, refine_object
from labeller.gui.commands import SetPoseCommand
from labeller.gui.tasks import BackgroundTask
from labeller.gui.views import FrameView
from labeller.gui.worker import OverlayService, RenderResult

# Autosave period; LABELLER_AUTOSAVE_MS overrides it (tests, or a nervous lab).
AUTOSAVE_INTERVAL_MS = 60_000


def autosave_interval_ms() -> int:
    try:
        return max(int(os.environ.get("LABELLER_AUTOSAVE_MS", "")), 50)
    except ValueError:
        return AUTOSAVE_INTERVAL_MS
OK_RGB = (40, 220, 90)
FLAGGED_RGB = (255, 40, 40)
MAX_OTHER_VIEWS = 4
PREVIEW_DEBOUNCE_MS = 400


class MultiView(QWidget):
    """2-4 other frames side by side, each its own FrameView + OverlayService, showing the
    same world-frame poses as the main view; an error along one view's ray shows in
    another. Edits made in these views go through the window like the main view's."""

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
        self.services: list[OverlayService] = []

    def set_frames(self, frames: list[int]) -> None:
        while len(self.views) > len(frames):
            v, lab = self.views.pop(), self.labels.pop()
            v.setParent(None)
            lab.setParent(None)
        while len(self.views) < len(frames):
            v = FrameView()
            v.setMinimumSize(200, 150)
            lab = QLabel()
            k = len(self.views)
            self.grid.addWidget(lab, 2 * (k // 2), k % 2)
            self.grid.addWidget(v, 2 * (k // 2) + 1, k % 2)
            self.views.append(v)
            self.labels.append(lab)
        for v, lab, t in zip(self.views, self.labels, frames, strict=True):
            v.frame = int(t)
            lab.setText(f"frame {t}")

    @property
    def frames(self) -> list[int]:
        return [v.frame for v in self.views]


class ExportDialog(QDialog):
    """Propagate + export (props / props-pose / bop) in the background; progress, cancel;
    the contact sheet (props) when done."""

    def __init__(self, window, parent: QWidget | None = None):
        super().__init__(parent)
        self.window_ = window
        self.setWindowTitle("Export dataset")
        self.task: BackgroundTask | None = None
        self.summary = None
        self.warnings: list[str] = []
        lay = QVBoxLayout(self)
        g = QGridLayout()
        self.format = QComboBox()
        for f in ("props", "props-pose", "bop"):
            self.format.addItem(f, f)
        self.out = QLineEdit(str(window.model.root.parent / f"{window.model.root.name}_export"))
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
        self.sheet.setAlignment(Qt.AlignCenter)
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
        w = self.window_
        if w.model is None or (self.task is not None and self.task.running()):
            return False
        if w.model.dirty and not w.save():
            self.status.setText("Save the annotations first (export reads annotations.json).")
            return False
        from labeller.export import ExportConfig
        from labeller.export import run as export_run
        from labeller.propagate import PropagateConfig
        from labeller.propagate import run as propagate_run

        scene, models = w.model.root, w.models_dir
        fmt, out, n = self.format.currentData(), Path(self.out.text()), self.per_class.value()
        if out.exists() and any(out.iterdir()):
            ans = QMessageBox.question(self, "Replace the export?",
                                       f"{out} is not empty. Replace it with this export?",
                                       QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if ans != QMessageBox.Yes:
                self.status.setText("Choose another output folder (nothing was changed).")
                return False

        def job(progress):
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

    def _finished(self, result) -> None:
        self.summary, self.warnings = result
        out = Path(self.out.text())
        text = f"Exported to {out}."
        sheet = out / "contact_sheet.png"
        if sheet.is_file():
            self.sheet.setPixmap(QPixmap(str(sheet)))
            text += f" Contact sheet: {sheet}"
        self._stopped(text + "".join(f"\n⚠ {m}" for m in self.warnings))

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.task is not None and self.task.running():
            self.task.cancel()
            self.task.wait()
        event.accept()


class Part2Mixin:
    """Refine, preview, autosave/recovery, multi-view and export for MainWindow."""

    # -- construction -------------------------------------------------------------------
    def _build_part2(self) -> None:
        self.preview: Preview | None = None
        self.preview_on = False
        self.preview_task: BackgroundTask | None = None
        self.last_refine: RefineResult | None = None
        self.refine_task: BackgroundTask | None = None
        self.export_dialog: ExportDialog | None = None
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(autosave_interval_ms())
        self.autosave_timer.timeout.connect(self.autosave)
        # Edits (a drag sends dozens a second) recompute the preview once they pause.
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self.preview_timer.timeout.connect(self.start_preview)
        self.multiview = MultiView()
        self.multiview.suggest_button.clicked.connect(self.suggest_views)
        self.multiview_dock = QDockWidget("Multi-view check", self)
        self.multiview_dock.setObjectName("multiview")
        self.multiview_dock.setWidget(self.multiview)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.multiview_dock)
        self.multiview_dock.hide()

        a = self._action
        self.act_refine = a("&Refine (ICP on depth)", lambda: self.refine_selected("depth"),
                            "R", "Point-to-plane ICP of the selected model against the depth "
                            "of this frame (and of the multi-view frames when shown)")
        self.act_refine_cloud = a("Refine on fused &cloud", lambda: self.refine_selected("cloud"),
                                  "Shift+R", "ICP against recon/cloud.ply (written by tracking)")
        self.act_preview = a("Propagation pre&view", self.toggle_preview, "V",
                             "Scrub all frames with the propagated poses scored against the "
                             "depth (green ok, red flagged)", checkable=True)
        self.act_next_flag = a("Next flagged frame", lambda: self.jump_flagged(+1), "N")
        self.act_prev_flag = a("Previous flagged frame", lambda: self.jump_flagged(-1),
                               "Shift+N")
        self.act_multiview = a("&Multi-view check", self.toggle_multiview, "Ctrl+M",
                               "Show other frames side by side", checkable=True)
        self.act_export = a("&Export dataset…", self.export_dialog_open, "Ctrl+E")
        m = self.menuBar().addMenu("&Check")
        for act in (self.act_refine, self.act_refine_cloud, None, self.act_preview,
                    self.act_next_flag, self.act_prev_flag, None, self.act_multiview,
                    None, self.act_export):
            m.addSeparator() if act is None else m.addAction(act)
        tb = self.addToolBar("Check")
        tb.setObjectName("check")
        for act in (self.act_refine, self.act_preview, self.act_next_flag,
                    self.act_multiview, self.act_export):
            tb.addAction(act)

    # -- hooks called by MainWindow -----------------------------------------------------
    def _part2_opened(self) -> bool:
        """Subscribe, start autosaving, offer an autosave; True when one was recovered."""
        m = self.model
        for ev in ("pose_changed", "object_added", "object_removed"):
            self._unsub.append(m.subscribe(ev, lambda *_: self._annotations_edited()))
        self._unsub.append(m.subscribe("trajectory_changed", lambda: self._annotations_edited()))
        self.autosave_timer.start()
        return self._offer_recovery()

    def _part2_closing(self) -> None:
        self.autosave_timer.stop()
        self.preview_timer.stop()
        if self.refine_task is not None and self.refine_task.running():
            self.refine_task.wait()
        self.refine_task = None
        if self.preview_task is not None and self.preview_task.running():
            self.preview_task.cancel()
            self.preview_task.wait()
        self.preview_task = None
        self.preview = None
        self.preview_on = False
        self.act_preview.setChecked(False)
        self.timeline.set_flagged([])
        for s in self.multiview.services:
            s.shutdown()
            s.deleteLater()
        self.multiview.services = []
        self.multiview.set_frames([])
        self.multiview_dock.hide()
        self.act_multiview.setChecked(False)

    def _part2_render(self) -> None:
        """Render the multi-view frames too (called after each main render request)."""
        if self.model is None or not self.multiview_dock.isVisible():
            return
        for v, s in zip(self.multiview.views, self.multiview.services, strict=False):
            s.request(v.frame, self.model.T_world_cam(v.frame), self._overlay_objects(v.frame),
                      self.selected_id, self.style, False, "rgb")

    def _part2_colours(self, obj_id: int, rgb: tuple[int, int, int],
                       frame: int) -> tuple[int, int, int]:
        """In preview mode objects are drawn green (ok) or red (flagged in `frame`)."""
        if not self.preview_on or self.preview is None:
            return rgb
        st = self.preview.object_state(frame).get(obj_id)
        if st is None or not np.isfinite(st[0]):
            return rgb
        return FLAGGED_RGB if st[1] else OK_RGB

    # -- autosave and recovery ------------------------------------------------------------
    def autosave(self) -> Path | None:
        """Write the side file when there are unsaved changes (the timer calls it)."""
        if self.model is None or not self.model.dirty:
            return None
        try:
            return self.model.write_autosave()
        except OSError as exc:
            self.statusBar().showMessage(f"Autosave failed: {exc}", 8000)
            return None

    def _offer_recovery(self) -> bool:
        m = self.model
        doc, why = m.autosave_offer()
        if doc is None:
            return False
        ans = QMessageBox.question(
            self, "Recover unsaved work?",
            f"An autosave of this scene exists ({m.autosave_path.name}, {len(doc.objects)} "
            f"objects) and {why}.\n\nRecover it? (Discard deletes the autosave.)",
            QMessageBox.Yes | QMessageBox.Discard, QMessageBox.Yes)
        if ans == QMessageBox.Yes:
            m.replace_document(doc)
            self.undo_stack.clear()
            self.statusBar().showMessage("Recovered the autosave: save (Ctrl+S) to keep it", 0)
            return True
        m.discard_autosave()
        return False

    # -- refine ---------------------------------------------------------------------------
    def refine_frames(self) -> list[int]:
        frames = [self.current_frame]
        if self.multiview_dock.isVisible():
            frames += [t for t in self.multiview.frames if t != self.current_frame]
        return frames

    def refine_selected(self, source: str = "depth",
                        frames: list[int] | None = None) -> bool:
        """Start ICP of the selected object against the depth of `frames` (default: this
        frame plus the multi-view frames) or the fused cloud, in the background. When it
        finishes, a better pose is pushed as one undo step and the status bar shows the
        depth-consistency score before and after (`last_refine`). False when it cannot
        start (reason in the status bar)."""
        if self.refine_task is not None and self.refine_task.running():
            self.statusBar().showMessage("A refinement is already running", 4000)
            return False
        ctx = self._edit_context()
        if ctx is None:
            return False
        obj_id = ctx[0]
        frames = frames or self.refine_frames()
        m = self.model
        scene, objs, T_start = m.scene, m.posed_objects(), m.pose(obj_id)
        self.last_refine = None
        task = BackgroundTask(lambda _p: refine_object(scene, objs, obj_id, frames, source),
                              self)
        task.finished.connect(lambda res: self._refined(m, obj_id, T_start, res))
        task.failed.connect(lambda msg: self.statusBar().showMessage(
            f"Refine failed: {msg}", 8000))
        self.refine_task = task
        self.statusBar().showMessage(f"Refining #{obj_id} ({source}, frames "
                                     f"{', '.join(map(str, frames))})…", 0)
        task.start()
        return True

    def _refined(self, model, obj_id: int, T_start: np.ndarray, res: RefineResult) -> None:
        self.last_refine = res
        if model is not self.model or not model.has_object(obj_id):
            return
        if not np.array_equal(model.pose(obj_id), T_start):
            self.statusBar().showMessage(f"Refine #{obj_id}: the object moved meanwhile; "
                                         "result dropped", 8000)
            return
        if res.T_world_obj is not None:
            self.undo_stack.push(SetPoseCommand(model, obj_id, T_start, res.T_world_obj,
                                                "Refine"))
            self.statusBar().showMessage(
                f"Refined #{obj_id}: depth score {res.score_before:.3f} → {res.score_after:.3f}"
                f" (moved {res.moved_m * 1000:.1f} mm, turned {res.turned_deg:.1f}°; "
                f"Ctrl+Z undoes)", 0)
        else:
            self.statusBar().showMessage(
                f"Refine #{obj_id}: {res.reason} (score {res.score_before:.3f})", 8000)

    def refine_idle(self) -> bool:
        return self.refine_task is None or not self.refine_task.running()

    def refine_and_wait(self, source: str = "depth", frames: list[int] | None = None,
                        timeout_s: float = 120.0) -> RefineResult | None:
        """refine_selected, then process events until it is done (scripts and tests)."""
        import time

        if not self.refine_selected(source, frames):
            return None
        t0 = time.monotonic()
        while not (self.refine_idle() and self.last_refine is not None):
            QApplication.processEvents()
            if self.refine_idle() and self.last_refine is None and \
                    time.monotonic() - t0 > 1.0:  # failed: no result comes
                break
            if time.monotonic() - t0 > timeout_s:
                break
            time.sleep(0.005)
        return self.last_refine

    def current_scores(self) -> dict[int, float]:
        """{obj_id: depth-consistency score} of every object in the current frame."""
        if self.model is None:
            return {}
        ms = frame_measures(self.model.scene, self.model.posed_objects(), self.current_frame)
        return {i: m.score for i, m in ms.items()}

    # -- propagation preview ---------------------------------------------------------------
    def _annotations_edited(self) -> None:
        if self.preview is not None:
            self.preview = None
            self.timeline.set_flagged([])
            if self.preview_on:
                self.statusBar().showMessage("Annotations changed: the preview is being "
                                             "recomputed", 4000)
                self.preview_timer.start()

    def toggle_preview(self, on: bool | None = None) -> None:
        self.preview_on = (not self.preview_on) if on is None else bool(on)
        self.act_preview.setChecked(self.preview_on)
        if self.preview_on and self.preview is None:
            self.start_preview()
        self.timeline.set_flagged(self.preview.flagged_frames()
                                  if self.preview_on and self.preview else [])
        self.request_render()

    def start_preview(self) -> bool:
        """labels.h5 when it matches the document; else score every frame in the background."""
        m = self.model
        if m is None or not m.has_trajectory:
            return False
        objs = m.posed_objects()
        pv, why = read_preview(m.scene.paths.labels, objs, m.trajectory_sha256)
        if pv is not None:
            self._preview_ready(pv)
            return True
        if self.preview_task is not None and self.preview_task.running():
            self.preview_task.cancel()
            self.preview_task.wait()
        scene = m.scene
        task = BackgroundTask(lambda progress: compute_preview(scene, objs, progress), self)
        task.finished.connect(lambda p: p is not None and self._preview_ready(p))
        task.failed.connect(lambda msg: self.statusBar().showMessage(f"Preview failed: {msg}",
                                                                     8000))
        task.progress.connect(lambda d, t: self.statusBar().showMessage(
            f"Preview ({why}): scoring frame {d}/{t}…", 2000))
        self.preview_task = task
        task.start()
        return True

    def _preview_ready(self, pv: Preview) -> None:
        self.preview = pv
        flagged = pv.flagged_frames()
        if self.preview_on:
            self.timeline.set_flagged(flagged)
        self.statusBar().showMessage(
            f"Preview ({pv.source}): {len(flagged)} of {len(pv.frame_ids)} frames flagged"
            + ("; N jumps to the next" if flagged else ""), 8000)
        self.request_render()

    def preview_idle(self) -> bool:
        return not self.preview_timer.isActive() and (
            self.preview_task is None or not self.preview_task.running())

    def jump_flagged(self, direction: int = 1) -> int | None:
        if self.preview is None:
            self.statusBar().showMessage("Turn on the propagation preview (V) first", 4000)
            return None
        t = self.preview.next_flagged(self.current_frame, direction)
        if t is None:
            self.statusBar().showMessage("No more flagged frames that way", 4000)
            return None
        self.set_frame(t)
        return t

    # -- multi-view -----------------------------------------------------------------------
    def toggle_multiview(self, on: bool | None = None) -> None:
        on = (not self.multiview_dock.isVisible()) if on is None else bool(on)
        self.act_multiview.setChecked(on)
        if on and self.model is not None and not self.multiview.views:
            self.suggest_views()
        self.multiview_dock.setVisible(on)
        self.request_render()

    def set_views(self, frames: list[int]) -> None:
        """Show these frames in the multi-view check (2-4 of them)."""
        m = self.model
        if m is None:
            return
        frames = [int(t) for t in frames][:MAX_OTHER_VIEWS]
        mv = self.multiview
        while len(mv.services) > len(frames):
            s = mv.services.pop()
            s.shutdown()
            s.deleteLater()
        mv.set_frames(frames)
        while len(mv.services) < len(frames):
            k = len(mv.services)
            s = OverlayService(m.scene, self)
            v = mv.views[k]
            s.ready.connect(lambda res, v=v: self._multiview_ready(v, res))
            mv.services.append(s)
            v.picked.connect(lambda _v, i: self.select(i or None))
            v.dragStarted.connect(self._drag_started)
            v.dragMoved.connect(self._drag_moved)
            v.dragFinished.connect(self._drag_finished)
            v.depthWheel.connect(self._depth_wheel)
            v.placeRequested.connect(lambda view, u, v_: self.place_at(u, v_, view))
            v.nudge.connect(lambda view, a, s_, c: self.nudge(a, s_, c, view))
            v.rotate.connect(lambda view, a, s_, c: self.rotate_step(a, s_, c, view))
        self.request_render()

    def suggest_views(self) -> list[int]:
        """3-6 frames over the viewpoints; the ones other than the current frame are shown."""
        m = self.model
        if m is None or not m.has_trajectory:
            return []
        n = self.multiview.count.value()
        sug = suggest_keyframes(m.scene, min(max(n + 1, 3), 6))
        others = [t for t in sug if t != self.current_frame][:n]
        self.set_views(others)
        return sug

    def _multiview_ready(self, view: FrameView, res: RenderResult) -> None:
        if res.error:
            return
        ov = res.overlay
        view.frame = res.request.frame
        view.set_images(res.background, ov.rgba if ov is not None else None,
                        ov.inst if ov is not None else None)
        view.shown_gen = res.gen

    def multiview_idle(self) -> bool:
        return all(s.idle() for s in self.multiview.services)

    # -- export ---------------------------------------------------------------------------
    def export_dialog_open(self) -> ExportDialog | None:
        if self.model is None:
            return None
        if self.export_dialog is None or self.export_dialog.window_.model is not self.model:
            self.export_dialog = ExportDialog(self, self)
        self.export_dialog.show()
        return self.export_dialog

