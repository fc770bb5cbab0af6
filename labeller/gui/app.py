"""The main window: open a scene, place and edit objects, undo, save.

Layout: a banner (missing trajectory / tracking progress / warnings) over the frame
view, the timeline under it, the objects panel (list, add, delete, visibility, opacity,
numeric pose) on the right, toolbar, menus and status bar around.

Every document change is an undo command pushed on `self.undo_stack`; the window and
its views only listen to `labeller.annotate.document.DocumentModel` events. Overlays come from
`labeller.gui.worker.OverlayService` (a worker thread); during a drag a half-resolution preview
is requested, the full render after.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.annotate.pose_edit import (
    drag_rotate,
    drag_translate,
    move_along_ray,
    place_at_pixel,
    rotate_in_camera,
    translate_in_camera,
)
from labeller.core.errors import BadInput, ModelError
from labeller.formats.models import load_model, resolve_model_path
from labeller.formats.scene import scene_problems
from labeller.geometry.overlay import OverlayObject, OverlayRenderer, OverlayStyle, model_centre
from labeller.gui import _pyside_fix
from labeller.gui.commands import (
    AddObjectCommand,
    RemoveObjectCommand,
    SetKeyframesCommand,
    SetPoseCommand,
)
from labeller.gui.panels import ObjectsPanel
from labeller.gui.part2 import Part2Mixin
from labeller.gui.tasks import BackgroundTask, tracking_stage
from labeller.gui.views import FrameView, Timeline
from labeller.gui.worker import OverlayService, RenderResult

# PySide6 6.12.0 + CPython 3.11 abort after a few thousand repaints; see _pyside_fix.
# (Also done in gui/__init__; repeated here because an editable install made before
# gui/__init__.py existed imports `gui` as a namespace package, skipping it.)
_pyside_fix.install()

APP_NAME = "labeller"
MAX_RECENT = 8
MAX_PROBLEMS_SHOWN = 15
# Step sizes of the pose keys (Shift = coarse) and of one wheel notch.
FINE_STEP_M, COARSE_STEP_M = 0.001, 0.010
FINE_STEP_DEG, COARSE_STEP_DEG = 1.0, 5.0
WHEEL_STEP_M = 0.005
DRAG_ROTATE_DEG_PER_PX = 0.5
# Models stand with z up (YCB frame): a new object is shown upright, facing the camera
# (object z -> camera -y, object y -> camera z).
DEFAULT_R_CAM_OBJ = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Where a new object goes when the image centre has no depth (metres along the axis).
DEFAULT_DEPTH_M = 0.6


def app_settings() -> QSettings:
    """Recent scenes etc.; LABELLER_CONFIG_DIR redirects them (tests, portable setups)."""
    d = os.environ.get("LABELLER_CONFIG_DIR")
    if d:
        return QSettings(str(Path(d) / "labeller.ini"), QSettings.IniFormat)
    return QSettings(APP_NAME, APP_NAME)


class Banner(QFrame):
    """A strip above the view: a message, an optional action button, progress, cancel."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
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


