"""The main window: the shell that holds the views, panels and controllers together.

Layout: a banner (missing trajectory / tracking progress / warnings) over the frame
view, the timeline under it, the objects panel (list, add, delete, visibility, opacity,
numeric pose) on the right, the multi-view dock at the bottom, toolbars, menus and
status bar around (`labeller.gui.actions`).

The window owns the shared `WindowState` (document, frame, selection) and the
rendering of the main view; the work is done by controllers that get what they need
passed in: `editor` (`labeller.gui.editing`: every pose edit), `tracker` (banner and
tracking), `refiner`, `previewer`, `multiview`, `autosaver`, and the export dialog.
Every document change is an undo command pushed on `undo_stack`; the window and its
views only listen to `labeller.annotate.document.DocumentModel` events. Overlays come
from `labeller.gui.worker.OverlayService` (a worker thread); during a drag a
half-resolution preview is requested, the full render after.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QCloseEvent, QKeyEvent, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.geometry.overlay import OverlayObject
from labeller.gui import scene_files
from labeller.gui.actions import WindowActions
from labeller.gui.autosave import AutosaveController
from labeller.gui.editing import EditController
from labeller.gui.export_dialog import ExportDialog
from labeller.gui.focus import keep_keys_for_view
from labeller.gui.multiview import MultiView, MultiViewController
from labeller.gui.overlay_toggles import OverlayToggles
from labeller.gui.panels import ObjectsPanel
from labeller.gui.point_align import PointAlignController
from labeller.gui.preview import PreviewController
from labeller.gui.refine import RefineController
from labeller.gui.state import WindowState
from labeller.gui.status_line import StatusLine
from labeller.gui.suggestions import SuggestionsController
from labeller.gui.tracking import Banner, TrackingController
from labeller.gui.view3d import View3DController
from labeller.gui.views import FrameView, Timeline
from labeller.gui.worker import OverlayService, RenderResult

# What counts as the user's next action for the status bar's notice.
USER_ACTION_EVENTS = (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress,
                      QEvent.Type.MouseButtonPress)


class MainWindow(QMainWindow):
    """The annotation window. `open_scene(path)` loads a scene; see docs/gui.md."""

    def __init__(self, models_dir: str | os.PathLike | None = None):
        super().__init__()
        # `models_dir` (labeller gui --models) is for the first scene opened; each later
        # one gets the folder it was last opened with (`scene_files.remembered_models`).
        self._first_models_dir = Path(models_dir) if models_dir else None
        self.state = WindowState()
        self.undo_stack = QUndoStack(self)
        self.show_depth = False
        self.export_dialog: ExportDialog | None = None
        self.last_result: RenderResult | None = None
        self._unsub: list[Callable[[], None]] = []
        self._build_widgets()
        status = self.statusBar()
        st = self.state
        self.editor = EditController(st, self.undo_stack, self.view, self.select,
                                     self.request_render, status, self)
        self.tracker = TrackingController(st, self.banner, status, self)
        self.multiview = MultiViewController(st, self.multiview_widget, self.multiview_dock,
                                             self.editor, self.request_render,
                                             self.overlay_objects, self)
        self.refiner = RefineController(st, self.undo_stack, status,
                                        self.editor.edit_target,
                                        self.multiview.shown_frames, self,
                                        notice=self.status_line.show_notice)
        self.point_aligner = PointAlignController(st, self.undo_stack, self.view,
                                                  self.editor.edit_target, status, self)
        self.previewer = PreviewController(st, self.timeline, status, self.request_render,
                                           self.set_frame, self)
        self.autosaver = AutosaveController(self.undo_stack, status, self)
        self.suggester = SuggestionsController(self, self.undo_stack, status, self)
        self.view3d = View3DController(st, self, self.select, self.overlay_objects, self)
        self.overlay_toggles = OverlayToggles(st, self.request_render, status, self)
        self.actions_ = WindowActions(self)
        self.recent_menu = self.actions_.recent_menu
        self._connect()
        self._show_scene_widgets(False)
        self._update_title()
        self._update_actions()
        scene_files.restore_window(self)
        self.close_scene()  # the scene's docks stay hidden until a scene is open

    # -- construction ---------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.resize(1280, 800)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.banner = Banner()
        lay.addWidget(self.banner)
        self.view = FrameView()
        lay.addWidget(self.view, 1)
        self.placeholder = QLabel("Open a scene: File ▸ Open (Ctrl+O)\n\n"
                                  "or run `labeller gui SCENE --models DIR`")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
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
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        # The right column (objects, suggestions) runs the full height; the bottom docks
        # (multi-view, 3D view) sit under the frame view only, so the right column's
        # minimum height does not squeeze them to a strip.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.status_line = StatusLine(self.statusBar(), self.view)
        self.multiview_widget = MultiView()
        self.multiview_dock = QDockWidget("Multi-view check", self)
        self.multiview_dock.setObjectName("multiview")
        self.multiview_dock.setWidget(self.multiview_widget)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.multiview_dock)
        self.multiview_dock.hide()

    def _connect(self) -> None:
        ed, acts = self.editor, self.actions_
        ed.attach_view(self.view)
        ed.dragBegan.connect(self.status_line.drag_began)
        ed.placeModeChanged.connect(acts.place.setChecked)
        self.previewer.activeChanged.connect(acts.preview.setChecked)
        self.multiview.activeChanged.connect(acts.multiview.setChecked)
        self.view3d.activeChanged.connect(acts.view3d.setChecked)
        self.recent_menu.aboutToShow.connect(
            lambda: scene_files.fill_recent_menu(self.recent_menu, self.open_scene))
        self.timeline.frameRequested.connect(self.set_frame)
        self.frame_spin.valueChanged.connect(self.set_frame)
        self.panel.addRequested.connect(ed.add_object)
        self.panel.deleteRequested.connect(ed.delete_object)
        self.panel.selectionRequested.connect(self.select)
        self.panel.visibilityRequested.connect(self._set_visible)
        self.panel.opacityChanged.connect(self.set_opacity)
        self.panel.pose_editor.poseEntered.connect(
            lambda i, T: ed.push_pose(i, T, "Enter pose"))
        # Keys belong to the frame view (labeller.gui.focus): buttons, lists, sliders and
        # combo boxes take no focus; number fields (pose, frame box) pass letters on and
        # give the focus back on Enter / Escape.
        for keys in keep_keys_for_view(self, self.view):
            if keys.field in self.panel.pose_editor.fields.values():
                keys.revert = self.panel.pose_editor.show_pose  # Esc: the pose as it is now
        # A notice (refused refine...) stays until the user's next action: a key, a
        # click in this window or an edit.
        self.undo_stack.indexChanged.connect(lambda _i: self.status_line.clear_notice())
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if (event.type() in USER_ACTION_EVENTS and self.status_line.notice_text
                and isinstance(obj, QWidget) and obj.window() is self):
            self.status_line.clear_notice()
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        # A view key (arrows, I/K, ...) that no widget used (the focus was on a panel):
        # it still edits in the frame view.
        if not (self.view.isVisible() and self.view.handle_key(event)):
            super().keyPressEvent(event)

    def escape(self) -> None:
        """Esc (in a text field the field itself takes Esc: back to the view) and
        Edit ▸ Deselect: leave place mode, else deselect; the keys go to the frame view."""
        self.editor.escape()
        if self.view.isVisible() and not isinstance(QApplication.focusWidget(), FrameView):
            self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)

    # -- what the window shows ------------------------------------------------------------
    @property
    def models_dir(self) -> Path | None:
        """The open scene's extra models folder (else the one for the first scene)."""
        m = self.state.model
        return m.models_dir if m is not None else self._first_models_dir

    @property
    def model(self) -> DocumentModel | None:
        return self.state.model

    @property
    def service(self) -> OverlayService | None:
        return self.state.service

    @property
    def current_frame(self) -> int:
        return self.state.frame

    @property
    def selected_id(self) -> int | None:
        return self.state.selected_id

    # -- opening, saving, closing ---------------------------------------------------------
    def open_dialog(self) -> None:
        recent = scene_files.recent_scenes()
        d = QFileDialog.getExistingDirectory(self, "Open scene",
                                             recent[0] if recent else str(Path.cwd()))
        if d:
            self.open_scene(d)

    def open_scene(self, path: str | os.PathLike) -> bool:
        """Open a scene; False (with a message box) when it is not valid or the user
        kept the current one. A valid scene opens without any dialog."""
        path = Path(path)
        if not self.maybe_save():
            return False
        # Never the previous scene's models folder: the one given for the first scene,
        # else the one this scene was opened with last time.
        models_dir = self._first_models_dir or scene_files.remembered_models(path)
        model = scene_files.load_document(self, path, models_dir)
        if model is None:
            return False
        self.close_scene()
        self._first_models_dir = None
        self.state.model = model
        scene_files.remember_scene(path, model.models_dir)
        sub = self._unsub.append
        for ev in ("pose_changed", "object_added", "object_removed", "visibility_changed"):
            sub(model.subscribe(ev, lambda *_: self.request_render()))
        sub(model.subscribe("object_removed", self._object_removed))
        sub(model.subscribe("keyframes_changed", lambda *_: self._update_timeline()))
        sub(model.subscribe("object_added", lambda *_: self._update_timeline()))
        sub(model.subscribe("object_removed", lambda *_: self._update_timeline()))
        sub(model.subscribe("dirty_changed", lambda *_: self._update_title()))
        sub(model.subscribe("trajectory_changed", self._trajectory_changed))
        sub(model.subscribe("pose_changed", lambda *_: self._update_status()))
        self.state.service = OverlayService(model.scene, self)
        self.state.service.ready.connect(self._on_render)
        self.panel.set_model(model)
        self.frame_spin.blockSignals(True)
        self.frame_spin.setRange(0, model.n_frames - 1)
        self.frame_spin.blockSignals(False)
        self.undo_stack.clear()
        self._show_scene_widgets(True)
        self._update_title()
        self.tracker.update_banner()
        first = model.all_keyframes() or (model.trajectory.frame_ids if model.trajectory else [])
        self.set_frame(first[0] if first else 0, force=True)
        self._update_actions()
        self._mark_missing_depth(model)
        self.view.setFocus()  # keys go to the image, not to the frame number box
        self.previewer.open(model)
        recovered = self.autosaver.open(model)
        self.suggester.open(model)
        self.view3d.open(model)
        scene_files.report_open_problems(self, model, annotations=not recovered)
        return True

    def close_scene(self) -> None:
        """Stop everything working on the open scene and show none."""
        self.autosaver.close()
        self.suggester.close()
        self.view3d.close()
        self.refiner.close()
        self.point_aligner.close_scene()
        self.previewer.close()
        self.multiview.close()
        self.tracker.close()
        for u in self._unsub:
            u()
        self._unsub = []
        if self.state.service is not None:
            self.state.service.shutdown()
            self.state.service.ready.disconnect(self._on_render)
            self.state.service.deleteLater()
            self.state.service = None
        self.state.model = None
        self.state.selected_id = None
        self.view.selected = None
        self.panel.set_model(None)
        self.undo_stack.clear()
        self.view.clear()
        self.timeline.set_no_depth([])
        self.status_line.clear_notice()
        self.banner.hide()
        self._update_actions()

    def save(self) -> bool:
        m = self.state.model
        return m is not None and scene_files.save_document(self, m, self.undo_stack,
                                                           self.statusBar())

    def maybe_save(self) -> bool:
        """True when it is fine to drop the document (saved, discarded or clean)."""
        return scene_files.ask_to_save(self, self.state.model, self.save)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.maybe_save():
            event.ignore()
            return
        scene_files.save_window(self)  # before the scene's docks are hidden
        self.close_scene()
        event.accept()

    def export_dialog_open(self) -> ExportDialog | None:
        m = self.state.model
        if m is None:
            return None
        if self.export_dialog is None or self.export_dialog.model is not m:
            self.export_dialog = ExportDialog(m, lambda: self.state.model, self.models_dir,
                                              self.save, self)
        self.export_dialog.show()
        return self.export_dialog

    def _show_scene_widgets(self, on: bool) -> None:
        self.view.setVisible(on)
        self.placeholder.setVisible(not on)
        self.timeline.setVisible(on)
        self.frame_spin.setVisible(on)

    def _update_title(self) -> None:
        m = self.state.model
        name = m.scene.name if m is not None else ""
        self.setWindowTitle(f"{name}[*] — labeller" if name else "labeller")
        self.setWindowModified(bool(m is not None and m.dirty))

    def _update_actions(self) -> None:
        on = self.state.model is not None
        for a in (*self.actions_.scene_actions, *self.actions_.needing_scene()):
            a.setEnabled(on)

    def _mark_missing_depth(self, model: DocumentModel) -> None:
        """Frames without a depth image: marked on the timeline, named in the notice."""
        missing = list(model.scene.missing_depth)
        self.timeline.set_no_depth(missing)
        if missing:
            shown = ", ".join(map(str, missing[:8])) + (" …" if len(missing) > 8 else "")
            self.status_line.show_notice(
                f"No depth image for frame(s) {shown} (orange on the timeline): those "
                "frames show no depth, and place / refine find nothing there")

    def _trajectory_changed(self) -> None:
        self.tracker.update_banner()
        self._update_timeline()
        self.request_render()

    # -- frames ---------------------------------------------------------------------------
    def set_frame(self, t: int, force: bool = False) -> None:
        if self.state.model is None:
            return
        t = int(min(max(t, 0), self.state.model.n_frames - 1))
        if t == self.state.frame and not force:
            return
        self.state.frame = t
        self.view.frame = t
        self.frame_spin.blockSignals(True)
        self.frame_spin.setValue(t)
        self.frame_spin.blockSignals(False)
        self._update_timeline()
        self._update_status()
        self.multiview.follow_main_frame()
        self.request_render()

    def step_frame(self, d: int) -> None:
        self.set_frame(self.state.frame + d)

    def jump_keyframe(self, direction: int) -> None:
        m, sel = self.state.model, self.state.selected_id
        if m is None:
            return
        ks = m.keyframes(sel) if sel is not None else m.all_keyframes()
        cands = [k for k in ks if (k - self.state.frame) * direction > 0]
        if cands:
            self.set_frame(min(cands) if direction > 0 else max(cands))

    def _update_timeline(self) -> None:
        m, sel = self.state.model, self.state.selected_id
        if m is None:
            return
        untracked = (m.trajectory.gaps(m.n_frames) if m.trajectory is not None
                     else [(0, m.n_frames - 1)])
        sel_kf = m.keyframes(sel) if sel is not None and m.has_object(sel) else []
        self.timeline.set_state(m.n_frames, self.state.frame, m.all_keyframes(), sel_kf,
                                untracked)

    # -- selection and view state ---------------------------------------------------------
    def select(self, obj_id: int | None) -> None:
        m = self.state.model
        if obj_id is not None and (m is None or not m.has_object(obj_id)):
            obj_id = None
        if obj_id == self.state.selected_id:
            return
        self.state.selected_id = obj_id
        self.view.selected = obj_id
        self.panel.show_selection(obj_id)
        self._update_timeline()
        self._update_status()
        self.request_render()

    def _object_removed(self, obj_id: int) -> None:
        if obj_id == self.state.selected_id:
            self.select(None)

    def _set_visible(self, obj_id: int, visible: bool) -> None:
        if self.state.model is not None:
            self.state.model.set_visible(obj_id, visible)

    def set_opacity(self, a: float) -> None:
        self.state.overlay_style = replace(self.state.overlay_style, opacity=a)
        self.request_render()

    def toggle_depth(self, on: bool | None = None) -> None:
        """Show the depth frame in false colour (on=None flips it)."""
        self.show_depth = (not self.show_depth) if on is None else bool(on)
        self.actions_.depth.setChecked(self.show_depth)
        self.request_render()

    # -- rendering ------------------------------------------------------------------------
    def overlay_objects(self, frame: int | None = None) -> tuple[OverlayObject, ...]:
        """What to draw on `frame` (default: the current one; colours can depend on the
        frame in the propagation preview)."""
        m = self.state.model
        frame = self.state.frame if frame is None else frame
        assert m is not None
        out = []
        for o in m.objects():
            if not m.is_visible(o.id):
                continue
            mesh = m.object_model(o.id)
            if mesh is None:
                continue
            out.append(OverlayObject(o.id, mesh, o.T_world_obj,
                                     self.previewer.colour(o.id, m.class_color(o.class_name),
                                                           frame)))
        return tuple(out)

    def request_render(self, preview: bool | None = None) -> None:
        """Render the main view (preview None: half resolution while dragging) and the
        multi-view frames."""
        m, service = self.state.model, self.state.service
        if m is None or service is None:
            return
        if preview is None:
            preview = self.view.dragging
        t = self.state.frame
        service.request(t, m.T_world_cam(t), self.overlay_objects(), self.state.selected_id,
                        self.state.overlay_style, preview,
                        "depth" if self.show_depth else "rgb")
        self.multiview.render()
        self.view3d.request()

    def render_idle(self) -> bool:
        """The newest render request has been drawn (tests wait on this)."""
        return self.state.service is None or self.state.service.idle()

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
        m = self.state.model
        no_depth = m is not None and t in m.scene.missing_depth
        self.view.set_note(f"frame {t}: no camera pose — objects cannot be drawn"
                           if res.request.T_world_cam is None
                           else f"frame {t}: no depth image" if no_depth else "")
        self.status_line.frame_shown()
        self._update_status(res)

    def _update_status(self, res: RenderResult | None = None) -> None:
        self.status_line.update(self.state.model, self.state.frame, self.state.selected_id, res)
