"""Object overlays for the annotation GUI (Qt-free): render, composite, false colour.

Rendering: every object is cast alone, in its own model frame, inside the box its model
projects to (`labeller.geometry.render.ObjectRenderer` built once per mesh at the identity pose,
seen from `T_obj_cam = inv(T_world_obj) @ T_world_cam`), and the casts are merged with a
z-buffer. Moving an object therefore never rebuilds a ray-casting scene, objects that did
not move are reused from the previous render, and a drag costs one small cast. The
preview used while dragging casts at half resolution (a quarter of the rays) and is
scaled back up. Results are numpy images (RGBA uint8) that any toolkit can show.

Styles (`OverlayStyle.mode`): "silhouette" fills each object in its colour with an
outline; "textured" draws the model's own colours (texture, vertex colours or a flat
colour; `labeller.geometry.textured_render`) with headlight shading, so that which way an
object faces shows; "outline" draws the outlines alone. `OverlayStyle.axes` adds each
object's axes (x red, y green, z blue) from its model origin.

The geometry of editing a pose lives in `labeller.annotate.pose_edit`.

Frames and units: T_world_obj, T_world_cam are 4x4 float64 (metres); camera frame is
OpenCV (x right, y down, z forward); pixel (u, v) has its centre at integer coordinates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import ModelError
from labeller.core.poses import inv_pose, transform_points
from labeller.formats.models import ObjectModel
from labeller.geometry.render import ObjectRenderer, projected_bbox
from labeller.geometry.textured_render import TexturedModel, colour_cast, load_textured_model

log = logging.getLogger(__name__)

# The preview shown while dragging casts at this fraction of the image size (both axes).
PREVIEW_SCALE = 0.5
# Overlay styles, in the order the GUI cycles through them.
OVERLAY_MODES = ("textured", "silhouette", "outline")
# Object axes: x, y, z in red, green, blue (RGB), each half the model's largest extent.
AXIS_RGB = ((230, 40, 40), (40, 200, 40), (50, 90, 255))
AXIS_LENGTH_OF_EXTENT = 0.5


@dataclass(frozen=True)
class OverlayObject:
    """One object to draw: id (1..65535), its mesh, T_world_obj (4x4) and colour (RGB)."""

    obj_id: int
    model: ObjectModel
    T_world_obj: np.ndarray
    color_rgb: tuple[int, int, int]


@dataclass(frozen=True)
class OverlayStyle:
    """opacity: alpha of the filled silhouettes or textured models (0..1); outlines are
    opaque. mode: one of OVERLAY_MODES; axes: draw every object's axes."""

    opacity: float = 0.45
    outline: bool = True
    outline_px: int = 1
    selected_outline_px: int = 2
    selected_rgb: tuple[int, int, int] = (255, 255, 255)
    mode: str = "silhouette"
    axes: bool = False
    axes_px: int = 2

    def __post_init__(self) -> None:
        if self.mode not in OVERLAY_MODES:
            raise ValueError(f"overlay mode {self.mode!r} is not one of {', '.join(OVERLAY_MODES)}")


def next_overlay_mode(mode: str) -> str:
    """The style after `mode` in OVERLAY_MODES (cyclic)."""
    return OVERLAY_MODES[(OVERLAY_MODES.index(mode) + 1) % len(OVERLAY_MODES)]


@dataclass
class OverlayResult:
    """One rendered overlay at the camera's full resolution.

    rgba: (H, W, 4) uint8 straight (non-premultiplied) alpha; inst: (H, W) uint16 object
    ids (0 = none); depth: (H, W) float32 metres along camera z (0 = none); preview: True
    when cast at PREVIEW_SCALE and scaled up.
    """

    rgba: np.ndarray
    inst: np.ndarray
    depth: np.ndarray
    preview: bool = False
    casts: int = 0  # objects actually cast (the rest came from the cache)


@dataclass
class _Cast:
    key: tuple
    roi: tuple[int, int, int, int]
    depth: np.ndarray  # (h, w) float32, 0 where the object is not hit
    rgb: np.ndarray | None = None  # (h, w, 3) uint8 shaded colours (textured casts only)


