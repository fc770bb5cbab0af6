"""Import one BOP scene folder (`labeller import bop SRC SCENE [--models DIR]`).

SRC is a BOP scene (``{split}/{scene:06d}/``) with ``scene_camera.json``, ``rgb/`` and
``depth/`` named by image id (``000012.png``), as in the BOP toolkit's
``docs/bop_datasets_format.md`` (files, units and JSON read through `labeller.formats.bop`):

- Frames are the images of ``rgb/`` in image-id order, renumbered 0..N−1; the original
  image id of every frame is recorded in ``SCENE/bop_image_ids.txt`` (and named in the
  summary when ids are not already 0..N−1), so that ``labeller export --format bop``
  gives the images their ids back; colour and depth are copied
  byte-identical. Every image needs a ``scene_camera.json`` entry and a depth image.
- ``cam_K`` must be the same for every image (a scene has one camera). BOP's
  ``depth_scale`` is millimetres per depth unit; ``camera.json`` takes units per metre:
  ``1000 / depth_scale``.
- With ``cam_R_w2c`` / ``cam_t_w2c`` (mm) present, ``T_world_cam = inv(w2c)`` in metres,
  re-anchored to the first frame, becomes ``trajectory.txt`` (and, being ground truth,
  ``gt/trajectory.txt``); then ``scene_gt.json``
  (``cam_R_m2c``, ``cam_t_m2c`` in mm) becomes ``annotations.json``: object k of the
  first image that has ground truth, ``T_world_obj = T_world_cam[t] @ T_cam_obj``.
  Classes: an obj_id that is the YCB-V id of one of the ten PROPS classes keeps that
  class's name whatever else is in the scene; any other becomes ``obj_{id:06d}``
  (`class_names`). The document's ``classes`` are the PROPS order, followed by the other
  names when there are any. Models: from a BOP ``models/`` folder (``--models``,
  ``obj_{id:06d}.ply`` in mm), converted to metres into ``SCENE/models/<class>.ply``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_YCBV_ID, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import atomic_write_text, sha256_file
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.formats import bop
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.bop import MM_PER_M
from labeller.formats.scene import list_frame_files
from labeller.formats.trajectory import Trajectory
from labeller.importers.writer import ImportResult, scene_writer

K_REL_TOL = 1e-6  # cam_K of different images must agree to this (relative)


def class_names(obj_ids: list[int]) -> dict[int, str]:
    """obj_id -> class: the PROPS name for a PROPS class's YCB-V id, else obj_{id:06d}."""
    return {i: BY_YCBV_ID[i].name if i in BY_YCBV_ID else f"obj_{i:06d}" for i in obj_ids}


