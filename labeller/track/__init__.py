"""Camera tracking (`labeller track`): a trajectory and a fused cloud for a scene.

Method (in the spirit of Open3D's reconstruction system, but streaming):

* Odometry: Open3D's tensor RGB-D odometry, Hybrid method (photometric + geometric,
  Park et al. 2017), coarse to fine over a 3-level pyramid — the same kernels, loss
  parameters and update scheme as ``o3d.t.pipelines.odometry.rgbd_odometry_multi_scale``
  (``compute_odometry_result_hybrid`` per iteration), but each frame's pyramid is built
  once and reused, because every frame is matched against a keyframe that serves many
  frames. Iterations per level: see ``ITERATIONS``.
* Each frame is tracked against the current keyframe (initialised from the previous
  frame's pose and velocity); when that fails, against the previous frame. A frame
  becomes a keyframe every ``keyframe_every`` frames, or sooner when the view has moved
  on (overlap with the keyframe drops, or it moved ``KF_MAX_TRANS_M`` / ``KF_MAX_ROT_DEG``).
* Every new keyframe is also matched against the keyframe before the previous one and
  against loop-closure candidates: older keyframes that share the most ORB descriptors
  with it (OpenCV ORB, verified by PnP-RANSAC on the depth-lifted keypoints, then refined
  by dense point-to-plane odometry from the PnP pose), and the nearest older keyframe by
  estimated pose. The keyframes and these edges form a pose graph that
  ``open3d.pipelines.registration.global_optimization`` optimises at the end (loop
  edges are "uncertain": the optimiser's line process drops those that disagree).
  Non-keyframes follow their keyframe: T_world_cam[t] = T_world_kf @ T_kf_cam[t].
* Duplicates: a frame whose depth repeats the previous frame's byte for byte (a stalled
  sensor) gets the pose of the frame it repeats and is reported as a duplicate.
* Failure detection: a frame fails when it cannot be read, has (almost) no depth, the
  odometry raises, the result does not explain the images (too little overlap, or too
  few depth / intensity inliers when the source is warped into the target by the
  estimate), or the camera would have jumped further than ``max_step_m`` /
  ``max_step_deg`` per frame. A failed frame gets no pose; the reason is kept. After a
  failure the next frames are tried against the keyframe, the last good frame and the
  keyframes that look most alike (ORB votes + PnP, thumbnails): relocalisation. After
  the stream, the frames lost before a relocalisation are posed backwards from it.
* Consistency: depth edges are scored against the colour edges of the frames before,
  at and after each frame; a stream whose colour is shifted against its depth is warned
  about (`consistency`).
* Fusion: after the pose graph, keyframes and every ``integrate_every``-th tracked frame
  are fused into a TSDF (Open3D's tensor ``VoxelBlockGrid``; the legacy
  ``ScalableTSDFVolume`` returns empty meshes in open3d 0.20) and its coloured surface
  points are written as ``recon/cloud.ply``.

Memory: per frame only its pose record (a 4x4 and a few numbers) is kept; keyframes
keep a 40x30 thumbnail and their ORB features (~40 KB), their pyramids live in a small LRU cache and are re-read from
disk when a loop closure or relocalisation needs them again.

Outputs: ``trajectory.txt`` (world = first tracked frame), ``recon/cloud.ply``,
``recon/tracking.json`` (per-frame status, failures and why, fitness statistics).
``recon/track_checkpoint.npz`` holds the state every ``checkpoint_every`` frames so a
rerun after an interruption resumes; it is removed when the run completes.

Modules:

* `config`: `TrackConfig` (frozen; its `option()` fields are the CLI's flags) and `check()`.
* `frames`: `FrameSource`, the tolerant frame reader (a broken frame fails alone).
* `pyramid`: `PreparedFrame`, a frame's image pyramid, thumbnail, identity and features.
* `features`: ORB features with depth, the keyframe feature database, PnP verification.
* `consistency`: `StreamConsistency`, the colour/depth timing check.
* `odometry`: `hybrid_odometry` (T_tgt_src between two frames) and `check_alignment`.
* `tracker`: `Tracker`, the per-frame state machine (keyframes, relocalisation, edges).
* `posegraph`: `GraphEdge`, information matrices, `optimise_pose_graph`.
* `checkpoint`: recon/track_checkpoint.npz (save, load, restore a `Tracker`).
* `fusion`: TSDF fusion and recon/cloud.ply.
* `report`: `TrackResult`, recon/tracking.json (`tracking_report`, `read_report`).
* `guard`: `check_annotations_guard` (do not move the world under saved annotations).
* `stage`: `run(cfg, progress)`, the stage itself.
* `external`: `import_trajectory` for `labeller track --from FILE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.track.config import TrackConfig
    from labeller.track.guard import check_annotations_guard
    from labeller.track.report import TrackResult, read_report
    from labeller.track.stage import run

# Public name -> the module that defines it, imported on first use (labeller.core.lazy).
_HOMES = {
    "TrackConfig": "config",
    "TrackResult": "report",
    "check_annotations_guard": "guard",
    "read_report": "report",
    "run": "stage",
}
__getattr__ = lazy_exports(__name__, _HOMES)
__all__ = [
    "TrackConfig",
    "TrackResult",
    "check_annotations_guard",
    "read_report",
    "run",
]
