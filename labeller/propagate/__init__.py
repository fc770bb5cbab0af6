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
the worst flagged frames. Cancelling (the progress callback returns False) raises
`labeller.core.errors.Cancelled`.

Modules:

* `config`: `PropagateConfig`, the run's settings (the CLI options are generated from it).
* `frame`: `Job` (what a worker needs) and `FrameLabeller` (render, composite, depth check
  and ICP for one frame).
* `workers`: `iter_records`, labelling many frames in this process or on a worker pool.
* `preparation`: `prepare`, checking every input and building the job and the file header.
* `summary`: `PropagateSummary`, what a run did, and its text and JSON forms.
* `overlays`: the review images of the worst flagged frames.
* `lock`: `scene_lock`, one run per scene at a time.
* `driver`: `run`, the stage itself (resume, label, finish, rename).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.propagate.config import REFINE_MODES, PropagateConfig
    from labeller.propagate.driver import partial_path, run
    from labeller.propagate.frame import FrameLabeller, Job, ObjectView
    from labeller.propagate.lock import scene_lock
    from labeller.propagate.overlays import overlay_image, worst_flagged_frames
    from labeller.propagate.preparation import NO_POSE_REASON, PreparedRun, prepare
    from labeller.propagate.summary import ObjectSummary, PropagateSummary, summary_json
    from labeller.propagate.workers import iter_records

# Public name -> the module that defines it, imported on first use (labeller.core.lazy).
_HOMES = {
    "FrameLabeller": "frame",
    "Job": "frame",
    "NO_POSE_REASON": "preparation",
    "ObjectSummary": "summary",
    "ObjectView": "frame",
    "PreparedRun": "preparation",
    "PropagateConfig": "config",
    "PropagateSummary": "summary",
    "REFINE_MODES": "config",
    "iter_records": "workers",
    "overlay_image": "overlays",
    "partial_path": "driver",
    "prepare": "preparation",
    "run": "driver",
    "scene_lock": "lock",
    "summary_json": "summary",
    "worst_flagged_frames": "overlays",
}
__getattr__ = lazy_exports(__name__, _HOMES)
__all__ = [
    "FrameLabeller",
    "Job",
    "NO_POSE_REASON",
    "ObjectSummary",
    "ObjectView",
    "PreparedRun",
    "PropagateConfig",
    "PropagateSummary",
    "REFINE_MODES",
    "iter_records",
    "overlay_image",
    "partial_path",
    "prepare",
    "run",
    "scene_lock",
    "summary_json",
    "worst_flagged_frames",
]
