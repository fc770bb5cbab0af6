"""Import one BOP scene folder (`labeller import bop SRC SCENE [--models DIR]`).

SRC is a BOP scene (``{split}/{scene:06d}/``) with ``scene_camera.json``, ``rgb/`` and
``depth/`` named by image id (``000012.png``), as in the BOP toolkit's
``docs/bop_datasets_format.md``:

- Frames are the images of ``rgb/`` in image-id order, renumbered 0..N−1 (the mapping is
  kept in the summary when ids are not already 0..N−1); colour and depth are copied
  byte-identical. Every image needs a ``scene_camera.json`` entry and a depth image.
- ``cam_K`` must be the same for every image (a scene has one camera). BOP's
  ``depth_scale`` is millimetres per depth unit; ``camera.json`` takes units per metre:
  ``1000 / depth_scale``.
- With ``cam_R_w2c`` / ``cam_t_w2c`` (mm) present, ``T_world_cam = inv(w2c)`` in metres,
  re-anchored to the first frame, becomes ``trajectory.txt`` (and, being ground truth,
  ``gt/trajectory.txt``); then ``scene_gt.json``
  (``cam_R_m2c``, ``cam_t_m2c`` in mm) becomes ``annotations.json``: object k of the
  first image that has ground truth, ``T_world_obj = T_world_cam[t] @ T_cam_obj``.
  Classes: the PROPS class names when every obj_id is a YCB-V id of the ten PROPS
  classes, else ``obj_{id:06d}``. Models: from a BOP ``models/`` folder (``--models``,
  ``obj_{id:06d}.ply`` in mm), converted to metres into ``SCENE/models/<class>.ply``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_YCBV_ID, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import sha256_file
from labeller.core.poses import inv_pose, rigid_or_none
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.scene import list_frame_files
from labeller.formats.trajectory import Trajectory
from labeller.importers.writer import (
    ImportCancelled,
    ImportResult,
    scene_writer,
)

MM_PER_M = 1000.0  # BOP files are in millimetres; the scene is in metres
FRAME_RE = re.compile(r"^(\d+)\.(png|jpg|jpeg|tif)$", re.IGNORECASE)
K_REL_TOL = 1e-6  # cam_K of different images must agree to this (relative)


def _load_json(path: Path, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise BadInput(path, "missing (a BOP scene folder has scene_camera.json, rgb/, depth/)")
        return None
    try:
        d = json.loads(path.read_text())
    except ValueError as exc:
        raise FormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise FormatError(path, "expected an object keyed by image id")
    return d


def _matrix(entry: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        a = np.asarray(entry[key], dtype=np.float64).reshape(shape)
    except KeyError:
        raise FormatError(where, f"no '{key}'") from None
    except (ValueError, TypeError):
        raise FormatError(where, f"'{key}' must be {int(np.prod(shape))} numbers") from None
    if not np.all(np.isfinite(a)):
        raise FormatError(where, f"'{key}' has NaN or infinite values")
    return a


def _pose_mm(R: np.ndarray, t_mm: np.ndarray, where: str) -> np.ndarray:
    """4x4 pose in metres from a BOP rotation and a translation in mm."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t_mm / MM_PER_M
    out, problem = rigid_or_none(T)
    if out is None:
        raise FormatError(where, problem)
    return out


def bop_class_names(obj_ids: list[int]) -> dict[int, str]:
    """obj_id -> class: PROPS names when every id is a PROPS YCB-V id, else obj_{id:06d}."""
    if obj_ids and all(i in BY_YCBV_ID for i in obj_ids):
        return {i: BY_YCBV_ID[i].name for i in obj_ids}
    return {i: f"obj_{i:06d}" for i in obj_ids}


