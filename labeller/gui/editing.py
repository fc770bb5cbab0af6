"""Editing interactions: what the views' mouse and key signals do to the selected object.

`EditController` turns a view's signals (`attach_view`: the main view and every
multi-view frame are connected the same way) into undo commands (`labeller.gui.commands`):
nudges and turns about the camera axes, image-plane drags, moves along the viewing ray,
click-to-place, add / delete objects, keyframe toggling. Every edit uses the camera of
the view it comes from, so the other views of the multi-view check edit too.

Frames and units: T_world_obj, T_world_cam 4x4 float64 (metres); steps in metres and
degrees; drag offsets (du, dv) in image pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMessageBox, QStatusBar, QWidget

from labeller.annotate.pose_edit import (
    drag_rotate,
    drag_translate,
    move_along_ray,
    place_at_pixel,
    rotate_in_camera,
    translate_in_camera,
)
from labeller.core.errors import ModelError
from labeller.formats.models import ObjectModel, load_model, resolve_model_path
from labeller.geometry.overlay import OverlayRenderer, model_centre
from labeller.gui.commands import (
    AddObjectCommand,
    RemoveObjectCommand,
    SetKeyframesCommand,
    SetPoseCommand,
)
from labeller.gui.state import RequestRender, WindowState
from labeller.gui.views import FrameView

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


@dataclass(frozen=True)
class EditTarget:
    """The selected object as one view sees it: id, that view's T_world_cam, its mesh."""

    obj_id: int
    T_world_cam: np.ndarray
    mesh: ObjectModel


@dataclass
class _Drag:
    kind: str  # "translate" | "rotate"
    obj_id: int
    T_start: np.ndarray
    T_world_cam: np.ndarray
    centre_obj: np.ndarray  # the model's centre in its own frame (metres)
    serial: int
    du: float = 0.0
    dv: float = 0.0


