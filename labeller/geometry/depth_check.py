"""Checking a posed model against the sensor depth: visibility and a consistency score.

Everything here works on one object's region of interest (ROI) `(x, y, w, h)` of one
frame. Depths are compared as *distances along the pixel's ray* (metres), like the BOP
toolkit's `calc_gt_info` (its `depth_im_to_dist_im_fast`): `d = z * ray_length_factor`.

Each pixel of the object's render is put in one class (`classify_pixels`), with
``diff = d_model - d_sensor`` (positive: the sensor sees something nearer than the model):

=====  ===============  =================================================  ==========  ======
code   name             rule (pixel where the object is front-most)        bop19       scored
=====  ===============  =================================================  ==========  ======
1      AGREE            sensor depth > 0 and ``|diff| <= delta``            visible     agree
2      MODEL_IN_FRONT   ``diff < -delta``: the sensor sees through the      visible     disagree
                        model (it floats in front of the real surface)
3      MODEL_BEHIND     ``delta < diff <= occlusion_margin``: the model     not visible disagree
                        sits just behind the observed surface
4      OCCLUDED         ``diff > occlusion_margin``: something nearer       not visible not scored
                        that nobody annotated (a hand, another object)
5      NO_DEPTH         sensor depth == 0 (no measurement)                  visible     not scored
6      HIDDEN           the object renders there but another annotated      not visible not scored
                        object is in front of it
=====  ===============  =================================================  ==========  ======

Why class 3 counts against the pose: a model pushed 2 cm *behind* the true surface
along the viewing ray makes every pixel look "occluded" under the bop19 rule (its
visib_fract collapses to ~0), so a score over bop19-visible pixels alone would never
see that error, and a flag gated on visib_fract would never fire. Only a nearer
surface beyond `occlusion_margin` (5 cm by default) is taken as a real occluder.

Correcting a pose against the depth (ICP) is `labeller.geometry.icp`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.geometry.render import mask_bbox

NONE, AGREE, MODEL_IN_FRONT, MODEL_BEHIND, OCCLUDED, NO_DEPTH, HIDDEN = range(7)
PIXEL_CLASS_NAMES = ("none", "agree", "model_in_front", "model_behind", "occluded",
                     "no_depth", "hidden")


def ray_length_factor(camera: CameraIntrinsics) -> np.ndarray:
    """(H, W) float32: distance along the pixel's ray per metre of z, sqrt(1 + x² + y²)."""
    u = (np.arange(camera.width, dtype=np.float64) - camera.cx) / camera.fx
    v = (np.arange(camera.height, dtype=np.float64) - camera.cy) / camera.fy
    return np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2).astype(np.float32)


def classify_pixels(dist_model: np.ndarray, front: np.ndarray, dist_sensor: np.ndarray,
                    delta_m: float, occlusion_margin_m: float) -> np.ndarray:
    """Pixel classes (h, w) int8 (module table) of one object over its ROI.

    dist_model: (h, w) float32 ray distance of the object rendered alone, 0 = no hit.
    front: (h, w) bool, the object is the front-most annotated object there.
    dist_sensor: (h, w) float32 ray distance of the sensor depth, 0 = no measurement.
    """
    hit = dist_model > 0
    valid = dist_sensor > 0
    diff = dist_model - dist_sensor
    code = np.zeros(dist_model.shape, np.int8)
    code[hit] = HIDDEN
    f = hit & front
    code[f & ~valid] = NO_DEPTH
    fv = f & valid
    code[fv & (np.abs(diff) <= delta_m)] = AGREE
    code[fv & (diff < -delta_m)] = MODEL_IN_FRONT
    code[fv & (diff > delta_m) & (diff <= occlusion_margin_m)] = MODEL_BEHIND
    code[fv & (diff > occlusion_margin_m)] = OCCLUDED
    return code


@dataclass
class ObjectMeasure:
    """BOP gt_info counts, boxes (full image coordinates) and the consistency score.

    px_count_all and bbox_obj cover the whole silhouette, also outside the image (the BOP
    toolkit's 3x canvas, `SilhouetteExtent`); px_count_image is the part inside the image
    (the full mask labels.h5 stores).
    """

    px_count_all: int = 0
    px_count_valid: int = 0
    px_count_visib: int = 0
    visib_fract: float = 0.0
    bbox_obj: tuple[int, int, int, int] = (-1, -1, -1, -1)
    bbox_visib: tuple[int, int, int, int] = (-1, -1, -1, -1)
    n_scored: int = 0
    n_agree: int = 0
    score: float = float("nan")
    median_abs_dz_m: float = float("nan")
    score_fract: float = 0.0
    px_count_image: int = 0


@dataclass(frozen=True)
class SilhouetteExtent:
    """An object's whole silhouette on the BOP toolkit's 3x canvas (calc_gt_info renders
    on a canvas three times the image in each direction, the image in the middle, so the
    part of an object cut by the image border still counts).

    n_pixels: silhouette pixels on the canvas; box: [x, y, w, h] in image pixel
    coordinates (x or y < 0, or x + w >= width, where the silhouette leaves the image),
    w = x_max - x_min as `labeller.geometry.render.mask_bbox`; (-1, -1, -1, -1) if empty.
    """

    n_pixels: int
    box: tuple[int, int, int, int]


