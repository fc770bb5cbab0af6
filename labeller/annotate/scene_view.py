"""The 3D view's pictures, drawn on the CPU (Qt-free): fused cloud, posed models, camera path.

Why the CPU and not OpenGL: see docs/adr/0008-3d-view-drawn-on-the-cpu.md. Models are
ray-cast with Open3D's RaycastingScene (each mesh alone in its own frame inside the box
it projects to, as `labeller.geometry.overlay` does, then z-buffered) and shaded by their
normals; the cloud's points are projected and z-buffered with numpy (nearest point per
pixel, hidden behind the models); the camera path and the current frame's frustum are
drawn as lines over it with OpenCV.

The view's own camera (`OrbitCamera`) is an OpenCV pinhole (x right, y down, z forward)
at `T_world_view`, orbiting a target point about the scene's up direction. World frame:
that of `trajectory.txt`; metres; radians inside, degrees only in `fov_y_deg`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from labeller.annotate.scene_cloud import SceneCloud
from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import inv_pose
from labeller.geometry.overlay import OverlayObject, OverlayRenderer
from labeller.geometry.render import projected_bbox

BACKGROUND_RGB = (38, 40, 46)
PATH_RGB = (255, 196, 0)
FRUSTUM_RGB = (0, 230, 255)
SELECTED_RGB = (255, 255, 255)
# Nothing nearer the view's camera than this is drawn (points, line ends).
NEAR_M = 0.01
# Radians of orbit per pixel of mouse drag.
ORBIT_RAD_PER_PX = 0.008
MAX_PITCH_RAD = math.radians(89.0)
# The OpenCV camera's y axis points down, so a camera's "up" is its -y axis.
CAMERA_UP_IN_CAM = np.array([0.0, -1.0, 0.0])


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else fallback


@dataclass(frozen=True)
class OrbitCamera:
    """A camera on a sphere around `target_world` (3,): `distance_m` away, turned by
    `yaw_rad` about `up_world` (unit 3-vector) from the reference direction
    `ref_world` (unit, perpendicular to up) and raised by `pitch_rad` above the
    horizontal. Immutable: orbit / pan / zoom return a new camera."""

    target_world: tuple[float, float, float]
    distance_m: float
    yaw_rad: float
    pitch_rad: float
    up_world: tuple[float, float, float]
    ref_world: tuple[float, float, float]
    fov_y_deg: float = 50.0

    @classmethod
    def fit(cls, points_world: np.ndarray, up_world: np.ndarray,
            forward_world: np.ndarray | None = None, fov_y_deg: float = 50.0,
            margin: float = 1.05, min_radius_m: float = 0.05) -> OrbitCamera:
        """A camera that sees all of `points_world` (N, 3) (`margin` times their
        radius, at least `min_radius_m`), looking along `forward_world` (e.g. the first
        recorded camera's z axis) from above.

        Of more than 50 points the 2nd..98th percentile box is fitted, so a few stray
        points do not shrink the scene to a dot."""
        up = _unit(np.asarray(up_world, np.float64), np.array([0.0, -1.0, 0.0]))
        fwd = np.asarray(forward_world if forward_world is not None else [0.0, 0.0, 1.0],
                         np.float64)
        fwd = fwd - up * float(fwd @ up)  # horizontal part
        ref = -_unit(fwd, _unit(np.cross(up, [1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])))
        pts = np.asarray(points_world, np.float64).reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(1)]
        if len(pts) == 0:
            centre, radius = np.array([0.0, 0.0, 1.0]), 0.5
        else:
            lo, hi = np.percentile(pts, [2, 98], axis=0) if len(pts) > 50 else (pts.min(0),
                                                                                 pts.max(0))
            centre = (lo + hi) / 2
            radius = max(float(np.linalg.norm(hi - lo)) / 2 * margin, min_radius_m)
        distance = radius / math.sin(math.radians(fov_y_deg) / 2)
        return cls(tuple(centre), distance, 0.0, math.radians(35.0), tuple(up), tuple(ref),
                   fov_y_deg)

    @property
    def T_world_view(self) -> np.ndarray:
        """4x4 pose of the view's OpenCV camera in the world."""
        up, e1 = np.array(self.up_world), np.array(self.ref_world)
        e2 = np.cross(up, e1)
        cp = math.cos(self.pitch_rad)
        eye_dir = (cp * (math.cos(self.yaw_rad) * e1 + math.sin(self.yaw_rad) * e2)
                   + math.sin(self.pitch_rad) * up)
        z = -eye_dir
        x = _unit(np.cross(z, up), e2)
        y = np.cross(z, x)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2] = x, y, z
        T[:3, 3] = np.array(self.target_world) + self.distance_m * eye_dir
        return T

    def intrinsics(self, width: int, height: int) -> CameraIntrinsics:
        """Square pixels, principal point in the middle, `fov_y_deg` vertically."""
        f = (height / 2) / math.tan(math.radians(self.fov_y_deg) / 2)
        return CameraIntrinsics(int(width), int(height), f, f, (width - 1) / 2, (height - 1) / 2)

    def orbit(self, dx_px: float, dy_px: float) -> OrbitCamera:
        """Turn about the target: dragging right turns the scene right, dragging down
        raises the eye."""
        pitch = float(np.clip(self.pitch_rad + dy_px * ORBIT_RAD_PER_PX, -MAX_PITCH_RAD,
                              MAX_PITCH_RAD))
        return replace(self, yaw_rad=self.yaw_rad - dx_px * ORBIT_RAD_PER_PX, pitch_rad=pitch)

    def pan(self, dx_px: float, dy_px: float, height_px: int) -> OrbitCamera:
        """Move the target so that the point under the mouse follows it (at the
        target's depth)."""
        T = self.T_world_view
        m_per_px = 2 * self.distance_m * math.tan(math.radians(self.fov_y_deg) / 2) / height_px
        shift = -(dx_px * T[:3, 0] + dy_px * T[:3, 1]) * m_per_px
        return replace(self, target_world=tuple(np.array(self.target_world) + shift))

    def zoom(self, factor: float) -> OrbitCamera:
        """Distance to the target times `factor` (< 1 comes closer)."""
        return replace(self, distance_m=float(np.clip(self.distance_m * factor, 0.02, 1e3)))


