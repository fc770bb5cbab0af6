"""Align an object by matching points, LabelFusion style (Qt-free).

A person clicks three or more points on the model (object frame, metres) and the same
points in one or more frames; each frame click is back-projected through that frame's
sensor depth (`labeller.annotate.pose_edit.backproject_pixel`) into the world frame.
The rigid fit (Kabsch / Umeyama without scaling, Open3D's
`TransformationEstimationPointToPoint`) gives T_world_obj, with the residual of each
pair in millimetres. The fit may then be refined by the GUI's ICP
(`labeller.annotate.refine.refine_object`, bounded to 4 cm / 20°) when the residuals say
the clicks were consistent.

Frames and units: model points (N, 3) in the object frame, scene points (N, 3) in the
world frame of `trajectory.txt`, metres; T_world_obj, T_world_cam 4x4 float64;
residuals in millimetres; pixels (u, v) with centres at integer coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from labeller.annotate.pose_edit import backproject_pixel
from labeller.annotate.refine import PosedObject, RefineResult, refine_object
from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.poses import axis_angle_to_matrix, inv_pose, transform_points
from labeller.formats.models import ObjectModel
from labeller.formats.scene import Scene
from labeller.geometry.overlay import model_centre
from labeller.geometry.render import ObjectRenderer

# Three pairs fix a rigid pose; fewer leave it free to turn.
MIN_POINT_PAIRS = 3
# Points whose RMS distance from their best-fit line is below this lie on one line (or
# one spot) for the fit's purpose: the rotation about that line is then unknown. 3 mm
# is a little more than a click's error on a frame at 1 m (about 1 px of 1.5 mm plus
# sensor noise), so a fit the clicks cannot decide is refused.
MIN_OFF_LINE_SPREAD_M = 0.003
# ICP after a fit only when the fit's RMS residual is below this: larger residuals mean a
# mismatched pair, and ICP from a wrong pose would only hide it.
REFINE_MAX_RMS_MM = 15.0
# The model view: focal length in units of the image width (a 53° field of view), the
# share of the shorter image side the model's diameter fills, zoom limits.
MODEL_VIEW_FOCAL = 1.0
MODEL_VIEW_FILL = 0.8
MODEL_VIEW_ZOOM_RANGE = (0.25, 8.0)
# Shading of the model view: ambient + diffuse under a headlight, on a dark background.
MODEL_VIEW_AMBIENT = 0.25
MODEL_VIEW_BACKGROUND_RGB = (45, 45, 48)


# Points as a caller has them: an (N, 3) array, or N points (3,) as arrays or sequences.
Points = np.ndarray | Sequence[np.ndarray] | Sequence[Sequence[float]]


class PointAlignError(BadInput):
    """The clicked points cannot give a pose (too few, mismatched, collinear, no depth)."""


@dataclass(frozen=True)
class PointFit:
    """A rigid fit of model points onto scene points.

    T_world_obj: (4, 4) float64, the pose that maps the model points onto the scene
    points; residuals_mm: (N,) distance of each fitted model point from its scene point.
    """

    T_world_obj: np.ndarray
    residuals_mm: np.ndarray

    @property
    def rms_mm(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_mm ** 2)))

    @property
    def max_mm(self) -> float:
        return float(self.residuals_mm.max())

    def summary(self) -> str:
        """One line: the number of pairs and the residuals."""
        return (f"{len(self.residuals_mm)} pairs, residual RMS {self.rms_mm:.1f} mm, "
                f"max {self.max_mm:.1f} mm")


def off_line_spread_m(points: np.ndarray) -> float:
    """RMS distance (metres) of `points` (N, 3) from their best-fit line (0 for N < 3)."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return 0.0
    s = np.linalg.svd(p - p.mean(0), compute_uv=False)
    return float(np.sqrt((s[1:] ** 2).sum() / len(p)))


def _as_points(points: Points, what: str) -> np.ndarray:
    p = np.asarray(points, np.float64).reshape(-1, 3) if len(points) else np.zeros((0, 3))
    if not np.all(np.isfinite(p)):
        raise PointAlignError(f"a {what} point has NaN or infinite coordinates")
    return p


