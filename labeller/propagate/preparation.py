"""Preparing a run: every input checked, the worker job and the labels.h5 header built.

`prepare(cfg)` reads the scene (trajectory, annotations, camera, models) and raises
`BadInput` naming the file and field for anything wrong, before any frame is labelled.
Its `inputs` fingerprint (hashes of what the labels are computed from, and the settings
that change them) decides whether an earlier partial or finished run can be resumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller import __version__
from labeller.core.classes import BY_NAME
from labeller.core.errors import ConfigError, FormatError, ModelError, SceneError
from labeller.core.fileio import sha256_file
from labeller.formats.labels import LABELS_VERSION, LabelObject, LabelsMeta
from labeller.formats.scene import Scene
from labeller.propagate.config import PropagateConfig
from labeller.propagate.frame import Job

# Skip reason recorded in /skipped/reason for a frame the trajectory has no pose for.
NO_POSE_REASON = "no camera pose in trajectory.txt (frame not tracked)"


@dataclass
class PreparedRun:
    """A checked run: the scene, the worker job, the labels.h5 header and what to label.

    frame_ids: the F frames with a camera pose (ascending); T_world_cam: (F, 4, 4) their
    poses; skipped: (frame id, reason) of the frames without one.
    """

    scene: Scene
    job: Job
    meta: LabelsMeta
    objects: list[LabelObject]
    frame_ids: list[int]
    T_world_cam: np.ndarray
    skipped: list[tuple[int, str]]


def _depth_fingerprint(scene: Scene, frame_ids: list[int]) -> str:
    """Cheap identity of the depth frames used: name, size and mtime of each file."""
    h = hashlib.sha256()
    for t in frame_ids:
        st = scene.depth_file(t).stat()
        h.update(f"{scene.depth_file(t).name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def prepare(cfg: PropagateConfig) -> PreparedRun:
    """Check every input and build the job; BadInput naming the file and field otherwise."""
    from labeller.formats.models import load_model, resolve_model_path

    cfg.check()
    scene = Scene(cfg.scene)
    traj = scene.trajectory  # SceneError naming trajectory.txt when missing or malformed
    ann_path = scene.paths.annotations
    if not scene.has_annotations:
        raise FormatError(ann_path, "file not found: place the objects in `labeller gui` first")
    doc = scene.annotations()  # FormatError on unknown classes, newer versions, bad fields
    traj_sha = sha256_file(scene.paths.trajectory)  # it exists: read just above
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
        raise ConfigError(cfg, "models_dir", f"{models_dir}: not a directory")
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
              cfg.refine, icp, axes, cfg.colour_check)
    ann_sha = sha256_file(ann_path)
    inputs = {
        "format_version": LABELS_VERSION,
        "trajectory_sha256": traj_sha,
        "annotations_sha256": ann_sha,
        "camera_sha256": sha256_file(scene.paths.camera),
        "models_sha256": model_sha,
        "depth_frames": _depth_fingerprint(scene, frame_ids),
        "settings": {"delta_m": cfg.delta_m, "occlusion_margin_m": cfg.occlusion_margin_m,
                     "refine": cfg.refine, "colour_check": cfg.colour_check,
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
    return PreparedRun(scene, job, meta, label_objs, frame_ids, T_world_cam, skipped)
