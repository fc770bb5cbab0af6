"""Propagation: every posed frame labelled from the scene's annotations (`labeller propagate`).

For each frame with a camera pose and each annotated object:
``T_cam_obj[t] = inv(T_world_cam[t]) @ T_world_obj``; the object is ray-cast alone
inside its projected box (Open3D, one `ObjectRenderer` per worker, reused across
frames); the alone casts are composited by depth into the front-most-object image,
which is exactly what casting all objects together gives (objects occlude each
other); the bop19 visibility, BOP counts and boxes, and the depth-consistency score
follow (`labeller.geometry.depth_check`). Optionally ICP refines each pose against the sensor
depth; the correction is stored beside the propagated pose.

Output: SCENE/labels/labels.h5 (schema in docs/labels_h5.md) written as
`labels.h5.partial` and renamed at the end (an interrupted run leaves the previous
labels; a rerun with the same inputs resumes), and SCENE/labels/flagged/ overlays of
the worst flagged frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labeller import __version__
from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME
from labeller.core.errors import BadInput, FormatError, LabellerError, ModelError, SceneError
from labeller.core.fileio import sha256_file
from labeller.core.poses import inv_pose, transform_points
from labeller.formats.labels import (
    LABELS_VERSION,
    OBJECT_FIELDS,
    FrameRecord,
    LabelObject,
    Labels,
    LabelsMeta,
    LabelsWriter,
    compress_mask,
)
from labeller.formats.scene import Scene
from labeller.geometry.depth_check import (
    AGREE,
    MODEL_BEHIND,
    MODEL_IN_FRONT,
    NO_DEPTH,
    IcpSettings,
    ObjectMeasure,
    classify_pixels,
    depth_normals,
    icp_candidate,
    measure,
    ray_length_factor,
)
from labeller.geometry.render import ObjectRenderer

# Skip reason recorded in /skipped/reason for a frame the trajectory has no pose for.
NO_POSE_REASON = "no camera pose in trajectory.txt (frame not tracked)"
REFINE_MODES = ("none", "icp")
# The ICP correction must raise the score by more than this to be accepted (a tie is
# no evidence that the correction is better).
MIN_SCORE_GAIN = 1e-6

Progress = Callable[[int, int], "bool | None"]


class Cancelled(LabellerError):
    """The progress callback returned False: the run stopped, labels.h5 is untouched and
    labels.h5.partial keeps the finished frames for the next run to resume from."""


@dataclass
class PropagateConfig:
    """Settings of one propagation run (metres, degrees).

    scene: scene directory; models_dir: models library (`--models`);
    refine: "none" or "icp"; workers: processes (1 = in this process);
    delta_m: bop19 visibility tolerance and score tolerance (BOP: 15 mm);
    occlusion_margin_m: a sensor surface nearer than the model by more than this is an
    occluder nobody annotated (not scored); nearer by delta..margin counts against the pose;
    flag_min_score / flag_min_visib: flag rule (score below, scored fraction at least);
    icp_max_trans_m / icp_max_rot_deg: the largest ICP correction accepted;
    chunk_frames: frames per task handed to a worker; max_overlays: overlay images of the
    worst flagged frames; restart: ignore a partial or finished earlier run;
    min_frames_per_worker: a worker process costs a second or two to start (imports,
    models, renderer), so fewer workers are used when there are fewer frames than this
    per worker (1 = always `workers`).
    """

    scene: Path
    models_dir: Path | None = None
    refine: str = "none"
    workers: int = 1
    delta_m: float = 0.015
    occlusion_margin_m: float = 0.05
    flag_min_score: float = 0.6
    flag_min_visib: float = 0.2
    icp_max_trans_m: float = 0.02
    icp_max_rot_deg: float = 5.0
    chunk_frames: int = 8
    max_overlays: int = 12
    restart: bool = False
    min_frames_per_worker: int = 100

    def check(self) -> None:
        def bad(name: str, problem: str) -> BadInput:
            return BadInput(name, problem)

        if self.refine not in REFINE_MODES:
            raise bad("--refine", f"must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise bad("--workers", f"must be an integer >= 1, got {self.workers!r}")
        if not 0 < self.delta_m < 1:
            raise bad("--delta", f"must be in (0, 1) metres, got {self.delta_m!r}")
        if not self.occlusion_margin_m > self.delta_m:
            raise bad("--occlusion-margin", f"must exceed delta ({self.delta_m} m), "
                                            f"got {self.occlusion_margin_m!r}")
        if not 0 <= self.flag_min_score <= 1:
            raise bad("--flag-score", f"must be in [0, 1], got {self.flag_min_score!r}")
        if not 0 <= self.flag_min_visib <= 1:
            raise bad("--flag-visib", f"must be in [0, 1], got {self.flag_min_visib!r}")
        if not (self.icp_max_trans_m > 0 and self.icp_max_rot_deg > 0):
            raise bad("--icp-max-trans/--icp-max-rot", "must be > 0")
        if self.chunk_frames < 1 or self.max_overlays < 0 or self.min_frames_per_worker < 1:
            raise bad("chunk_frames/max_overlays/min_frames_per_worker", "must be >= 1 / >= 0 / >= 1")

    @property
    def icp(self) -> IcpSettings:
        return IcpSettings(max_trans_m=self.icp_max_trans_m, max_rot_deg=self.icp_max_rot_deg)


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


@dataclass
class _ObjectView:
    """One object in one frame: its ROI, alone-render distances, pixel classes, measures."""

    roi: tuple[int, int, int, int] | None
    dist_model: np.ndarray | None = None  # (h, w) float32 ray distance, 0 = no hit
    code: np.ndarray | None = None  # (h, w) int8 depth_check classes
    visib: np.ndarray | None = None  # (h, w) bool
    depth_z: np.ndarray | None = None
    m: ObjectMeasure = field(default_factory=ObjectMeasure)


def _slices(roi):
    x, y, w, h = roi
    return slice(y, y + h), slice(x, x + w)


class FrameLabeller:
    """Labels single frames of one job. One per worker process; reuses its renderer."""

    def __init__(self, job: Job):
        from labeller.formats.models import convex_hull_vertices, load_model

        self.job = job
        self.scene = Scene(job.scene)
        self.camera = job.camera
        self.models = [load_model(p) for _, p, _ in job.objects]
        self.ids = [int(i) for i, _, _ in job.objects]
        self.T_world_obj = [np.asarray(T, np.float64) for _, _, T in job.objects]
        self.renderer = ObjectRenderer(list(zip(self.ids, self.models, self.T_world_obj, strict=True)))
        self.factor = ray_length_factor(self.camera)
        self.hulls = [convex_hull_vertices(m.vertices) for m in self.models]

    # -- casting ------------------------------------------------------------------------
    def footprint(self, i: int, T_cam_obj: np.ndarray):
        """Where object i can appear: (roi (x, y, w, h), mask (h, w) bool | None) or None.

        The ROI is the box of the model's projected convex hull (never smaller than the
        object's silhouette, usually much smaller than `projected_bbox`'s box of the
        model's bounding-box corners); the mask is the projected hull polygon grown by
        one pixel, so only rays that can hit the object are cast.
        """
        cam = self.camera
        p = transform_points(T_cam_obj, self.hulls[i])
        if np.all(p[:, 2] <= 1e-6):
            return None
        if np.any(p[:, 2] <= 1e-6):
            return (0, 0, cam.width, cam.height), None  # straddles the camera plane: cast all
        uv = cam.project(p)
        x0 = max(int(np.floor(uv[:, 0].min())) - 1, 0)
        y0 = max(int(np.floor(uv[:, 1].min())) - 1, 0)
        x1 = min(int(np.ceil(uv[:, 0].max())) + 1, cam.width - 1)
        y1 = min(int(np.ceil(uv[:, 1].max())) + 1, cam.height - 1)
        if x1 < x0 or y1 < y0:
            return None
        w, h = x1 - x0 + 1, y1 - y0 + 1
        poly = cv2.convexHull(((uv - [x0, y0]) * 16).round().astype(np.int32))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, poly, 1, lineType=cv2.LINE_8, shift=4)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        return (x0, y0, w, h), mask.astype(bool)

    def _cast(self, i: int, T_world_cam: np.ndarray, T_cam_obj: np.ndarray):
        """Object i alone, inside its footprint: (roi, dist (h, w), render) or None."""
        fp = self.footprint(i, T_cam_obj)
        if fp is None:
            return None
        roi, mask = fp
        r = self.renderer.render(self.camera, T_world_cam, roi=roi, only=self.ids[i], mask=mask)
        ys, xs = _slices(roi)
        return roi, r.depth * self.factor[ys, xs], r

    def analyse(self, T_world_cam: np.ndarray, depth_m: np.ndarray
                ) -> tuple[np.ndarray, list[_ObjectView], np.ndarray, np.ndarray, np.ndarray]:
        """Render, composite and classify every object of one frame.

        Returns (T_cam_obj (O, 4, 4), views, dist_sensor (H, W), front-most id image
        ibuf (H, W) uint16, its ray distance zbuf (H, W) float32 (inf where none)).
        """
        H, W = self.camera.height, self.camera.width
        dist_s = depth_m * self.factor
        T_cam_world = inv_pose(T_world_cam)
        T_cam_obj = np.stack([T_cam_world @ T for T in self.T_world_obj])
        views: list[_ObjectView] = []
        zbuf = np.full((H, W), np.inf, np.float32)
        ibuf = np.zeros((H, W), np.uint16)
        for i in range(len(self.ids)):
            c = self._cast(i, T_world_cam, T_cam_obj[i])
            if c is None:
                views.append(_ObjectView(None))
                continue
            roi, dist, r = c
            v = _ObjectView(roi, dist, depth_z=r.depth)
            views.append(v)
            # Nearest surface wins; a strict "<" leaves ties to the earlier object, so the
            # result does not depend on anything but annotation order.
            ys, xs = _slices(roi)
            zb, ib = zbuf[ys, xs], ibuf[ys, xs]
            closer = (dist > 0) & (dist < zb)
            zb[closer] = dist[closer]
            ib[closer] = self.ids[i]
        for i, v in enumerate(views):
            if v.roi is None:
                continue
            ys, xs = _slices(v.roi)
            front = ibuf[ys, xs] == self.ids[i]
            v.code = classify_pixels(v.dist_model, front, dist_s[ys, xs], self.job.delta_m,
                                     self.job.occlusion_margin_m)
            v.m, v.visib = measure(v.roi, v.dist_model, v.code, dist_s[ys, xs])
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
        for i, v in enumerate(views):
            m = v.m
            arrays["bbox_obj"][i] = m.bbox_obj
            arrays["bbox_visib"][i] = m.bbox_visib
            arrays["px_count_all"][i] = m.px_count_all
            arrays["px_count_valid"][i] = m.px_count_valid
            arrays["px_count_visib"][i] = m.px_count_visib
            arrays["visib_fract"][i] = m.visib_fract
            arrays["score"][i] = m.score
            arrays["median_abs_dz_m"][i] = m.median_abs_dz_m
            arrays["score_fract"][i] = m.score_fract
            if v.roi is None or m.px_count_all == 0:
                full_z.append(None)
                continue
            ys, xs = _slices(v.roi)
            mask_visib[ys, xs][v.visib] = self.ids[i]
            full = np.zeros((H, W), np.uint8)
            full[ys, xs] = v.dist_model > 0
            full_z.append(compress_mask(full))
            if refine:
                self._refine(i, v, T_cam_obj, views, depth_m, dist_s, ibuf, arrays)
        return FrameRecord(index, int(frame_id), arrays, compress_mask(mask_visib), full_z)

    # -- ICP --------------------------------------------------------------------------
    def _refine(self, i: int, v: _ObjectView, T_cam_obj: np.ndarray, views: list[_ObjectView],
                depth_m: np.ndarray, dist_s: np.ndarray, ibuf: np.ndarray, arrays: dict) -> None:
        cam, s = self.camera, self.job.icp
        if v.m.n_scored < s.min_points:
            return
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
        near = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
        near[y0 - Y0:y0 - Y0 + h, x0 - X0:x0 - X0 + w] = front
        near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * pad + 1, 2 * pad + 1)))
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

    def _measure_at(self, i: int, T_cam_obj_i: np.ndarray, views: list[_ObjectView],
                    dist_s: np.ndarray) -> ObjectMeasure:
        """Score of object i moved to T_cam_obj_i, the others staying where propagated."""
        # The renderer's objects are fixed in the world; seeing object i at T_cam_obj_i is
        # the same as looking at it from T_world_cam = T_world_obj @ inv(T_cam_obj_i).
        T_world_cam_i = self.T_world_obj[i] @ inv_pose(T_cam_obj_i)
        c = self._cast(i, T_world_cam_i, T_cam_obj_i)
        if c is None:
            return ObjectMeasure()
        roi, dist, _ = c
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
            d = o.dist_model[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
            acc = before if j < i else after
            sub = acc[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
            np.minimum(sub, np.where(d > 0, d, np.inf), out=sub)
        front = (dist > 0) & (dist < before) & (dist <= after)
        ys, xs = _slices(roi)
        code = classify_pixels(dist, front, dist_s[ys, xs], self.job.delta_m,
                               self.job.occlusion_margin_m)
        m, _ = measure(roi, dist, code, dist_s[ys, xs])
        return m


# --- running ------------------------------------------------------------------------------

_WORKER: FrameLabeller | None = None


def _init_worker(job: Job, threads: int) -> None:
    global _WORKER
    import open3d as o3d

    # N workers share the machine: each casts on its share of the CPUs rather than all
    # of them (oversubscribed TBB threads only add switching).
    o3d.utility.set_max_threads(threads)
    _WORKER = FrameLabeller(job)


def _work(chunk: list[tuple[int, int, np.ndarray]]) -> list[FrameRecord]:
    assert _WORKER is not None
    return [_WORKER.label(i, t, T) for i, t, T in chunk]


def iter_records(job: Job, rows: list[tuple[int, int, np.ndarray]], workers: int,
                 chunk_frames: int) -> Iterator[list[FrameRecord]]:
    """Label `rows` ((index, frame id, T_world_cam)), yielding one list per chunk.

    workers == 1 labels in this process, frame by frame; otherwise a pool of spawned
    processes (each with its own renderer) takes chunks, at most 2 per worker in flight
    so memory stays flat in the number of frames. Chunks come back in completion order.
    """
    chunks = [rows[k:k + chunk_frames] for k in range(0, len(rows), chunk_frames)]
    if not chunks:
        return
    if workers == 1:
        labeller = FrameLabeller(job)
        for ch in chunks:
            yield [labeller.label(i, t, T) for i, t, T in ch]
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the parent may already run Open3D/OpenMP threads, which a forked
    # child would inherit in an undefined state.
    n = min(workers, len(chunks))
    threads = max(1, (os.cpu_count() or 1) // n)
    ex = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(job, threads))
    try:
        pending, it = set(), iter(chunks)
        for ch in it:
            pending.add(ex.submit(_work, ch))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for _ in done:
                for ch in it:
                    pending.add(ex.submit(_work, ch))
                    break
            for fut in done:
                yield fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


# --- preparing a run ---------------------------------------------------------------------

@dataclass
class _Prepared:
    scene: Scene
    job: Job
    meta: LabelsMeta
    objects: list[LabelObject]
    frame_ids: list[int]
    T_world_cam: np.ndarray
    skipped: list[tuple[int, str]]


def _depth_fingerprint(scene: Scene, frame_ids: list[int]) -> str:
    """Cheap identity of the depth frames used: name, size and mtime of each file."""
    import hashlib

    h = hashlib.sha256()
    for t in frame_ids:
        st = scene.depth_file(t).stat()
        h.update(f"{scene.depth_file(t).name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def prepare(cfg: PropagateConfig) -> _Prepared:
    """Check every input and build the job; BadInput naming the file and field otherwise."""
    from labeller.formats.models import load_model, resolve_model_path

    cfg.check()
    scene = Scene(cfg.scene)
    traj = scene.trajectory  # SceneError naming trajectory.txt when missing or malformed
    ann_path = scene.paths.annotations
    if not scene.has_annotations:
        raise FormatError(ann_path, "file not found: place the objects in `labeller gui` first")
    doc = scene.annotations()  # FormatError on unknown classes, newer versions, bad fields
    traj_sha = scene.trajectory_sha256()
    if doc.trajectory_sha256 and doc.trajectory_sha256 != traj_sha:
        raise FormatError(ann_path, f"trajectory_sha256: {doc.trajectory_sha256[:12]}… does not "
                                    f"match {scene.paths.trajectory.name} ({traj_sha[:12]}…); the "
                                    "trajectory was re-tracked after the objects were placed, so "
                                    "their poses are in another world frame: re-check them in "
                                    "`labeller gui`")
    if not doc.objects:
        raise FormatError(ann_path, "objects: no objects to propagate")
    models_dir = cfg.models_dir
    if models_dir is not None and not Path(models_dir).is_dir():
        raise BadInput("--models", f"{models_dir}: not a directory")
    objs: list[tuple[int, str, np.ndarray]] = []
    label_objs: list[LabelObject] = []
    model_sha: dict[str, str] = {}
    for k, o in enumerate(doc.objects):
        try:
            path = resolve_model_path(o.model, scene.root, models_dir)
        except ModelError as exc:
            raise ModelError(ann_path, f"objects[{k}].model: {exc.problem} (object {o.id}, "
                                       f"class {o.class_name!r})") from None
        load_model(path)  # ModelError naming the model file when unreadable / not metres
        objs.append((o.id, str(path.resolve()), np.asarray(o.T_world_obj, np.float64)))
        label_objs.append(LabelObject(o.id, o.class_name, o.model, np.asarray(o.T_world_obj)))
        model_sha[o.model] = sha256_file(path)
    frame_ids = [t for t in range(scene.n_frames) if t in traj]
    if not frame_ids:
        raise SceneError(scene.paths.trajectory, "no frame has a camera pose")
    skipped = [(t, NO_POSE_REASON) for t in range(scene.n_frames) if t not in traj]
    T_world_cam = np.stack([traj[t] for t in frame_ids]) if frame_ids else np.zeros((0, 4, 4))
    icp = cfg.icp
    axes = tuple(BY_NAME[o.class_name].symmetry_axis if o.class_name in BY_NAME else None
                 for o in doc.objects)
    job = Job(str(scene.root), scene.camera, tuple(objs), cfg.delta_m, cfg.occlusion_margin_m,
              cfg.refine, icp, axes)
    ann_sha = sha256_file(ann_path)
    inputs = {
        "format_version": LABELS_VERSION,
        "trajectory_sha256": traj_sha,
        "annotations_sha256": ann_sha,
        "camera_sha256": sha256_file(scene.paths.camera),
        "models_sha256": model_sha,
        "depth_frames": _depth_fingerprint(scene, frame_ids),
        "settings": {"delta_m": cfg.delta_m, "occlusion_margin_m": cfg.occlusion_margin_m,
                     "refine": cfg.refine,
                     "icp": dataclasses.asdict(icp) if cfg.refine == "icp" else None},
    }
    cam = scene.camera
    meta = LabelsMeta(width=cam.width, height=cam.height, n_frames=scene.n_frames,
                      delta_m=cfg.delta_m, flag_min_score=cfg.flag_min_score,
                      flag_min_visib=cfg.flag_min_visib, refine=cfg.refine,
                      trajectory_sha256=traj_sha, annotations_sha256=ann_sha,
                      classes=list(doc.classes), occlusion_margin_m=cfg.occlusion_margin_m,
                      icp_max_trans_m=cfg.icp_max_trans_m, icp_max_rot_deg=cfg.icp_max_rot_deg,
                      labeller_version=__version__, inputs=inputs)
    return _Prepared(scene, job, meta, label_objs, frame_ids, T_world_cam, skipped)


# --- summary -----------------------------------------------------------------------------

@dataclass
class ObjectSummary:
    id: int
    class_name: str
    frames_in_view: int  # px_count_all > 0
    frames_visible: int  # visib_fract >= 0.1
    mean_visib_fract: float  # over frames in view
    median_score: float  # over frames with a score
    flagged: int
    refined: int


@dataclass
class PropagateSummary:
    """What a run did; `format()` is the text `labeller propagate` prints."""

    scene: Path
    labels_path: Path
    n_frames: int
    n_labelled: int
    skipped: list[tuple[int, str]]
    objects: list[ObjectSummary]
    flagged_pairs: int
    flagged_frames: list[int]
    overlays: list[Path]
    refine: str
    workers: int
    resumed_frames: int
    computed_frames: int
    seconds: float
    flag_min_score: float
    flag_min_visib: float

    @property
    def frames_per_s(self) -> float:
        return self.computed_frames / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        head = (f"labelled {self.n_labelled} of {self.n_frames} frames, {len(self.objects)} "
                f"object(s), refine {self.refine}: ")
        if self.computed_frames:
            head += (f"{self.computed_frames} computed by {self.workers} worker(s) in "
                     f"{self.seconds:.1f} s ({self.frames_per_s:.1f} frames/s)")
            if self.resumed_frames:
                head += f", {self.resumed_frames} resumed from an interrupted run"
        else:
            head += (f"all reused from an earlier run with the same inputs ({self.seconds:.1f} s; "
                     "--restart recomputes)")
        lines = [head]
        if self.skipped:
            reasons: dict[str, list[int]] = {}
            for t, r in self.skipped:
                reasons.setdefault(r, []).append(t)
            for r, ts in reasons.items():
                shown = ", ".join(str(t) for t in ts[:10]) + (f", … ({len(ts)} in all)" if len(ts) > 10 else "")
                lines.append(f"skipped {len(ts)} frame(s): {shown}: {r}")
        else:
            lines.append("skipped 0 frames")
        lines.append(f"flagged {self.flagged_pairs} object-frame(s) in {len(self.flagged_frames)} "
                     f"frame(s) (score < {self.flag_min_score:g} on >= {self.flag_min_visib:g} of "
                     f"the object)" + (f"; overlays of the worst {len(self.overlays)} in "
                                       f"{self.overlays[0].parent}" if self.overlays else ""))
        w = max([len(o.class_name) for o in self.objects] + [5])
        lines.append(f"  {'id':>4} {'class':<{w}} {'in view':>8} {'visible':>8} {'visib':>6} "
                     f"{'score':>6} {'flagged':>8}" + (f" {'refined':>8}" if self.refine != "none" else ""))
        for o in self.objects:
            sc = "-" if not np.isfinite(o.median_score) else f"{o.median_score:.2f}"
            vf = "-" if not np.isfinite(o.mean_visib_fract) else f"{o.mean_visib_fract:.2f}"
            lines.append(f"  {o.id:>4} {o.class_name:<{w}} {o.frames_in_view:>8} {o.frames_visible:>8} "
                         f"{vf:>6} {sc:>6} {o.flagged:>8}"
                         + (f" {o.refined:>8}" if self.refine != "none" else ""))
        lines.append("  (in view: frames where the object projects into the image; visible: "
                     "visib_fract >= 0.1; visib: mean visib_fract in view; score: median)")
        lines.append(f"wrote {self.labels_path}")
        return "\n".join(lines)


def _summarise(labels: Labels, cfg: PropagateConfig, overlays: list[Path], resumed: int,
               computed: int, seconds: float, workers: int) -> PropagateSummary:
    A = labels.arrays
    objs = []
    for i, o in enumerate(labels.objects):
        inview = A["px_count_all"][:, i] > 0
        sc = A["score"][:, i]
        objs.append(ObjectSummary(
            o.id, o.class_name, int(inview.sum()), int((A["visib_fract"][:, i] >= 0.1).sum()),
            float(A["visib_fract"][inview, i].mean()) if inview.any() else float("nan"),
            float(np.median(sc[np.isfinite(sc)])) if np.isfinite(sc).any() else float("nan"),
            int(A["flagged"][:, i].sum()), int(A["refined"][:, i].sum())))
    fl = A["flagged"]
    return PropagateSummary(
        scene=Path(cfg.scene), labels_path=labels.path, n_frames=labels.n_frames,
        n_labelled=len(labels.frame_ids), skipped=sorted(labels.skipped.items()), objects=objs,
        flagged_pairs=int(fl.sum()), flagged_frames=[int(t) for t in labels.frame_ids[fl.any(1)]]
        if fl.size else [], overlays=overlays, refine=labels.refine, workers=workers,
        resumed_frames=resumed, computed_frames=computed, seconds=seconds,
        flag_min_score=cfg.flag_min_score, flag_min_visib=cfg.flag_min_visib)


# --- overlays ------------------------------------------------------------------------------

# Pixel tints of the overlay (RGB): where the model agrees with the sensor, floats in
# front of the observed surface, or sits behind it.
TINT_AGREE = (40, 200, 40)
TINT_IN_FRONT = (255, 40, 40)
TINT_BEHIND = (255, 0, 255)
# Overlays show flagged frames at least this far apart (while there are enough).
OVERLAY_MIN_GAP = 5


def overlay_image(fl: FrameLabeller, labels: Labels, t: int) -> np.ndarray:
    """(H + band, W, 3) RGB review image of frame t.

    Flagged objects: their pixels tinted by class (agree / model in front of the observed
    surface / model behind it), a thick yellow outline of the full model silhouette and
    "#id class score |dz|". Other objects: a thin white outline and "#id score".
    """
    f = labels.frame(t, masks=False)
    _, views, _, _, _ = fl.analyse(f.T_world_cam, fl.scene.depth(t))
    img = fl.scene.rgb(t).astype(np.float32) * 0.8
    for v, o in zip(views, f.objects, strict=True):
        if v.roi is None or not o.flagged:
            continue
        ys, xs = _slices(v.roi)
        sub = img[ys, xs]
        for code, tint in ((AGREE, TINT_AGREE), (MODEL_IN_FRONT, TINT_IN_FRONT),
                           (MODEL_BEHIND, TINT_BEHIND)):
            sel = v.code == code
            sub[sel] = 0.4 * sub[sel] + 0.6 * np.asarray(tint, np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    H, W = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, W / 1500)
    thick = 1
    labels_drawn: list[tuple[tuple[int, int], str, tuple[int, int, int]]] = []
    # Unflagged first, so flagged outlines and text end on top.
    for v, o in sorted(zip(views, f.objects, strict=True), key=lambda p: p[1].flagged):
        if v.roi is None or o.px_count_all == 0:
            continue
        full = np.zeros((H, W), np.uint8)
        ys, xs = _slices(v.roi)
        full[ys, xs] = v.dist_model > 0
        contours, _ = cv2.findContours(full, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        col = (255, 230, 0) if o.flagged else (235, 235, 235)
        cv2.drawContours(img, contours, -1, col, 2 if o.flagged else 1, cv2.LINE_AA)
        sc = "n/a" if not np.isfinite(o.score) else f"{o.score:.2f}"
        if o.flagged:
            dz = "" if not np.isfinite(o.median_abs_dz_m) else f" |dz| {o.median_abs_dz_m * 1000:.0f} mm"
            text = f"#{o.id} {o.class_name} score {sc}{dz}"
        else:
            text = f"#{o.id} {sc}"
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        x, y, _, _ = o.bbox_obj
        org = (int(np.clip(x, 2, max(W - tw - 2, 2))), int(np.clip(y - 5, th + 2, H - 3)))
        labels_drawn.append((org, text, col))
    for org, text, col in labels_drawn:
        cv2.putText(img, text, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(img, text, org, font, scale, col, thick, cv2.LINE_AA)
    # A header band: frame id, the worst flagged object, the legend.
    (_, th), _ = cv2.getTextSize("Ag", font, scale, thick)
    band_h = th + 14
    band = np.full((band_h, W, 3), 32, np.uint8)
    worst = min((o for o in f.objects if o.flagged), key=lambda o: o.score, default=None)
    head = f"frame {t}" + (f"  worst: #{worst.id} {worst.score:.2f}   " if worst else "   ")
    base = band_h - 7
    cv2.putText(band, head, (4, base), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    x = 4 + cv2.getTextSize(head, font, scale, thick)[0][0]
    for name, tint in (("agree", TINT_AGREE), ("model in front of surface", TINT_IN_FRONT),
                       ("model behind surface", TINT_BEHIND)):
        cv2.rectangle(band, (x, base - th), (x + th, base), tint, -1)
        cv2.putText(band, name, (x + th + 4, base), font, scale, (230, 230, 230), thick, cv2.LINE_AA)
        x += th + 16 + cv2.getTextSize(name, font, scale, thick)[0][0]
    return np.concatenate([band, img], axis=0)


def worst_flagged_frames(labels: Labels, n: int, min_gap: int = OVERLAY_MIN_GAP) -> list[int]:
    """Up to n flagged frame ids, worst (lowest flagged score) first, at least `min_gap`
    frames apart while there are enough (neighbouring frames show the same problem)."""
    fl = labels.arrays["flagged"]
    if not fl.size or not fl.any():
        return []
    sc = np.where(fl, labels.arrays["score"], np.inf).min(1)
    order = [int(r) for r in np.argsort(sc, kind="stable") if np.isfinite(sc[r])]
    ids = labels.frame_ids
    picked: list[int] = []
    for r in order:
        if len(picked) < n and all(abs(int(ids[r]) - int(ids[p])) >= min_gap for p in picked):
            picked.append(r)
    for r in order:  # not enough far-apart frames: fill with the next worst
        if len(picked) < n and r not in picked:
            picked.append(r)
    return [int(ids[r]) for r in picked]


def _write_overlays(labels: Labels, job: Job, dest: Path, n: int) -> list[Path]:
    from labeller.core.fileio import atomic_dir, write_image

    frames = worst_flagged_frames(labels, n)
    out: list[Path] = []
    with atomic_dir(dest, overwrite=True) as tmp:
        if frames:
            fl = FrameLabeller(job)
            for rank, t in enumerate(frames):
                name = f"{rank:03d}_frame{t:06d}.png"
                write_image(tmp / name, overlay_image(fl, labels, t), atomic=False)
                out.append(dest / name)
    return out


# --- the stage ---------------------------------------------------------------------------

def partial_path(labels_path: Path) -> Path:
    return labels_path.with_name(labels_path.name + ".partial")


@contextlib.contextmanager
def scene_lock(labels_dir: Path) -> Iterator[None]:
    """Hold SCENE/labels/.propagate.lock for the run: a second run on the same scene stops
    at once (HDF5 would truncate the first run's partial file before noticing its lock)."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(labels_dir / ".propagate.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(labels_dir, "another `labeller propagate` is running on this "
                                       "scene; wait for it to finish") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def run(cfg: PropagateConfig, progress: Progress | None = None) -> PropagateSummary:
    """Propagate the scene's annotations to every posed frame; write labels.h5.

    progress(done, total) is called after each chunk of frames (and once at the start);
    returning False (raises Cancelled) or raising from it stops the run: labels.h5 stays
    as it was and `labels.h5.partial` keeps the finished frames, which the next run with
    the same inputs resumes from.
    """
    start = time.perf_counter()
    prep = prepare(cfg)
    with scene_lock(prep.scene.paths.labels_dir):
        return _run_locked(cfg, prep, progress, start)