def scene_up_world(T_world_cams: Sequence[np.ndarray]) -> np.ndarray:
    """The scene's up direction (unit 3-vector, world frame): the mean of the recorded
    cameras' up axes (a hand-held camera is held roughly upright); world -y without any."""
    ups = [np.asarray(T)[:3, :3] @ CAMERA_UP_IN_CAM for T in T_world_cams]
    return _unit(np.sum(ups, axis=0) if ups else np.zeros(3), CAMERA_UP_IN_CAM.copy())


@dataclass
class SceneViewImage:
    """One picture of the 3D view: rgb (H, W, 3) uint8; inst (H, W) uint16 object ids
    (0 = none; what a click picks); depth (H, W) float32 metres along the view's z of
    the nearest model (0 = none); n_points: cloud points drawn."""

    rgb: np.ndarray
    inst: np.ndarray
    depth: np.ndarray
    n_points: int


@dataclass(frozen=True)
class CameraPath:
    """The recorded camera: positions (N, 3) world metres of the tracked frames in frame
    order, `breaks` (N,) bool True where the path is cut before that frame (an untracked
    gap), and the current frame's `T_world_cam` with the recording's intrinsics (None:
    the frame has no pose)."""

    positions_world: np.ndarray
    breaks: np.ndarray
    T_world_cam: np.ndarray | None
    camera: CameraIntrinsics | None


def camera_path(frame_poses: dict[int, np.ndarray], current: int | None,
                camera: CameraIntrinsics | None) -> CameraPath:
    """A `CameraPath` from {frame id: T_world_cam}."""
    ids = sorted(frame_poses)
    pos = np.array([np.asarray(frame_poses[t])[:3, 3] for t in ids]).reshape(-1, 3)
    breaks = np.array([i == 0 or t != ids[i - 1] + 1 for i, t in enumerate(ids)], bool)
    T = frame_poses.get(current) if current is not None else None
    return CameraPath(pos, breaks, None if T is None else np.asarray(T, np.float64), camera)