def check_pairs(model_points_obj: Points, scene_points_world: Points
                ) -> tuple[np.ndarray, np.ndarray]:
    """The two point sets as (N, 3) float64 arrays, or PointAlignError saying why they
    cannot give a pose: different counts, fewer than MIN_POINT_PAIRS pairs, or points
    (on either side) that lie on one line or at one spot."""
    P_obj = _as_points(model_points_obj, "model")
    P_world = _as_points(scene_points_world, "frame")
    if len(P_obj) != len(P_world):
        raise PointAlignError(
            f"{len(P_obj)} model point(s) but {len(P_world)} frame point(s): every model "
            "point needs its matching frame point, clicked in the same order")
    if len(P_obj) < MIN_POINT_PAIRS:
        raise PointAlignError(
            f"{len(P_obj)} point pair(s): at least {MIN_POINT_PAIRS} are needed to fix a "
            "pose")
    for P, what in ((P_obj, "model"), (P_world, "frame")):
        spread = off_line_spread_m(P)
        if spread < MIN_OFF_LINE_SPREAD_M:
            raise PointAlignError(
                f"the {what} points lie on one line (they are {spread * 1000:.1f} mm off "
                f"their best line, less than {MIN_OFF_LINE_SPREAD_M * 1000:.0f} mm): the "
                "turn about that line is unknown; pick points spread over the object, "
                "not along one edge")
    return P_obj, P_world


def solve_point_alignment(model_points_obj: Points, scene_points_world: Points) -> PointFit:
    """The rigid T_world_obj that best maps model points (N, 3, object frame, metres)
    onto their scene points (N, 3, world frame, metres), least squares without scaling
    (Open3D's point-to-point estimation: Umeyama), and the residual of each pair.

    Raises PointAlignError for input that cannot give a pose (`check_pairs`)."""
    import open3d as o3d

    P_obj, P_world = check_pairs(model_points_obj, scene_points_world)
    reg = o3d.pipelines.registration
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(P_obj))
    tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(P_world))
    idx = np.arange(len(P_obj), dtype=np.int32)
    corres = o3d.utility.Vector2iVector(np.stack([idx, idx], axis=1))
    est = reg.TransformationEstimationPointToPoint(with_scaling=False)
    T = np.array(est.compute_transformation(src, tgt, corres), dtype=np.float64)
    residuals_mm = np.linalg.norm(transform_points(T, P_obj) - P_world, axis=1) * 1000.0
    return PointFit(T, residuals_mm)


def scene_point_world(camera: CameraIntrinsics, T_world_cam: np.ndarray,
                      depth_m: np.ndarray, u: int, v: int, frame: int | None = None
                      ) -> np.ndarray:
    """The sensor's surface point (3,) in the world frame (metres) at pixel (u, v) of a
    frame seen from T_world_cam, from its depth (H, W) metres (the median of the valid
    pixels near the click, as click-to-place reads it). PointAlignError when the pixel
    is outside the image or has no depth there."""
    h, w = depth_m.shape
    where = f"pixel ({u}, {v})" + ("" if frame is None else f" of frame {frame}")
    if not (0 <= u < w and 0 <= v < h):
        raise PointAlignError(f"{where} is outside the {w}x{h} image")
    p_cam = backproject_pixel(camera, depth_m, int(u), int(v))
    if p_cam is None:
        raise PointAlignError(f"{where} has no depth: click a point the sensor measured")
    return transform_points(np.asarray(T_world_cam, np.float64), p_cam[None])[0]


def refine_fit(scene: Scene, objects: Sequence[PosedObject], obj_id: int,
               fit: PointFit, frames: Sequence[int]) -> RefineResult:
    """ICP of object `obj_id`, starting from the fitted pose, against the depth of
    `frames` (the existing refine path, bounded to its 4 cm / 20°). Skipped (pose None,
    reason given) when the fit's RMS residual exceeds REFINE_MAX_RMS_MM."""
    if fit.rms_mm > REFINE_MAX_RMS_MM:
        return RefineResult(None, float("nan"), float("nan"),
                            reason=f"not refined: the points fit only to {fit.rms_mm:.1f} mm "
                                   f"RMS (over {REFINE_MAX_RMS_MM:.0f} mm: a pair is "
                                   "probably mismatched)")
    objs = [PosedObject(o.obj_id, o.model_path, o.class_name,
                        fit.T_world_obj if o.obj_id == obj_id else o.T_world_obj)
            for o in objects]
    return refine_object(scene, objs, obj_id, list(frames), "depth")