def _run_locked(cfg: PropagateConfig, prep: _Prepared, progress: Progress | None,
                start: float) -> PropagateSummary:
    paths = prep.scene.paths
    final, partial = paths.labels, partial_path(paths.labels)
    writer = None
    if not cfg.restart:
        writer = LabelsWriter.resume(partial, prep.meta.inputs)
        if writer is None and final.is_file():
            # A finished run with the same inputs: only the flags / overlays are redone.
            shutil.copyfile(final, partial)
            writer = LabelsWriter.resume(partial, prep.meta.inputs)
    if writer is None:
        writer = LabelsWriter.create(partial, prep.meta, prep.objects, prep.frame_ids,
                                     prep.T_world_cam, prep.skipped)
    try:
        done = writer.done()
        resumed = int(done.sum())
        rows = [(r, prep.frame_ids[r], prep.T_world_cam[r]) for r in range(len(prep.frame_ids))
                if not done[r]]
        total, count = len(prep.frame_ids), resumed
        if progress and progress(count, total) is False:
            raise Cancelled("cancelled")
        workers = max(1, min(cfg.workers, len(rows) // cfg.min_frames_per_worker))
        batches = iter_records(prep.job, rows, workers, cfg.chunk_frames)
        try:
            for records in batches:
                writer.write(records)
                count += len(records)
                if progress and progress(count, total) is False:
                    raise Cancelled("cancelled")
        finally:
            batches.close()  # stops the worker pool now, not when the generator is collected
        writer.finish(cfg.flag_min_score, cfg.flag_min_visib)
    finally:
        writer.close()
    with Labels.open(partial) as labels:
        overlays = _write_overlays(labels, prep.job, paths.labels_dir / "flagged", cfg.max_overlays)
    os.replace(partial, final)
    seconds = time.perf_counter() - start
    with Labels.open(final) as labels:
        summary = _summarise(labels, cfg, overlays, resumed, len(rows), seconds, workers)
    return summary


def summary_json(s: PropagateSummary) -> str:
    """The summary as JSON (for scripts and the demo)."""
    d = dataclasses.asdict(s)
    return json.dumps(d, default=str, indent=2)