def model_centre(model: ObjectModel) -> np.ndarray:
    """Centre of the model's axis-aligned bounding box (3,), model frame, metres."""
    return (model.vertices.min(0) + model.vertices.max(0)) / 2.0


@dataclass
class OverlayRenderer:
    """Casts posed models into frames; keeps per-mesh casters and the last casts.

    Not thread-safe: use one renderer per thread (the GUI uses one worker at a time).
    """

    max_cached_models: int = 64
    _casters: dict[Path, tuple[ObjectModel, ObjectRenderer]] = field(default_factory=dict)
    _last: dict[tuple[int, bool], _Cast] = field(default_factory=dict)
    _colours: dict[tuple[Path, int], TexturedModel] = field(default_factory=dict)

    def textured_model(self, model: ObjectModel) -> TexturedModel:
        """`model` with its colours (loaded once per mesh); a model whose file cannot be
        read with colours, or that does not match the file, gets a flat grey."""
        key = (model.path, len(model.triangles))
        hit = self._colours.get(key)
        if hit is not None:
            return hit
        try:
            tm = load_textured_model(model.path)
            if (len(tm.geometry.triangles) != len(model.triangles)
                    or len(tm.geometry.vertices) != len(model.vertices)):
                log.info("%s changed since it was loaded; drawn in a flat colour", model.path)
                tm = TexturedModel(model)
        except (ModelError, OSError) as exc:
            log.info("%s: no colours (%s); drawn in a flat colour", model.path, exc)
            tm = TexturedModel(model)
        if len(self._colours) >= self.max_cached_models:
            self._colours.clear()
        self._colours[key] = tm
        return tm

    def caster(self, model: ObjectModel) -> ObjectRenderer:
        """A renderer holding `model` alone at the identity pose (built once per mesh)."""
        hit = self._casters.get(model.path)
        if hit is not None and hit[0] is model:
            return hit[1]
        if len(self._casters) >= self.max_cached_models:
            self._casters.clear()
        r = ObjectRenderer([(1, model, np.eye(4))])
        self._casters[model.path] = (model, r)
        return r

    def _cast_one(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
                  obj: OverlayObject, preview: bool, textured: bool = False
                  ) -> tuple[_Cast | None, bool]:
        """(the object's cast, whether it was cast now rather than reused)."""
        T_obj_cam = inv_pose(obj.T_world_obj) @ T_world_cam
        key = (str(obj.model.path), len(obj.model.vertices), camera, T_obj_cam.tobytes(),
               textured)
        last = self._last.get((obj.obj_id, preview))
        if last is not None and last.key == key:
            return last, False
        roi = projected_bbox(camera, inv_pose(T_obj_cam), obj.model)
        if roi is None:
            self._last.pop((obj.obj_id, preview), None)
            return None, False
        if not textured:
            r = self.caster(obj.model).render(camera, T_obj_cam, roi=roi)
            c = _Cast(key, roi, r.depth)
        else:
            r = self.caster(obj.model).render(camera, T_obj_cam, roi=roi, normals=True, hits=True)
            tm = self.textured_model(obj.model)
            if not tm.has_texture and tm.vertex_rgb is None:
                tm = tm.with_flat_colour(obj.color_rgb)
            # The caster holds the model at the identity: its scene frame is the model's.
            tr = colour_cast(r, {1: tm}, camera, T_obj_cam)
            c = _Cast(key, roi, r.depth, tr.shaded_rgb8())
        self._last[(obj.obj_id, preview)] = c
        return c, True

    def cast(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
             objects: Sequence[OverlayObject], preview: bool = False
             ) -> tuple[np.ndarray, np.ndarray, int]:
        """Z-buffered depth (H, W) float32 metres and ids (H, W) uint16 of `objects`.

        Returns (depth, inst, number of objects actually cast). With `preview` the cast
        runs at PREVIEW_SCALE of the camera's size and is NOT scaled up here.
        """
        depth, inst, _, n_cast = self._merge(camera, T_world_cam, objects, preview, False)
        return depth, inst, n_cast

    def _merge(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
               objects: Sequence[OverlayObject], preview: bool, textured: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        cam = camera.scaled(PREVIEW_SCALE) if preview else camera
        depth = np.zeros((cam.height, cam.width), np.float32)
        inst = np.zeros((cam.height, cam.width), np.uint16)
        rgb = np.zeros((cam.height, cam.width, 3), np.uint8) if textured else None
        n_cast = 0
        keep = {(o.obj_id, preview) for o in objects}
        for k in [k for k in self._last if k[1] == preview and k not in keep]:
            del self._last[k]
        for obj in objects:
            c, fresh = self._cast_one(cam, T_world_cam, obj, preview, textured)
            if c is None:
                continue
            n_cast += fresh
            x, y, w, h = c.roi
            zd = depth[y:y + h, x:x + w]
            zi = inst[y:y + h, x:x + w]
            take = (c.depth > 0) & ((zd == 0) | (c.depth < zd))
            zd[take] = c.depth[take]
            zi[take] = obj.obj_id
            if rgb is not None and c.rgb is not None:
                rgb[y:y + h, x:x + w][take] = c.rgb[take]
        return depth, inst, rgb, n_cast

    def render(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
               objects: Sequence[OverlayObject], selected: int | None = None,
               style: OverlayStyle = OverlayStyle(), preview: bool = False) -> OverlayResult:
        """`objects` seen from T_world_cam, composed into an RGBA overlay in `style`."""
        textured = style.mode == "textured"
        depth, inst, rgb, n = self._merge(camera, T_world_cam, objects, preview, textured)
        if preview:
            size = (camera.width, camera.height)
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
            inst = cv2.resize(inst, size, interpolation=cv2.INTER_NEAREST)
            if rgb is not None:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)
        colors = {o.obj_id: o.color_rgb for o in objects}
        if style.mode == "silhouette":
            rgba = compose_overlay(inst, colors, selected, style)
        else:
            # Outlines alone (the fill fully transparent), then the models' colours inside.
            lines = replace(style, opacity=0.0, outline=True)
            rgba = compose_overlay(inst, colors, selected, lines)
            if rgb is not None:
                inside = (inst > 0) & (rgba[..., 3] == 0)
                rgba[..., :3][inside] = rgb[inside]
                rgba[..., 3][inside] = int(round(np.clip(style.opacity, 0.0, 1.0) * 255))
        if style.axes:
            draw_object_axes(rgba, camera, T_world_cam, objects, style.axes_px)
        return OverlayResult(rgba, inst, depth, preview, n)