# -- the model view: the model alone, seen from an orbit camera ---------------------------
@dataclass(frozen=True)
class ModelViewCamera:
    """An orbit camera looking at a model's centre, for picking points on the model.

    R_vcam_obj: (3, 3) how the model is turned as this camera sees it; distance_m: from
    the camera to the model's centre (metres); centre_obj: (3,) the model's centre,
    object frame (metres); the camera is OpenCV (x right, y down, z forward), width x
    height pixels, focal length f_px.
    """

    width: int
    height: int
    f_px: float
    R_vcam_obj: np.ndarray
    distance_m: float
    centre_obj: np.ndarray
    base_distance_m: float

    @classmethod
    def facing(cls, model: ObjectModel, R_cam_obj: np.ndarray, width: int, height: int
               ) -> ModelViewCamera:
        """The model turned as a frame's camera sees it (R_cam_obj), filling the view."""
        f = MODEL_VIEW_FOCAL * width
        d = max(model.diameter_m, 1e-3) * f / (MODEL_VIEW_FILL * min(width, height))
        return cls(int(width), int(height), float(f), np.array(R_cam_obj, np.float64),
                   float(d), model_centre(model), float(d))

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics(self.width, self.height, self.f_px, self.f_px,
                                (self.width - 1) / 2.0, (self.height - 1) / 2.0)

    @property
    def T_vcam_obj(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.R_vcam_obj
        T[:3, 3] = np.array([0.0, 0.0, self.distance_m]) - self.R_vcam_obj @ self.centre_obj
        return T

    def orbit(self, du: float, dv: float, deg_per_px: float = 0.5) -> ModelViewCamera:
        """Turned as by a trackball drag of (du, dv) pixels: dragging right turns the
        side facing the camera to the right (about the camera's y), down turns it down."""
        ang_y, ang_x = -np.radians(du * deg_per_px), np.radians(dv * deg_per_px)
        angle = float(np.hypot(ang_x, ang_y))
        if angle == 0.0:
            return self
        R = axis_angle_to_matrix(np.array([ang_x, ang_y, 0.0]) / angle, angle)
        return replace(self, R_vcam_obj=R @ self.R_vcam_obj)

    def zoomed(self, factor: float) -> ModelViewCamera:
        """Closer (factor > 1) or farther, within MODEL_VIEW_ZOOM_RANGE of the start."""
        lo, hi = MODEL_VIEW_ZOOM_RANGE
        zoom = min(max(self.base_distance_m / self.distance_m * factor, lo), hi)
        return replace(self, distance_m=self.base_distance_m / zoom)

    def project(self, P_obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) (u, v) and camera depths (N,) metres of model points (N, 3)."""
        P = transform_points(self.T_vcam_obj, np.asarray(P_obj, np.float64).reshape(-1, 3))
        return self.intrinsics.project(P), P[:, 2]


@dataclass(frozen=True)
class ModelViewImage:
    """The model view drawn: rgb (H, W, 3) uint8 shaded model on the background,
    depth (H, W) float32 metres along the view camera's z (0 where no model)."""

    rgb: np.ndarray
    depth: np.ndarray


def model_caster(model: ObjectModel) -> ObjectRenderer:
    """A ray-casting scene of the model alone at the identity pose (object frame)."""
    return ObjectRenderer([(1, model, np.eye(4))])


def render_model_view(caster: ObjectRenderer, view: ModelViewCamera,
                      color_rgb: tuple[int, int, int]) -> ModelViewImage:
    """The model (cast by `caster`, built with `model_caster`) seen by `view`, shaded in
    `color_rgb` under a headlight (Lambert on the triangles' normals), so its faces and
    orientation read at a glance."""
    cam = view.intrinsics
    T_obj_vcam = inv_pose(view.T_vcam_obj)
    r = caster.render(cam, T_obj_vcam, normals=True)
    hit = r.depth > 0
    rgb = np.empty((cam.height, cam.width, 3), np.uint8)
    rgb[:] = MODEL_VIEW_BACKGROUND_RGB
    if hit.any():
        assert r.normals is not None
        # The view direction of each pixel in the object frame (normals are in it).
        rays = np.stack(np.broadcast_arrays(
            (np.arange(cam.width)[None, :] - cam.cx) / cam.fx,
            (np.arange(cam.height)[:, None] - cam.cy) / cam.fy, np.ones((1, 1))), axis=-1)
        d_obj = rays[hit] @ T_obj_vcam[:3, :3].T
        d_obj /= np.linalg.norm(d_obj, axis=1, keepdims=True)
        lambert = np.abs((r.normals[hit].astype(np.float64) * d_obj).sum(1))
        shade = MODEL_VIEW_AMBIENT + (1.0 - MODEL_VIEW_AMBIENT) * lambert
        base = 0.35 * np.asarray(color_rgb, np.float64) + 0.65 * 200.0
        rgb[hit] = np.clip(shade[:, None] * base[None, :], 0, 255).astype(np.uint8)
    return ModelViewImage(rgb, r.depth)


def pick_model_point(caster: ObjectRenderer, view: ModelViewCamera, u: int, v: int
                     ) -> np.ndarray | None:
    """The model's surface point (3,) in the object frame (metres) under pixel (u, v) of
    the model view (the first hit along its ray), or None when the ray misses."""
    if not (0 <= u < view.width and 0 <= v < view.height):
        return None
    cam = view.intrinsics
    r = caster.render(cam, inv_pose(view.T_vcam_obj), roi=(int(u), int(v), 1, 1))
    z = float(r.depth[0, 0])
    if z <= 0:
        return None
    p_vcam = cam.backproject(u, v, z).reshape(1, 3)
    return transform_points(inv_pose(view.T_vcam_obj), p_vcam)[0]
