"""Align by points (LabelFusion's workflow): click points on the model, then the same
points in the frame; the rigid fit moves the object, then ICP refines it.

`A` opens `PointAlignDialog` for the selected object: a small `ModelView` (the model
alone, shaded, from an orbit camera: drag to orbit, wheel to zoom, click to pick the
surface point under the cursor by ray cast) and the list of pairs. While it is open,
left clicks on the main frame view pick frame points (back-projected through that
frame's depth into the world frame) instead of selecting; numbered markers show on both
views. Enter (Apply) solves (`labeller.annotate.point_align`), sets the pose as ONE undo
step and, when *Refine after aligning* is ticked, runs the ICP refine in the background
and merges its result into the same step. Backspace removes the last point; Esc closes
(points not applied are dropped). The residual of each pair is shown in the list.

Frames and units: model points in the object frame, frame points in the world frame
(metres); residuals in millimetres; pixels as `FrameView.pixel_at` gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QGraphicsEllipseItem,
    QGraphicsSimpleTextItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStatusBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeller.annotate.document import DocumentModel
from labeller.annotate.point_align import (
    ModelViewCamera,
    ModelViewImage,
    PointAlignError,
    PointFit,
    model_caster,
    pick_model_point,
    refine_fit,
    render_model_view,
    scene_point_world,
    solve_point_alignment,
)
from labeller.annotate.refine import RefineResult
from labeller.core.poses import inv_pose
from labeller.formats.models import ObjectModel
from labeller.geometry.render import ObjectRenderer
from labeller.gui.commands import SetPoseCommand
from labeller.gui.editing import EditTarget
from labeller.gui.state import WindowState
from labeller.gui.tasks import BackgroundTask, stop_task
from labeller.gui.views import FrameView, qimage_rgb
from labeller.gui.worker import OverlayService

MODEL_VIEW_SIZE = (360, 300)  # pixels (width, height) of the model view
# A press that moves less than this before release is a click (pick), not an orbit.
CLICK_SLOP_PX = 3
ORBIT_DEG_PER_PX = 0.5
WHEEL_ZOOM_PER_NOTCH = 1.15
MARKER_RADIUS_PX = 6
MARKER_RGB = (255, 220, 0)
# A marker whose point is hidden behind the model (farther than its surface by more than
# this) is drawn hollow in the model view.
HIDDEN_MARGIN_M = 0.003
# Keys the point mode takes over from the window's shortcuts while the frame view has
# the focus (Esc would otherwise deselect).
MODE_KEYS = (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Backspace)


def _marker_font() -> QFont:
    f = QFont()
    f.setPointSize(10)
    f.setBold(True)
    return f


class ModelView(QWidget):
    """The model alone, shaded, from an orbit camera. Drag: orbit; wheel: zoom; click:
    `pointPicked(p_obj)` with the surface point (3,) in the object frame (metres) under
    the cursor. `markers` (object-frame points) are drawn numbered from 1."""

    pointPicked = Signal(object)

    def __init__(self, model: ObjectModel, R_cam_obj: np.ndarray,
                 color_rgb: tuple[int, int, int], parent: QWidget | None = None):
        super().__init__(parent)
        w, h = MODEL_VIEW_SIZE
        self.setFixedSize(w, h)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Click the model to pick a point; drag to orbit; wheel to zoom")
        self.caster: ObjectRenderer = model_caster(model)
        self.camera = ModelViewCamera.facing(model, R_cam_obj, w, h)
        self.color_rgb = color_rgb
        self.markers: list[np.ndarray] = []
        self._image: ModelViewImage | None = None
        self._press: tuple[QPointF, ModelViewCamera] | None = None
        self._orbiting = False
        self._render()

    def _render(self) -> None:
        self._image = render_model_view(self.caster, self.camera, self.color_rgb)
        self.update()

    @property
    def image(self) -> ModelViewImage | None:
        """What the view shows now: the shaded model and its depth."""
        return self._image

    def set_camera(self, camera: ModelViewCamera) -> None:
        self.camera = camera
        self._render()

    def set_markers(self, points_obj: list[np.ndarray]) -> None:
        self.markers = [np.asarray(p, np.float64) for p in points_obj]
        self.update()

    def pixel_of(self, p_obj: np.ndarray) -> tuple[float, float, float]:
        """(u, v, depth m) of an object-frame point in this view (tests and scripts)."""
        uv, z = self.camera.project(np.asarray(p_obj, np.float64)[None])
        return float(uv[0, 0]), float(uv[0, 1]), float(z[0])

    def pick(self, u: int, v: int) -> np.ndarray | None:
        """Pick the surface point under pixel (u, v); emits `pointPicked` on a hit."""
        p = pick_model_point(self.caster, self.camera, u, v)
        if p is not None:
            self.pointPicked.emit(p)
        return p

    # -- drawing --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        img = self._image
        if img is not None:
            p.drawImage(0, 0, qimage_rgb(img.rgb))
        p.setFont(_marker_font())
        col = QColor(*MARKER_RGB)
        for i, P in enumerate(self.markers, start=1):
            u, v, z = self.pixel_of(P)
            if z <= 0:
                continue
            hidden = False
            if img is not None and 0 <= int(round(v)) < img.depth.shape[0] \
                    and 0 <= int(round(u)) < img.depth.shape[1]:
                zs = float(img.depth[int(round(v)), int(round(u))])
                hidden = zs > 0 and z > zs + HIDDEN_MARGIN_M
            c = QPointF(u + 0.5, v + 0.5)
            p.setPen(QPen(QColor(0, 0, 0), 3))
            p.setBrush(Qt.BrushStyle.NoBrush if hidden else QBrush(col))
            p.drawEllipse(c, MARKER_RADIUS_PX, MARKER_RADIUS_PX)
            p.setPen(QPen(col, 1.5))
            p.drawEllipse(c, MARKER_RADIUS_PX, MARKER_RADIUS_PX)
            p.setPen(QPen(QColor(255, 255, 255)))
            p.drawText(c + QPointF(MARKER_RADIUS_PX + 2, -MARKER_RADIUS_PX), str(i))
        p.end()

    # -- mouse ----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = (event.position(), self.camera)
            self._orbiting = False
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is None:
            return super().mouseMoveEvent(event)
        start, cam0 = self._press
        d = event.position() - start
        if self._orbiting or max(abs(d.x()), abs(d.y())) > CLICK_SLOP_PX:
            self._orbiting = True
            self.set_camera(cam0.orbit(d.x(), d.y(), ORBIT_DEG_PER_PX))
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._press is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mouseReleaseEvent(event)
        start, cam0 = self._press
        self._press = None
        d = event.position() - start
        if self._orbiting or max(abs(d.x()), abs(d.y())) > CLICK_SLOP_PX:
            self.set_camera(cam0.orbit(d.x(), d.y(), ORBIT_DEG_PER_PX))
        else:
            self.pick(int(np.floor(start.x())), int(np.floor(start.y())))
        self._orbiting = False
        event.accept()

    def wheelEvent(self, event) -> None:  # noqa: N802
        notches = (event.angleDelta().y() or event.angleDelta().x()) / 120.0
        self.set_camera(self.camera.zoomed(WHEEL_ZOOM_PER_NOTCH ** notches))
        event.accept()


@dataclass(frozen=True)
class FramePoint:
    """A clicked frame point: frame id, pixel (u, v), the surface point (3,) in the
    world frame (metres) back-projected through that frame's depth."""

    frame: int
    u: int
    v: int
    p_world: np.ndarray


