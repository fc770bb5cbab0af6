"""Depth-consistency scores of candidate poses (labeller.geometry.depth_check).

`EstimateScorer` scores one camera-relative estimate in its own frame, the model cast
alone (nothing else is known there yet). `score_in_frames` scores world poses of
several objects together over some frames, so that objects hide each other as they do
in the sensor depth. A score is AGREE / (AGREE + MODEL_IN_FRONT + MODEL_BEHIND) over the
object's pixels, NaN where nothing could be scored.

`depth_ratio` is the units check: estimator translations against the sensor depth at
the pixel the object's origin projects to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import inv_pose, transform_points
from labeller.formats.models import ObjectModel
from labeller.geometry.depth_check import classify_pixels, measure, ray_length_factor
from labeller.geometry.render import ObjectRenderer, projected_bbox

# Half-size of the patch around a projected origin whose median depth is compared.
RATIO_PATCH_PX = 2


class EstimateScorer:
    """Scores camera-relative poses of class models against one frame's depth at a time."""

    def __init__(self, camera: CameraIntrinsics, models: dict[str, ObjectModel],
                 delta_m: float, occlusion_margin_m: float):
        self.camera = camera
        self.models = models
        self.delta_m = delta_m
        self.margin_m = occlusion_margin_m
        self.factor = ray_length_factor(camera)
        # One renderer per class with the model at the world origin: a camera pose of
        # inv(T_cam_obj) then sees it as the estimate says.
        self._renderers = {name: ObjectRenderer([(1, m, np.eye(4))]) for name, m in models.items()}

    def score(self, class_name: str, T_cam_obj: np.ndarray, dist_sensor: np.ndarray) -> float:
        """Score of `class_name` at T_cam_obj (4, 4) against dist_sensor (H, W) (ray
        distances in metres, `depth_m * ray_length_factor`); NaN if it projects nowhere."""
        model = self.models[class_name]
        roi = projected_bbox(self.camera, T_cam_obj, model)
        if roi is None:
            return float("nan")
        x, y, w, h = roi
        r = self._renderers[class_name].render(self.camera, inv_pose(T_cam_obj), roi=roi)
        dist = r.depth * self.factor[y:y + h, x:x + w]
        ds = dist_sensor[y:y + h, x:x + w]
        code = classify_pixels(dist, dist > 0, ds, self.delta_m, self.margin_m)
        m, _ = measure(roi, dist, code, ds)
        return m.score


def score_in_frames(camera: CameraIntrinsics, objects: Sequence[tuple[int, ObjectModel, np.ndarray]],
                    poses: dict[int, np.ndarray], depth_of: Callable[[int], np.ndarray],
                    frames: Sequence[int], delta_m: float, occlusion_margin_m: float
                    ) -> dict[int, float]:
    """Mean score per object id over `frames` (those with a pose in `poses`).

    objects: (id, model, T_world_obj); poses: frame id -> T_world_cam; depth_of: frame
    id -> depth (H, W) metres. Objects occlude each other. NaN for an object never scored.
    """
    if not objects:
        return {}
    renderer = ObjectRenderer(list(objects))
    factor = ray_length_factor(camera)
    sums: dict[int, list[float]] = {int(i): [] for i, _, _ in objects}
    for t in frames:
        if t not in poses:
            continue
        T_world_cam = poses[t]
        dist_s = depth_of(t) * factor
        full = renderer.render(camera, T_world_cam)
        T_cam_world = inv_pose(T_world_cam)
        for obj_id, model, T_world_obj in objects:
            roi = projected_bbox(camera, T_cam_world @ T_world_obj, model)
            if roi is None:
                continue
            x, y, w, h = roi
            alone = renderer.render(camera, T_world_cam, roi=roi, only=obj_id)
            dist = alone.depth * factor[y:y + h, x:x + w]
            front = full.inst[y:y + h, x:x + w] == obj_id
            ds = dist_s[y:y + h, x:x + w]
            code = classify_pixels(dist, front, ds, delta_m, occlusion_margin_m)
            m, _ = measure(roi, dist, code, ds)
            if np.isfinite(m.score):
                sums[int(obj_id)].append(m.score)
    return {i: float(np.mean(v)) if v else float("nan") for i, v in sums.items()}


def depth_ratio(camera: CameraIntrinsics, T_cam_obj: np.ndarray, depth_m: np.ndarray) -> float:
    """Estimated z of the object's origin over the sensor depth around where it projects;
    NaN where it projects outside the image or onto no depth. ~1 for right units."""
    p = transform_points(T_cam_obj, np.zeros((1, 3)))[0]
    if p[2] <= 0:
        # Behind the camera: a sign or unit error, but not a measurable ratio.
        return float("nan")
    u, v = camera.project(p[None])[0]
    ui, vi = int(round(u)), int(round(v))
    if not (0 <= ui < camera.width and 0 <= vi < camera.height):
        return float("nan")
    k = RATIO_PATCH_PX
    patch = depth_m[max(vi - k, 0):vi + k + 1, max(ui - k, 0):ui + k + 1]
    patch = patch[patch > 0]
    if patch.size == 0:
        return float("nan")
    return float(p[2] / np.median(patch))