def axis_points_px(camera: CameraIntrinsics, T_cam_obj: np.ndarray, length_m: float
                   ) -> np.ndarray | None:
    """(4, 2) float64 pixels of the model origin and the ends of its x, y, z axes
    (`length_m` metres along each); None when the origin or an end is not in front of
    the camera (z <= 1 mm)."""
    pts = transform_points(T_cam_obj, np.vstack([np.zeros(3), np.eye(3) * length_m]))
    if np.any(pts[:, 2] <= 1e-3):
        return None
    return camera.project(pts)


def axis_length_m(model: ObjectModel) -> float:
    """How long the drawn axes of `model` are: AXIS_LENGTH_OF_EXTENT of its largest extent."""
    return float(AXIS_LENGTH_OF_EXTENT * model.extent_m.max())


def draw_object_axes(rgba: np.ndarray, camera: CameraIntrinsics, T_world_cam: np.ndarray,
                     objects: Sequence[OverlayObject], thickness_px: int = 2) -> None:
    """Draw each object's x, y, z axes (AXIS_RGB, opaque) from its model origin into
    `rgba` (H, W, 4) uint8, in place; objects behind the camera are skipped."""
    T_cam_world = inv_pose(T_world_cam)
    h, w = rgba.shape[:2]
    for obj in objects:
        uv = axis_points_px(camera, T_cam_world @ obj.T_world_obj, axis_length_m(obj.model))
        if uv is None:
            continue
        # cv2 draws with integer pixels; a 4-bit fraction keeps the ends in place.
        p = np.rint(np.clip(uv, -4 * max(w, h), 4 * max(w, h)) * 16).astype(np.int64)
        o = (int(p[0, 0]), int(p[0, 1]))
        for k in range(3):
            cv2.line(rgba, o, (int(p[k + 1, 0]), int(p[k + 1, 1])), (*AXIS_RGB[k], 255),
                     thickness_px, cv2.LINE_AA, shift=4)