def convert_model_mm_to_m(src: Path, dest: Path) -> None:
    """Write the BOP model `src` (mm) scaled to metres as PLY `dest` (vertex colours kept)."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(src))
    if len(mesh.vertices) == 0 or len(mesh.triangles) == 0:
        raise BadInput(src, "not a readable triangle mesh")
    mesh.scale(1.0 / MM_PER_M, center=(0.0, 0.0, 0.0))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_triangle_mesh(str(dest), mesh, write_ascii=False):
        raise OSError(f"{dest}: Open3D could not write the model")


def import_bop(src: str | Path, dest: str | Path, *, link: bool = False, overwrite: bool = False,
               models: str | Path | None = None,
               progress: Callable[[int, int], bool | None] | None = None) -> ImportResult:
    """Convert one BOP scene folder into a scene at `dest` (see the module doc)."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise BadInput(src, "not a directory (expected a BOP scene folder like test/000001)")
    cam_path = src / "scene_camera.json"
    cams = _load_json(cam_path)
    assert cams is not None
    rgb = list_frame_files(src / "rgb", FRAME_RE)
    if not rgb:
        raise BadInput(src / "rgb", "no images named by image id (like 000000.png)")
    depth = list_frame_files(src / "depth", FRAME_RE)
    ids = sorted(rgb)
    for i in ids:
        if str(i) not in cams:
            raise FormatError(cam_path, f"no entry for image {i} ({rgb[i].relative_to(src)})")
        if i not in depth:
            raise BadInput(src / "depth" / f"{i:06d}.png", f"missing depth image for {rgb[i].name}")
    warnings: list[str] = []

    K0 = ds0 = None
    w2c: dict[int, np.ndarray] = {}
    for t, i in enumerate(ids):
        e, where = cams[str(i)], f"{cam_path}: image {i}"
        if not isinstance(e, dict):
            raise FormatError(where, "entry must be an object")
        K = _matrix(e, "cam_K", (3, 3), where)
        if "depth_scale" not in e:
            raise FormatError(where, "no 'depth_scale' (mm per depth unit)")
        try:
            ds = float(e["depth_scale"])
        except (TypeError, ValueError):
            raise FormatError(where, "'depth_scale' must be a number") from None
        if not ds > 0:
            raise FormatError(where, f"'depth_scale' must be > 0, got {ds}")
        if K0 is None:
            K0, ds0 = K, ds
        elif not np.allclose(K, K0, rtol=K_REL_TOL, atol=1e-9) or ds != ds0:
            raise FormatError(where, f"cam_K/depth_scale differ from image {ids[0]}'s; a "
                                     "labeller scene has one camera")
        if "cam_R_w2c" in e or "cam_t_w2c" in e:
            R = _matrix(e, "cam_R_w2c", (3, 3), where)
            tv = _matrix(e, "cam_t_w2c", (3,), where)
            w2c[t] = _pose_mm(R, tv, where)
    assert K0 is not None and ds0 is not None
    traj = Trajectory({t: inv_pose(T) for t, T in w2c.items()}).reanchored()
    if w2c and len(w2c) < len(ids):
        warnings.append(f"{cam_path}: {len(ids) - len(w2c)} of {len(ids)} images have no "
                        "cam_R_w2c/cam_t_w2c; they stay untracked")

    # Objects: from the first image with ground truth and a camera pose.
    gt_path = src / "scene_gt.json"
    gts = _load_json(gt_path, required=False)
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
                where = f"{gt_path}: image {i}, object {k}"
                if not isinstance(g, dict) or "obj_id" not in g:
                    raise FormatError(where, "expected an object with 'obj_id'")
                T_cam_obj = _pose_mm(_matrix(g, "cam_R_m2c", (3, 3), where),
                                     _matrix(g, "cam_t_m2c", (3,), where), where)
                try:
                    obj_id = int(g["obj_id"])
                except (TypeError, ValueError):
                    raise FormatError(where, "'obj_id' must be an integer") from None
                objects.append((obj_id, traj[t] @ T_cam_obj))
            break
        if not objects:
            warnings.append(f"{gt_path}: no image with a camera pose has ground truth; "
                            "no annotations.json")

    names = bop_class_names(sorted({o for o, _ in objects}))
    models_dir = Path(models) if models is not None else None
    if models_dir is not None and not models_dir.is_dir():
        raise BadInput(models_dir, "--models: not a directory")

    with scene_writer(dest, overwrite=overwrite, link=link) as w:
        bar = tqdm(total=len(ids), desc="import bop", unit="frame", leave=False)
        for t, i in enumerate(ids):
            w.check_frame(rgb[i], depth[i])
            w.add_rgb(t, rgb[i])
            w.add_depth_file(t, depth[i])
            bar.update(1)
            if progress is not None and progress(t + 1, len(ids)) is False:
                bar.close()
                raise ImportCancelled(f"{dest}: import cancelled; nothing written")
        bar.close()
        size = w.frame_size
        assert size is not None
        w.write_camera(CameraIntrinsics(size[0], size[1], float(K0[0, 0]), float(K0[1, 1]),
                                        float(K0[0, 2]), float(K0[1, 2]), MM_PER_M / ds0))
        notes = [f"depth_scale {ds0:g} mm per unit -> camera.json depth_scale {MM_PER_M / ds0:g}"]
        if ids != list(range(len(ids))):
            notes.append(f"image ids {ids[0]}..{ids[-1]} renumbered 0..{len(ids) - 1} in order")
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
                    bop_model = models_dir / f"obj_{obj_id:06d}.ply"
                    if not bop_model.is_file():
                        raise BadInput(bop_model, f"missing: scene_gt.json has obj_id {obj_id} "
                                                  "and --models names this folder")
                    convert_model_mm_to_m(bop_model, w.root / rel)
                else:
                    all_found = False
                    if obj_id in BY_YCBV_ID and name in PROPS_CLASS_NAMES:
                        # Found through --models of later commands (a YCB library).
                        rel = f"{BY_YCBV_ID[obj_id].ycb_folder}/textured.obj"
                model_paths[obj_id] = rel
            classes = (list(PROPS_CLASS_NAMES) if all(n in PROPS_CLASS_NAMES for n in
                                                      names.values())
                       else sorted(set(names.values())))
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
