"""Views: the frame view (image + overlay, zoom/pan, picking, drags, keys) and the timeline.

Views draw and report what the user did (signals carrying the view, so several views
on different frames can share one editor); they never change the document themselves.

Scene coordinates of `FrameView` are image pixels: pixel (u, v) covers [u, u+1) x
[v, v+1), so the pixel under a point is (floor(x), floor(y)).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QSizePolicy,
    QWidget,
)

# Key -> (camera axis index, sign) for nudges and rotations (see docs/gui.md).
TRANSLATE_KEYS = {
    Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, +1),
    Qt.Key.Key_Up: (1, -1), Qt.Key.Key_Down: (1, +1),
    Qt.Key.Key_PageDown: (2, -1), Qt.Key.Key_PageUp: (2, +1),
}
ROTATE_KEYS = {
    Qt.Key.Key_I: (0, -1), Qt.Key.Key_K: (0, +1),
    Qt.Key.Key_J: (1, -1), Qt.Key.Key_L: (1, +1),
    Qt.Key.Key_U: (2, -1), Qt.Key.Key_O: (2, +1),
}
# The frame view's own keys and mouse (not QActions: they act on the view that has the
# focus, so the multi-view frames edit with their own camera). Help ▸ Keys lists these
# beside the registered actions; keep them in step with keyPressEvent and the mouse code.
VIEW_KEYS: tuple[tuple[str, str], ...] = (
    ("←/→  ↑/↓", "move the selected object along the camera's x / y (1 mm; Shift: 1 cm)"),
    ("PgUp/PgDn", "move it away from / towards the camera (z)"),
    ("I/K  J/L  U/O", "turn it about x / y / z through its centre (1°; Shift: 5°)"),
)
VIEW_MOUSE: tuple[tuple[str, str], ...] = (
    ("click", "select the object under the pointer (empty image: keep the selection)"),
    ("drag", "move the selected object in the image plane"),
    ("Ctrl+drag", "turn the selected object"),
    ("Shift+wheel", "move the selected object in depth (also the wheel while dragging)"),
    ("wheel", "zoom"),
    ("middle/right drag", "pan"),
)
ZOOM_PER_NOTCH = 1.15
PAN_BUTTONS = (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton)


def qimage_rgb(rgb: np.ndarray) -> QImage:
    """A QImage owning a copy of an (H, W, 3) uint8 RGB array."""
    a = np.ascontiguousarray(rgb)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage_rgba(rgba: np.ndarray) -> QImage:
    """A QImage owning a copy of an (H, W, 4) uint8 straight-alpha RGBA array."""
    a = np.ascontiguousarray(rgba)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class FrameView(QGraphicsView):
    """One frame with its overlay. Emits what the mouse and keys ask for.

    Mouse: left-click picks an object; left-drag on the selected object moves it in the
    image plane; Ctrl+left-drag turns it; the wheel zooms, Shift+wheel (or the wheel
    during a drag) moves the selected object in depth; middle/right-drag pans. In place
    mode a left click places the selected object (`placeRequested`).
    """

    picked = Signal(object, int)  # (view, object id or 0)
    dragStarted = Signal(object, str)  # (view, "translate" | "rotate")
    dragMoved = Signal(object, float, float)  # (view, du, dv) pixels since the start
    dragFinished = Signal(object)
    depthWheel = Signal(object, float)  # (view, notches; > 0 = away from the camera)
    placeRequested = Signal(object, int, int)  # (view, u, v)
    nudge = Signal(object, int, int, bool)  # (view, axis, sign, coarse)
    turn = Signal(object, int, int, bool)  # (view, axis, sign, coarse)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.frame = 0
        self.selected: int | None = None
        self.place_mode = False
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._bg = QGraphicsPixmapItem()
        self._ov = QGraphicsPixmapItem()
        self._ov.setZValue(1)
        self._bg.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._ov.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._scene.addItem(self._bg)
        self._scene.addItem(self._ov)
        self._note = QGraphicsSimpleTextItem()
        self._note.setZValue(2)
        self._note.setBrush(QBrush(QColor(255, 230, 120)))
        f = QFont()
        f.setPointSize(14)
        f.setBold(True)
        self._note.setFont(f)
        self._note.setFlag(self._note.GraphicsItemFlag.ItemIgnoresTransformations)
        self._scene.addItem(self._note)
        self._inst: np.ndarray | None = None
        self._bg_src: np.ndarray | None = None
        self._image_size: tuple[int, int] | None = None
        self._auto_fit = True
        self._drag: tuple[str, QPointF] | None = None
        self._pan: QPointF | None = None
        self.setBackgroundBrush(QBrush(QColor(40, 40, 40)))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.shown_gen = 0

    # -- content --------------------------------------------------------------------------
    def set_images(self, background_rgb: np.ndarray, overlay_rgba: np.ndarray | None,
                   inst: np.ndarray | None) -> None:
        h, w = background_rgb.shape[:2]
        if background_rgb is not self._bg_src:  # unchanged during a drag: no re-upload
            self._bg.setPixmap(QPixmap.fromImage(qimage_rgb(background_rgb)))
            self._bg_src = background_rgb
        if overlay_rgba is not None:
            self._ov.setPixmap(QPixmap.fromImage(qimage_rgba(overlay_rgba)))
            self._ov.setVisible(True)
        else:
            self._ov.setVisible(False)
        self._inst = inst
        if self._image_size != (w, h):
            self._image_size = (w, h)
            self._scene.setSceneRect(QRectF(0, 0, w, h))
            self._auto_fit = True
        if self._auto_fit:
            self.fit()

    def set_note(self, text: str) -> None:
        """A line of text drawn over the top-left of the image ('' to hide)."""
        self._note.setText(text)
        self._note.setPos(4, 4)
        self._note.setVisible(bool(text))

    def clear(self) -> None:
        self._bg_src = None
        self._bg.setPixmap(QPixmap())
        self._ov.setPixmap(QPixmap())
        self._inst = None
        self.set_note("")

    def object_at(self, u: int, v: int) -> int:
        if self._inst is None:
            return 0
        h, w = self._inst.shape
        return int(self._inst[v, u]) if 0 <= u < w and 0 <= v < h else 0

    def pixel_at(self, pos) -> tuple[int, int]:
        p = self.mapToScene(pos.toPoint() if hasattr(pos, "toPoint") else pos)
        return int(math.floor(p.x())), int(math.floor(p.y()))

    def view_pos_of_pixel(self, u: float, v: float):
        """The widget position (QPoint) of the centre of pixel (u, v) (for tests/scripts)."""
        return self.mapFromScene(QPointF(u + 0.5, v + 0.5))

    # -- zoom and pan ---------------------------------------------------------------------
    def fit(self) -> None:
        if self._image_size is not None:
            self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._auto_fit = True

    def zoom(self, factor: float) -> None:
        self._auto_fit = False
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        notches = delta / 120.0
        if self._drag is not None or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            if self.selected is not None:
                self.depthWheel.emit(self, notches)
            event.accept()
            return
        self.zoom(ZOOM_PER_NOTCH ** notches)
        event.accept()

    # -- mouse ----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.setFocus()
        if event.button() in PAN_BUTTONS:
            self._pan = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        u, v = self.pixel_at(event.position())
        if self.place_mode:
            self.placeRequested.emit(self, u, v)
            event.accept()
            return
        hit = self.object_at(u, v)
        # Empty image only takes the focus (keys back to the view): deselecting is
        # explicit (Esc, Edit ▸ Deselect), so a click never loses the selection.
        if hit and hit != self.selected:
            self.picked.emit(self, hit)
        if hit and hit == self.selected:
            ctrl = event.modifiers() & Qt.KeyboardModifier.ControlModifier
            kind = "rotate" if ctrl else "translate"
            self._drag = (kind, self.mapToScene(event.position().toPoint()))
            self.dragStarted.emit(self, kind)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._pan is not None:
            d = event.position() - self._pan
            self._pan = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(d.y()))
            self._auto_fit = False
            event.accept()
            return
        if self._drag is not None:
            p = self.mapToScene(event.position().toPoint())
            d = p - self._drag[1]
            self.dragMoved.emit(self, d.x(), d.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._pan is not None and event.button() in PAN_BUTTONS:
            self._pan = None
            self.unsetCursor()
            event.accept()
            return
        if self._drag is not None and event.button() == Qt.MouseButton.LeftButton:
            p = self.mapToScene(event.position().toPoint())
            d = p - self._drag[1]
            self.dragMoved.emit(self, d.x(), d.y())
            self._drag = None
            self.dragFinished.emit(self)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    # -- keys -----------------------------------------------------------------------------
    def keyPressEvent(self, event) -> None:  # noqa: N802
        if not self.handle_key(event):
            super().keyPressEvent(event)

    def handle_key(self, event) -> bool:
        """Act on one of the view's own keys (`VIEW_KEYS`); False when it is not one.
        The window forwards these here when they reach it unused (a panel had the focus)."""
        key = event.key()
        mods = event.modifiers()
        if mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                   | Qt.KeyboardModifier.MetaModifier):
            return False
        coarse = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        if key in TRANSLATE_KEYS:
            axis, sign = TRANSLATE_KEYS[key]
            self.nudge.emit(self, axis, sign, coarse)
            event.accept()
            return True
        if key in ROTATE_KEYS:
            axis, sign = ROTATE_KEYS[key]
            self.turn.emit(self, axis, sign, coarse)
            event.accept()
            return True
        return False


class Timeline(QWidget):
    """Frames 0..n-1 as a bar: untracked frames shaded red, frames without a depth image
    marked orange above the bar, keyframes as markers (the selected object's in yellow,
    others' in grey), the current frame as a line.
    Click or drag to go to a frame (`frameRequested`)."""

    frameRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.n_frames = 0
        self.current = 0
        self.keyframes: list[int] = []
        self.selected_keyframes: list[int] = []
        self.untracked: list[tuple[int, int]] = []
        self.flagged: list[int] = []  # propagation preview: frames with a flagged object
        self.no_depth: list[int] = []  # frames whose depth image is missing
        self.setMinimumHeight(34)
        self.setMaximumHeight(40)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Timeline: click or drag to change frame; "
                        "markers are keyframes, red = no camera pose, "
                        "orange = no depth image")

    def set_state(self, n_frames: int, current: int, keyframes: list[int],
                  selected_keyframes: list[int], untracked: list[tuple[int, int]]) -> None:
        self.n_frames = n_frames
        self.current = current
        self.keyframes = list(keyframes)
        self.selected_keyframes = list(selected_keyframes)
        self.untracked = list(untracked)
        self.update()

    def set_flagged(self, frames: list[int]) -> None:
        """Mark these frames (propagation preview: some object flagged) under the bar."""
        self.flagged = list(frames)
        self.update()

    def set_no_depth(self, frames: list[int]) -> None:
        """Mark these frames (no depth image in the scene) above the bar."""
        self.no_depth = list(frames)
        self.update()

    def _x(self, t: float) -> float:
        m = 8
        w = max(self.width() - 2 * m, 1)
        return m + (t + 0.5) / max(self.n_frames, 1) * w

    def _frame_at(self, x: float) -> int:
        m = 8
        w = max(self.width() - 2 * m, 1)
        t = int((x - m) / w * self.n_frames)
        return min(max(t, 0), max(self.n_frames - 1, 0))

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(50, 50, 50))
        if self.n_frames <= 0:
            return
        h = self.height()
        bar = QRectF(self._x(-0.5), h * 0.45, self._x(self.n_frames - 0.5) - self._x(-0.5), h * 0.3)
        p.fillRect(bar, QColor(110, 110, 110))
        for a, b in self.untracked:
            p.fillRect(QRectF(self._x(a - 0.5), bar.top(), self._x(b + 0.5) - self._x(a - 0.5),
                              bar.height()), QColor(170, 50, 50))
        for t in self.flagged:  # a magenta tick under the bar per flagged frame
            p.fillRect(QRectF(self._x(t - 0.5), bar.bottom() + 1,
                              max(self._x(t + 0.5) - self._x(t - 0.5), 2.0), h * 0.2),
                       QColor(255, 60, 200))
        for t in self.no_depth:  # an orange block over the bar per frame without depth
            p.fillRect(QRectF(self._x(t - 0.5), bar.top() - h * 0.15,
                              max(self._x(t + 0.5) - self._x(t - 0.5), 3.0), h * 0.15 + 1),
                       QColor(255, 150, 0))
        sel = set(self.selected_keyframes)
        for k in self.keyframes:
            x = self._x(k)
            col = QColor(255, 210, 0) if k in sel else QColor(200, 200, 200)
            p.setBrush(col)
            p.setPen(Qt.PenStyle.NoPen)
            p.drawPolygon(QPolygonF([QPointF(x - 5, 2), QPointF(x + 5, 2), QPointF(x, h * 0.42)]))
        x = self._x(self.current)
        p.setPen(QPen(QColor(80, 200, 255), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, h))
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.n_frames:
            self.frameRequested.emit(self._frame_at(event.position().x()))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.n_frames and event.buttons() & Qt.MouseButton.LeftButton:
            self.frameRequested.emit(self._frame_at(event.position().x()))