class EditController(QObject):
    """Pose edits of the selected object; see the module docstring.

    state: read for the model, the selection, the frame and the depth (its service);
    undo_stack: where every change goes; main_view: the view place mode applies to;
    select(obj_id | None): the window's selection; request_render(preview=None);
    status: the window's status bar; dialog_parent: parent of the message boxes.
    Emits `dragBegan()` when a drag of an object starts and `placeModeChanged(bool)`.
    """

    dragBegan = Signal()
    placeModeChanged = Signal(bool)

    def __init__(self, state: WindowState, undo_stack: QUndoStack, main_view: FrameView,
                 select: Callable[[int | None], None], request_render: RequestRender,
                 status: QStatusBar, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.state = state
        self.undo_stack = undo_stack
        self.main_view = main_view
        self.select = select
        self.request_render = request_render
        self.status = status
        self.dialog_parent = dialog_parent
        self._drag: _Drag | None = None
        self._drag_serial = 0
        # Casts the UI thread itself needs (click-to-place): never the worker's renderer,
        # which is busy on another thread.
        self.ui_renderer = OverlayRenderer()

    def attach_view(self, view: FrameView) -> None:
        """Connect a view's pick, drag, wheel, place, nudge and turn signals to the edits."""
        view.picked.connect(lambda _v, i: self.select(i or None))
        view.dragStarted.connect(self._drag_started)
        view.dragMoved.connect(self._drag_moved)
        view.dragFinished.connect(self._drag_finished)
        view.depthWheel.connect(self._depth_wheel)
        view.placeRequested.connect(lambda v, u, v_px: self.place_at(u, v_px, v))
        view.nudge.connect(lambda v, a, s, c: self.nudge(a, s, c, v))
        view.turn.connect(lambda v, a, s, c: self.rotate_step(a, s, c, v))

    # -- the object being edited ----------------------------------------------------------
    def edit_target(self, view: FrameView | None = None) -> EditTarget | None:
        """The selected object seen in `view` (default: the main view) on the frame that
        view shows, or None with the reason in the status bar."""
        m = self.state.model
        if m is None:
            return None
        sel = self.state.selected_id
        if sel is None or not m.has_object(sel):
            self.status.showMessage("Select an object first (click it or pick it in the "
                                    "list)", 4000)
            return None
        frame = (view or self.main_view).frame
        T_wc = m.T_world_cam(frame)
        if T_wc is None:
            self.status.showMessage(
                f"Frame {frame} has no camera pose: objects cannot be edited here", 5000)
            return None
        mesh = m.object_model(sel)
        if mesh is None:
            self.status.showMessage(m.model_error(sel) or "model not loaded", 5000)
            return None
        return EditTarget(sel, T_wc, mesh)

    def push_pose(self, obj_id: int, T_new: np.ndarray, text: str,
                  merge_key: tuple | None = None) -> None:
        """Set an object's T_world_obj as one undo step (merging by `merge_key`)."""
        m = self.state.model
        if m is None:
            return
        T_old = m.pose(obj_id)
        if np.array_equal(T_old, T_new):
            return
        self.undo_stack.push(SetPoseCommand(m, obj_id, T_old, T_new, text, merge_key))

    # -- keys and wheel -------------------------------------------------------------------
    def nudge(self, axis: int, sign: int, coarse: bool = False,
              view: FrameView | None = None) -> None:
        """Move the selected object along a camera axis (0 x, 1 y, 2 z) by one step."""
        target = self.edit_target(view)
        if target is None or self.state.model is None:
            return
        d = [0.0, 0.0, 0.0]
        d[axis] = sign * (COARSE_STEP_M if coarse else FINE_STEP_M)
        T = translate_in_camera(self.state.model.pose(target.obj_id), target.T_world_cam, d)
        self.push_pose(target.obj_id, T, "Nudge", ("nudge",))

    def rotate_step(self, axis: int, sign: int, coarse: bool = False,
                    view: FrameView | None = None) -> None:
        """Turn the selected object about a camera axis through its centre by one step."""
        target = self.edit_target(view)
        if target is None or self.state.model is None:
            return
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        ang = np.radians(sign * (COARSE_STEP_DEG if coarse else FINE_STEP_DEG))
        T = rotate_in_camera(self.state.model.pose(target.obj_id), target.T_world_cam, e,
                             ang, model_centre(target.mesh))
        self.push_pose(target.obj_id, T, "Rotate", ("nudge",))

    def _depth_wheel(self, view: FrameView, notches: float) -> None:
        d = self._drag
        if d is not None and self.state.model is not None:
            d.T_start = move_along_ray(d.T_start, d.T_world_cam, d.centre_obj,
                                       notches * WHEEL_STEP_M)
            self.push_pose(d.obj_id, self._drag_pose(d), "Drag", ("drag", d.serial))
            return
        target = self.edit_target(view)
        if target is None or self.state.model is None:
            return
        T = move_along_ray(self.state.model.pose(target.obj_id), target.T_world_cam,
                           model_centre(target.mesh), notches * WHEEL_STEP_M)
        self.push_pose(target.obj_id, T, "Depth", ("nudge",))

    # -- mouse drags ----------------------------------------------------------------------
    def _drag_started(self, view: FrameView, kind: str) -> None:
        target = self.edit_target(view)
        if target is None or self.state.model is None:
            self._drag = None
            return
        self._drag_serial += 1
        self._drag = _Drag(kind, target.obj_id, self.state.model.pose(target.obj_id),
                           target.T_world_cam, model_centre(target.mesh), self._drag_serial)
        self.dragBegan.emit()

    def _drag_pose(self, d: _Drag) -> np.ndarray:
        if d.kind == "rotate":
            return drag_rotate(d.T_start, d.T_world_cam, d.centre_obj, d.du, d.dv,
                               DRAG_ROTATE_DEG_PER_PX)
        assert self.state.model is not None
        return drag_translate(d.T_start, d.T_world_cam, self.state.model.camera, d.centre_obj,
                              d.du, d.dv)

    def _drag_moved(self, _view: FrameView, du: float, dv: float) -> None:
        d = self._drag
        m = self.state.model
        if d is None or m is None or not m.has_object(d.obj_id):
            return
        d.du, d.dv = du, dv
        self.push_pose(d.obj_id, self._drag_pose(d), "Drag" if d.kind == "translate"
                       else "Turn", ("drag", d.serial))

    def _drag_finished(self, _view: FrameView) -> None:
        self._drag = None
        self.request_render(preview=False)

    # -- click-to-place -------------------------------------------------------------------
    def set_place_mode(self, on: bool) -> None:
        """Place mode: the next left click in the main view places the selected object."""
        self.main_view.place_mode = bool(on)
        self.main_view.setCursor(Qt.CursorShape.CrossCursor if on
                                 else Qt.CursorShape.ArrowCursor)
        if on:
            self.status.showMessage("Place: click the object's surface in the image", 0)
        else:
            self.status.clearMessage()
        self.placeModeChanged.emit(bool(on))

    def escape(self) -> None:
        """Leave place mode, or else deselect."""
        if self.main_view.place_mode:
            self.set_place_mode(False)
        else:
            self.select(None)

    def place_at(self, u: int, v: int, view: FrameView | None = None) -> bool:
        """Click-to-place: put the selected object's visible surface on the sensor depth
        at pixel (u, v) of `view` (default: the main view), keeping its rotation (one
        undo step)."""
        view = view or self.main_view
        target = self.edit_target(view)
        m, service = self.state.model, self.state.service
        if target is None or m is None or service is None:
            return False
        depth = service.frames.depth(view.frame)
        T = place_at_pixel(m.camera, target.T_world_cam, depth, u, v, target.mesh,
                           m.pose(target.obj_id)[:3, :3], self.ui_renderer)
        if self.main_view.place_mode:
            self.set_place_mode(False)
        if T is None:
            self.status.showMessage(f"No depth at pixel ({u}, {v}): click somewhere the "
                                    "sensor measured", 5000)
            return False
        self.push_pose(target.obj_id, T, "Place")
        return True

    # -- objects and keyframes ------------------------------------------------------------
    def add_object(self, class_name: str) -> int | None:
        """Add an object of a class in front of the main view's camera (one undo step);
        returns its id, or None (with a message) when it cannot be added."""
        m = self.state.model
        if m is None:
            return None
        frame = self.state.frame
        T_wc = m.T_world_cam(frame)
        if T_wc is None:
            QMessageBox.information(
                self.dialog_parent, "Cannot add object",
                f"Frame {frame} has no camera pose, so there is nowhere to put "
                "the object. Go to a tracked frame (or run tracking first).")
            return None
        try:
            obj = m.new_object(class_name, np.eye(4))
        except ModelError as exc:
            QMessageBox.warning(self.dialog_parent, "Cannot add object",
                                f"The model of class '{class_name}' failed to load:\n\n{exc}")
            return None
        mesh = load_model(resolve_model_path(obj.model, m.root, m.models_dir))
        R_world_obj = T_wc[:3, :3] @ DEFAULT_R_CAM_OBJ
        cam = m.camera
        u, v = int(round(cam.cx)), int(round(cam.cy))
        service = self.state.service
        depth = service.frames.depth(frame) if service else None
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
        m = self.state.model
        if m is not None and m.has_object(obj_id):
            self.undo_stack.push(RemoveObjectCommand(m, obj_id))

    def delete_selected(self) -> None:
        if self.state.selected_id is not None:
            self.delete_object(self.state.selected_id)

    def toggle_keyframe(self) -> None:
        """Mark / unmark the main view's frame as a keyframe of the selected object (of
        every object when none is selected), one undo step."""
        m = self.state.model
        if m is None or not m.object_ids:
            self.status.showMessage("No objects: add one before marking keyframes", 5000)
            return
        sel = self.state.selected_id
        ids = [sel] if sel is not None else m.object_ids
        t = self.state.frame
        on_all = all(t in m.keyframes(i) for i in ids)
        changes = {}
        for i in ids:
            old = m.keyframes(i)
            new = [k for k in old if k != t] if on_all else sorted(set(old) | {t})
            changes[i] = (old, new)
        what = "Remove" if on_all else "Add"
        self.undo_stack.push(SetKeyframesCommand(m, changes, f"{what} keyframe {t}"))