def _boundary(inst: np.ndarray, px: int) -> np.ndarray:
    """Object pixels (inst > 0) within `px` pixels of a pixel with another id."""
    edge = np.zeros(inst.shape, bool)
    dx = inst[:, 1:] != inst[:, :-1]
    dy = inst[1:, :] != inst[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    if px > 1:
        edge = cv2.dilate(edge.view(np.uint8), np.ones((2 * px - 1, 2 * px - 1), np.uint8)) > 0
    return edge & (inst > 0)


def compose_overlay(inst: np.ndarray, colors: dict[int, tuple[int, int, int]],
                    selected: int | None = None, style: OverlayStyle = OverlayStyle()) -> np.ndarray:
    """RGBA (H, W, 4) uint8: each object's silhouette in its colour at `style.opacity`,
    an opaque outline in the same colour, the selected object outlined in
    `style.selected_rgb`.

    Works inside the box around all objects only, on RGBA packed as uint32 (one gather
    per pixel): this runs on every update of a drag.
    """
    h, w = inst.shape
    out = np.zeros((h, w), np.uint32)
    rows = np.flatnonzero(inst.any(1))
    if rows.size == 0:
        return out.view(np.uint8).reshape(h, w, 4)
    cols = np.flatnonzero(inst[rows[0]:rows[-1] + 1].any(0))
    m = 1 + max(style.outline_px, style.selected_outline_px)  # room for outlines
    y0, y1 = max(rows[0] - m, 0), min(rows[-1] + m + 1, h)
    x0, x1 = max(cols[0] - m, 0), min(cols[-1] + m + 1, w)
    sub = inst[y0:y1, x0:x1]
    n = int(max(max(colors, default=0), int(sub.max()))) + 1
    alpha = int(round(np.clip(style.opacity, 0.0, 1.0) * 255))
    fill = np.zeros((n, 4), np.uint8)
    line = np.zeros((n, 4), np.uint8)
    for i, c in colors.items():
        fill[i] = (*c, alpha)
        line[i] = (*c, 255)
    fill32, line32 = fill.view(np.uint32).ravel(), line.view(np.uint32).ravel()
    rgba = fill32[sub]
    if style.outline:
        edge = _boundary(sub, style.outline_px)
        rgba = np.where(edge, line32[sub], rgba)
        if selected is not None and selected in colors and selected < n:
            sel = sub == selected
            if sel.any():
                e = _boundary(sel.view(np.uint8), style.selected_outline_px)
                white = np.array([(*style.selected_rgb, 255)], np.uint8).view(np.uint32)[0]
                rgba[e] = white
    out[y0:y1, x0:x1] = rgba
    return out.view(np.uint8).reshape(h, w, 4)


def blend(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """rgb (H, W, 3) uint8 with the overlay rgba (H, W, 4) laid over it (for screenshots)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def depth_false_colour(depth_m: np.ndarray, near_m: float | None = None,
                       far_m: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a depth image in metres (turbo colour map; black = no depth).

    The range defaults to the 2nd..98th percentile of the valid depths.
    """
    valid = depth_m > 0
    out = np.zeros((*depth_m.shape, 3), np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth_m[valid], [2, 98]) if near_m is None or far_m is None else (0, 0)
    lo = near_m if near_m is not None else float(lo)
    hi = far_m if far_m is not None else float(hi)
    hi = max(hi, lo + 1e-3)
    x = np.clip((depth_m - lo) / (hi - lo), 0, 1)
    col = cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    out[valid] = col[valid]
    return out