class MainWindow(Part2Mixin, QMainWindow):
    """The annotation window. `open_scene(path)` loads a scene; see docs/gui.md."""

    def __init__(self, models_dir: str | os.PathLike | None = None):
        super().__init__()
        self.models_dir = Path(models_dir) if models_dir else None
        self.model: DocumentModel | None = None
        self.service: OverlayService | None = None
        self.undo_stack = QUndoStack(self)
        self.current_frame = 0
        self.selected_id: int | None = None
        self.show_depth = False
        self.style = OverlayStyle()
        self.track_task: BackgroundTask | None = None
        self._unsub: list = []
        self._drag: dict | None = None
        self._drag_serial = 0
        self._shown_times: deque[float] = deque(maxlen=30)
        self._no_pose_msg = ""
        self.last_result: RenderResult | None = None
        # Casts the UI thread itself needs (click-to-place): never the worker's renderer,
        # which is busy on another thread.
        self.ui_renderer = OverlayRenderer()
        _pyside_fix.start_timer(self)
        self._build_ui()
        self._update_title()
        self._update_actions()

    # -- construction ---------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.resize(1280, 800)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.banner = Banner()
        self.banner.action.clicked.connect(self._banner_action)
        self.banner.cancel.clicked.connect(self._cancel_tracking)
        lay.addWidget(self.banner)
        self.view = FrameView()
        lay.addWidget(self.view, 1)
        self.placeholder = QLabel("Open a scene: File ▸ Open (Ctrl+O)\n\n"
                                  "or run `labeller gui SCENE --models DIR`")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setStyleSheet("color: #888; font-size: 16px;")
        lay.addWidget(self.placeholder, 1)
        row = QHBoxLayout()
        row.setContentsMargins(6, 0, 6, 4)
        self.timeline = Timeline()
        self.frame_spin = QSpinBox()
        self.frame_spin.setPrefix("frame ")
        self.frame_spin.setKeyboardTracking(False)
        row.addWidget(self.timeline, 1)
        row.addWidget(self.frame_spin)
        lay.addLayout(row)
        self.setCentralWidget(central)

        self.panel = ObjectsPanel()
        dock = QDockWidget("Objects", self)
        dock.setObjectName("objects")
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)

        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)

        self._make_actions()
        self.view.picked.connect(lambda _v, i: self.select(i or None))
        self.view.dragStarted.connect(self._drag_started)
        self.view.dragMoved.connect(self._drag_moved)
        self.view.dragFinished.connect(self._drag_finished)
        self.view.depthWheel.connect(self._depth_wheel)
        self.view.placeRequested.connect(lambda view, u, v: self.place_at(u, v, view))
        self.view.nudge.connect(lambda view, a, s, c: self.nudge(a, s, c, view))
        self.view.rotate.connect(lambda view, a, s, c: self.rotate_step(a, s, c, view))
        self.timeline.frameRequested.connect(self.set_frame)
        self.frame_spin.valueChanged.connect(self.set_frame)
        self.panel.addRequested.connect(self.add_object)
        self.panel.deleteRequested.connect(self.delete_object)
        self.panel.selectionRequested.connect(self.select)
        self.panel.visibilityRequested.connect(self._set_visible)
        self.panel.opacityChanged.connect(self.set_opacity)
        self.panel.pose_editor.poseEntered.connect(
            lambda i, T: self.push_pose(i, T, "Enter pose"))
        self._build_part2()
        self._show_scene_widgets(False)

    def _action(self, text: str, slot, shortcut=None, tip: str = "",
                checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.setToolTip(f"{tip or text} ({a.shortcut().toString()})" if shortcut else tip or text)
        a.setStatusTip(tip or text)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _make_actions(self) -> None:
        self.act_open = self._action("&Open scene…", self.open_dialog, QKeySequence.Open)
        self.act_save = self._action("&Save", self.save, QKeySequence.Save,
                                     "Save annotations.json")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.Quit)
        self.act_undo = self.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence.Undo)
        self.act_redo = self.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcut(QKeySequence.Redo)
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        self.act_delete = self._action("&Delete object", self.delete_selected, QKeySequence.Delete)
        self.act_place = self._action("&Place (click)", self._toggle_place, "P",
                                      "Click a pixel to put the selected object on its depth",
                                      checkable=True)
        self.act_deselect = self._action("Deselect", self._escape, "Escape")
        self.act_prev = self._action("Previous frame", lambda: self.step_frame(-1), ",")
        self.act_next = self._action("Next frame", lambda: self.step_frame(+1), ".")
        self.act_prev_kf = self._action("Previous keyframe", lambda: self.jump_keyframe(-1), "[")
        self.act_next_kf = self._action("Next keyframe", lambda: self.jump_keyframe(+1), "]")
        self.act_keyframe = self._action("Toggle &keyframe", self.toggle_keyframe, "M",
                                         "Mark/unmark this frame as a keyframe of the selected "
                                         "object (of all objects when none is selected)")
        self.act_depth = self._action("Show &depth", self.toggle_depth, "D",
                                      "Show the depth frame in false colour", checkable=True)
        self.act_fit = self._action("&Fit view", self.view.fit, "F")
        self.act_zoom_in = self._action("Zoom in", lambda: self.view.zoom(1.25), QKeySequence.ZoomIn)
        self.act_zoom_out = self._action("Zoom out", lambda: self.view.zoom(0.8),
                                         QKeySequence.ZoomOut)
        self.act_keys = self._action("Keys…", self._show_keys)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addAction(self.act_save)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_place, self.act_delete,
                  self.act_deselect):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Frame")
        for a in (self.act_prev, self.act_next, self.act_prev_kf, self.act_next_kf, None,
                  self.act_keyframe):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&View")
        for a in (self.act_depth, self.act_fit, self.act_zoom_in, self.act_zoom_out):
            m.addAction(a)
        mb.addMenu("&Help").addAction(self.act_keys)

        tb = self.addToolBar("Main")
        tb.setObjectName("main")
        for a in (self.act_open, self.act_save, None, self.act_undo, self.act_redo, None,
                  self.act_prev, self.act_next, self.act_keyframe, None, self.act_place,
                  self.act_depth, self.act_fit):
            tb.addSeparator() if a is None else tb.addAction(a)

    # -- opening --------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(self._recent()[0]) if self._recent() else str(Path.cwd())
        d = QFileDialog.getExistingDirectory(self, "Open scene", start)
        if d:
            self.open_scene(d)

    def _recent(self) -> list[str]:
        v = app_settings().value("recent_scenes", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _remember(self, path: Path) -> None:
        s = str(path.resolve())
        rec = [s] + [r for r in self._recent() if r != s]
        app_settings().setValue("recent_scenes", rec[:MAX_RECENT])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for r in self._recent():
            a = self.recent_menu.addAction(r)
            a.triggered.connect(lambda _=False, r=r: self.open_scene(r))
        if not self.recent_menu.actions():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def open_scene(self, path: str | os.PathLike) -> bool:
        """Open a scene; False (with a message box) when it is not valid or the user
        kept the current one. A valid scene opens without any dialog."""
        path = Path(path)
        if not self.maybe_save():
            return False
        try:
            model = DocumentModel.open(path, self.models_dir)
        except BadInput as exc:
            problems = scene_problems(path, deep=False) if path.is_dir() else []
            if not problems or str(exc) not in problems:
                problems = [str(exc)] + problems
            shown = problems[:MAX_PROBLEMS_SHOWN]
            more = len(problems) - len(shown)
            QMessageBox.critical(
                self, "Cannot open scene",
                f"{path} is not a valid scene:\n\n" + "\n".join(f"• {p}" for p in shown)
                + (f"\n… and {more} more (run `labeller info {path}`)" if more > 0 else ""))
            return False
        self._close_scene()
        self.model = model
        self._remember(path)
        for ev in ("pose_changed", "object_added", "object_removed", "visibility_changed"):
            self._unsub.append(model.subscribe(ev, lambda *_: self.request_render()))
        self._unsub.append(model.subscribe("object_removed", self._object_removed))
        self._unsub.append(model.subscribe("keyframes_changed", lambda *_: self._update_timeline()))
        self._unsub.append(model.subscribe("object_added", lambda *_: self._update_timeline()))
        self._unsub.append(model.subscribe("object_removed", lambda *_: self._update_timeline()))
        self._unsub.append(model.subscribe("dirty_changed", lambda *_: self._update_title()))
        self._unsub.append(model.subscribe("trajectory_changed", self._trajectory_changed))
        self._unsub.append(model.subscribe("pose_changed", lambda *_: self._update_status()))
        self.service = OverlayService(model.scene, self)
        self.service.ready.connect(self._on_render)
        self.panel.set_model(model)
        self.frame_spin.blockSignals(True)
        self.frame_spin.setRange(0, model.n_frames - 1)
        self.frame_spin.blockSignals(False)
        self.undo_stack.clear()
        self._show_scene_widgets(True)
        self._update_title()
        self._update_banner()
        first = model.all_keyframes() or (model.trajectory.frame_ids if model.trajectory else [])
        self.set_frame(first[0] if first else 0, force=True)
        self._update_actions()
        self.view.setFocus()  # keys go to the image, not to the frame number box
        recovered = self._part2_opened()
        self._report_open_problems(annotations=not recovered)
        return True

    def _report_open_problems(self, annotations: bool = True) -> None:
        m = self.model
        assert m is not None
        if m.annotations_error is not None and annotations:
            QMessageBox.warning(
                self, "Annotations not loaded",
                f"{m.annotations_error}\n\nThe scene is open without them. The file is left "
                "as it is; saving first moves it aside to annotations.unreadable-<time>.json.")
        errors = m.model_errors()
        if errors:
            QMessageBox.warning(
                self, "Models not loaded",
                "These objects' models could not be loaded; they are kept in the document "
                "but not drawn (pass --models DIR to find them):\n\n"
                + "\n".join(f"• {e}" for e in errors[:MAX_PROBLEMS_SHOWN]))

    def _close_scene(self) -> None:
        self._part2_closing()
        if self.track_task is not None and self.track_task.running():
            self.track_task.cancel()
            self.track_task.wait()
        self.track_task = None
        for u in self._unsub:
            u()
        self._unsub = []
        if self.service is not None:
            self.service.shutdown()
            self.service.ready.disconnect(self._on_render)
            self.service.deleteLater()
            self.service = None
        self.model = None
        self.selected_id = None
        self.view.selected = None
        self.panel.set_model(None)
        self.undo_stack.clear()
        self.view.clear()
        self.banner.hide()

    def _show_scene_widgets(self, on: bool) -> None:
        self.view.setVisible(on)
        self.placeholder.setVisible(not on)
        self.timeline.setVisible(on)
        self.frame_spin.setVisible(on)

    def _update_title(self) -> None:
        name = self.model.scene.name if self.model is not None else ""
        self.setWindowTitle(f"{name}[*] — labeller" if name else "labeller")
        self.setWindowModified(bool(self.model is not None and self.model.dirty))

    def _update_actions(self) -> None:
        has = self.model is not None
        for a in (self.act_save, self.act_prev, self.act_next, self.act_prev_kf,
                  self.act_next_kf, self.act_keyframe, self.act_depth, self.act_place,
                  self.act_delete):
            a.setEnabled(has)

    # -- tracking banner ------------------------------------------------------------------
    def _update_banner(self) -> None:
        m = self.model
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
            self.start_tracking()

    def start_tracking(self) -> bool:
        """Run the tracking stage in the background; False (banner says why) if it can't."""
        if self.model is None or (self.track_task is not None and self.track_task.running()):
            return False
        track, why = tracking_stage()
        if track is None:
            self.banner.show_message("trajectory", why)
            return False
        root = self.model.root
        task = BackgroundTask(lambda progress: track(root, progress), self)
        task.progress.connect(self._tracking_progress)
        task.finished.connect(self._tracking_finished)
        task.failed.connect(lambda msg: self.banner.show_message(
            "trajectory", f"Tracking failed: {msg}", "Run tracking again"))
        task.cancelled.connect(lambda: self.banner.show_message(
            "trajectory", "Tracking cancelled; the scene still has no trajectory.",
            "Run tracking"))
        self.track_task = task
        self.banner.show_message("tracking", "Tracking the camera…", None, progress=True,
                                 cancel=True)
        self.banner.progress.setRange(0, 0)
        task.start()
        return True

    def _tracking_progress(self, done: int, total: int) -> None:
        self.banner.progress.setRange(0, max(total, 1))
        self.banner.progress.setValue(done)
        self.banner.label.setText(f"Tracking the camera… frame {done}/{total}")

    def _tracking_finished(self, _result) -> None:
        if self.model is not None:
            self.model.reload_trajectory()
        self.statusBar().showMessage("Tracking finished: trajectory.txt written", 8000)

    def _cancel_tracking(self) -> None:
        if self.track_task is not None:
            self.track_task.cancel()
            self.banner.label.setText("Cancelling…")

    def _trajectory_changed(self) -> None:
        self._update_banner()
        self._update_timeline()
        self.request_render()

    # -- frames ---------------------------------------------------------------------------
    def set_frame(self, t: int, force: bool = False) -> None:
        if self.model is None:
            return
        t = int(min(max(t, 0), self.model.n_frames - 1))
        if t == self.current_frame and not force:
            return
        self.current_frame = t
        self.view.frame = t
        self.frame_spin.blockSignals(True)
        self.frame_spin.setValue(t)
        self.frame_spin.blockSignals(False)
        self._update_timeline()
        self._update_status()
        self.request_render()

    def step_frame(self, d: int) -> None:
        self.set_frame(self.current_frame + d)

    def jump_keyframe(self, direction: int) -> None:
        if self.model is None:
            return
        ks = (self.model.keyframes(self.selected_id) if self.selected_id is not None
              else self.model.all_keyframes())
        cands = [k for k in ks if (k - self.current_frame) * direction > 0]
        if cands:
            self.set_frame(min(cands) if direction > 0 else max(cands))

    def _update_timeline(self) -> None:
        m = self.model
        if m is None:
            return
        untracked = (m.trajectory.gaps(m.n_frames) if m.trajectory is not None
                     else [(0, m.n_frames - 1)])
        sel = (m.keyframes(self.selected_id)
               if self.selected_id is not None and m.has_object(self.selected_id) else [])
        self.timeline.set_state(m.n_frames, self.current_frame, m.all_keyframes(), sel, untracked)

    def toggle_keyframe(self) -> None:
        m = self.model
        if m is None or not m.object_ids:
            self.statusBar().showMessage("No objects: add one before marking keyframes", 5000)
            return
        ids = [self.selected_id] if self.selected_id is not None else m.object_ids
        t = self.current_frame
        on_all = all(t in m.keyframes(i) for i in ids)
        changes = {}
        for i in ids:
            old = m.keyframes(i)
            new = [k for k in old if k != t] if on_all else sorted(set(old) | {t})
            changes[i] = (old, new)
        what = "Remove" if on_all else "Add"
        self.undo_stack.push(SetKeyframesCommand(m, changes, f"{what} keyframe {t}"))

    # -- rendering ------------------------------------------------------------------------
    def _overlay_objects(self, frame: int | None = None) -> tuple[OverlayObject, ...]:
        """What to draw on `frame` (default: the current one; colours can depend on the
        frame in the propagation preview)."""
        m = self.model
        frame = self.current_frame if frame is None else frame
        assert m is not None
        out = []
        for o in m.objects():
            if not m.is_visible(o.id):
                continue
            mesh = m.object_model(o.id)
            if mesh is None:
                continue
            out.append(OverlayObject(o.id, mesh, o.T_world_obj,
                                     self._part2_colours(o.id, m.class_color(o.class_name),
                                                         frame)))
        return tuple(out)

    def request_render(self, preview: bool | None = None) -> None:
        if self.model is None or self.service is None:
            return
        if preview is None:
            preview = self.view.dragging
        T_wc = self.model.T_world_cam(self.current_frame)
        self.service.request(self.current_frame, T_wc, self._overlay_objects(),
                             self.selected_id, self.style, preview,
                             "depth" if self.show_depth else "rgb")
        self._part2_render()

    def render_idle(self) -> bool:
        """The newest render request has been drawn (tests wait on this)."""
        return self.service is None or self.service.idle()

    def _on_render(self, res: RenderResult) -> None:
        self.last_result = res
        if res.error:
            self.statusBar().showMessage(f"Rendering failed: {res.error.splitlines()[0]}", 8000)
            return
        ov = res.overlay
        self.view.set_images(res.background, ov.rgba if ov is not None else None,
                             ov.inst if ov is not None else None)
        self.view.shown_gen = res.gen
        t = res.request.frame
        self.view.set_note("" if res.request.T_world_cam is not None
                           else f"frame {t}: no camera pose — objects cannot be drawn")
        self._shown_times.append(time.perf_counter())
        self._update_status(res)

    def _update_status(self, res: RenderResult | None = None) -> None:
        m = self.model
        if m is None:
            self.status_label.setText("")
            return
        t = self.current_frame
        parts = [f"frame {t}/{m.n_frames - 1}"]
        if m.T_world_cam(t) is None:
            parts.append("no camera pose")
            self._no_pose_msg = (f"Frame {t} has no camera pose (not tracked): objects cannot "
                                 "be drawn or edited on it")
            self.statusBar().showMessage(self._no_pose_msg, 0)
        elif self._no_pose_msg:
            if self.statusBar().currentMessage() == self._no_pose_msg:
                self.statusBar().clearMessage()  # only our own message, not e.g. "Saved"
            self._no_pose_msg = ""
        if self.selected_id is not None and m.has_object(self.selected_id):
            o = m.object(self.selected_id)
            x, y, z = o.T_world_obj[:3, 3]
            parts.append(f"#{o.id} {o.class_name} at ({x:+.3f}, {y:+.3f}, {z:+.3f}) m")
        if res is not None:
            parts.append(f"{'preview' if res.request.preview else 'render'} "
                         f"{res.seconds * 1000:.0f} ms")
        if len(self._shown_times) >= 2 and self.view.dragging:
            dt = self._shown_times[-1] - self._shown_times[0]
            if dt > 0:
                parts.append(f"{(len(self._shown_times) - 1) / dt:.0f} updates/s")
        self.status_label.setText("   ·   ".join(parts))

    def set_opacity(self, a: float) -> None:
        self.style = OverlayStyle(opacity=a, outline=self.style.outline)
        self.request_render()

    def toggle_depth(self, on: bool | None = None) -> None:
        """Show the depth frame in false colour (on=None flips it)."""
        self.show_depth = (not self.show_depth) if on is None else bool(on)
        self.act_depth.setChecked(self.show_depth)
        self.request_render()

    # -- selection and objects ------------------------------------------------------------
    def select(self, obj_id: int | None) -> None:
        if obj_id is not None and (self.model is None or not self.model.has_object(obj_id)):
            obj_id = None
        if obj_id == self.selected_id:
            return
        self.selected_id = obj_id
        self.view.selected = obj_id
        self.panel.show_selection(obj_id)
        self._update_timeline()
        self._update_status()
        self.request_render()

    def _object_removed(self, obj_id: int) -> None:
        if obj_id == self.selected_id:
            self.select(None)

    def _set_visible(self, obj_id: int, visible: bool) -> None:
        if self.model is not None:
            self.model.set_visible(obj_id, visible)

    def _escape(self) -> None:
        if self.act_place.isChecked():
            self.act_place.setChecked(False)
            self._toggle_place(False)
        else:
            self.select(None)

    def add_object(self, class_name: str) -> int | None:
        """Add an object of a class in front of the current camera (one undo step);
        returns its id, or None (with a message) when it cannot be added."""
        m = self.model
        if m is None:
            return None
        T_wc = m.T_world_cam(self.current_frame)
        if T_wc is None:
            QMessageBox.information(
                self, "Cannot add object",
                f"Frame {self.current_frame} has no camera pose, so there is nowhere to put "
                "the object. Go to a tracked frame (or run tracking first).")
            return None
        try:
            obj = m.new_object(class_name, np.eye(4))
        except ModelError as exc:
            QMessageBox.warning(self, "Cannot add object",
                                f"The model of class '{class_name}' failed to load:\n\n{exc}")
            return None
        mesh = load_model(resolve_model_path(obj.model, m.root, m.models_dir))
        R_world_obj = T_wc[:3, :3] @ DEFAULT_R_CAM_OBJ
        cam = m.camera
        u, v = int(round(cam.cx)), int(round(cam.cy))
        depth = self.service.frames.depth(self.current_frame) if self.service else None
        T = None
        if depth is not None:
            T = place_at_pixel(cam, T_wc, depth, u, v, mesh, R_world_obj, self.ui_renderer)
        if T is None:
            T_cam_obj = np.eye(4)
            T_cam_obj[:3, :3] = DEFAULT_R_CAM_OBJ
            T_cam_obj[:3, 3] = np.array([0.0, 0.0, DEFAULT_DEPTH_M]) - DEFAULT_R_CAM_OBJ @ \
                model_centre(mesh)
            T = T_wc @ T_cam_obj
        obj.T_world_obj = T
        self.undo_stack.push(AddObjectCommand(m, obj))
        self.select(obj.id)
        return obj.id

    def delete_object(self, obj_id: int) -> None:
        if self.model is not None and self.model.has_object(obj_id):
            self.undo_stack.push(RemoveObjectCommand(self.model, obj_id))

    def delete_selected(self) -> None:
        if self.selected_id is not None:
            self.delete_object(self.selected_id)

    # -- pose editing ---------------------------------------------------------------------
    def _edit_context(self, view: FrameView | None = None):
        """(obj_id, T_world_cam, mesh) of the selected object seen in `view` (default: the
        main view) on the frame that view shows, or None with the reason in the status
        bar. Edits use the camera of the view they come from, so other views (the
        multi-view check) can edit too."""
        m = self.model
        if m is None:
            return None
        if self.selected_id is None or not m.has_object(self.selected_id):
            self.statusBar().showMessage("Select an object first (click it or pick it in the "
                                         "list)", 4000)
            return None
        frame = (view or self.view).frame
        T_wc = m.T_world_cam(frame)
        if T_wc is None:
            self.statusBar().showMessage(
                f"Frame {frame} has no camera pose: objects cannot be edited here", 5000)
            return None
        mesh = m.object_model(self.selected_id)
        if mesh is None:
            self.statusBar().showMessage(m.model_error(self.selected_id) or "model not loaded",
                                         5000)
            return None
        return self.selected_id, T_wc, mesh

    def push_pose(self, obj_id: int, T_new: np.ndarray, text: str,
                  merge_key: tuple | None = None) -> None:
        if self.model is None:
            return
        T_old = self.model.pose(obj_id)
        if np.array_equal(T_old, T_new):
            return
        self.undo_stack.push(SetPoseCommand(self.model, obj_id, T_old, T_new, text, merge_key))

    def nudge(self, axis: int, sign: int, coarse: bool = False,
              view: FrameView | None = None) -> None:
        """Move the selected object along a camera axis (0 x, 1 y, 2 z) by one step."""
        ctx = self._edit_context(view)
        if ctx is None:
            return
        obj_id, T_wc, _ = ctx
        d = np.zeros(3)
        d[axis] = sign * (COARSE_STEP_M if coarse else FINE_STEP_M)
        T = translate_in_camera(self.model.pose(obj_id), T_wc, d)
        self.push_pose(obj_id, T, "Nudge", ("nudge",))

    def rotate_step(self, axis: int, sign: int, coarse: bool = False,
                    view: FrameView | None = None) -> None:
        """Turn the selected object about a camera axis through its centre by one step."""
        ctx = self._edit_context(view)
        if ctx is None:
            return
        obj_id, T_wc, mesh = ctx
        e = np.zeros(3)
        e[axis] = 1.0
        ang = np.radians(sign * (COARSE_STEP_DEG if coarse else FINE_STEP_DEG))
        T = rotate_in_camera(self.model.pose(obj_id), T_wc, e, ang, model_centre(mesh))
        self.push_pose(obj_id, T, "Rotate", ("nudge",))

    def _drag_started(self, view: FrameView, kind: str) -> None:
        ctx = self._edit_context(view)
        if ctx is None:
            self._drag = None
            return
        obj_id, T_wc, mesh = ctx
        self._drag_serial += 1
        self._drag = {"kind": kind, "obj": obj_id, "T_start": self.model.pose(obj_id),
                      "T_wc": T_wc, "centre": model_centre(mesh), "serial": self._drag_serial,
                      "du": 0.0, "dv": 0.0}
        self._shown_times.clear()

    def _drag_pose(self) -> np.ndarray:
        d = self._drag
        assert d is not None and self.model is not None
        if d["kind"] == "rotate":
            return drag_rotate(d["T_start"], d["T_wc"], d["centre"], d["du"], d["dv"],
                               DRAG_ROTATE_DEG_PER_PX)
        return drag_translate(d["T_start"], d["T_wc"], self.model.camera, d["centre"],
                              d["du"], d["dv"])

    def _drag_moved(self, _view, du: float, dv: float) -> None:
        d = self._drag
        if d is None or self.model is None or not self.model.has_object(d["obj"]):
            return
        d["du"], d["dv"] = du, dv
        self.push_pose(d["obj"], self._drag_pose(), "Drag" if d["kind"] == "translate"
                       else "Turn", ("drag", d["serial"]))

    def _drag_finished(self, _view) -> None:
        self._drag = None
        self.request_render(preview=False)

    def _depth_wheel(self, view: FrameView, notches: float) -> None:
        d = self._drag
        if d is not None and self.model is not None:
            d["T_start"] = move_along_ray(d["T_start"], d["T_wc"], d["centre"],
                                          notches * WHEEL_STEP_M)
            self.push_pose(d["obj"], self._drag_pose(), "Drag", ("drag", d["serial"]))
            return
        ctx = self._edit_context(view)
        if ctx is None:
            return
        obj_id, T_wc, mesh = ctx
        T = move_along_ray(self.model.pose(obj_id), T_wc, model_centre(mesh),
                           notches * WHEEL_STEP_M)
        self.push_pose(obj_id, T, "Depth", ("nudge",))

    def _toggle_place(self, on: bool) -> None:
        self.view.place_mode = bool(on)
        self.view.setCursor(Qt.CrossCursor if on else Qt.ArrowCursor)
        if on:
            self.statusBar().showMessage("Place: click the object's surface in the image", 0)
        else:
            self.statusBar().clearMessage()

    def place_at(self, u: int, v: int, view: FrameView | None = None) -> bool:
        """Click-to-place: put the selected object's visible surface on the sensor depth
        at pixel (u, v), keeping its rotation (one undo step)."""
        view = view or self.view
        ctx = self._edit_context(view)
        if ctx is None or self.service is None:
            return False
        obj_id, T_wc, mesh = ctx
        depth = self.service.frames.depth(view.frame)
        T = place_at_pixel(self.model.camera, T_wc, depth, u, v, mesh,
                           self.model.pose(obj_id)[:3, :3], self.ui_renderer)
        if self.act_place.isChecked():
            self.act_place.setChecked(False)
            self._toggle_place(False)
        if T is None:
            self.statusBar().showMessage(f"No depth at pixel ({u}, {v}): click somewhere the "
                                         "sensor measured", 5000)
            return False
        self.push_pose(obj_id, T, "Place")
        return True

    # -- saving and closing ---------------------------------------------------------------
    def save(self) -> bool:
        if self.model is None:
            return False
        try:
            path = self.model.save()
        except (BadInput, OSError) as exc:
            QMessageBox.critical(self, "Save failed", f"{exc}")
            return False
        self.undo_stack.setClean()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def maybe_save(self) -> bool:
        """True when it is fine to drop the document (saved, discarded or clean)."""
        if self.model is None or not self.model.dirty:
            return True
        ans = QMessageBox.question(
            self, "Unsaved changes",
            f"Save the changes to {self.model.annotations_path}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if ans == QMessageBox.Save:
            return self.save()
        if ans == QMessageBox.Discard:
            self.model.discard_autosave()  # the user chose to lose these changes
            return True
        return False

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.maybe_save():
            event.ignore()
            return
        self._close_scene()
        event.accept()

    def _show_keys(self) -> None:
        QMessageBox.information(self, "Keys", KEYS_HELP)


KEYS_HELP = """\
Selected object (click it, or pick it in the list):
  ←/→ ↑/↓  move along the camera's x / y (1 mm; Shift: 1 cm)
  PgUp/PgDn  move away from / towards the camera (z)
  I/K  J/L  U/O  turn about the camera's x / y / z through the object's centre
             (1°; Shift: 5°)
  drag  move in the image plane;  Ctrl+drag  turn;  Shift+wheel (or wheel while dragging)  depth
  P then click  place the object's surface on the clicked pixel's depth
  Delete  remove it;  Esc  deselect
Frames:  , .  previous / next;  [ ]  previous / next keyframe;  M  toggle keyframe
View:  wheel  zoom;  middle/right drag  pan;  F  fit;  D  depth in false colour
Ctrl+Z / Ctrl+Shift+Z undo / redo;  Ctrl+S save"""


def _screenshot_hook(win: MainWindow, app: QApplication) -> None:
    """LABELLER_GUI_SCREENSHOT=PATH: once the first frame is drawn, grab the whole screen
    (the real window under Xvfb) to PATH and quit. LABELLER_GUI_SELECT=ID selects an
    object first. For docs and for checking the app as a real window."""
    out = os.environ.get("LABELLER_GUI_SCREENSHOT")
    if not out:
        return
    sel = os.environ.get("LABELLER_GUI_SELECT")
    t0 = time.monotonic()
    state = {"selected": False}

    def poll() -> None:
        ready = win.model is not None and win.render_idle() and win.view.shown_gen > 0
        if ready and sel and not state["selected"]:
            state["selected"] = True
            win.select(int(sel))
            QTimer.singleShot(200, poll)
            return
        if not ready and time.monotonic() - t0 < 60:
            QTimer.singleShot(200, poll)
            return
        QTimer.singleShot(500, grab)

    def grab() -> None:
        screen = QGuiApplication.primaryScreen()
        pm = screen.grabWindow(0)
        if pm.isNull() or pm.width() == 0:
            pm = win.grab()
        pm.save(out)
        inst = win.view._inst
        drawn = sorted(set(np.unique(inst).tolist()) - {0}) if inst is not None else []
        print(f"labeller gui: screenshot saved to {out} ({pm.width()}x{pm.height()}); "
              f"objects drawn: {', '.join(map(str, drawn)) or 'none'}", file=sys.stderr)
        app.quit()

    QTimer.singleShot(300, poll)


def run_app(scene: str | os.PathLike | None = None,
            models_dir: str | os.PathLike | None = None) -> int:
    """Start the app (optionally on a scene) and run until the window closes."""
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    win = MainWindow(models_dir)
    win.show()
    if scene is not None:
        # After the window is up, so an invalid scene's message box has a parent.
        QTimer.singleShot(0, lambda: win.open_scene(scene))
    _screenshot_hook(win, app)
    return int(app.exec())