def _offset_box(box: list[int], roi: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if box[0] < 0:
        return (-1, -1, -1, -1)
    return (box[0] + roi[0], box[1] + roi[1], box[2], box[3])


def silhouette_extent(roi: tuple[int, int, int, int], hit: np.ndarray) -> SilhouetteExtent:
    """The extent of a silhouette `hit` (h, w) bool cast over `roi` (x, y, w, h), where the
    ROI may reach outside the image (negative x, y)."""
    ys, xs = np.nonzero(hit)
    if len(xs) == 0:
        return SilhouetteExtent(0, (-1, -1, -1, -1))
    x0, y0 = int(xs.min()) + roi[0], int(ys.min()) + roi[1]
    return SilhouetteExtent(len(xs), (x0, y0, int(xs.max()) + roi[0] - x0,
                                      int(ys.max()) + roi[1] - y0))


def measure(roi: tuple[int, int, int, int], dist_model: np.ndarray, code: np.ndarray,
            dist_sensor: np.ndarray, extent: SilhouetteExtent | None = None
            ) -> tuple[ObjectMeasure, np.ndarray]:
    """Counts, boxes and score of one object from its pixel classes; also its visible mask.

    Definitions (the BOP toolkit's calc_gt_info with bop19 visibility, checked against it
    in tests/test_export_bop_toolkit.py): px_count_all = pixels of the object-alone render
    on the 3x canvas (`extent`; without one, the pixels inside the ROI); px_count_valid =
    of those inside the image, sensor depth > 0; px_count_visib = visible pixels (classes
    AGREE, MODEL_IN_FRONT, NO_DEPTH); visib_fract = visib / all (0 when all = 0);
    bbox_obj = the box of the whole silhouette (`extent.box`, may leave the image) and,
    as the toolkit, (-1, -1, -1, -1) when no pixel is visible; bbox_visib = the box of
    the visible pixels. Score = AGREE / (AGREE + MODEL_IN_FRONT + MODEL_BEHIND), NaN
    when nothing is scored; median_abs_dz_m = median |d_model - d_sensor| over those
    scored pixels; score_fract = scored / the silhouette pixels inside the image (what
    the flag rule compares; a border cut does not lower it).
    Returns (measure, visible mask (h, w) bool).
    """
    hit = dist_model > 0
    visib = (code == AGREE) | (code == MODEL_IN_FRONT) | (code == NO_DEPTH)
    scored = (code == AGREE) | (code == MODEL_IN_FRONT) | (code == MODEL_BEHIND)
    if extent is None:
        extent = silhouette_extent(roi, hit)
    m = ObjectMeasure()
    m.px_count_image = int(hit.sum())
    m.px_count_all = extent.n_pixels
    m.px_count_valid = int((hit & (dist_sensor > 0)).sum())
    m.px_count_visib = int(visib.sum())
    m.visib_fract = m.px_count_visib / m.px_count_all if m.px_count_all else 0.0
    m.bbox_obj = extent.box if m.px_count_visib else (-1, -1, -1, -1)
    m.bbox_visib = _offset_box(mask_bbox(visib), roi)
    m.n_scored = int(scored.sum())
    m.n_agree = int((code == AGREE).sum())
    if m.n_scored:
        m.score = m.n_agree / m.n_scored
        m.median_abs_dz_m = float(np.median(np.abs(dist_model[scored] - dist_sensor[scored])))
    m.score_fract = m.n_scored / m.px_count_image if m.px_count_image else 0.0
    return m, visib


# --- ICP refinement -------------------------------------------------------------------

# Sensor normals come from the depth image itself (an organised cloud): the depth is
# smoothed over NORMAL_SMOOTH_PX pixels (noise), then differenced NORMAL_STEP_PX pixels
# either side; a neighbourhood that spans a depth jump gets no normal.
NORMAL_SMOOTH_PX = 5
NORMAL_STEP_PX = 2
NORMAL_MAX_JUMP_M = 0.02


def depth_normals(camera: CameraIntrinsics, depth_m: np.ndarray, x0: int, y0: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Points and unit normals of a depth patch whose top-left pixel is (x0, y0).

    depth_m: (h, w) float32 metres (0 = none). Returns (points (h, w, 3), normals
    (h, w, 3)) in the camera frame; normals are 0 where none could be estimated.
    """
    import cv2

    h, w = depth_m.shape
    valid = (depth_m > 0).astype(np.float32)
    k = (NORMAL_SMOOTH_PX, NORMAL_SMOOTH_PX)
    num = cv2.boxFilter(depth_m.astype(np.float32), -1, k, normalize=False)
    den = cv2.boxFilter(valid, -1, k, normalize=False)
    zs = np.where(den > 0, num / np.maximum(den, 1e-6), 0).astype(np.float32)
    zs = np.where(valid > 0, zs, 0)
    u = np.arange(x0, x0 + w, dtype=np.float32)
    v = np.arange(y0, y0 + h, dtype=np.float32)
    X = (u[None, :] - np.float32(camera.cx)) / np.float32(camera.fx) * zs
    Y = (v[:, None] - np.float32(camera.cy)) / np.float32(camera.fy) * zs
    P = np.stack([X, Y, zs], -1)
    s = NORMAL_STEP_PX
    N = np.zeros_like(P)
    if h <= 2 * s or w <= 2 * s:
        return P, N
    du = P[s:-s, 2 * s:] - P[s:-s, :-2 * s]
    dv = P[2 * s:, s:-s] - P[:-2 * s, s:-s]
    n = np.cross(du, dv)
    zc = zs[s:-s, s:-s]
    ok = ((zc > 0) & (zs[s:-s, 2 * s:] > 0) & (zs[s:-s, :-2 * s] > 0) & (zs[2 * s:, s:-s] > 0)
          & (zs[:-2 * s, s:-s] > 0)
          & (np.abs(du[..., 2]) < NORMAL_MAX_JUMP_M) & (np.abs(dv[..., 2]) < NORMAL_MAX_JUMP_M))
    norm = np.linalg.norm(n, axis=-1)
    ok &= norm > 0
    n = np.where(ok[..., None], n / np.maximum(norm, 1e-12)[..., None], 0)
    N[s:-s, s:-s] = n
    return P, N
