"""Ray-cast textured object models: albedo, headlight shading, object ids and depth.

`TexturedRenderer` casts posed models with Open3D's RaycastingScene (through
`labeller.geometry.render.ObjectRenderer`) and colours every hit from the model's own
colours: the texture, sampled bilinearly at the hit's UV; the vertex colours,
interpolated over the hit triangle, for a mesh that has no texture (the procedural PLYs of
`labeller synth`); a flat colour for a mesh that has neither. `TexturedModel.colour_source`
says which one a model uses. Shading is Lambert's from a headlight at the camera plus an
ambient term, so the result shows the shape without any scene light.

Texture convention (as in the OBJ file and `labeller.synth`): image row = (1 - v) * H,
column = u * W, texel centres at half-integers; textures larger than MAX_TEXTURE_PX are
reduced (area average) when loaded.

Frames and units: T_world_obj, T_world_cam are 4x4 float64 (metres); depth is metres
along the camera z axis; normals are in the frame the scene was built in (the world).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.formats.models import ObjectModel, load_model, load_textured_mesh
from labeller.geometry.render import ObjectRenderer, Render, pixel_rays_cam

log = logging.getLogger(__name__)

# Objects cover ~50-300 px in a 640x480 frame: a 4096^2 texture would only alias and cost
# 48 MB each; 1024^2 keeps the print legible (and is what `labeller synth` renders from).
MAX_TEXTURE_PX = 1024
# shade = AMBIENT + (1 - AMBIENT) * |cos(angle between the normal and the viewing ray)|:
# faces seen edge-on stay visible, faces seen head-on are at full brightness.
AMBIENT = 0.3
DEFAULT_FLAT_RGB = (160, 160, 160)
# cv2.remap takes maps of at most 32767 columns: hits are sampled in rows of this many.
_REMAP_ROW = 4096


@dataclass(frozen=True, eq=False)
class TexturedModel:
    """A model's geometry and its colours (model frame, metres).

    geometry: the checked mesh (`labeller.formats.models.load_model`, same vertex and
    triangle order); corner_uvs: (F, 3, 2) float32 texture coordinates per triangle
    corner, or None; textures: one (H, W, 3) uint8 RGB image per material (row =
    (1 - v) * H), empty without a texture; material_ids: (F,) int32 texture of each
    triangle, or None for one texture; vertex_rgb: (V, 3) float32 0..1 or None;
    flat_rgb: the colour used when the mesh has neither texture nor vertex colours.
    """

    geometry: ObjectModel
    corner_uvs: np.ndarray | None = None
    textures: tuple[np.ndarray, ...] = ()
    material_ids: np.ndarray | None = None
    vertex_rgb: np.ndarray | None = None
    flat_rgb: tuple[int, int, int] = DEFAULT_FLAT_RGB

    @property
    def path(self) -> Path:
        return self.geometry.path

    @property
    def has_texture(self) -> bool:
        return self.corner_uvs is not None and len(self.textures) > 0

    @property
    def colour_source(self) -> str:
        """'texture', 'vertex colours' or 'flat colour': where the albedo comes from."""
        if self.has_texture:
            return "texture"
        if self.vertex_rgb is not None:
            return "vertex colours"
        return "flat colour"

    def with_flat_colour(self, rgb: tuple[int, int, int]) -> TexturedModel:
        """The same model with another fallback colour (a class colour, say)."""
        r, g, b = (int(c) for c in rgb)
        return replace(self, flat_rgb=(r, g, b))

    def albedo(self, prim_ids: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """(N, 3) float32 RGB 0..1 of N surface points: triangle indices (N,) and Open3D's
        barycentric (u, v) (N, 2), the point being (1 - u - v) p0 + u p1 + v p2."""
        prim_ids = np.asarray(prim_ids, np.int64)
        n = len(prim_ids)
        b = np.asarray(bary, np.float32).reshape(n, 2)
        if n == 0:
            return np.zeros((0, 3), np.float32)
        if self.has_texture:
            assert self.corner_uvs is not None
            c = self.corner_uvs[prim_ids]  # (N, 3, 2)
            uv = c[:, 0] + (c[:, 1] - c[:, 0]) * b[:, :1] + (c[:, 2] - c[:, 0]) * b[:, 1:]
            out = np.empty((n, 3), np.float32)
            if self.material_ids is None or len(self.textures) == 1:
                out[:] = sample_texture(self.textures[0], uv)
            else:
                mat = self.material_ids[prim_ids]
                for k, tex in enumerate(self.textures):
                    sel = mat == k
                    if sel.any():
                        out[sel] = sample_texture(tex, uv[sel])
                out[(mat < 0) | (mat >= len(self.textures))] = np.asarray(self.flat_rgb, np.float32) / 255
            return out
        if self.vertex_rgb is not None:
            corners = self.vertex_rgb[self.geometry.triangles[prim_ids]]  # (N, 3, 3)
            w0 = 1.0 - b[:, 0] - b[:, 1]
            return (corners[:, 0] * w0[:, None] + corners[:, 1] * b[:, :1]
                    + corners[:, 2] * b[:, 1:]).astype(np.float32)
        out = np.empty((n, 3), np.float32)
        out[:] = np.asarray(self.flat_rgb, np.float32) / 255
        return out


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, 3) float32 RGB 0..1: `texture` (H, W, 3) uint8 sampled bilinearly at uv (N, 2)
    (image row = (1 - v) * H; UVs outside [0, 1] read the edge texels)."""
    uv = np.asarray(uv, np.float32).reshape(-1, 2)
    n = len(uv)
    h, w = texture.shape[:2]
    rows = -(-n // _REMAP_ROW)
    mx = np.zeros(rows * _REMAP_ROW, np.float32)
    my = np.zeros(rows * _REMAP_ROW, np.float32)
    mx[:n] = uv[:, 0] * w - 0.5
    my[:n] = (1.0 - uv[:, 1]) * h - 0.5
    s = cv2.remap(texture, mx.reshape(rows, _REMAP_ROW), my.reshape(rows, _REMAP_ROW),
                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return s.reshape(-1, texture.shape[2])[:n, :3].astype(np.float32) * np.float32(1 / 255)


@functools.lru_cache(maxsize=32)
def _load_cached(path_str: str, mtime_ns: int) -> TexturedModel:
    geometry = load_model(path_str)
    mesh = load_textured_mesh(path_str)
    F, V = len(geometry.triangles), len(geometry.vertices)
    if len(mesh.triangles) != F or len(mesh.vertices) != V:
        # Never seen with Open3D 0.20 (both reads keep the file's order); refuse rather
        # than colour the wrong triangles.
        log.warning("%s: textured read has %d/%d vertices/triangles, geometry %d/%d; "
                    "drawing it in a flat colour", path_str, len(mesh.vertices),
                    len(mesh.triangles), V, F)
        return TexturedModel(geometry)
    uvs = np.asarray(mesh.triangle_uvs, np.float32)
    textures: list[np.ndarray] = []
    for t in mesh.textures:
        img = np.asarray(t)
        if img.ndim != 3 or img.size == 0 or img.shape[2] < 3:
            continue
        # Open3D's OBJ reader flips the texture image upside down (OpenGL's rows); flip
        # it back so that, as in the file, image row = (1 - v) * height.
        img = np.ascontiguousarray(img[::-1, :, :3])
        if img.dtype != np.uint8:
            img = np.clip(np.rint(img.astype(np.float32) * (255 if img.dtype.kind == "f" else 1)),
                          0, 255).astype(np.uint8)
        if max(img.shape[:2]) > MAX_TEXTURE_PX:
            s = MAX_TEXTURE_PX / max(img.shape[:2])
            size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
            img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        img.setflags(write=False)
        textures.append(img)
    corner_uvs = None
    material_ids = None
    if textures and len(uvs) == 3 * F:
        corner_uvs = uvs.reshape(F, 3, 2).copy()
        corner_uvs.setflags(write=False)
        mids = np.asarray(mesh.triangle_material_ids, np.int32)
        if len(textures) > 1 and len(mids) == F:
            material_ids = mids.copy()
    elif len(mesh.textures):
        log.info("%s: texture without one UV per triangle corner; not used", path_str)
        textures = []
    vertex_rgb = None
    if mesh.has_vertex_colors():
        vertex_rgb = np.asarray(mesh.vertex_colors, np.float32).copy()
        vertex_rgb.setflags(write=False)
    model = TexturedModel(geometry, corner_uvs, tuple(textures), material_ids, vertex_rgb)
    if not model.has_texture:
        log.info("%s has no texture: drawn in its %s", path_str, model.colour_source)
    return model


def load_textured_model(path: str | os.PathLike) -> TexturedModel:
    """The model at `path` with its colours (ModelError as `load_model` for a bad file).

    Cached per (path, modification time); the geometry is the very `load_model` object,
    so renderers keyed on it are shared.
    """
    path = Path(path)
    if not path.is_file():
        load_model(path)  # raises the one-line ModelError
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


@dataclass
class TexturedRender:
    """One cast over the ROI `(x, y, w, h)` (the whole image by default), all (h, w):

    albedo: (h, w, 3) float32 RGB 0..1 of the model's colours (0 where no object);
    shade: float32 AMBIENT..1 headlight Lambert factor (0 where no object);
    inst: int32 object id (0 = none); depth_m: float32 metres along camera z (0 = none);
    normals: (h, w, 3) float32 unit normals in the world frame (0 where no object).
    """

    roi: tuple[int, int, int, int]
    albedo: np.ndarray
    shade: np.ndarray
    inst: np.ndarray
    depth_m: np.ndarray
    normals: np.ndarray

    def shaded(self) -> np.ndarray:
        """(h, w, 3) float32 RGB 0..1: albedo times shade."""
        return self.albedo * self.shade[..., None]

    def shaded_rgb8(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB of `shaded()`."""
        return np.clip(np.rint(self.shaded() * 255), 0, 255).astype(np.uint8)


def colour_cast(cast: Render, models: Mapping[int, TexturedModel], camera: CameraIntrinsics,
                T_world_cam: np.ndarray) -> TexturedRender:
    """Colour a cast made with `normals=True, hits=True`: `models` maps the cast's object
    ids to their models; T_world_cam (4x4) is the camera the cast was made from, in the
    frame the caster's scene was built in (the world, or the object's frame)."""
    assert cast.normals is not None and cast.prim_ids is not None and cast.prim_uvs is not None
    x, y, w, h = cast.roi
    inst = cast.inst.astype(np.int32)
    hit = inst > 0
    albedo = np.zeros((h, w, 3), np.float32)
    shade = np.zeros((h, w), np.float32)
    normals = np.where(hit[..., None], cast.normals, np.float32(0.0)).astype(np.float32)
    if not hit.any():
        return TexturedRender(cast.roi, albedo, shade, inst, cast.depth, normals)
    R = np.asarray(T_world_cam, np.float64)[:3, :3].astype(np.float32)
    d = pixel_rays_cam(camera, cast.roi)[hit] @ R.T  # viewing rays of the hits, scene frame
    n = normals[hit]
    cos = np.abs(np.einsum("ij,ij->i", n, d)) / np.linalg.norm(d, axis=1)
    shade[hit] = np.float32(AMBIENT) + np.float32(1 - AMBIENT) * cos
    ids = inst[hit]
    prims = cast.prim_ids[hit]
    bary = cast.prim_uvs[hit]
    col = np.zeros((len(ids), 3), np.float32)
    for obj_id in np.unique(ids):
        sel = ids == obj_id
        model = models.get(int(obj_id))
        if model is not None:
            col[sel] = model.albedo(prims[sel], bary[sel])
    albedo[hit] = col
    return TexturedRender(cast.roi, albedo, shade, inst, cast.depth, normals)


class TexturedRenderer:
    """Casts a fixed set of posed, coloured models (they occlude each other); build once,
    render many frames.

    objects: (obj_id, model, T_world_obj (4x4)) with obj_id in 1..65535.
    """

    def __init__(self, objects: Sequence[tuple[int, TexturedModel, np.ndarray]]):
        self._models = {int(i): m for i, m, _ in objects}
        self._caster = ObjectRenderer([(i, m.geometry, T) for i, m, T in objects])

    @property
    def object_ids(self) -> list[int]:
        return self._caster.object_ids

    def render(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
               roi: tuple[int, int, int, int] | None = None, only: int | None = None,
               mask: np.ndarray | None = None) -> TexturedRender:
        """What the camera at T_world_cam (4x4) sees over `roi` (x, y, w, h; the whole
        image by default). only: cast that object alone; mask: (h, w) bool over the ROI,
        only those pixels are cast (see `ObjectRenderer.render`)."""
        cast = self._caster.render(camera, T_world_cam, roi=roi, only=only, normals=True,
                                   hits=True, mask=mask)
        if cast.normals is None:  # an empty ROI: nothing was cast
            x, y, w, h = cast.roi
            z = np.zeros((max(h, 0), max(w, 0)), np.float32)
            return TexturedRender(cast.roi, np.zeros((*z.shape, 3), np.float32), z,
                                  z.astype(np.int32), z, np.zeros((*z.shape, 3), np.float32))
        return colour_cast(cast, self._models, camera, T_world_cam)