def import_bop(src: str | Path, dest: str | Path, *, link: bool = False, overwrite: bool = False,
               models: str | Path | None = None,
               progress: ProgressFn | None = None) -> ImportResult:
    """Convert one BOP scene folder into a scene at `dest` (see the module doc)."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise BadInput(src, "not a directory (expected a BOP scene folder like test/000001)")
    cam_path = src / bop.SCENE_CAMERA
    cams = bop.read_scene_json(cam_path)
    assert cams is not None
    rgb = list_frame_files(src / "rgb", bop.IMAGE_FILE_RE)
    if not rgb:
        raise BadInput(src / "rgb", "no images named by image id (like 000000.png)")
    depth = list_frame_files(src / "depth", bop.IMAGE_FILE_RE)
    ids = sorted(rgb)
    for i in ids:
        if str(i) not in cams:
            raise FormatError(cam_path, f"no entry for image {i} ({rgb[i].relative_to(src)})")
        if i not in depth:
            raise BadInput(src / "depth" / bop.image_file(i), f"missing depth image for {rgb[i].name}")
    warnings: list[str] = []

    K0 = ds0 = None
    T_world_cam: dict[int, np.ndarray] = {}
    for t, i in enumerate(ids):
        e, where = cams[str(i)], f"{cam_path}: image {i}"
        K, ds = bop.read_intrinsics(e, where)
        if K0 is None:
            K0, ds0 = K, ds
        elif not np.allclose(K, K0, rtol=K_REL_TOL, atol=1e-9) or ds != ds0:
            raise FormatError(where, f"cam_K/depth_scale differ from image {ids[0]}'s; a "
                                     "labeller scene has one camera")
        pose = bop.read_camera_pose(e, where)
        if pose is not None:
            T_world_cam[t] = pose
    assert K0 is not None and ds0 is not None
    traj = Trajectory(T_world_cam).reanchored()
    if T_world_cam and len(T_world_cam) < len(ids):
        warnings.append(f"{cam_path}: {len(ids) - len(T_world_cam)} of {len(ids)} images have no "
                        "cam_R_w2c/cam_t_w2c; they stay untracked")

    # Objects: from the first image with ground truth and a camera pose.
    gt_path = src / bop.SCENE_GT
    gts = bop.read_scene_json(gt_path, required=False)
    objects: list[tuple[int, np.ndarray]] = []  # (obj_id, T_world_obj)
    if gts is not None and not traj.poses:
        warnings.append(f"{gt_path}: not imported: without cam_R_w2c/cam_t_w2c there is no "
                        "world frame to place the objects in")
    elif gts is not None:
        for t, i in enumerate(ids):
            entry = gts.get(str(i))
            if not entry or t not in traj:
                continue
            if not isinstance(entry, list):
                raise FormatError(f"{gt_path}: image {i}", "expected a list of objects")
            for k, g in enumerate(entry):
                obj_id, T_cam_obj = bop.read_gt_object(g, f"{gt_path}: image {i}, object {k}")
                objects.append((obj_id, traj[t] @ T_cam_obj))
            break
        if not objects:
            warnings.append(f"{gt_path}: no image with a camera pose has ground truth; "
                            "no annotations.json")

    names = class_names(sorted({o for o, _ in objects}))
    models_dir = Path(models) if models is not None else None
    if models_dir is not None and not models_dir.is_dir():
        raise BadInput(models_dir, "--models: not a directory")

    with scene_writer(dest, overwrite=overwrite, link=link) as w:
        with bar(len(ids), "import bop") as frames_bar:
            for t, i in enumerate(ids):
                w.check_frame(rgb[i], depth[i])
                w.add_rgb(t, rgb[i])
                w.add_depth_file(t, depth[i])
                frames_bar.update(1)
                check_progress(progress, t + 1, len(ids),
                               f"{dest}: import cancelled; nothing written")
        size = w.frame_size
        assert size is not None
        w.write_camera(CameraIntrinsics(size[0], size[1], float(K0[0, 0]), float(K0[1, 1]),
                                        float(K0[0, 2]), float(K0[1, 2]), MM_PER_M / ds0))
        notes = [f"depth_scale {ds0:g} mm per unit -> camera.json depth_scale {MM_PER_M / ds0:g}"]
        if ids != list(range(len(ids))):
            notes.append(f"image ids {ids[0]}..{ids[-1]} renumbered 0..{len(ids) - 1} in order "
                         f"(recorded in {bop.IMAGE_IDS_FILE}; a BOP export restores them)")
        atomic_write_text(w.root / bop.IMAGE_IDS_FILE,
                          bop.image_ids_text(dict(enumerate(ids))))
        has_gt = False
        if traj.poses:
            traj.write(w.paths.trajectory)
            # BOP poses are ground truth: kept under gt/ too, so that a later
            # `labeller track --force` can be compared with them.
            has_gt = w.write_gt_trajectory(traj)
            notes.append(f"trajectory.txt: {len(traj)} poses from cam_R_w2c/cam_t_w2c")
        if objects:
            model_paths: dict[int, str] = {}
            all_found = True
            for obj_id, name in names.items():
                rel = f"models/{name}.ply"
                if models_dir is not None:
                    bop_model = models_dir / bop.model_file(obj_id)
                    if not bop_model.is_file():
                        raise BadInput(bop_model, f"missing: scene_gt.json has obj_id {obj_id} "
                                                  "and --models names this folder")
                    bop.convert_model_mm_to_m(bop_model, w.root / rel)
                else:
                    all_found = False
                    if obj_id in BY_YCBV_ID and name in PROPS_CLASS_NAMES:
                        # Found through --models of later commands (a YCB library).
                        rel = f"{BY_YCBV_ID[obj_id].ycb_folder}/textured.obj"
                model_paths[obj_id] = rel
            others = sorted(set(names.values()) - set(PROPS_CLASS_NAMES))
            classes = list(PROPS_CLASS_NAMES) + others
            objs = [ObjectAnnotation(k + 1, names[o], model_paths[o], T)
                    for k, (o, T) in enumerate(objects)]
            doc = AnnotationDocument(objs, classes, sha256_file(w.paths.trajectory))
            if all_found:
                doc.write(w.paths.annotations)
                notes.append(f"annotations.json: {len(objs)} objects from {gt_path.name}")
            else:
                # annotations.json must name models that exist (the scene check loads them);
                # without the models the objects are kept as ground truth only.
                w.paths.gt.mkdir(parents=True, exist_ok=True)
                doc.write(w.paths.gt_annotations)
                warnings.append(f"{gt_path}: no --models given, so the {len(objs)} objects went "
                                "to gt/annotations.json only (models not in the scene); give "
                                "--models BOP_MODELS_DIR to get annotations.json")
        result = ImportResult(dest, len(ids), has_gt_trajectory=has_gt, has_timestamps=False,
                              n_linked=w.n_linked, n_copied=w.n_copied, n_rewritten=w.n_rewritten,
                              warnings=warnings + w.warnings, notes=notes)
    return result
