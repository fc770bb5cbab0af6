"""The 3D view: a dock with the fused cloud, the placed models and the camera path.

`View3DWidget` shows a picture and reports the mouse (left drag: orbit; right or middle
drag, or Shift+left drag: pan; wheel: zoom; click: pick); `View3DController` owns the
dock, the orbit camera and a `labeller.annotate.scene_view.SceneViewRenderer`, and
redraws when the document changes (`pose_changed`, `object_added`, `object_removed`,
`visibility_changed`, `trajectory_changed`) or the window asks (`request`: selection,
frame, preview colours). A click on a model selects it through the window's `select`;
a click on empty space keeps the selection.

Pictures are drawn on the CPU, not with OpenGL (Qt's offscreen platform and many
headless machines have no GL context): docs/adr/0008-3d-view-drawn-on-the-cpu.md. They
are drawn on the UI thread, coalesced to one per event-loop pass, at half resolution
while a mouse button is held.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QDockWidget, QMainWindow, QSizePolicy, QWidget

from labeller.annotate.document import DocumentModel
from labeller.annotate.scene_cloud import SceneCloud, load_scene_cloud
from labeller.annotate.scene_view import (
    CameraPath,
    OrbitCamera,
    SceneViewImage,
    SceneViewRenderer,
    camera_path,
    pick,
    scene_up_world,
)
from labeller.core.errors import BadInput
from labeller.geometry.overlay import OverlayObject, model_centre
from labeller.gui.state import WindowState
from labeller.gui.views import qimage_rgb

# A press that moves less than this many pixels before release is a click.
CLICK_SLOP_PX = 4
ZOOM_PER_NOTCH = 0.85
# Pictures are drawn at most this wide (the widget scales them up).
MAX_RENDER_WIDTH = 960
# Scale of the picture while a mouse button is held (orbit, pan) or requests keep
# coming (an object dragged in the frame view): the pictures are drawn on the UI thread.
DRAG_SCALE = 0.5
# At most one picture per MIN_GAP_MS; the full-size one SETTLE_MS after the last request.
MIN_GAP_MS = 40
SETTLE_MS = 250
# Depth of the current frame's camera frustum, as a fraction of the fitted view's distance.
FRUSTUM_OF_DISTANCE = 0.05
# Height of the docked view the first time it is shown, as a fraction of the window's.
DOCK_SHARE = 0.42
EVENTS = ("pose_changed", "object_added", "object_removed", "visibility_changed")


class View3DWidget(QWidget):
    """Shows one picture (scaled to fill the widget) and a note over it; reports the
    mouse: `orbitDragged(dx, dy)`, `panDragged(dx, dy)` (widget pixels since the last
    move), `zoomed(factor)`, `clicked(x, y)` (widget pixels), `dragChanged(on)`."""

    orbitDragged = Signal(float, float)
    panDragged = Signal(float, float)
    zoomed = Signal(float)
    clicked = Signal(float, float)
    dragChanged = Signal(bool)
    resized = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.image: QImage | None = None
        self.note = ""
        self._press: QPointF | None = None
        self._last: QPointF | None = None
        self._pan = False
        self._moved = False

    def sizeHint(self) -> QSize:  # noqa: N802 - the dock's size when first shown
        return QSize(640, 400)

    def set_image(self, rgb: np.ndarray | None) -> None:
        self.image = qimage_rgb(rgb) if rgb is not None else None
        self.update()

    def set_note(self, text: str) -> None:
        self.note = text
        self.setToolTip(text)
        self.update()

    @property
    def dragging(self) -> bool:
        return self._press is not None and self._moved

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 40, 46))
        if self.image is not None:
            p.drawImage(QRectF(self.rect()), self.image)
        if self.note:
            p.setPen(QColor(255, 220, 120))
            r = self.rect().adjusted(8, 8, -8, -8)
            p.drawText(r, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
                       | Qt.TextFlag.TextWordWrap, self.note)
        p.end()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.resized.emit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.zoomed.emit(float(ZOOM_PER_NOTCH ** notches))
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        b = event.button()
        self._press = self._last = event.position()
        self._moved = False
        self._pan = (b in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton)
                     or bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is None or self._last is None:
            return
        pos = event.position()
        if not self._moved:
            d = pos - self._press
            if abs(d.x()) + abs(d.y()) < CLICK_SLOP_PX:
                return
            self._moved = True
            self.dragChanged.emit(True)
        d = pos - self._last
        self._last = pos
        (self.panDragged if self._pan else self.orbitDragged).emit(d.x(), d.y())
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._press is None:
            return
        moved, pan = self._moved, self._pan
        self._press = self._last = None
        self._moved = False
        if moved:
            self.dragChanged.emit(False)
        elif event.button() == Qt.MouseButton.LeftButton and not pan:
            self.clicked.emit(event.position().x(), event.position().y())
        event.accept()


class View3DController(QObject):
    """The 3D view's dock in `window` (a QMainWindow), its camera and its pictures.

    state: read for the document, frame and selection; select(obj_id): the window's
    selection; objects_on(frame): what to draw, coloured as in the overlay. Emits
    `activeChanged(bool)` when the dock is shown or hidden."""

    activeChanged = Signal(bool)

    def __init__(self, state: WindowState, window: QMainWindow,
                 select: Callable[[int | None], None],
                 objects_on: Callable[[int], tuple[OverlayObject, ...]],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.select = select
        self.objects_on = objects_on
        self.widget = View3DWidget()
        self.dock = QDockWidget("3D view", window)
        self.dock.setObjectName("view3d")
        self.dock.setWidget(self.widget)
        # under the frame view (beside the multi-view check when both are shown): the
        # right column is full with the objects panel and the suggestions. The right
        # column keeps the bottom-right corner, else a bottom dock could not grow taller
        # than the room the right column's minimum heights leave.
        window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()
        self.dock.visibilityChanged.connect(self._dock_visibility)
        self.widget.set_note("No scene open.")
        self._window = window
        self._sized = False
        self.view: OrbitCamera | None = None
        self.cloud: SceneCloud | None = None
        self.cloud_error: str | None = None
        self.renderer: SceneViewRenderer | None = None
        self.last_image: SceneViewImage | None = None
        self.frustum_m = 0.1
        self.renders = 0  # pictures drawn (tests, benchmark)
        self._model: DocumentModel | None = None
        self._loaded_for: DocumentModel | None = None
        self._unsub: list[Callable[[], None]] = []
        self._key: tuple | None = None
        self._drag = False
        self._busy = False  # requests keep coming (a drag here or in the frame view)
        self._last_request = -1e9
        self._last_render = -1e9
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.render_now)
        self._settle = QTimer(self)  # the full-size picture once the requests stop
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        w = self.widget
        w.orbitDragged.connect(lambda dx, dy: self._move_view(lambda v: v.orbit(dx, dy)))
        w.panDragged.connect(lambda dx, dy: self._move_view(
            lambda v: v.pan(dx, dy, max(w.height(), 1))))
        w.zoomed.connect(lambda f: self._move_view(lambda v: v.zoom(f)))
        w.clicked.connect(self._clicked)
        w.dragChanged.connect(self._drag_changed)
        w.resized.connect(self.request)

    # -- scene ----------------------------------------------------------------------------
    def open(self, model: DocumentModel) -> None:
        """Follow this document (the window opened a scene)."""
        self.close()
        self._model = model
        for ev in EVENTS:
            self._unsub.append(model.subscribe(ev, lambda *_: self.request()))
        self._unsub.append(model.subscribe("trajectory_changed", self._trajectory_changed))
        self.request()

    def close(self) -> None:
        """Forget the scene (the dock stays as it is, with a note)."""
        for u in self._unsub:
            u()
        self._unsub = []
        self._timer.stop()
        self._settle.stop()
        self._model = self._loaded_for = None
        self.cloud = self.renderer = self.last_image = self.view = None
        self.cloud_error = None
        self._key = None
        self.widget.set_image(None)
        self.widget.set_note("No scene open.")

    def _trajectory_changed(self) -> None:
        # tracking has just written trajectory.txt and recon/cloud.ply: read both again
        self._loaded_for = None
        self.view = None
        self.request()

    def _load(self, model: DocumentModel) -> None:
        self.cloud, self.cloud_error = None, None
        try:
            self.cloud = load_scene_cloud(model.scene.paths.cloud)
        except BadInput as exc:
            self.cloud_error = str(exc)
        self.renderer = SceneViewRenderer(self.cloud)
        self._loaded_for = model
        self.view = self._fit(model)

    def _fit(self, model: DocumentModel) -> OrbitCamera:
        """Look at the objects and the camera path (else the cloud) from behind the first
        camera and above."""
        poses = self._frame_poses(model)
        first = poses[min(poses)] if poses else np.eye(4)
        up = scene_up_world(list(poses.values()))
        focus = [T[:3, 3] for T in poses.values()]
        for o in self.objects_on(self.state.frame):
            focus.append(o.T_world_obj[:3, :3] @ model_centre(o.model) + o.T_world_obj[:3, 3])
        if len(focus) >= 2:
            view = OrbitCamera.fit(np.array(focus), up, first[:3, 2], margin=1.1,
                                   min_radius_m=0.3)
        else:
            pts = self.cloud.points_world if self.cloud is not None else np.zeros((0, 3))
            view = OrbitCamera.fit(pts, up, first[:3, 2])
        self.frustum_m = FRUSTUM_OF_DISTANCE * view.distance_m
        return view

    @staticmethod
    def _frame_poses(model: DocumentModel) -> dict[int, np.ndarray]:
        tr = model.trajectory
        if tr is None:
            return {}
        return {t: T for t in tr.frame_ids if (T := model.T_world_cam(t)) is not None}

    # -- showing --------------------------------------------------------------------------
    def toggle(self, on: bool | None = None) -> None:
        """Show or hide the 3D view (on=None flips it)."""
        on = (not self.dock.isVisible()) if on is None else bool(on)
        self.dock.setVisible(on)
        if on:
            self.dock.raise_()
            if not self._sized:  # once laid out, give it a useful share of its column
                QTimer.singleShot(0, self._size_dock)
            self.request()
        self.activeChanged.emit(on)

    def _size_dock(self) -> None:
        self._sized = True
        if not self.dock.isFloating():
            self._window.resizeDocks([self.dock], [int(self._window.height() * DOCK_SHARE)],
                                     Qt.Orientation.Vertical)

    def _dock_visibility(self, visible: bool) -> None:
        # also closed with its title bar's button, or shown by a restored window state
        self.activeChanged.emit(not self.dock.isHidden())
        if visible:
            self.request()

    def request(self) -> None:
        """Draw again soon: on the next pass of the event loop, at most one picture per
        MIN_GAP_MS (many requests, one picture); while requests keep coming, at
        DRAG_SCALE, and at full size SETTLE_MS after the last one."""
        if self._model is None or not self.dock.isVisible():
            return
        now = time.monotonic()
        self._busy = now - self._last_request < SETTLE_MS / 1000
        self._last_request = now
        if self._busy:
            self._settle.start()
        if not self._timer.isActive():
            wait_ms = MIN_GAP_MS - (now - self._last_render) * 1000
            self._timer.start(int(max(wait_ms, 0)))

    def _settled(self) -> None:
        self._busy = False
        if self._model is not None and self.dock.isVisible():
            self._timer.start(0)

    def idle(self) -> bool:
        """No picture is waiting to be drawn (tests wait on this)."""
        return not self._timer.isActive() and not self._settle.isActive()

    def render_now(self) -> SceneViewImage | None:
        """Draw the picture now (unless nothing it shows has changed)."""
        self._timer.stop()
        m = self._model
        if m is None or not self.dock.isVisible():
            return None
        if self._loaded_for is not m:
            self._load(m)
        assert self.renderer is not None and self.view is not None
        self._last_render = time.monotonic()
        scale = DRAG_SCALE if self._drag or self._busy else 1.0
        ww, wh = max(self.widget.width(), 1), max(self.widget.height(), 1)
        scale = min(scale, MAX_RENDER_WIDTH / ww)
        width, height = max(int(ww * scale), 16), max(int(wh * scale), 12)
        t = self.state.frame
        objects = self.objects_on(t)
        sel = self.state.selected_id
        key = (self.view, width, height, t, sel, tuple(
            (o.obj_id, o.T_world_obj.tobytes(), o.color_rgb, id(o.model)) for o in objects))
        if key == self._key and self.last_image is not None:
            return self.last_image
        path = camera_path(self._frame_poses(m), t, m.camera) if m.has_trajectory else None
        img = self.renderer.render(self.view, width, height, objects, sel, path,
                                   self.frustum_m)
        self._key = key
        self.last_image = img
        self.renders += 1
        self.widget.set_image(img.rgb)
        self.widget.set_note(self._note(m, path))
        return img

    def _note(self, m: DocumentModel, path: CameraPath | None) -> str:
        notes = []
        if self.cloud_error is not None:
            notes.append(f"No fused cloud: {self.cloud_error}. Models and camera path only.")
        if not m.has_trajectory:
            notes.append("No camera path: the scene has no trajectory.txt (track it first).")
        elif path is not None and path.T_world_cam is None:
            notes.append(f"Frame {self.state.frame} has no camera pose.")
        return "\n".join(notes)

    # -- mouse ----------------------------------------------------------------------------
    def _move_view(self, f: Callable[[OrbitCamera], OrbitCamera]) -> None:
        if self.view is not None:
            self.view = f(self.view)
            self.request()

    def _drag_changed(self, on: bool) -> None:
        self._drag = on
        self.request()

    def image_pixel(self, x: float, y: float) -> tuple[int, int] | None:
        """The picture's pixel under widget position (x, y)."""
        img = self.last_image
        if img is None:
            return None
        h, w = img.inst.shape
        return (int(x * w / max(self.widget.width(), 1)),
                int(y * h / max(self.widget.height(), 1)))

    def widget_pos(self, u: float, v: float) -> QPointF:
        """Widget position of the picture's pixel (u, v) (tests)."""
        img = self.last_image
        assert img is not None
        h, w = img.inst.shape
        return QPointF((u + 0.5) * self.widget.width() / w, (v + 0.5) * self.widget.height() / h)

    def _clicked(self, x: float, y: float) -> None:
        if self.last_image is None:
            return
        uv = self.image_pixel(x, y)
        obj = pick(self.last_image, *uv) if uv is not None else None
        if obj is not None:  # empty space keeps the selection
            self.select(obj)
