"""Editing interactions: what the views' mouse and key signals do to the selected object.

`EditController` turns a view's signals (`attach_view`: the main view and every
multi-view frame are connected the same way) into undo commands (`labeller.gui.commands`):
nudges along the camera axes, turns about the camera's or the object's own axes (the
turn frame, `G`), quarter and half turns about the object's up axis, standing the object
on its support (`labeller.annotate.support_plane`), copying another object's rotation,
image-plane drags, moves along the viewing ray, click-to-place, add / delete objects,
keyframe toggling. Every edit uses the camera of the view it comes from, so the other
views of the multi-view check edit too. Each user action is one undo step (a burst of
key nudges or turns on one object, or one drag, merges into one).

Frames and units: T_world_obj, T_world_cam 4x4 float64 (metres); steps in metres and
degrees; drag offsets (du, dv) in image pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QLabel, QMenu, QMessageBox, QStatusBar, QWidget

from labeller.annotate.pose_edit import (
    AXIS_NAMES,
    camera_up_world,
    copy_rotation,
    drag_rotate,
    drag_rotate_object,
    drag_translate,
    move_along_ray,
    place_at_pixel,
    quarter_turn,
    rotate_in_camera,
    rotate_in_object,
    translate_in_camera,
    up_axis,
)
from labeller.annotate.support_plane import SupportSearch, find_support, stand_on_plane
from labeller.core.errors import BadInput, ModelError
from labeller.core.poses import rotation_error_deg
from labeller.formats.models import ObjectModel, load_model, resolve_model_path
from labeller.geometry.overlay import OverlayObject, OverlayRenderer, model_centre
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
    about_object: bool = False  # a turn about the object's own axes (the turn frame)
    du: float = 0.0
    dv: float = 0.0


class EditController(QObject):
    """Pose edits of the selected object; see the module docstring.

    state: read for the model, the selection, the frame and the depth (its service);
    undo_stack: where every change goes; main_view: the view place mode applies to;
    select(obj_id | None): the window's selection; request_render(preview=None);
    status: the window's status bar; dialog_parent: parent of the message boxes.
    Emits `dragBegan()` when a drag of an object starts, `placeModeChanged(bool)` and
    `turnFrameChanged(bool)` (True: turns are about the object's own axes).
    `turn_label`: the permanent status-bar text naming the turn frame.
    """

    dragBegan = Signal()
    placeModeChanged = Signal(bool)
    turnFrameChanged = Signal(bool)

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
        # Casts the UI thread itself needs (click-to-place, the support search): never the
        # worker's renderer, which is busy on another thread.
        self.ui_renderer = OverlayRenderer()
        self.turn_about_object = False
        self.turn_label = QLabel()
        self.turn_label.setToolTip("The axes I/K J/L U/O and Ctrl+drag turn about (G switches)")
        status.addPermanentWidget(self.turn_label)
        self._show_turn_frame()
        # Edit ▸ Copy rotation from (and Ctrl+Shift+C): the other objects, filled on show.
        self.copy_rotation_menu = QMenu("Copy &rotation from", dialog_parent)
        self.copy_rotation_menu.aboutToShow.connect(self._fill_copy_rotation_menu)

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
        """Turn the selected object by one step through its centre about axis 0/1/2 (x/y/z)
        of the camera, or of the model itself when the turn frame is the object's axes."""
        target = self.edit_target(view)
        if target is None or self.state.model is None:
            return
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        ang = np.radians(sign * (COARSE_STEP_DEG if coarse else FINE_STEP_DEG))
        T_old, centre = self.state.model.pose(target.obj_id), model_centre(target.mesh)
        if self.turn_about_object:
            T = rotate_in_object(T_old, e, ang, centre)
        else:
            T = rotate_in_camera(T_old, target.T_world_cam, e, ang, centre)
        self.push_pose(target.obj_id, T, "Rotate", ("nudge",))

    # -- the turn frame -------------------------------------------------------------------
    def set_turn_about_object(self, on: bool) -> None:
        """Turn keys and Ctrl+drag turn about the object's own axes (on) or the camera's."""
        on = bool(on)
        changed = on != self.turn_about_object
        self.turn_about_object = on
        self._show_turn_frame()
        if changed:
            self.status.showMessage(
                "Turns (I/K J/L U/O, Ctrl+drag) now about the "
                + ("object's own x / y / z axes" if on else "camera's x / y / z axes")
                + " (G switches)", 5000)
            self.turnFrameChanged.emit(on)

    def toggle_turn_frame(self) -> None:
        self.set_turn_about_object(not self.turn_about_object)

    def _show_turn_frame(self) -> None:
        self.turn_label.setText("turn: object axes" if self.turn_about_object
                                else "turn: camera axes")

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
                           target.T_world_cam, model_centre(target.mesh), self._drag_serial,
                           about_object=self.turn_about_object)
        self.dragBegan.emit()

    def _drag_pose(self, d: _Drag) -> np.ndarray:
        if d.kind == "rotate":
            turn = drag_rotate_object if d.about_object else drag_rotate
            return turn(d.T_start, d.T_world_cam, d.centre_obj, d.du, d.dv,
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

    # -- the support, the up axis, yaw steps, copying a rotation ---------------------------
    def find_support(self, target: EditTarget, view: FrameView | None = None
                     ) -> SupportSearch:
        """The plane under `target` in the depth of `view`'s frame (default: the main
        view), or else in the fused cloud recon/cloud.ply."""
        m, service = self.state.model, self.state.service
        assert m is not None
        frame = (view or self.main_view).frame
        depth = None  # a frame without a depth image (or an unreadable one) has none
        if service is not None and frame not in m.scene.missing_depth:
            try:
                depth = service.frames.depth(frame)
            except BadInput:
                depth = None
        me = OverlayObject(target.obj_id, target.mesh, m.pose(target.obj_id), (0, 0, 0))
        others = []
        for o in m.objects():
            mesh = m.object_model(o.id) if o.id != target.obj_id else None
            if mesh is not None:
                others.append(OverlayObject(o.id, mesh, o.T_world_obj, (0, 0, 0)))
        return find_support(m.camera, target.T_world_cam, depth, frame, me, others,
                            self.ui_renderer, m.scene.paths.cloud)

    def yaw_step(self, quarter_turns: int = 1, view: FrameView | None = None) -> bool:
        """Turn the selected object by quarter_turns x 90 deg about its up axis (the model
        axis closest to the support plane's normal, or without a support to the camera's
        -y) through its centre (one undo step)."""
        target = self.edit_target(view)
        m = self.state.model
        if target is None or m is None:
            return False
        T = m.pose(target.obj_id)
        found = self.find_support(target, view)
        if found.plane is not None:
            up = found.plane.normal_world
            whence = f"up from the support plane in the {found.plane.source}"
        else:
            up = camera_up_world(target.T_world_cam)
            whence = "up nearest the camera's -y: no support plane found"
        k, s = up_axis(T[:3, :3], up)
        T_new = quarter_turn(T, model_centre(target.mesh), k, s, quarter_turns)
        deg = 90 * quarter_turns
        self.push_pose(target.obj_id, T_new, f"Turn {deg:+d}° about up")
        self.status.showMessage(f"Turned #{target.obj_id} {deg:+d}° about its "
                                f"{'+' if s > 0 else '-'}{AXIS_NAMES[k]} axis ({whence})", 5000)
        return True

    def stand_on_support(self, view: FrameView | None = None) -> bool:
        """Stand the selected object on the plane under it (`stand_on_plane`: its up axis
        onto the plane's normal, its yaw kept, its box face on the plane), one undo step;
        False with the reason in the status bar when no plane is found."""
        target = self.edit_target(view)
        m = self.state.model
        if target is None or m is None:
            return False
        found = self.find_support(target, view)
        name = f"#{target.obj_id} {m.object(target.obj_id).class_name}"
        if found.plane is None:
            self.status.showMessage(f"Cannot stand {name} on a support. {found.message}",
                                    15000)
            return False
        T = m.pose(target.obj_id)
        T_new = stand_on_plane(T, model_centre(target.mesh), target.mesh.extent_m,
                               found.plane)
        moved_mm = 1000 * float(np.linalg.norm(
            (T_new[:3, :3] - T[:3, :3]) @ model_centre(target.mesh) + T_new[:3, 3] - T[:3, 3]))
        self.push_pose(target.obj_id, T_new, "Stand on support")
        p = found.plane
        self.status.showMessage(
            f"Stood {name} on the plane in the {p.source} ({p.n_inliers} of {p.n_points} "
            f"points): moved {moved_mm:.0f} mm, turned {rotation_error_deg(T, T_new):.1f}°",
            8000)
        return True

    def copy_rotation_from(self, src_id: int) -> bool:
        """Give the selected object object `src_id`'s world rotation, turning it about its
        own centre (one undo step)."""
        target = self.edit_target()
        m = self.state.model
        if target is None or m is None:
            return False
        if src_id == target.obj_id or not m.has_object(src_id):
            self.status.showMessage(f"Object #{src_id} is not another object", 5000)
            return False
        T = copy_rotation(m.pose(target.obj_id), m.pose(src_id)[:3, :3],
                          model_centre(target.mesh))
        self.push_pose(target.obj_id, T, f"Copy rotation from #{src_id}")
        self.status.showMessage(f"#{target.obj_id} now has the rotation of #{src_id} "
                                f"{m.object(src_id).class_name}", 5000)
        return True

    def copy_rotation_sources(self) -> list[tuple[int, str]]:
        """(id, menu text) of the objects the selected one can copy its rotation from."""
        m, sel = self.state.model, self.state.selected_id
        if m is None or sel is None:
            return []
        return [(o.id, f"#{o.id} {o.class_name}") for o in m.objects() if o.id != sel]

    def _fill_copy_rotation_menu(self) -> None:
        menu = self.copy_rotation_menu
        menu.clear()
        sources = self.copy_rotation_sources()
        for obj_id, text in sources:
            a = menu.addAction(text)
            a.setData(obj_id)
            a.triggered.connect(lambda _=False, i=obj_id: self.copy_rotation_from(i))
        if not sources:
            a = menu.addAction("(select an object; another one to copy from)")
            a.setEnabled(False)

    def popup_copy_rotation(self) -> None:
        """Ctrl+Shift+C: the menu of the other objects, over the main view."""
        if self.edit_target() is None:
            return
        if not self.copy_rotation_sources():
            self.status.showMessage("No other object to copy the rotation from", 5000)
            return
        v = self.main_view
        self.copy_rotation_menu.popup(v.mapToGlobal(v.rect().center()))

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
