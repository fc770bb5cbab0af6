"""The geometry of editing an object's pose in the annotation window (Qt-free).

Nudges along the camera axes, rotations about the object's centre (the centre of the
model's bounding box, `labeller.geometry.overlay.model_centre`) about camera axes or the
model's own axes (keys and drags), exact quarter turns about the object's up axis (the
model axis closest to the support's normal, else to the camera's -y), copying another
object's rotation, dragging in the image plane, moving along the viewing ray, and
click-to-place (back-project the clicked pixel's sensor depth and put the model's visible
surface there). Standing an object on its support is `labeller.annotate.support_plane`.

Frames and units: T_world_obj, T_world_cam are 4x4 float64 (metres); camera frame is
OpenCV (x right, y down, z forward); pixel (u, v) has its centre at integer coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import axis_angle_to_matrix, inv_pose
from labeller.formats.models import ObjectModel
from labeller.geometry.overlay import OverlayRenderer, model_centre

# Click-to-place reads the sensor depth as the median of the valid pixels within this
# radius of the click: one missing or noisy pixel must not throw the object away.
PLACE_DEPTH_RADIUS_PX = 2


def translate_in_camera(T_world_obj: np.ndarray, T_world_cam: np.ndarray,
                        d_cam: Sequence[float]) -> np.ndarray:
    """T_world_obj moved by d_cam (3,) metres along the camera's axes."""
    T = np.array(T_world_obj, dtype=np.float64)
    T[:3, 3] += np.asarray(T_world_cam, dtype=np.float64)[:3, :3] @ np.asarray(d_cam, float)
    return T


def rotate_in_camera(T_world_obj: np.ndarray, T_world_cam: np.ndarray,
                     axis_cam: Sequence[float] | np.ndarray, angle_rad: float,
                     centre_obj: np.ndarray) -> np.ndarray:
    """T_world_obj turned by `angle_rad` about `axis_cam` (a camera-frame direction)
    through the object's centre `centre_obj` (model frame, metres)."""
    T = np.asarray(T_world_obj, dtype=np.float64)
    R_wc = np.asarray(T_world_cam, dtype=np.float64)[:3, :3]
    R = R_wc @ axis_angle_to_matrix(np.asarray(axis_cam, float), angle_rad) @ R_wc.T
    c_world = T[:3, :3] @ centre_obj + T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R @ T[:3, :3]
    out[:3, 3] = R @ (T[:3, 3] - c_world) + c_world
    return out


def centre_in_camera(T_world_obj: np.ndarray, T_world_cam: np.ndarray,
                     centre_obj: np.ndarray) -> np.ndarray:
    """The object's centre (3,) in the camera frame, metres."""
    T_cam_obj = inv_pose(T_world_cam) @ np.asarray(T_world_obj, dtype=np.float64)
    return T_cam_obj[:3, :3] @ centre_obj + T_cam_obj[:3, 3]


# A drag never puts the object closer than this (the image-plane scale 1/z blows up).
MIN_DRAG_DEPTH_M = 0.05


def drag_translate(T_start: np.ndarray, T_world_cam: np.ndarray, camera: CameraIntrinsics,
                   centre_obj: np.ndarray, du: float, dv: float) -> np.ndarray:
    """Move the object parallel to the image plane so its centre follows the mouse by
    (du, dv) pixels (at the centre's depth; the depth stays)."""
    z = max(float(centre_in_camera(T_start, T_world_cam, centre_obj)[2]), MIN_DRAG_DEPTH_M)
    return translate_in_camera(T_start, T_world_cam, (du * z / camera.fx, dv * z / camera.fy, 0.0))


def move_along_ray(T_world_obj: np.ndarray, T_world_cam: np.ndarray,
                   centre_obj: np.ndarray, dz_m: float) -> np.ndarray:
    """Move the object towards (dz < 0) or away from the camera along the ray through
    its centre, so its centre stays on the same pixel; dz is the change in camera z."""
    c = centre_in_camera(T_world_obj, T_world_cam, centre_obj)
    z = float(c[2])
    if z <= 1e-6:  # behind the camera: there is no ray through a pixel; move along z
        return translate_in_camera(T_world_obj, T_world_cam, (0.0, 0.0, dz_m))
    z_new = max(z + dz_m, MIN_DRAG_DEPTH_M)
    return translate_in_camera(T_world_obj, T_world_cam, c * (z_new / z) - c)


def drag_rotate(T_start: np.ndarray, T_world_cam: np.ndarray, centre_obj: np.ndarray,
                du: float, dv: float, deg_per_px: float = 0.5) -> np.ndarray:
    """Trackball-style rotation about the object's centre: dragging right turns the
    side facing the camera to the right (about camera y), dragging down turns it down
    (about camera x). Computed from the drag's start pose, so it is exact to repeat."""
    ang_y = -np.radians(du * deg_per_px)
    ang_x = np.radians(dv * deg_per_px)
    angle = float(np.hypot(ang_x, ang_y))
    if angle == 0.0:
        return np.array(T_start, dtype=np.float64)
    axis = np.array([ang_x, ang_y, 0.0]) / angle
    return rotate_in_camera(T_start, T_world_cam, axis, angle, centre_obj)