def _segments_px(a_view: np.ndarray, b_view: np.ndarray, cam: CameraIntrinsics) -> np.ndarray:
    """Segments (M, 2, 3) in the view frame, cut at the near plane, projected: (K, 4)
    pixel end points (u0, v0, u1, v1) of the parts in front of the camera."""
    za, zb = a_view[:, 2], b_view[:, 2]
    keep = (za > NEAR_M) | (zb > NEAR_M)
    a, b, za, zb = a_view[keep], b_view[keep], za[keep], zb[keep]
    s = np.clip((NEAR_M - za) / np.where(np.abs(zb - za) > 1e-12, zb - za, 1e-12), 0, 1)[:, None]
    a = np.where((za < NEAR_M)[:, None], a + (b - a) * s, a)
    b = np.where((zb < NEAR_M)[:, None], b + (a - b) * (1 - s), b)
    K = cam.K
    ua = (a @ K.T)[:, :2] / a[:, 2:3]
    ub = (b @ K.T)[:, :2] / b[:, 2:3]
    out = np.concatenate([ua, ub], 1)
    # cv2 takes int coordinates; far-off ends are clipped by cv2.clipLine
    return np.clip(out, -1e5, 1e5)


def _draw_segments(rgb: np.ndarray, px: np.ndarray, color: tuple[int, int, int],
                   thickness: int) -> None:
    h, w = rgb.shape[:2]
    for u0, v0, u1, v1 in px:
        ok, p0, p1 = cv2.clipLine((0, 0, w, h), (int(round(u0)), int(round(v0))),
                                  (int(round(u1)), int(round(v1))))
        if ok:
            cv2.line(rgb, p0, p1, color, thickness, cv2.LINE_AA)


def _outline(mask: np.ndarray, px: int) -> np.ndarray:
    """Pixels of `mask` (bool) within `px` of its border."""
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    m = mask.view(np.uint8)
    return mask & (cv2.erode(m, k, borderType=cv2.BORDER_CONSTANT, borderValue=0) == 0)


