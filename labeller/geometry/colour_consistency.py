"""Colour consistency of a posed, textured model with the frame's colour: flip QA.

Depth cannot see a shape-symmetric object turned 180 degrees (a box, a can): the turned
model covers the same pixels at the same depths. Its print can: render the textured model
(`labeller.geometry.textured_render`) at the label pose and at each turned alternative,
and ask which of them the frame's colour agrees with.

The score (`gradient_correlation`) is the zero-mean normalised cross-correlation of the
*luminance gradients* of the frame and of the model's albedo, over the label's visible
pixels, both smoothed (Gaussian, `ColourSettings.blur_sigma_px`) inside that mask only
(`masked_blur`), so the silhouette's own edge and whatever lies beyond it never count.
Why this measure: a gradient is blind to an offset of brightness, the normalisation to a
gain, and removing the mean gradient to a linear shading ramp across the object, so a
brighter, dimmer or unevenly lit frame scores as well as an evenly lit one. Why luminance,
not each channel: the model's colours (a texture, vertex colours) are not calibrated
against the camera's, while light-dark structure (print, label panels, stripes) survives
both. Why the albedo, not albedo * shade: for a shape-symmetric turn the shading is the
same for both hypotheses, so it adds only common structure that dilutes their
difference. Range -1..1: 1, the frame has the print's edges where the render has them;
0, unrelated.

The decision, per alternative turn S (a half turn the shape allows, `shape_half_turns`),
from s_label = score(frame, render at the label pose), s_turn = score(frame, render at
T_cam_obj @ S) and s_self = score(render at S, render at the label pose), all over the
pixels both renders cover (`decide_turn`):

* undecidable: s_self >= max(s_label, s_turn), the turned render is as consistent with
  the label's render as the frame is with either (the print is itself symmetric under S,
  or too little of it is visible, or the frame is too blurred to tell them apart); or
  max(s_label, s_turn) < min_evidence, the frame looks like neither.
* flagged ("flip suspected"): otherwise, when s_turn - s_label > need, with need =
  max(flip_margin * (1 - s_self), min_gap): the turned model explains the frame clearly
  better than the label, by a margin scaled by how different the two renders are. The
  label is compared with its own turned alternative in this frame, never with a fixed
  threshold on the score tuned on one scene.
* ok: otherwise.

Over several turns: flagged if any turn flags; else undecidable if any turn is (a flip
about that axis would go unseen); else ok. "no texture": the model's albedo has no
luminance structure inside the mask (a plain mesh, one flat colour). Not computed (score
NaN): fewer than `min_pixels` visible pixels.

Only a texture image can flag: a model coloured per vertex (the procedural stand-ins of
`labeller synth`, a scanned mesh without its texture) is scored, but where the rule says
"flagged" its state is undecidable (`coarse_colours`). Vertex colours hold a few samples
per face, not the print, so the frame's print detail does not correlate with them reliably:
on 320x240 synthetic scenes a correct tuna can scored -0.10 against 0.31 for its turn.

Frames: T_cam_obj (4x4) maps model-frame metres into the OpenCV camera frame; turns are
model-frame 4x4 transforms about axes through the centre of the model's bounding box.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.formats.labels.schema import (
    COLOUR_FLAGGED,
    COLOUR_NO_TEXTURE,
    COLOUR_NOT_COMPUTED,
    COLOUR_OK,
    COLOUR_STATE_NAMES,
    COLOUR_UNDECIDABLE,
)
from labeller.geometry.render import ObjectRenderer
from labeller.geometry.textured_render import TexturedModel

# Surface points tested per candidate turn (`shape_half_turns`).
SHAPE_POINTS = 6000
# Squared gradient (luminance 0..1 per pixel) per pixel below which a field counts as flat.
FLAT_ENERGY = 1e-10
# Rec. 601 luma weights (R, G, B): what "luminance" means here.
LUMA_RGB = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class ColourSettings:
    """How the colour check measures and decides (module docstring).

    blur_sigma_px: Gaussian sigma before the gradients (renders carry no detail finer
    than the model's colour resolution; the frame's finer print and noise only add energy
    nothing matches). edge_px: the scored pixels are the visible ones eroded by this much
    (a Sobel 3x3 needs its neighbours). min_pixels: fewer scored pixels: not computed.
    flip_margin, min_gap: a hypothesis wins by more than max(flip_margin * (1 - s_self),
    min_gap). min_evidence: below this, the frame looks like neither hypothesis.
    min_render_contrast: RMS luminance gradient of the albedo (0..1 per pixel) below which
    the model counts as untextured there. shape_tolerance_m: a half turn is one the shape
    allows when 90 % of the turned surface lies within this distance of the original.
    max_pixels: an object with more visible pixels is checked on an image shrunk by the
    smallest whole factor that brings it under this (speed: the renders are ray casts; a
    large object keeps plenty of print at the lower resolution).
    """

    blur_sigma_px: float = 1.5
    edge_px: int = 1
    min_pixels: int = 150
    flip_margin: float = 0.25
    min_gap: float = 0.1
    min_evidence: float = 0.15
    min_render_contrast: float = 2e-3
    shape_tolerance_m: float = 0.006
    max_pixels: int = 4000


DEFAULT_SETTINGS = ColourSettings()


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(h, w) float32 luminance in 0..1 of an (h, w, 3) RGB image (uint8 0..255 or float 0..1)."""
    a = np.asarray(rgb)
    scale = 1.0 / 255.0 if a.dtype == np.uint8 else 1.0
    return (a.astype(np.float32) @ LUMA_RGB) * np.float32(scale)