def depth_at_pixel(depth_m: np.ndarray, u: int, v: int,
                   radius: int = PLACE_DEPTH_RADIUS_PX) -> float | None:
    """Median of the valid depths (metres) within `radius` of pixel (u, v); None if none."""
    h, w = depth_m.shape
    if not (0 <= u < w and 0 <= v < h):
        return None
    win = depth_m[max(v - radius, 0):v + radius + 1, max(u - radius, 0):u + radius + 1]
    vals = win[win > 0]
    return float(np.median(vals)) if vals.size else None


def backproject_pixel(camera: CameraIntrinsics, depth_m: np.ndarray, u: int, v: int
                      ) -> np.ndarray | None:
    """The surface point (3,) in the camera frame (metres) seen at pixel (u, v)."""
    z = depth_at_pixel(depth_m, u, v)
    if z is None:
        return None
    return camera.backproject(u, v, z).reshape(3)


def surface_depth(model: ObjectModel, T_cam_obj: np.ndarray, camera: CameraIntrinsics,
                  u: int, v: int, renderer: OverlayRenderer | None = None) -> float | None:
    """Camera z (metres) of the model's first surface along pixel (u, v)'s ray, or None."""
    r = (renderer or OverlayRenderer()).caster(model)
    out = r.render(camera, inv_pose(T_cam_obj), roi=(int(u), int(v), 1, 1))
    z = float(out.depth[0, 0])
    return z if z > 0 else None


def place_at_pixel(camera: CameraIntrinsics, T_world_cam: np.ndarray, depth_m: np.ndarray,
                   u: int, v: int, model: ObjectModel, R_world_obj: np.ndarray,
                   renderer: OverlayRenderer | None = None) -> np.ndarray | None:
    """Click-to-place: a T_world_obj with rotation `R_world_obj` that puts the model's
    visible surface on the sensor's surface point at pixel (u, v).

    The object's centre goes on the pixel's viewing ray, and the object is pushed back
    along that ray until its first surface along the ray sits at the measured depth.
    None when the pixel has no valid depth.
    """
    u, v = int(round(u)), int(round(v))
    p_cam = backproject_pixel(camera, depth_m, u, v)
    if p_cam is None:
        return None
    z_p = float(p_cam[2])
    ray = p_cam / z_p  # (x, y, 1): moving by s * ray changes camera z by s
    R_cam_obj = np.asarray(T_world_cam, float)[:3, :3].T @ np.asarray(R_world_obj, float)
    centre = model_centre(model)
    T_cam_obj = np.eye(4)
    T_cam_obj[:3, :3] = R_cam_obj
    T_cam_obj[:3, 3] = p_cam - R_cam_obj @ centre
    z_hit = surface_depth(model, T_cam_obj, camera, u, v, renderer)
    if z_hit is not None:
        shift = z_p - z_hit
    else:  # the ray slips past the mesh (an open mug): use half the model's depth
        shift = float(np.abs(R_cam_obj[2] @ np.diag(model.extent_m)).sum()) / 2.0
    T_cam_obj[:3, 3] += shift * ray
    T_world_obj = np.asarray(T_world_cam, float) @ T_cam_obj
    T_world_obj[:3, :3] = R_world_obj  # exactly the rotation asked for, not a round trip
    return T_world_obj


# -- turning about the object's own axes ------------------------------------------------------
# The two frames the turn keys (I/K J/L U/O) and Ctrl+drag turn in.
TURN_FRAME_CAMERA, TURN_FRAME_OBJECT = "camera", "object"
# Camera -y (OpenCV: y points down in the image) is "up" when there is no support plane.
CAMERA_UP_CAM = np.array([0.0, -1.0, 0.0])
AXIS_NAMES = ("x", "y", "z")


def keep_centre(T_world_obj: np.ndarray, R_world_new: np.ndarray,
                centre_obj: np.ndarray) -> np.ndarray:
    """T_world_obj with rotation `R_world_new` (3, 3) and the model's centre `centre_obj`
    (model frame, metres) left where it was in the world."""
    T = np.asarray(T_world_obj, dtype=np.float64)
    c_world = T[:3, :3] @ centre_obj + T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R_world_new
    out[:3, 3] = c_world - out[:3, :3] @ centre_obj
    return out


def rotate_in_object(T_world_obj: np.ndarray, axis_obj: Sequence[float] | np.ndarray,
                     angle_rad: float, centre_obj: np.ndarray) -> np.ndarray:
    """T_world_obj turned by `angle_rad` about `axis_obj` (a model-frame direction)
    through the object's centre `centre_obj` (model frame, metres): that axis stays put
    in the world."""
    R = np.asarray(T_world_obj, dtype=np.float64)[:3, :3]
    return keep_centre(T_world_obj, R @ axis_angle_to_matrix(np.asarray(axis_obj, float),
                                                             angle_rad), centre_obj)


