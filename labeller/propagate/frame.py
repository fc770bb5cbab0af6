"""Labelling one frame: render each object alone, composite by depth, check against depth.

`Job` is what a worker needs (picklable); `FrameLabeller` labels single frames of one job:
``T_cam_obj[t] = inv(T_world_cam[t]) @ T_world_obj``; each object is ray-cast alone inside
its projected footprint (one `ObjectRenderer` per labeller, reused across frames); the
alone casts are composited by depth into the front-most-object image, which is exactly
what casting all objects together gives; the bop19 visibility, BOP counts and boxes and
the depth-consistency score follow (`labeller.geometry.depth_check`). With
``refine="icp"`` a point-to-plane ICP correction against the sensor depth is scored and
stored beside the propagated pose. With ``colour_check`` every object whose model has
colours (a texture or vertex colours) is also rendered textured at its pose and at the
180-degree turns its shape allows, and compared with the frame's colour
(`labeller.geometry.colour_consistency`): colour_score, colour_turned_score and
colour_state; a suspected flip is flagged (`labeller.formats.labels.flag_rule`) when
the model has a texture image (vertex colours only score: `coarse_colours`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.poses import inv_pose, transform_points
from labeller.formats.labels import OBJECT_FIELDS, FrameRecord, compress_mask
from labeller.formats.scene import Scene
from labeller.geometry.colour_consistency import (
    NO_TEXTURE_RESULT,
    NOT_COMPUTED_RESULT,
    AlbedoCaster,
    ColourResult,
    check_label,
    coarse_colours,
    model_half_turns,
)
from labeller.geometry.depth_check import (
    AGREE,
    MODEL_BEHIND,
    MODEL_IN_FRONT,
    NO_DEPTH,
    ObjectMeasure,
    SilhouetteExtent,
    classify_pixels,
    depth_normals,
    measure,
    ray_length_factor,
    silhouette_extent,
)
from labeller.geometry.icp import IcpSettings, icp_candidate
from labeller.geometry.render import ObjectRenderer

log = logging.getLogger(__name__)

# The ICP correction must raise the score by more than this to be accepted (a tie is
# no evidence that the correction is better).
MIN_SCORE_GAIN = 1e-6

# An object's region of interest in the image: (x, y, w, h) pixels.
Roi = tuple[int, int, int, int]
# Objects are cast on a canvas this many times the image in each direction, the image in
# the middle, so that px_count_all and bbox_obj cover the part of an object cut by the
# image border, exactly as the BOP toolkit's calc_gt_info (it renders on a 3x canvas).
CANVAS_FACTOR = 3
FLAT = "flat colour"  # TexturedModel.colour_source of a model without colours


@dataclass(frozen=True)
class Job:
    """What a worker needs to label frames (picklable): scene, camera, objects, settings.

    objects: (instance id, absolute model path, T_world_obj (4, 4)); symmetry_axes: per
    object the model-frame axis of a continuous symmetry (labeller.core.classes) or None.
    """

    scene: str
    camera: CameraIntrinsics
    objects: tuple[tuple[int, str, np.ndarray], ...]
    delta_m: float
    occlusion_margin_m: float
    refine: str
    icp: IcpSettings
    symmetry_axes: tuple[tuple[float, float, float] | None, ...] = ()
    colour_check: bool = False


@dataclass
class ObjectView:
    """One object in one frame: its ROI, alone-render distances, pixel classes, measures.

    roi is None when the object projects nowhere into the image (then so are the arrays);
    the arrays cover the ROI, (h, w). extent: the whole silhouette on the 3x canvas.
    """

    roi: Roi | None
    dist_model: np.ndarray | None = None  # (h, w) float32 ray distance in metres, 0 = no hit
    code: np.ndarray | None = None  # (h, w) int8 depth_check classes
    visib: np.ndarray | None = None  # (h, w) bool
    depth_z: np.ndarray | None = None  # (h, w) float32 camera-frame z of the hit in metres
    m: ObjectMeasure = field(default_factory=ObjectMeasure)
    extent: SilhouetteExtent = SilhouetteExtent(0, (-1, -1, -1, -1))


def roi_slices(roi: Roi) -> tuple[slice, slice]:
    """(rows, columns) of an (x, y, w, h) ROI, for indexing (H, W) images."""
    x, y, w, h = roi
    return slice(y, y + h), slice(x, x + w)


class FrameLabeller:
    """Labels single frames of one job. One per worker process; reuses its renderer."""

    def __init__(self, job: Job):
        from labeller.formats.models import convex_hull_vertices, load_model

        self.job = job
        # The stage checked the scene strictly (preparation); the GUI's refine and preview
        # also run on scenes with a missing depth frame, which reads as "no depth".
        self.scene = Scene(job.scene, allow_missing_depth=True)
        self.camera = job.camera
        self.models = [load_model(p) for _, p, _ in job.objects]
        self.ids = [int(i) for i, _, _ in job.objects]
        self.T_world_obj = [np.asarray(T, np.float64) for _, _, T in job.objects]
        self.renderer = ObjectRenderer(list(zip(self.ids, self.models, self.T_world_obj, strict=True)))
        self.factor = ray_length_factor(self.camera)
        self.hulls = [convex_hull_vertices(m.vertices) for m in self.models]
        self._colour: tuple[AlbedoCaster, list[str], list[tuple[np.ndarray, ...]]] | None = None

    # -- colour check ---------------------------------------------------------------------
    def colour_setup(self) -> tuple[AlbedoCaster, list[str], list[tuple[np.ndarray, ...]]]:
        """(albedo caster of all objects, per object: where its colours come from
        (`TexturedModel.colour_source`), its half turns), built on first use (only runs
        that check colour load textures)."""
        if self._colour is None:
            from labeller.geometry.textured_render import load_textured_model

            paths = [p for _, p, _ in self.job.objects]
            tex = [load_textured_model(p) for p in paths]
            sources = [t.colour_source for t in tex]
            axes = self.job.symmetry_axes or (None,) * len(paths)
            turns = [model_half_turns(p, a) if src != FLAT else ()
                     for p, a, src in zip(paths, axes, sources, strict=True)]
            caster = AlbedoCaster(list(zip(self.ids, tex, self.T_world_obj, strict=True)))
            self._colour = (caster, sources, turns)
        return self._colour

    def colour(self, i: int, v: ObjectView, T_cam_obj_i: np.ndarray, rgb: np.ndarray) -> ColourResult:
        """The colour check of object i (its view `v` from `analyse`) at T_cam_obj_i (4x4)
        in a frame whose colour image is rgb (H, W, 3) uint8. Only a texture image can
        flag a flip (vertex colours: `coarse_colours`)."""
        caster, sources, turns = self.colour_setup()
        if v.roi is None or v.visib is None or not v.visib.any():
            return NOT_COMPUTED_RESULT
        if sources[i] == FLAT:
            return NO_TEXTURE_RESULT
        res = check_label(caster, self.camera, self.ids[i], self.T_world_obj[i], T_cam_obj_i,
                          turns[i], v.roi, v.visib, rgb)
        return res if sources[i] == "texture" else coarse_colours(res)

    # -- casting ------------------------------------------------------------------------
    def footprint(self, i: int, T_cam_obj: np.ndarray) -> tuple[Roi, np.ndarray | None] | None:
        """Where object i can appear on the 3x canvas: (roi (x, y, w, h), mask (h, w) bool
        | None) or None. The ROI is in image pixel coordinates and may reach outside the
        image (x, y from -width, -height up to 2 width - 1, 2 height - 1).

        The ROI is the box of the model's projected convex hull (never smaller than the
        object's silhouette, usually much smaller than `projected_bbox`'s box of the
        model's bounding-box corners); the mask is the projected hull polygon grown by
        one pixel, so only rays that can hit the object are cast.
        """
        cam = self.camera
        lo_x, lo_y = -cam.width, -cam.height  # the canvas around the image
        hi_x, hi_y = (CANVAS_FACTOR - 1) * cam.width - 1, (CANVAS_FACTOR - 1) * cam.height - 1
        p = transform_points(T_cam_obj, self.hulls[i])
        if np.all(p[:, 2] <= 1e-6):
            return None
        if np.any(p[:, 2] <= 1e-6):  # straddles the camera plane: cast the whole canvas
            return (lo_x, lo_y, hi_x - lo_x + 1, hi_y - lo_y + 1), None
        uv = cam.project(p)
        x0 = max(int(np.floor(uv[:, 0].min())) - 1, lo_x)
        y0 = max(int(np.floor(uv[:, 1].min())) - 1, lo_y)
        x1 = min(int(np.ceil(uv[:, 0].max())) + 1, hi_x)
        y1 = min(int(np.ceil(uv[:, 1].max())) + 1, hi_y)
        if x1 < x0 or y1 < y0:
            return None
        w, h = x1 - x0 + 1, y1 - y0 + 1
        poly = cv2.convexHull(((uv - [x0, y0]) * 16).round().astype(np.int32))
        hull = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(hull, poly, 1, lineType=cv2.LINE_8, shift=4)
        grown = cv2.dilate(hull, np.ones((3, 3), np.uint8))
        return (x0, y0, w, h), grown.astype(bool)

    def _cast(self, i: int, T_world_cam: np.ndarray, T_cam_obj: np.ndarray
              ) -> tuple[Roi | None, np.ndarray, np.ndarray, SilhouetteExtent] | None:
        """Object i alone, inside its footprint on the 3x canvas, or None when it projects
        nowhere there.

        Returns (roi: the footprint's part inside the image, None when the object is only
        outside it; ray distance (h, w) m and camera z (h, w) m over that roi; the extent
        of the whole silhouette on the canvas).
        """
        fp = self.footprint(i, T_cam_obj)
        if fp is None:
            return None
        (cx, cy, cw, ch), mask = fp
        r = self.renderer.render(self.camera, T_world_cam, roi=(cx, cy, cw, ch),
                                 only=self.ids[i], mask=mask)
        extent = silhouette_extent((cx, cy, cw, ch), r.depth > 0)
        x0, y0 = max(cx, 0), max(cy, 0)
        x1, y1 = min(cx + cw, self.camera.width), min(cy + ch, self.camera.height)
        if x1 <= x0 or y1 <= y0:
            empty = np.zeros((0, 0), np.float32)
            return None, empty, empty, extent
        roi = (x0, y0, x1 - x0, y1 - y0)
        depth_z = r.depth[y0 - cy:y1 - cy, x0 - cx:x1 - cx]
        ys, xs = roi_slices(roi)
        return roi, depth_z * self.factor[ys, xs], depth_z, extent

    def analyse(self, T_world_cam: np.ndarray, depth_m: np.ndarray
                ) -> tuple[np.ndarray, list[ObjectView], np.ndarray, np.ndarray, np.ndarray]:
        """Render, composite and classify every object of one frame.

        Returns (T_cam_obj (O, 4, 4), views, dist_sensor (H, W), front-most id image
        ibuf (H, W) uint16, its ray distance zbuf (H, W) float32 (inf where none)).
        """
        H, W = self.camera.height, self.camera.width
        dist_s = depth_m * self.factor
        T_cam_world = inv_pose(T_world_cam)
        T_cam_obj = np.stack([T_cam_world @ T for T in self.T_world_obj])
        views: list[ObjectView] = []
        zbuf = np.full((H, W), np.inf, np.float32)
        ibuf = np.zeros((H, W), np.uint16)
        for i in range(len(self.ids)):
            c = self._cast(i, T_world_cam, T_cam_obj[i])
            if c is None:
                views.append(ObjectView(None))
                continue
            roi, dist, depth_z, extent = c
            if roi is None:  # only outside the image: counted, never visible (as the toolkit)
                views.append(ObjectView(None, extent=extent,
                                        m=ObjectMeasure(px_count_all=extent.n_pixels)))
                continue
            v = ObjectView(roi, dist, depth_z=depth_z, extent=extent)
            views.append(v)
            # Nearest surface wins; a strict "<" leaves ties to the earlier object, so the
            # result does not depend on anything but annotation order.
            ys, xs = roi_slices(roi)
            zb, ib = zbuf[ys, xs], ibuf[ys, xs]
            closer = (dist > 0) & (dist < zb)
            zb[closer] = dist[closer]
            ib[closer] = self.ids[i]
        for i, v in enumerate(views):
            if v.roi is None:
                continue
            assert v.dist_model is not None  # set together with the roi
            ys, xs = roi_slices(v.roi)
            front = ibuf[ys, xs] == self.ids[i]
            v.code = classify_pixels(v.dist_model, front, dist_s[ys, xs], self.job.delta_m,
                                     self.job.occlusion_margin_m)
            v.m, v.visib = measure(v.roi, v.dist_model, v.code, dist_s[ys, xs], v.extent)
        return T_cam_obj, views, dist_s, ibuf, zbuf

    # -- one frame ------------------------------------------------------------------------
    def label(self, index: int, frame_id: int, T_world_cam: np.ndarray) -> FrameRecord:
        """The record of one frame (row `index` of /frames)."""
        H, W = self.camera.height, self.camera.width
        n_obj = len(self.ids)
        depth_m = self.scene.depth(frame_id)
        refine = self.job.refine == "icp"
        T_cam_obj, views, dist_s, ibuf, _ = self.analyse(T_world_cam, depth_m)
        arrays = {name: np.full((n_obj, *tail), fill, dtype=dt)
                  for name, (dt, tail, fill) in OBJECT_FIELDS.items()}
        arrays["T_cam_obj"][:] = T_cam_obj
        mask_visib = np.zeros((H, W), np.uint16)
        full_z: list[bytes | None] = []
        rgb = self._colour_image(frame_id)
        for i, v in enumerate(views):
            m = v.m
            arrays["bbox_obj"][i] = m.bbox_obj
            arrays["bbox_visib"][i] = m.bbox_visib
            arrays["px_count_all"][i] = m.px_count_all
            arrays["px_count_valid"][i] = m.px_count_valid
            arrays["px_count_visib"][i] = m.px_count_visib
            arrays["px_count_image"][i] = m.px_count_image
            arrays["visib_fract"][i] = m.visib_fract
            arrays["score"][i] = m.score
            arrays["median_abs_dz_m"][i] = m.median_abs_dz_m
            arrays["score_fract"][i] = m.score_fract
            if v.roi is None or m.px_count_image == 0:
                full_z.append(None)
                continue
            assert v.dist_model is not None  # set together with the roi
            ys, xs = roi_slices(v.roi)
            mask_visib[ys, xs][v.visib] = self.ids[i]
            full = np.zeros((H, W), np.uint8)
            full[ys, xs] = v.dist_model > 0
            full_z.append(compress_mask(full))
            if rgb is not None:
                c = self.colour(i, v, T_cam_obj[i], rgb)
                arrays["colour_score"][i] = c.score
                arrays["colour_turned_score"][i] = c.turned_score
                arrays["colour_state"][i] = c.state
            if refine:
                self._refine(i, v, T_cam_obj, views, depth_m, dist_s, ibuf, arrays)
        return FrameRecord(index, int(frame_id), arrays, compress_mask(mask_visib), full_z)

    def _colour_image(self, frame_id: int) -> np.ndarray | None:
        """The frame's colour (H, W, 3) uint8 for the colour check, or None: no check in
        this job, no object with colours, or an unreadable colour image (the depth labels
        do not need it, so that frame's colour state stays "not computed", with a warning)."""
        if not self.job.colour_check or all(src == FLAT for src in self.colour_setup()[1]):
            return None
        try:
            return self.scene.rgb(frame_id)
        except BadInput as exc:
            log.warning("frame %d: colour check skipped: %s", frame_id, exc)
            return None

    # -- ICP --------------------------------------------------------------------------
    def _refine(self, i: int, v: ObjectView, T_cam_obj: np.ndarray, views: list[ObjectView],
                depth_m: np.ndarray, dist_s: np.ndarray, ibuf: np.ndarray,
                arrays: dict[str, np.ndarray]) -> None:
        """Try an ICP correction of object i (a view with a roi); write its fields of `arrays`.

        T_cam_obj: (O, 4, 4); depth_m: (H, W) sensor depth in metres; dist_s: (H, W) its ray
        distances; ibuf: (H, W) uint16 front-most annotated object id.
        """
        cam, s = self.camera, self.job.icp
        if v.m.n_scored < s.min_points:
            return
        assert v.roi is not None and v.code is not None and v.depth_z is not None
        x0, y0, w, h = v.roi
        # Model side: the object's front-most rendered surface.
        front = (v.code == AGREE) | (v.code == MODEL_IN_FRONT) | (v.code == MODEL_BEHIND) | (v.code == NO_DEPTH)
        rr, cc = np.nonzero(front)
        z = v.depth_z[rr, cc].astype(np.float64)
        P_model = cam.backproject(cc + x0, rr + y0, z)
        # Sensor side: pixels the object could cover after a correction within the bound
        # (its silhouette grown by the bound's size on screen), at depths within reach of
        # the model's, minus pixels another annotated object owns, with normals.
        reach = 2 * s.max_trans_m
        pad = int(np.ceil(max(cam.fx, cam.fy) * reach / max(float(z.min()), 0.05))) + 1
        X0, Y0 = max(x0 - pad, 0), max(y0 - pad, 0)
        X1, Y1 = min(x0 + w + pad, cam.width), min(y0 + h + pad, cam.height)
        silhouette = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
        silhouette[y0 - Y0:y0 - Y0 + h, x0 - X0:x0 - X0 + w] = front
        near = cv2.dilate(silhouette, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * pad + 1, 2 * pad + 1)))
        dz = depth_m[Y0:Y1, X0:X1]
        own = ibuf[Y0:Y1, X0:X1]
        P_img, N_img = depth_normals(cam, dz, X0, Y0)
        sel = ((near > 0) & (dz > 0) & (dz >= z.min() - reach) & (dz <= z.max() + reach)
               & ((own == 0) | (own == self.ids[i])) & (N_img[..., 2] != 0))
        axis = self.job.symmetry_axes[i] if self.job.symmetry_axes else None
        T_new, moved, turned, _why = icp_candidate(T_cam_obj[i], P_model, P_img[sel].astype(np.float64),
                                                   N_img[sel].astype(np.float64), s, axis)
        arrays["refine_moved_m"][i] = moved
        arrays["refine_turned_deg"][i] = turned
        if T_new is None:
            return
        m_new = self._measure_at(i, T_new, views, dist_s)
        arrays["score_refined"][i] = m_new.score
        # Accept only a better fit that explains at least as many pixels: a correction must
        # not raise the fraction by hiding the object behind something (fewer pixels scored).
        if (np.isfinite(m_new.score) and m_new.score > v.m.score + MIN_SCORE_GAIN
                and m_new.n_agree >= v.m.n_agree):
            arrays["T_cam_obj_refined"][i] = T_new
            arrays["refined"][i] = True

    def _measure_at(self, i: int, T_cam_obj_i: np.ndarray, views: list[ObjectView],
                    dist_s: np.ndarray) -> ObjectMeasure:
        """Score of object i moved to T_cam_obj_i, the others staying where propagated."""
        # The renderer's objects are fixed in the world; seeing object i at T_cam_obj_i is
        # the same as looking at it from T_world_cam = T_world_obj @ inv(T_cam_obj_i).
        T_world_cam_i = self.T_world_obj[i] @ inv_pose(T_cam_obj_i)
        c = self._cast(i, T_world_cam_i, T_cam_obj_i)
        if c is None:
            return ObjectMeasure()
        roi, dist, _, extent = c
        if roi is None:
            return ObjectMeasure(px_count_all=extent.n_pixels)
        x0, y0, w, h = roi
        # Front-most as in analyse(): nearer than every other object, ties to the earlier one.
        before = np.full(dist.shape, np.inf, np.float32)  # objects annotated before i
        after = np.full(dist.shape, np.inf, np.float32)
        for j, o in enumerate(views):
            if j == i or o.roi is None:
                continue
            ox, oy, ow, oh = o.roi
            ax0, ay0 = max(x0, ox), max(y0, oy)
            ax1, ay1 = min(x0 + w, ox + ow), min(y0 + h, oy + oh)
            if ax1 <= ax0 or ay1 <= ay0:
                continue
            assert o.dist_model is not None  # set together with the roi
            d = o.dist_model[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
            acc = before if j < i else after
            sub = acc[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
            np.minimum(sub, np.where(d > 0, d, np.inf), out=sub)
        front = (dist > 0) & (dist < before) & (dist <= after)
        ys, xs = roi_slices(roi)
        code = classify_pixels(dist, front, dist_s[ys, xs], self.job.delta_m,
                               self.job.occlusion_margin_m)
        m, _ = measure(roi, dist, code, dist_s[ys, xs], extent)
        return m
