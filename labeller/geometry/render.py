"""Ray-cast object models into a pinhole camera with Open3D's RaycastingScene (CPU).

Objects sit in the world at T_world_obj; a frame is seen from T_world_cam. All objects
share one scene so they occlude each other; `render(..., only=obj_id)` casts one object
alone (for BOP's full masks), typically only inside a region of interest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import transform_points
from labeller.formats.models import ObjectModel
from labeller.geometry.open3d_tensor import tensor


@dataclass
class Render:
    """What one cast saw, over the ROI `(x, y, w, h)` (the whole image by default).

    depth: (h, w) float32 metres along the camera z axis, 0 where no object.
    inst: (h, w) uint16 object id, 0 where no object.
    normals: (h, w, 3) float32 unit normals in the world frame (only if asked).
    prim_ids / prim_uvs: triangle index within its object's mesh and barycentric (u, v)
    (only if asked; for shading).
    """

    roi: tuple[int, int, int, int]
    depth: np.ndarray
    inst: np.ndarray
    normals: np.ndarray | None = None
    prim_ids: np.ndarray | None = None
    prim_uvs: np.ndarray | None = None


def pixel_rays_cam(camera: CameraIntrinsics, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Ray directions (h, w, 3) float32 in the camera frame with z = 1, so t_hit = depth."""
    x, y, w, h = roi if roi is not None else (0, 0, camera.width, camera.height)
    u = (np.arange(x, x + w, dtype=np.float32) - np.float32(camera.cx)) / np.float32(camera.fx)
    v = (np.arange(y, y + h, dtype=np.float32) - np.float32(camera.cy)) / np.float32(camera.fy)
    d = np.empty((h, w, 3), np.float32)
    d[..., 0] = u[None, :]
    d[..., 1] = v[:, None]
    d[..., 2] = 1.0
    return d


class ObjectRenderer:
    """Casts a fixed set of posed object models. Build once, render many frames.

    objects: (obj_id, model, T_world_obj) with obj_id in 1..65535.
    """

    def __init__(self, objects: Sequence[tuple[int, ObjectModel, np.ndarray]]):
        self._objects = [(int(i), m, np.asarray(T, dtype=np.float64)) for i, m, T in objects]
        self._scene, self._geom_to_id = self._build(self._objects)
        self._alone: dict[int, object] = {}
        self._rays_cache: dict[tuple, np.ndarray] = {}

    @property
    def object_ids(self) -> list[int]:
        return [i for i, _, _ in self._objects]

    @staticmethod
    def _build(objects):
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        geom_to_id: list[int] = []
        for obj_id, model, T in objects:
            v = transform_points(T, model.vertices).astype(np.float32)
            gid = scene.add_triangles(tensor(v), tensor(model.triangles.astype(np.uint32)))
            while len(geom_to_id) <= gid:
                geom_to_id.append(0)
            geom_to_id[gid] = obj_id
        return scene, np.asarray(geom_to_id + [0], dtype=np.uint16)

    def _alone_scene(self, obj_id: int):
        if obj_id not in self._alone:
            objs = [o for o in self._objects if o[0] == obj_id]
            if not objs:
                raise KeyError(obj_id)
            self._alone[obj_id] = self._build(objs)
        return self._alone[obj_id]

    def _rays(self, camera: CameraIntrinsics, roi) -> np.ndarray:
        key = (camera, roi)
        r = self._rays_cache.get(key)
        if r is None:
            if len(self._rays_cache) > 64:
                self._rays_cache.clear()
            r = self._rays_cache[key] = pixel_rays_cam(camera, roi)
        return r

    def render(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
               roi: tuple[int, int, int, int] | None = None, only: int | None = None,
               normals: bool = False, hits: bool = False, mask: np.ndarray | None = None) -> Render:
        """Depth and instance ids seen from T_world_cam (4x4), over `roi` (x, y, w, h).

        mask: optional (h, w) bool over the ROI; only those pixels are cast (the others
        read as no hit), so a caller that knows where an object can be saves the rest.
        """

        roi = roi if roi is not None else (0, 0, camera.width, camera.height)
        x, y, w, h = roi
        if w <= 0 or h <= 0:
            z = np.zeros((max(h, 0), max(w, 0)), np.float32)
            return Render(roi, z, z.astype(np.uint16))
        scene, geom_to_id = (self._scene, self._geom_to_id) if only is None else self._alone_scene(only)
        T = np.asarray(T_world_cam, dtype=np.float64)
        d_cam = self._rays(camera, roi)
        if mask is not None:
            mask = np.asarray(mask, bool)
            d_cam = d_cam[mask]
        rays = np.empty((*d_cam.shape[:-1], 6), np.float32)
        rays[..., :3] = T[:3, 3].astype(np.float32)
        rays[..., 3:] = d_cam @ T[:3, :3].T.astype(np.float32)
        ans = scene.cast_rays(tensor(rays), nthreads=0)
        t_hit = ans["t_hit"].numpy()
        gids = ans["geometry_ids"].numpy()
        hit = np.isfinite(t_hit)
        depth = np.where(hit, t_hit, 0.0).astype(np.float32)
        gids = np.where(hit, gids, len(geom_to_id) - 1).astype(np.int64)
        inst = geom_to_id[gids]

        def full(a, fill=0):  # scatter the cast pixels back into the (h, w, ...) ROI
            if mask is None:
                return a
            o = np.full((h, w, *a.shape[1:]), fill, a.dtype)
            o[mask] = a
            return o

        out = Render(roi, full(depth), full(inst))
        if normals:
            out.normals = full(ans["primitive_normals"].numpy())
        if hits:
            out.prim_ids = full(np.where(hit, ans["primitive_ids"].numpy(), 0).astype(np.int64))
            out.prim_uvs = full(ans["primitive_uvs"].numpy())
        return out


def projected_bbox(camera: CameraIntrinsics, T_cam_obj: np.ndarray, model: ObjectModel,
                   margin_px: int = 2) -> tuple[int, int, int, int] | None:
    """Image box (x, y, w, h) clipped to the image that holds the object's projection.

    Uses the corners of the model's axis-aligned box (conservative). None when the
    object is behind the camera or projects outside the image.
    """
    lo, hi = model.vertices.min(0), model.vertices.max(0)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    p = transform_points(T_cam_obj, corners)
    if np.all(p[:, 2] <= 1e-6):
        return None
    if np.any(p[:, 2] <= 1e-6):
        return (0, 0, camera.width, camera.height)  # straddles the camera plane: cast it all
    uv = camera.project(p)
    x0 = max(int(np.floor(uv[:, 0].min())) - margin_px, 0)
    y0 = max(int(np.floor(uv[:, 1].min())) - margin_px, 0)
    x1 = min(int(np.ceil(uv[:, 0].max())) + margin_px, camera.width - 1)
    y1 = min(int(np.ceil(uv[:, 1].max())) + margin_px, camera.height - 1)
    if x1 < x0 or y1 < y0:
        return None
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def mask_bbox(mask: np.ndarray) -> list[int]:
    """BOP box [x, y, w, h] of a boolean mask; [-1, -1, -1, -1] if empty.

    w = x_max - x_min and h = y_max - y_min over the pixel indices, exactly as the BOP
    toolkit's `misc.calc_2d_bbox` (so a one-pixel mask has w = h = 0).
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [-1, -1, -1, -1]
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    return [x0, y0, x1 - x0, y1 - y0]