def masked_blur(gray: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """(h, w) float32 Gaussian blur of `gray` that uses only the pixels in `mask` (h, w)
    bool (normalised convolution: blur(gray * mask) / blur(mask)); 0 outside the mask.

    Why: what lies outside the visible mask (the background in the frame, nothing in the
    render, an occluder) must not make edges inside it that one image has and the other not.
    """
    m = np.asarray(mask, np.float32)
    g = np.asarray(gray, np.float32) * m
    if sigma_px <= 0:
        return g
    num = cv2.GaussianBlur(g, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(m, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    return np.where(m > 0, num / np.maximum(den, np.float32(1e-6)), np.float32(0)).astype(np.float32)


def luminance_gradients(gray: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """(h, w, 2) float32 (d/dx, d/dy) per pixel of a (h, w) luminance image smoothed
    inside `mask` (`masked_blur`); valid where the 3x3 neighbourhood is in the mask."""
    g = masked_blur(gray, mask, sigma_px)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    return np.stack([gx, gy], -1)


def gradient_correlation(grad_a: np.ndarray, grad_b: np.ndarray, mask: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of two gradient fields (h, w, 2) over `mask`
    (h, w) bool: sum((a - mean a) . (b - mean b)) / sqrt(sum |a - mean a|² sum |b - mean b|²).
    NaN when the mask is empty or either field is flat there."""
    m = np.asarray(mask, bool)
    return _correlation(_centred(grad_a[m]), _centred(grad_b[m]))


def _centred(v: np.ndarray) -> np.ndarray:
    """(2N,) float32: gradient vectors (N, 2) minus their mean, flattened."""
    if len(v) == 0:
        return np.zeros(0, np.float32)
    return (v - v.mean(0, dtype=np.float64).astype(np.float32)).reshape(-1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two centred, flattened gradient fields (`_centred`)."""
    if len(a) == 0:
        return float("nan")
    ea, eb = float(a @ a), float(b @ b)
    # Below FLAT_ENERGY per pixel a field is float rounding of a flat image, not structure.
    if min(ea, eb) <= FLAT_ENERGY * len(a) / 2:
        return float("nan")
    return float(a @ b) / float(np.sqrt(ea * eb))


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """`mask` (h, w) bool eroded by a (2 px + 1) square, so that every 3x3 Sobel window of
    a kept pixel (px >= 1) lies in the mask; pixels outside the array count as outside."""
    v = np.asarray(mask, np.uint8)
    if px <= 0:
        return v.astype(bool)
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.erode(v, k, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


@dataclass(frozen=True)
class TurnEvidence:
    """One alternative turn, all over the pixels both renders cover: s_label =
    score(frame, label render), s_turn = score(frame, turned render), s_self =
    score(turned render, label render); state: COLOUR_OK, COLOUR_FLAGGED or
    COLOUR_UNDECIDABLE."""

    s_label: float
    s_turn: float
    s_self: float
    state: int


@dataclass(frozen=True)
class ColourResult:
    """The colour check of one label in one frame.

    score: s_label (NaN when not computed or no texture); turned_score: the best s_turn
    over the alternatives (NaN when none); state: a labels.h5 `colour_state` code
    (`labeller.formats.labels.COLOUR_STATE_NAMES`, one table for both); turns: the
    evidence per alternative, in `shape_half_turns` order.
    """

    score: float
    turned_score: float
    state: int
    turns: tuple[TurnEvidence, ...] = ()

    @property
    def state_name(self) -> str:
        return COLOUR_STATE_NAMES[self.state]


NOT_COMPUTED_RESULT = ColourResult(float("nan"), float("nan"), COLOUR_NOT_COMPUTED)
NO_TEXTURE_RESULT = ColourResult(float("nan"), float("nan"), COLOUR_NO_TEXTURE)


def decide_turn(s_label: float, s_turn: float, s_self: float,
                settings: ColourSettings = DEFAULT_SETTINGS) -> int:
    """The state one alternative turn gives (the rule: module docstring)."""
    if not (np.isfinite(s_turn) and np.isfinite(s_label) and np.isfinite(s_self)):
        return COLOUR_UNDECIDABLE
    best = max(s_label, s_turn)
    if best < settings.min_evidence or s_self >= best:
        return COLOUR_UNDECIDABLE
    need = max(settings.flip_margin * (1.0 - s_self), settings.min_gap)
    return COLOUR_FLAGGED if s_turn - s_label > need else COLOUR_OK


def combine(s_label: float, turns: Sequence[TurnEvidence]) -> ColourResult:
    """One result from the per-turn evidence: flagged if any turn flags, else undecidable
    if any is, else ok (also ok when the shape allows no turn at all)."""
    states = [t.state for t in turns]
    state = (COLOUR_FLAGGED if COLOUR_FLAGGED in states else
             COLOUR_UNDECIDABLE if COLOUR_UNDECIDABLE in states else COLOUR_OK)
    alt = [t.s_turn for t in turns if np.isfinite(t.s_turn)]
    return ColourResult(float(s_label), max(alt) if alt else float("nan"), state, tuple(turns))


def colour_check(frame_rgb: np.ndarray, render_label: AlbedoRender,
                 render_turned: Sequence[AlbedoRender], visible: np.ndarray,
                 settings: ColourSettings = DEFAULT_SETTINGS) -> ColourResult:
    """Score a label and decide its colour state, all over one ROI (h, w).

    frame_rgb: (h, w, 3) uint8 RGB of the frame; render_label: the albedo render of the
    model alone at the label pose; render_turned: the same at each alternative turn;
    visible: (h, w) bool, the label's visible pixels (depth-check classes AGREE /
    MODEL_IN_FRONT / NO_DEPTH). Each turn is compared over the pixels both renders cover
    (a nearly, not exactly, symmetric shape leaves a few out).
    """
    support = np.asarray(visible, bool) & (render_label.inst > 0)
    mask = erode(support, settings.edge_px)
    if int(mask.sum()) < settings.min_pixels:
        return NOT_COMPUTED_RESULT
    sig = settings.blur_sigma_px
    y_label = luminance(render_label.albedo)
    g_label = luminance_gradients(y_label, support, sig)
    if float(np.sqrt((g_label[mask] ** 2).sum(-1).mean())) < settings.min_render_contrast:
        return NO_TEXTURE_RESULT
    y_frame = luminance(frame_rgb)
    g_frame = luminance_gradients(y_frame, support, sig)
    f_vec, l_vec = _centred(g_frame[mask]), _centred(g_label[mask])
    s_label = _correlation(f_vec, l_vec)
    if not np.isfinite(s_label):  # a flat frame there: nothing to compare
        return ColourResult(float("nan"), float("nan"), COLOUR_UNDECIDABLE)
    turns = []
    for r in render_turned:
        both = support & (r.inst > 0)
        m_k = erode(both, settings.edge_px)
        if int(m_k.sum()) < settings.min_pixels:
            turns.append(TurnEvidence(float("nan"), float("nan"), float("nan"), COLOUR_UNDECIDABLE))
            continue
        if int(both.sum()) == int(support.sum()):
            fv, lv, s_l, m_k = f_vec, l_vec, s_label, mask
        else:
            fv = _centred(luminance_gradients(y_frame, both, sig)[m_k])
            lv = _centred(luminance_gradients(y_label, both, sig)[m_k])
            s_l = _correlation(fv, lv)
        tv = _centred(luminance_gradients(luminance(r.albedo), both, sig)[m_k])
        s_turn = _correlation(fv, tv)
        s_self = _correlation(tv, lv)
        turns.append(TurnEvidence(s_l, s_turn, s_self, decide_turn(s_l, s_turn, s_self, settings)))
    return combine(s_label, turns)


@dataclass
class AlbedoRender:
    """One cast of the models' colours over the ROI `(x, y, w, h)`: albedo (h, w, 3)
    float32 RGB 0..1 (0 where no object), inst (h, w) int32 object id (0 = none)."""

    roi: tuple[int, int, int, int]
    albedo: np.ndarray
    inst: np.ndarray


class AlbedoCaster:
    """The models' colours at the hit points, without shading: the check compares albedo
    only, and skipping normals and the headlight (what `TexturedRenderer` adds for display)
    saves a third of its cost. Casting is `labeller.geometry.render.ObjectRenderer`'s, the
    colour lookup `TexturedModel.albedo`'s (textures, vertex colours or a flat colour).

    objects: (obj_id, TexturedModel, T_world_obj (4x4)).
    """

    def __init__(self, objects: Sequence[tuple[int, TexturedModel, np.ndarray]]):
        self._models = {int(i): m for i, m, _ in objects}
        self._caster = ObjectRenderer([(i, m.geometry, T) for i, m, T in objects])

    def render(self, camera: CameraIntrinsics, T_world_cam: np.ndarray,
               roi: tuple[int, int, int, int], only: int, mask: np.ndarray | None = None
               ) -> AlbedoRender:
        """Object `only` alone seen from T_world_cam over `roi`; only `mask` (h, w) pixels cast."""
        c = self._caster.render(camera, T_world_cam, roi=roi, only=only, hits=True, mask=mask)
        inst = c.inst.astype(np.int32)
        albedo = np.zeros((*inst.shape, 3), np.float32)
        hit = inst > 0
        if hit.any() and c.prim_ids is not None and c.prim_uvs is not None:
            albedo[hit] = self._models[int(only)].albedo(c.prim_ids[hit], c.prim_uvs[hit])
        return AlbedoRender(c.roi, albedo, inst)


def render_hypotheses(caster: AlbedoCaster, camera: CameraIntrinsics, obj_id: int,
                      T_world_obj: np.ndarray, T_cam_obj: np.ndarray,
                      turns: Sequence[np.ndarray], roi: tuple[int, int, int, int],
                      cast_mask: np.ndarray) -> list[AlbedoRender]:
    """Albedo renders over `roi` of object `obj_id` at T_cam_obj, then at T_cam_obj @ S for
    each model-frame turn S (4x4).

    The caster's objects stay where it was built (T_world_obj); seeing the object at
    T_cam_obj' is seeing it from T_world_cam = T_world_obj @ inv(T_cam_obj'). Only the
    pixels of `cast_mask` (h, w) bool are cast.
    """
    from labeller.core.poses import inv_pose

    T0 = np.asarray(T_cam_obj, np.float64)
    Tw = np.asarray(T_world_obj, np.float64)
    return [caster.render(camera, Tw @ inv_pose(T), roi, obj_id, cast_mask)
            for T in [T0] + [T0 @ S for S in turns]]


def scaled_camera(camera: CameraIntrinsics, f: int) -> CameraIntrinsics:
    """The camera whose pixel (u, v) covers pixels f*u .. f*u + f - 1 (and rows alike) of
    `camera`: focal lengths / f; centre (c - (f - 1) / 2) / f (pixel centres at integers)."""
    if f == 1:
        return camera
    return CameraIntrinsics(camera.width // f, camera.height // f, camera.fx / f, camera.fy / f,
                            (camera.cx - (f - 1) / 2) / f, (camera.cy - (f - 1) / 2) / f,
                            camera.depth_scale)


def _shrink(camera: CameraIntrinsics, roi: tuple[int, int, int, int], visible: np.ndarray,
            frame_rgb: np.ndarray, f: int
            ) -> tuple[CameraIntrinsics, tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """(camera, roi, visible (h, w) bool, frame crop (h, w, 3) uint8) shrunk by f (area
    average; a shrunk pixel is visible when at least half of its pixels are)."""
    x, y, w, h = roi
    cam = scaled_camera(camera, f)
    X0, Y0 = x // f, y // f
    X1, Y1 = min(-(-(x + w) // f), cam.width), min(-(-(y + h) // f), cam.height)
    if X1 <= X0 or Y1 <= Y0:
        return cam, (X0, Y0, 0, 0), np.zeros((0, 0), bool), np.zeros((0, 0, 3), np.uint8)
    big = np.zeros(((Y1 - Y0) * f, (X1 - X0) * f), np.float32)
    oy, ox = y - Y0 * f, x - X0 * f
    hh, ww = min(h, big.shape[0] - oy), min(w, big.shape[1] - ox)
    big[oy:oy + hh, ox:ox + ww] = np.asarray(visible, np.float32)[:hh, :ww]
    size = (X1 - X0, Y1 - Y0)
    vis = cv2.resize(big, size, interpolation=cv2.INTER_AREA) >= 0.5
    crop = frame_rgb[Y0 * f:Y1 * f, X0 * f:X1 * f]
    rgb = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA)
    return cam, (X0, Y0, X1 - X0, Y1 - Y0), vis, rgb


def coarse_colours(result: ColourResult) -> ColourResult:
    """`result` for a model without a texture image: a "flagged" verdict is undecidable
    (the module docstring says why); scores are kept."""
    if result.state != COLOUR_FLAGGED:
        return result
    return ColourResult(result.score, result.turned_score, COLOUR_UNDECIDABLE, result.turns)


def check_label(caster: AlbedoCaster, camera: CameraIntrinsics, obj_id: int,
                T_world_obj: np.ndarray, T_cam_obj: np.ndarray, turns: Sequence[np.ndarray],
                roi: tuple[int, int, int, int], visible: np.ndarray, frame_rgb: np.ndarray,
                settings: ColourSettings = DEFAULT_SETTINGS) -> ColourResult:
    """The colour check of one label: render it and its turns, compare with the frame.

    caster: holds object `obj_id` at T_world_obj (4x4); T_cam_obj: the label (4x4);
    turns: model-frame half turns (`model_half_turns`); roi: (x, y, w, h) inside the
    image; visible: (h, w) bool over the roi; frame_rgb: (H, W, 3) uint8, the whole frame.
    A large object is checked on a shrunk image (`ColourSettings.max_pixels`).
    """
    n = int(np.count_nonzero(visible))
    if n < settings.min_pixels:
        return NOT_COMPUTED_RESULT
    f = max(1, int(np.ceil(np.sqrt(n / settings.max_pixels))))
    if f > 1:
        cam, roi, visible, crop = _shrink(camera, roi, visible, frame_rgb, f)
        if not visible.any():
            return NOT_COMPUTED_RESULT
    else:
        x, y, w, h = roi
        cam, crop = camera, frame_rgb[y:y + h, x:x + w]
    renders = render_hypotheses(caster, cam, obj_id, T_world_obj, T_cam_obj, turns, roi,
                                visible)
    return colour_check(crop, renders[0], renders[1:], visible, settings)


# --- the turns a shape allows ------------------------------------------------------------

def half_turn_about(axis_obj: Sequence[float] | np.ndarray, centre_obj: np.ndarray) -> np.ndarray:
    """4x4 model-frame transform: 180 degrees about `axis_obj` through `centre_obj` (3,)."""
    a = np.asarray(axis_obj, np.float64)
    a = a / np.linalg.norm(a)
    R = 2.0 * np.outer(a, a) - np.eye(3)  # Rodrigues at pi
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = centre_obj - R @ centre_obj
    return T


def shape_half_turns(vertices: np.ndarray, triangles: np.ndarray,
                     symmetry_axis: Sequence[float] | None = None,
                     tolerance_m: float = DEFAULT_SETTINGS.shape_tolerance_m,
                     ) -> tuple[np.ndarray, ...]:
    """The 180-degree turns the depth cannot tell from the model itself: (K, 4, 4).

    Candidates: half turns about the model's x, y and z axes (and `symmetry_axis`, the
    class's continuous symmetry, if it is none of them) through the centre of its bounding
    box. Kept: those after which 90 % of surface points lie within `tolerance_m` of the
    original surface (Open3D RaycastingScene.compute_distance). vertices (V, 3) metres,
    triangles (F, 3).
    """
    import open3d as o3d

    from labeller.geometry.open3d_tensor import tensor

    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    centre = 0.5 * (v.min(0) + v.max(0))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(tensor(v.astype(np.float32)), tensor(f.astype(np.uint32)))
    # Surface points: triangle centroids and vertices (cheap, cover large faces too), at
    # most SHAPE_POINTS of them, evenly strided (a YCB mesh has ~50,000).
    pts = np.concatenate([v, v[f].mean(1)])
    pts = pts[::max(1, len(pts) // SHAPE_POINTS)]
    axes: list[np.ndarray] = [np.eye(3)[k] for k in range(3)]
    if symmetry_axis is not None:
        s = np.asarray(symmetry_axis, np.float64)
        s = s / np.linalg.norm(s)
        if all(abs(abs(float(s @ e)) - 1.0) > 1e-6 for e in axes):
            axes.append(s)
    out = []
    for a in axes:
        T = half_turn_about(a, centre)
        q = pts @ T[:3, :3].T + T[:3, 3]
        d = scene.compute_distance(tensor(q.astype(np.float32))).numpy()
        if float(np.quantile(d, 0.9)) <= tolerance_m:
            out.append(T)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _turns_cached(path: str, mtime_ns: int, symmetry_axis: tuple[float, float, float] | None,
                  tolerance_m: float) -> tuple[np.ndarray, ...]:
    from labeller.formats.models import load_model

    m = load_model(path)
    turns = shape_half_turns(m.vertices, m.triangles, symmetry_axis, tolerance_m)
    for T in turns:
        T.setflags(write=False)
    return turns


def model_half_turns(model_path: str | Path, symmetry_axis: Sequence[float] | None = None,
                     tolerance_m: float = DEFAULT_SETTINGS.shape_tolerance_m
                     ) -> tuple[np.ndarray, ...]:
    """`shape_half_turns` of a model file, cached per (path, modification time)."""
    p = Path(model_path).resolve()
    axis = None if symmetry_axis is None else tuple(float(x) for x in symmetry_axis)
    return _turns_cached(str(p), p.stat().st_mtime_ns, axis, float(tolerance_m))