def nearest_axis(R_a_obj: np.ndarray, direction_a: Sequence[float] | np.ndarray,
                 exclude: Sequence[int] = ()) -> tuple[int, int]:
    """(index 0/1/2, sign +1/-1) of the model axis (columns of R_a_obj, (3, 3)) closest to
    `direction_a` (3,), both in the same frame a; sign * axis points along the direction."""
    d = np.asarray(direction_a, dtype=np.float64)
    dots = np.asarray(R_a_obj, dtype=np.float64).T @ d
    order = [k for k in np.argsort(-np.abs(dots), kind="stable") if k not in exclude]
    k = int(order[0])
    return k, 1 if dots[k] >= 0 else -1


def camera_up_world(T_world_cam: np.ndarray) -> np.ndarray:
    """The camera's -y (image up) as a world direction (3,)."""
    return np.asarray(T_world_cam, dtype=np.float64)[:3, :3] @ CAMERA_UP_CAM


def up_axis(R_world_obj: np.ndarray, up_world: Sequence[float] | np.ndarray
            ) -> tuple[int, int]:
    """The object's up axis: the model axis (index, sign) closest to `up_world`, the
    support plane's normal (or, without a support, the camera's -y: `camera_up_world`)."""
    return nearest_axis(R_world_obj, up_world)


def quarter_turn(T_world_obj: np.ndarray, centre_obj: np.ndarray, axis: int, sign: int,
                 quarter_turns: int) -> np.ndarray:
    """T_world_obj turned by `quarter_turns` x 90 deg about model axis `axis` (0/1/2),
    positive about sign * that axis (right hand), through the centre. The turn in the
    model frame is an exact signed permutation, so four quarter turns give back the very
    same rotation (up to the last bit)."""
    e = np.zeros(3)
    e[axis] = float(sign)
    P = np.rint(axis_angle_to_matrix(e, quarter_turns * np.pi / 2))
    R = np.asarray(T_world_obj, dtype=np.float64)[:3, :3]
    return keep_centre(T_world_obj, R @ P, centre_obj)


def copy_rotation(T_world_obj: np.ndarray, R_world_src: np.ndarray,
                  centre_obj: np.ndarray) -> np.ndarray:
    """T_world_obj with another object's world rotation `R_world_src` (3, 3), turned about
    its own centre `centre_obj` (model frame) so the centre stays."""
    return keep_centre(T_world_obj, np.array(R_world_src, dtype=np.float64)[:3, :3], centre_obj)


def drag_rotate_object(T_start: np.ndarray, T_world_cam: np.ndarray, centre_obj: np.ndarray,
                       du: float, dv: float, deg_per_px: float = 0.5) -> np.ndarray:
    """Ctrl+drag in the object-axes turn frame: dragging right turns about the model axis
    closest to the camera's y (the one a camera-axes drag would turn about), dragging
    down about the model axis closest to the camera's x (of the other two), with the
    signs of `drag_rotate`. The axes are chosen at the drag's start pose, so a drag turns
    about the object's own axes only and is exact to repeat."""
    T = np.asarray(T_start, dtype=np.float64)
    R_cam_obj = np.asarray(T_world_cam, dtype=np.float64)[:3, :3].T @ T[:3, :3]
    k_h, s_h = nearest_axis(R_cam_obj, (0.0, 1.0, 0.0))
    k_v, s_v = nearest_axis(R_cam_obj, (1.0, 0.0, 0.0), exclude=(k_h,))
    e_h, e_v = np.eye(3)[k_h], np.eye(3)[k_v]
    ang_h = -np.radians(du * deg_per_px) * s_h
    ang_v = np.radians(dv * deg_per_px) * s_v
    R = T[:3, :3] @ axis_angle_to_matrix(e_h, ang_h) @ axis_angle_to_matrix(e_v, ang_v)
    return keep_centre(T, R, centre_obj)


def backproject_region(camera: CameraIntrinsics, depth_m: np.ndarray,
                       box: tuple[int, int, int, int],
                       exclude: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame points (N, 3) metres of the valid depth pixels inside `box`
    (x, y, w, h pixels, clipped to the image), leaving out pixels where `exclude`
    ((H, W) bool) is set."""
    h_img, w_img = depth_m.shape
    x, y, w, h = box
    x0, y0 = max(int(x), 0), max(int(y), 0)
    x1, y1 = min(int(x + w), w_img), min(int(y + h), h_img)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3))
    win = depth_m[y0:y1, x0:x1]
    ok = win > 0
    if exclude is not None:
        ok &= ~exclude[y0:y1, x0:x1]
    v, u = np.nonzero(ok)
    return camera.backproject(u + x0, v + y0, win[v, u])