class SceneViewRenderer:
    """Draws a `SceneCloud` (or none), posed objects and a `CameraPath` from an
    `OrbitCamera`. Keeps one ray-casting scene per mesh (built once). Not thread-safe."""

    def __init__(self, cloud: SceneCloud | None, point_px: int = 2):
        self.cloud = cloud
        self.point_px = max(int(point_px), 1)
        self._casters = OverlayRenderer()
        self._rois: dict[int, tuple[int, int, int, int]] = {}  # of the last cast
        # The light comes from the view's upper left, a little behind it (view frame):
        # a headlight alone gives flat faces the same shade.
        self._light_view = _unit(np.array([-0.35, -0.55, -1.0]), np.array([0.0, 0.0, -1.0]))

    def render(self, view: OrbitCamera, width: int, height: int,
               objects: Sequence[OverlayObject], selected: int | None = None,
               path: CameraPath | None = None, frustum_m: float = 0.1) -> SceneViewImage:
        """The picture at width x height pixels; `frustum_m`: depth of the current
        frame's camera frustum (world metres)."""
        cam = view.intrinsics(width, height)
        T_world_view = view.T_world_view
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[:] = BACKGROUND_RGB
        depth, inst, shade = self._cast_models(cam, T_world_view, objects)
        n_points = self._draw_cloud(rgb, cam, inv_pose(T_world_view), depth)
        self._draw_models(rgb, inst, shade, objects, selected)
        if path is not None:
            self._draw_path(rgb, cam, inv_pose(T_world_view), path, frustum_m)
        return SceneViewImage(rgb, inst, depth, n_points)

    # -- models ---------------------------------------------------------------------------
    def _cast_models(self, cam: CameraIntrinsics, T_world_view: np.ndarray,
                     objects: Sequence[OverlayObject]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Z-buffered depth (H, W) float32, ids (H, W) uint16 and shade (H, W) float32
        in 0..1 (Lambert, two-sided) of the objects."""
        h, w = cam.height, cam.width
        depth = np.zeros((h, w), np.float32)
        inst = np.zeros((h, w), np.uint16)
        shade = np.zeros((h, w), np.float32)
        self._rois = {}
        for obj in objects:
            T_obj_view = inv_pose(obj.T_world_obj) @ T_world_view
            roi = projected_bbox(cam, inv_pose(T_obj_view), obj.model)
            if roi is None:
                continue
            r = self._casters.caster(obj.model).render(cam, T_obj_view, roi=roi, normals=True)
            assert r.normals is not None
            self._rois[obj.obj_id] = roi
            x, y, rw, rh = roi
            zd, zi, zs = depth[y:y + rh, x:x + rw], inst[y:y + rh, x:x + rw], shade[y:y + rh,
                                                                                   x:x + rw]
            take = (r.depth > 0) & ((zd == 0) | (r.depth < zd))
            # normals come in the model frame; R_view_obj turns them into the view frame
            n_view = r.normals[take] @ T_obj_view[:3, :3].astype(np.float32)
            zd[take] = r.depth[take]
            zi[take] = obj.obj_id
            zs[take] = 0.25 + 0.75 * np.abs(n_view @ self._light_view.astype(np.float32))
        return depth, inst, shade

    def _draw_models(self, rgb: np.ndarray, inst: np.ndarray, shade: np.ndarray,
                     objects: Sequence[OverlayObject], selected: int | None) -> None:
        h, w = inst.shape
        for obj in objects:
            roi = self._rois.get(obj.obj_id)
            if roi is None:
                continue
            x, y, rw, rh = roi  # the box the object was cast in, plus room for the outline
            x0, y0, x1, y1 = max(x - 1, 0), max(y - 1, 0), min(x + rw + 1, w), min(y + rh + 1, h)
            m = inst[y0:y1, x0:x1] == obj.obj_id
            if not m.any():
                continue
            sub = rgb[y0:y1, x0:x1]
            col = np.array(obj.color_rgb, np.float32)
            if obj.obj_id == selected:  # brighter, and outlined in white
                col = col * 0.6 + 255 * 0.4
            sub[m] = np.clip(col[None, :] * shade[y0:y1, x0:x1][m][:, None] + 0.5, 0,
                             255).astype(np.uint8)
            edge = _outline(m, 2 if obj.obj_id == selected else 1)
            sub[edge] = (SELECTED_RGB if obj.obj_id == selected
                         else (np.array(obj.color_rgb) * 0.5).astype(np.uint8))

    # -- cloud ----------------------------------------------------------------------------
    def _draw_cloud(self, rgb: np.ndarray, cam: CameraIntrinsics, T_view_world: np.ndarray,
                    model_depth: np.ndarray) -> int:
        """Nearest point per pixel, grown to squares of `point_px` (the nearer point wins
        where squares overlap), hidden behind the models, darkened with distance; returns
        how many pixels were drawn.

        A one-pixel z-buffer of the points (`np.minimum.at`, no sort), then the squares
        as shifted copies of that image: z-buffering every square's pixels costs several
        times more."""
        if self.cloud is None or len(self.cloud) == 0:
            return 0
        R = T_view_world[:3, :3].astype(np.float32)
        t = T_view_world[:3, 3].astype(np.float32)
        p = self.cloud.points_world @ R.T + t
        z = p[:, 2]
        h, w = cam.height, cam.width
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.floor(cam.fx * p[:, 0] / z + cam.cx + 0.5)
            v = np.floor(cam.fy * p[:, 1] / z + cam.cy + 0.5)
        keep = np.flatnonzero((z > NEAR_M) & (u >= 0) & (u < w) & (v >= 0) & (v < h))
        if len(keep) == 0:
            return 0
        pix = v[keep].astype(np.int64) * w + u[keep].astype(np.int64)
        zk = z[keep]
        zflat = np.full(h * w, np.inf, np.float32)
        np.minimum.at(zflat, pix, zk)  # unbuffered: the nearest depth per pixel, no sort
        win = zk == zflat[pix]  # (of equally near points one is kept, whichever)
        iflat = np.full(h * w, -1, np.int64)
        iflat[pix[win]] = keep[win]
        zbuf, ibuf = zflat.reshape(h, w), iflat.reshape(h, w)  # views: (H, W)
        s = self.point_px
        if s > 1:  # a point at (u, v) also covers (u + dx, v + dy), 0 <= dx, dy < s
            z0, i0 = zbuf.copy(), ibuf.copy()
            for dy in range(s):
                for dx in range(s):
                    if dx == dy == 0:
                        continue
                    zs, is_ = z0[:h - dy, :w - dx], i0[:h - dy, :w - dx]
                    zt, it = zbuf[dy:, dx:], ibuf[dy:, dx:]
                    nearer = zs < zt
                    zt[nearer] = zs[nearer]
                    it[nearer] = is_[nearer]
        vis = np.isfinite(zbuf) & ((model_depth == 0) | (zbuf < model_depth))
        n = int(vis.sum())
        if n == 0:
            return 0
        zv, iv = zbuf[vis], ibuf[vis]
        lo, hi = float(zv.min()), float(zv.max())
        fog = 1.0 - 0.45 * np.clip((zv - lo) / max(hi - lo, 1e-6), 0, 1)
        rgb[vis] = np.clip(self.cloud.colors_rgb[iv].astype(np.float32) * fog[:, None] + 0.5,
                           0, 255).astype(np.uint8)
        return n

    # -- camera path ----------------------------------------------------------------------
    @staticmethod
    def _draw_path(rgb: np.ndarray, cam: CameraIntrinsics, T_view_world: np.ndarray,
                   path: CameraPath, frustum_m: float) -> None:
        R, t = T_view_world[:3, :3], T_view_world[:3, 3]
        pos = path.positions_world @ R.T + t
        if len(pos) > 1:
            joined = ~path.breaks[1:]
            _draw_segments(rgb, _segments_px(pos[:-1][joined], pos[1:][joined], cam),
                           PATH_RGB, 1)
        if path.T_world_cam is None or path.camera is None:
            return
        c = path.camera
        corners_px = np.array([[0, 0], [c.width - 1, 0], [c.width - 1, c.height - 1],
                               [0, c.height - 1]], np.float64)
        corners_cam = np.column_stack([(corners_px[:, 0] - c.cx) / c.fx,
                                       (corners_px[:, 1] - c.cy) / c.fy,
                                       np.ones(4)]) * frustum_m
        T_view_cam = T_view_world @ path.T_world_cam
        apex = T_view_cam[:3, 3]
        corners = corners_cam @ T_view_cam[:3, :3].T + apex
        a = np.vstack([np.tile(apex, (4, 1)), corners])
        b = np.vstack([corners, np.roll(corners, -1, axis=0)])
        _draw_segments(rgb, _segments_px(a, b, cam), FRUSTUM_RGB, 2)


def pick(image: SceneViewImage, u: int, v: int, radius_px: int = 3) -> int | None:
    """The object under pixel (u, v) of `image`, or the nearest one within `radius_px`
    (a click a pixel off a thin object still picks it); None over the background."""
    h, w = image.inst.shape
    if not (0 <= u < w and 0 <= v < h):
        return None
    if image.inst[v, u]:
        return int(image.inst[v, u])
    y0, y1, x0, x1 = max(v - radius_px, 0), min(v + radius_px + 1, h), max(u - radius_px, 0), \
        min(u + radius_px + 1, w)
    sub = image.inst[y0:y1, x0:x1]
    ys, xs = np.nonzero(sub)
    if len(ys) == 0:
        return None
    k = int(np.argmin((ys + y0 - v) ** 2 + (xs + x0 - u) ** 2))
    return int(sub[ys[k], xs[k]])


__all__ = ["CameraPath", "OrbitCamera", "SceneViewImage", "SceneViewRenderer", "camera_path",
           "pick", "scene_up_world"]