class PointAlignDialog(QDialog):
    """The align-by-points window of one object: model view, pairs, refine tick box,
    Apply / Close. The controller fills it; it only shows and forwards."""

    applyRequested = Signal()
    removeLastRequested = Signal()
    clearRequested = Signal()

    def __init__(self, title: str, model_view: ModelView, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setWindowFlag(Qt.WindowType.Tool, True)
        self.setModal(False)
        self.model_view = model_view
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("1. Click a point on the model (drag to orbit).\n"
                             "2. Click the same point in the frame.\n"
                             "Repeat for 3 or more points spread over the object, "
                             "then Apply (Enter)."))
        lay.addWidget(model_view, 0, Qt.AlignmentFlag.AlignHCenter)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["model point (mm)", "frame pixel",
                                              "residual (mm)"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(130)
        lay.addWidget(self.table)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        self.refine_box = QCheckBox("Refine after aligning (ICP on the depth)")
        self.refine_box.setChecked(True)
        lay.addWidget(self.refine_box)
        row = QHBoxLayout()
        self.remove_button = QPushButton("Remove last (Backspace)")
        self.clear_button = QPushButton("Clear")
        self.apply_button = QPushButton("Apply (Enter)")
        self.close_button = QPushButton("Close (Esc)")
        for b in (self.remove_button, self.clear_button, self.close_button):
            b.setAutoDefault(False)
            row.addWidget(b)
        self.apply_button.setDefault(True)
        row.addWidget(self.apply_button)
        lay.addLayout(row)
        self.remove_button.clicked.connect(self.removeLastRequested)
        self.clear_button.clicked.connect(self.clearRequested)
        self.apply_button.clicked.connect(self.applyRequested)
        self.close_button.clicked.connect(self.reject)
        QShortcut(QKeySequence(Qt.Key.Key_Backspace), self, self.removeLastRequested.emit)

    def show_pairs(self, model_pts: list[np.ndarray], frame_pts: list[FramePoint],
                   residuals_mm: np.ndarray | None) -> None:
        n = max(len(model_pts), len(frame_pts))
        self.table.setRowCount(n)
        self.table.setVerticalHeaderLabels([str(i + 1) for i in range(n)])
        for i in range(n):
            mp = (" ".join(f"{c * 1000:.0f}" for c in model_pts[i])
                  if i < len(model_pts) else "—")
            fp = (f"frame {frame_pts[i].frame}: ({frame_pts[i].u}, {frame_pts[i].v})"
                  if i < len(frame_pts) else "—")
            res = (f"{residuals_mm[i]:.1f}" if residuals_mm is not None
                   and i < len(residuals_mm) else "")
            for j, text in enumerate((mp, fp, res)):
                self.table.setItem(i, j, QTableWidgetItem(text))

    def set_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #e55;" if error else "")
        self.message.setText(text)


class PointAlignController(QObject):
    """The align-by-points mode of the main window.

    state: the open document, frame, selection and overlay service; undo_stack: where
    the aligned pose goes (one step); view: the main frame view (its clicks become frame
    points while the mode is on); edit_target(): the selected object (None, with the
    reason in the status bar, when there is none); status: the window's status bar;
    parent: the main window (the dialog's parent).
    """

    modeChanged = Signal(bool)

    def __init__(self, state: WindowState, undo_stack, view: FrameView,
                 edit_target: Callable[[], EditTarget | None], status: QStatusBar,
                 parent: QWidget):
        super().__init__(parent)
        self.state = state
        self.undo_stack = undo_stack
        self.view = view
        self.edit_target = edit_target
        self.status = status
        self.parent_widget = parent
        self.dialog: PointAlignDialog | None = None
        self.obj_id: int | None = None
        self.document: DocumentModel | None = None
        self.model_points: list[np.ndarray] = []
        self.frame_points: list[FramePoint] = []
        self._order: list[str] = []  # "model" | "frame", in the order they were added
        self._markers: list[tuple[int, QGraphicsEllipseItem]] = []
        self.last_fit: PointFit | None = None
        self.last_refine: RefineResult | None = None
        self.task: BackgroundTask | None = None
        self._serial = 0
        self._service: OverlayService | None = None

    @property
    def active(self) -> bool:
        return self.dialog is not None

    @property
    def frame_markers(self) -> list[QGraphicsEllipseItem]:
        """The numbered markers of the frame points on the main view, in order."""
        return [item for _, item in self._markers]

    # -- opening and closing --------------------------------------------------------------
    def open(self) -> bool:
        """Start the mode for the selected object (or raise its window); False with the
        reason in the status bar when there is no object to align."""
        if self.dialog is not None:
            self.dialog.raise_()
            self.dialog.activateWindow()
            return True
        target = self.edit_target()
        m = self.state.model
        if target is None or m is None:
            return False
        obj = m.object(target.obj_id)
        R_cam_obj = (inv_pose(target.T_world_cam) @ m.pose(target.obj_id))[:3, :3]
        mv = ModelView(target.mesh, R_cam_obj, m.class_color(obj.class_name))
        dlg = PointAlignDialog(f"Align by points — {obj.class_name} #{obj.id}", mv,
                               self.parent_widget)
        mv.pointPicked.connect(self.add_model_point)
        dlg.applyRequested.connect(self.apply)
        dlg.removeLastRequested.connect(self.remove_last)
        dlg.clearRequested.connect(self.clear)
        dlg.rejected.connect(self.close)
        self.dialog, self.obj_id, self.document = dlg, target.obj_id, m
        self.model_points, self.frame_points, self._order = [], [], []
        self.last_fit = None
        self.view.installEventFilter(self)
        self.view.viewport().installEventFilter(self)
        self.parent_widget.installEventFilter(self)
        self.view.viewport().setCursor(Qt.CursorShape.CrossCursor)
        self._service = self.state.service
        if self._service is not None:
            self._service.ready.connect(self._frame_drawn)
        self._refresh()
        dlg.show()
        self.status.showMessage("Align by points: click a point on the model, then the "
                                "same point in the frame (3 or more); Enter applies, "
                                "Esc closes", 0)
        self.modeChanged.emit(True)
        return True

    def close(self) -> None:
        """Leave the mode: points not applied are dropped (a running refine still lands)."""
        dlg = self.dialog
        if dlg is None:
            return
        self.dialog = None
        self.view.removeEventFilter(self)
        self.view.viewport().removeEventFilter(self)
        self.parent_widget.removeEventFilter(self)
        self.view.viewport().unsetCursor()
        if self._service is not None:
            try:
                self._service.ready.disconnect(self._frame_drawn)
            except (RuntimeError, TypeError):  # the service went with its scene
                pass
            self._service = None
        self._clear_markers()
        dlg.rejected.disconnect(self.close)
        dlg.close()
        dlg.deleteLater()
        self.model_points, self.frame_points, self._order = [], [], []
        self.status.clearMessage()
        self.modeChanged.emit(False)

    def close_scene(self) -> None:
        """The scene is closing: leave the mode and wait for a running refine."""
        self.close()
        stop_task(self.task, cancel=True)
        self.task = None
        self.document = None

    # -- points ---------------------------------------------------------------------------
    def add_model_point(self, p_obj: np.ndarray) -> None:
        self.model_points.append(np.asarray(p_obj, np.float64))
        self._order.append("model")
        self._refresh()

    def add_frame_point(self, u: int, v: int) -> FramePoint | None:
        """Back-project pixel (u, v) of the main view's frame; None (reason shown) when
        the frame has no pose or the pixel no depth."""
        m, service = self.state.model, self.state.service
        if m is None or service is None:
            return None
        t = self.view.frame
        T_wc = m.T_world_cam(t)
        if T_wc is None:
            self._say(f"Frame {t} has no camera pose: pick frame points on a tracked frame",
                      error=True)
            return None
        try:
            p = scene_point_world(m.camera, T_wc, service.frames.depth(t), u, v, t)
        except PointAlignError as exc:
            self._say(str(exc), error=True)
            return None
        fp = FramePoint(t, int(u), int(v), p)
        self.frame_points.append(fp)
        self._order.append("frame")
        self._refresh()
        return fp

    def remove_last(self) -> None:
        if not self._order:
            return
        kind = self._order.pop()
        (self.model_points if kind == "model" else self.frame_points).pop()
        self._refresh()

    def clear(self) -> None:
        self.model_points, self.frame_points, self._order = [], [], []
        self._refresh()

    def _refresh(self, residuals_mm: np.ndarray | None = None) -> None:
        dlg = self.dialog
        if dlg is None:
            return
        dlg.model_view.set_markers(self.model_points)
        dlg.show_pairs(self.model_points, self.frame_points, residuals_mm)
        self._draw_markers()
        if residuals_mm is None:
            nm, nf = len(self.model_points), len(self.frame_points)
            nxt = (f"click point {nf + 1} in the frame" if nm > nf
                   else f"click point {nm + 1} on the model")
            dlg.set_message(f"{min(nm, nf)} pair(s); next: {nxt}")

    def _say(self, text: str, error: bool = False) -> None:
        if self.dialog is not None:
            self.dialog.set_message(text, error)
        self.status.showMessage(text, 0 if error else 8000)

    # -- markers on the frame view --------------------------------------------------------
    def _clear_markers(self) -> None:
        sc = self.view.scene()
        for _, item in self._markers:
            if item.scene() is sc:
                sc.removeItem(item)
        self._markers = []

    def _draw_markers(self) -> None:
        self._clear_markers()
        sc = self.view.scene()
        col = QColor(*MARKER_RGB)
        for i, fp in enumerate(self.frame_points, start=1):
            r = MARKER_RADIUS_PX
            dot = QGraphicsEllipseItem(-r, -r, 2 * r, 2 * r)
            dot.setPen(QPen(QColor(0, 0, 0), 2))
            dot.setBrush(QBrush(col))
            dot.setFlag(dot.GraphicsItemFlag.ItemIgnoresTransformations)
            dot.setPos(fp.u + 0.5, fp.v + 0.5)
            dot.setZValue(5)
            label = QGraphicsSimpleTextItem(str(i), dot)
            label.setFont(_marker_font())
            label.setBrush(QBrush(QColor(255, 255, 255)))
            label.setPen(QPen(QColor(0, 0, 0), 0.5))
            label.setPos(r + 1, -2 * r - 2)
            sc.addItem(dot)
            dot.setVisible(fp.frame == self.view.frame)
            self._markers.append((fp.frame, dot))

    def _frame_drawn(self, *_args) -> None:
        for frame, item in self._markers:
            item.setVisible(frame == self.view.frame)

    # -- the frame view's clicks and keys while the mode is on ----------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if self.dialog is None:
            return False
        et = event.type()
        if obj is self.view.viewport() and et in (QEvent.Type.MouseButtonPress,
                                                  QEvent.Type.MouseButtonDblClick):
            if event.button() == Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
                self.view.setFocus()
                u, v = self.view.pixel_at(event.position())  # type: ignore[attr-defined]
                self.add_frame_point(u, v)
                return True
            return False
        if obj in (self.view, self.parent_widget) and et in (QEvent.Type.ShortcutOverride,
                                                              QEvent.Type.KeyPress):
            key = event.key()  # type: ignore[attr-defined]
            # In the frame view the mode's keys; elsewhere in the window only Esc (which
            # would deselect), as a panel's field keeps Enter and Backspace.
            if key not in (MODE_KEYS if obj is self.view else (Qt.Key.Key_Escape,)):
                return False
            event.accept()
            if et == QEvent.Type.KeyPress:
                if key == Qt.Key.Key_Escape:
                    self.close()
                elif key == Qt.Key.Key_Backspace:
                    self.remove_last()
                else:
                    self.apply()
            return True
        return False

    # -- solving --------------------------------------------------------------------------
    def apply(self) -> PointFit | None:
        """Solve the fit, set the pose as one undo step and (ticked) refine in the
        background into the same step. None (reason shown) when the points cannot give
        a pose."""
        m, obj_id = self.state.model, self.obj_id
        if self.dialog is None or m is None or obj_id is None or not m.has_object(obj_id) \
                or m is not self.document:
            return None
        if self.task is not None and self.task.running():
            self._say("A refinement of the last alignment is still running", error=True)
            return None
        try:
            fit = solve_point_alignment(self.model_points,
                                        [fp.p_world for fp in self.frame_points])
        except PointAlignError as exc:
            self._say(str(exc), error=True)
            return None
        self.last_fit, self.last_refine = fit, None
        self._serial += 1
        key = ("align-points", self._serial)
        T_old = m.pose(obj_id)
        self.undo_stack.push(SetPoseCommand(m, obj_id, T_old, fit.T_world_obj,
                                            "Align by points", key))
        self._refresh(fit.residuals_mm)
        text = f"Aligned #{obj_id} by points: {fit.summary()}"
        if self.dialog.refine_box.isChecked():
            frames = sorted({fp.frame for fp in self.frame_points} | {self.view.frame})
            frames = [t for t in frames if m.T_world_cam(t) is not None]
            self._start_refine(m, obj_id, fit, frames, key)
            text += "; refining…"
        self._say(text)
        return fit

    def _start_refine(self, m: DocumentModel, obj_id: int, fit: PointFit,
                      frames: list[int], key: tuple) -> None:
        scene, objs = m.scene, m.posed_objects()
        task = BackgroundTask(lambda _p: refine_fit(scene, objs, obj_id, fit, frames), self)
        task.finished.connect(lambda res: self._refined(m, obj_id, fit, key, res))
        task.failed.connect(lambda msg: self._say(f"Refine failed: {msg}", error=True))
        self.task = task
        task.start()

    def _refined(self, m: DocumentModel, obj_id: int, fit: PointFit, key: tuple,
                 res: RefineResult) -> None:
        self.last_refine = res
        if m is not self.state.model or not m.has_object(obj_id):
            return
        if not np.array_equal(m.pose(obj_id), fit.T_world_obj):
            self._say(f"Refine #{obj_id}: the object moved meanwhile; result dropped")
            return
        base = f"Aligned #{obj_id} by points: {fit.summary()}"
        if res.T_world_obj is None:
            self._say(f"{base}; {res.reason}")
            return
        # Same merge key as the alignment: the refined pose joins its undo step.
        self.undo_stack.push(SetPoseCommand(m, obj_id, fit.T_world_obj, res.T_world_obj,
                                            "Align by points", key))
        self._say(f"{base}; refined: depth score {res.score_before:.3f} → "
                  f"{res.score_after:.3f} (moved {res.moved_m * 1000:.1f} mm, turned "
                  f"{res.turned_deg:.1f}°; Ctrl+Z undoes both)")

    def idle(self) -> bool:
        """No refine of an alignment is running (tests wait on this)."""
        return self.task is None or not self.task.running()
