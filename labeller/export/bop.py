"""BOP scenes (`labeller export --format bop`): the BOP toolkit's
docs/bop_datasets_format.md, with the choices docs/design.md fixes:

    OUT/camera.json                       the first scene's intrinsics (sensor simulation)
    OUT/models/obj_{id:06d}.ply           ASCII PLY in mm with vertex normals (+ colours)
    OUT/models/models_info.json           diameter, min_x.., size_x.. (mm), symmetries
    OUT/{split}/{scene_id:06d}/rgb/{im:06d}.png|jpg   copied byte for byte
                                 depth/{im:06d}.png   copied byte for byte
                                 mask/{im:06d}_{gt:06d}.png        object alone, 0/255
                                 mask_visib/{im:06d}_{gt:06d}.png  visible part, 0/255
                                 scene_camera.json   cam_K, depth_scale (mm per unit),
                                                     cam_R_w2c, cam_t_w2c (mm)
                                 scene_gt.json       obj_id, cam_R_m2c (row-major), cam_t_m2c (mm)
                                 scene_gt_info.json  bbox_obj, bbox_visib, px_count_all,
                                                     px_count_valid, px_count_visib, visib_fract
    OUT/test_targets_bop19.json           (test splits) instances with visib_fract >= 0.1
    OUT/manifest.json

Image id = frame id (never renumbered); scene ids 1, 2, ... in command-line order; the
gt index of an object is its index in the annotations (every object, every image, as
BOP lists every annotated instance; an object out of view has empty masks and boxes
[-1, -1, -1, -1]). obj_id is the YCB-Video id for the ten PROPS classes, 100 + the index
in the export's class table for any other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from labeller.core.classes import BOP_OTHER_ID_BASE, BY_NAME
from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_dir, atomic_write_text
from labeller.core.poses import inv_pose
from labeller.export.common import (
    ExportConfig,
    ExportSummary,
    MeshArrays,
    SceneSource,
    bop_json,
    check_out_dir,
    class_table,
    collect_models,
    copy_attribution,
    copy_hashed,
    emit_warning,
    finish_permissions,
    load_mesh_arrays,
    open_sources,
    to_jsonable,
    worker_labels,
    write_frames,
    write_manifest,
    write_png_hashed,
)
from labeller.formats.models import mesh_diameter_m

M_TO_MM = 1000.0
# bop19 test targets: instances at least this visible (BOP's own choice for its targets).
TARGET_MIN_VISIB = 0.1
FRAMES_PER_TASK = 16


def bop_obj_id(class_name: str, class_names: list[str]) -> int:
    """YCB-Video id for a PROPS class, else 100 + its index in the export's class table."""
    if class_name in BY_NAME:
        return BY_NAME[class_name].ycbv_id
    return BOP_OTHER_ID_BASE + class_names.index(class_name)


def symmetries(class_name: str, vertices_mm: np.ndarray) -> dict:
    """models_info symmetry fields from the per-class table (labeller.core.classes).

    A class with a `symmetry_axis` (the cans about z, the marker about y) turns freely
    about that axis, through the centre of the model's bounding box: BOP's
    `symmetries_continuous` [{"axis": [x, y, z], "offset": [x, y, z] mm}]. No class has
    a discrete symmetry once its texture is taken into account.
    """
    cls = BY_NAME.get(class_name)
    if cls is None or cls.symmetry_axis is None:
        return {}
    axis = np.asarray(cls.symmetry_axis, np.float64)
    centre = (vertices_mm.min(0) + vertices_mm.max(0)) / 2.0
    offset = centre - axis * float(centre @ axis)  # the point of the axis nearest the origin
    return {"symmetries_continuous": [{"axis": axis.tolist(),
                                       "offset": [round(float(v), 6) for v in offset]}]}


def model_info(class_name: str, mesh: MeshArrays, diameter_m: float) -> dict:
    v = mesh.vertices * M_TO_MM
    lo, hi = v.min(0), v.max(0)
    info = {"diameter": round(diameter_m * M_TO_MM, 6),
            "min_x": round(float(lo[0]), 6), "min_y": round(float(lo[1]), 6),
            "min_z": round(float(lo[2]), 6), "size_x": round(float(hi[0] - lo[0]), 6),
            "size_y": round(float(hi[1] - lo[1]), 6), "size_z": round(float(hi[2] - lo[2]), 6)}
    info.update(symmetries(class_name, v))
    return info


def ply_mm_text(mesh: MeshArrays, comment: str) -> str:
    """ASCII PLY in millimetres with vertex normals (and colours when the source has them)."""
    v = mesh.vertices * M_TO_MM
    n = mesh.normals
    header = ["ply", "format ascii 1.0", f"comment {comment}", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z",
              "property float nx", "property float ny", "property float nz"]
    cols = [v, n]
    fmt = ["%.6f"] * 6
    if mesh.colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        cols.append(mesh.colors.astype(np.float64))
        fmt += ["%d"] * 3
    header += [f"element face {len(mesh.triangles)}", "property list uchar int vertex_indices",
               "end_header"]
    import io

    buf = io.StringIO()
    buf.write("\n".join(header) + "\n")
    np.savetxt(buf, np.hstack(cols), fmt=" ".join(fmt))
    faces = np.hstack([np.full((len(mesh.triangles), 1), 3), mesh.triangles])
    np.savetxt(buf, faces, fmt="%d")
    return buf.getvalue()


def _round_list(a, nd: int = 8) -> list[float]:
    return [round(float(x), nd) + 0.0 for x in np.asarray(a).reshape(-1)]  # + 0.0: no -0.0


def write_frames_task(task) -> tuple[int, int, dict[str, str]]:
    """Worker: copy the frames and write the masks of a run of frames of one scene.

    task = (scene index, out root, scene folder relative to it, labels.h5 path,
            instance ids (O,) as in the labels' masks, [(frame_id, rgb path, depth path)]);
    returns (scene index, frames done, {relative path: sha256}).
    """
    si, root, rel, labels_path, instance_ids, frames = task
    base = Path(root) / rel
    lab = worker_labels(labels_path)
    hashes: dict[str, str] = {}
    for t, rgb, depth in frames:
        ext = ".jpg" if Path(rgb).suffix.lower() in (".jpg", ".jpeg") else ".png"
        for sub, src, name in (("rgb", rgb, f"{t:06d}{ext}"), ("depth", depth, f"{t:06d}.png")):
            hashes[f"{rel}/{sub}/{name}"] = copy_hashed(src, base / sub / name)
        mv = lab.mask_visib(t)
        for k, iid in enumerate(instance_ids):
            name = f"{t:06d}_{k:06d}.png"
            full = lab.mask_full(t, k).astype(np.uint8) * 255
            hashes[f"{rel}/mask/{name}"] = write_png_hashed(base / "mask" / name, full)
            vis = (mv == iid).astype(np.uint8) * 255
            hashes[f"{rel}/mask_visib/{name}"] = write_png_hashed(base / "mask_visib" / name, vis)
    return si, len(frames), hashes


def selected_rows(src: SceneSource, keep_flagged: bool) -> np.ndarray:
    """Labelled rows to export: all, or those where propagation flagged no object."""
    if keep_flagged or src.n_objects == 0:
        return np.arange(len(src.frame_ids))
    return np.flatnonzero(~src.flagged.any(axis=1))


def scene_json(src: SceneSource, rows: np.ndarray, obj_ids: list[int]) -> tuple[dict, dict, dict]:
    """(scene_camera, scene_gt, scene_gt_info) of one scene, keyed by str(frame id)."""
    cam = src.scene.camera
    K = _round_list(cam.K, 6)  # noqa: N806
    depth_scale_mm = M_TO_MM / cam.depth_scale  # BOP: mm per depth unit
    camera, gt, info = {}, {}, {}
    for r in rows:
        t = str(int(src.frame_ids[r]))
        T_cam_world = inv_pose(src.T_world_cam[r])  # noqa: N806 - BOP's w2c
        camera[t] = {"cam_K": K, "depth_scale": depth_scale_mm,
                     "cam_R_w2c": _round_list(T_cam_world[:3, :3]),
                     "cam_t_w2c": _round_list(T_cam_world[:3, 3] * M_TO_MM, 6)}
        gt[t] = []
        info[t] = []
        for k, oid in enumerate(obj_ids):
            T = src.T_cam_obj[r, k]  # noqa: N806
            gt[t].append({"obj_id": int(oid), "cam_R_m2c": _round_list(T[:3, :3]),
                          "cam_t_m2c": _round_list(T[:3, 3] * M_TO_MM, 6)})
            info[t].append({
                "bbox_obj": [int(v) for v in src.bbox_obj[r, k]],
                "bbox_visib": [int(v) for v in src.bbox_visib[r, k]],
                "px_count_all": int(src.px_count_all[r, k]),
                "px_count_valid": int(src.px_count_valid[r, k]),
                "px_count_visib": int(src.px_count_visib[r, k]),
                "visib_fract": round(float(src.visib_fract[r, k]), 6)})
    return camera, gt, info


def export_bop(cfg: ExportConfig, progress=None) -> ExportSummary:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources = open_sources(cfg.scenes)
    check_out_dir(out, sources, cfg.overwrite)
    warns: list[str] = []
    class_names = class_table(sources)
    models = collect_models(sources, cfg.models_dir, warns)
    rows = [selected_rows(s, cfg.keep_flagged) for s in sources]
    n_frames = sum(len(r) for r in rows)
    if n_frames == 0:
        raise BadInput("SCENE", "no frame to export (every labelled frame has a flagged "
                                "label; review them or pass --keep-flagged)")
    cams = {s.scene.camera for s in sources}
    if len(cams) > 1:
        emit_warning(warns, "the scenes have different cameras; camera.json holds the first "
                            "scene's (each image's own K is in scene_camera.json)")
    counts: dict = {"scenes": {}, "images": 0, "instances": 0, "objects": {}}
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        cam = sources[0].scene.camera
        atomic_write_text(tmp / "camera.json", json.dumps(
            {"cx": cam.cx, "cy": cam.cy, "depth_scale": M_TO_MM / cam.depth_scale,
             "fx": cam.fx, "fy": cam.fy, "height": cam.height, "width": cam.width}, indent=2) + "\n")
        # models
        mdir = tmp / "models"
        mdir.mkdir()
        infos = {}
        for cls, cm in sorted(models.items(), key=lambda kv: bop_obj_id(kv[0], class_names)):
            oid = bop_obj_id(cls, class_names)
            mesh = load_mesh_arrays(cm.path)
            atomic_write_text(mdir / f"obj_{oid:06d}.ply",
                              ply_mm_text(mesh, f"labeller export: {cls} from {cm.path.name}, mm"))
            infos[str(oid)] = model_info(cls, mesh, mesh_diameter_m(mesh.vertices))
            counts["objects"][str(oid)] = cls
        atomic_write_text(mdir / "models_info.json", bop_json(infos))
        attribution = copy_attribution(tmp, [cm.path for cm in models.values()])
        # frames: JSON here, images and masks in the workers
        tasks = []
        targets = []
        for i, (src, r) in enumerate(zip(sources, rows, strict=True)):
            scene_id = i + 1
            rel = f"{cfg.split}/{scene_id:06d}"
            for sub in ("rgb", "depth", "mask", "mask_visib"):
                (tmp / rel / sub).mkdir(parents=True)
            obj_ids = [bop_obj_id(c, class_names) for c in src.object_classes]
            camera, gt, info = scene_json(src, r, obj_ids)
            for name, d in (("scene_camera", camera), ("scene_gt", gt), ("scene_gt_info", info)):
                atomic_write_text(tmp / rel / f"{name}.json", bop_json(d))
            frames = [(int(src.frame_ids[x]), str(src.rgb_path(src.frame_ids[x])),
                       str(src.depth_path(src.frame_ids[x]))) for x in r]
            for a in range(0, len(frames), FRAMES_PER_TASK):
                tasks.append((i, str(tmp), rel, str(src.labels_path),
                               [int(v) for v in src.object_ids], frames[a:a + FRAMES_PER_TASK]))
            for x in r:
                vis = src.visib_fract[x]
                per_obj: dict[int, int] = {}
                for k, oid in enumerate(obj_ids):
                    if vis[k] >= TARGET_MIN_VISIB:
                        per_obj[oid] = per_obj.get(oid, 0) + 1
                targets += [{"im_id": int(src.frame_ids[x]), "inst_count": c, "obj_id": o,
                             "scene_id": scene_id} for o, c in sorted(per_obj.items())]
            counts["scenes"][str(scene_id)] = {
                "scene": src.name, "images": int(len(r)),
                "skipped_flagged": int(len(src.frame_ids) - len(r)),
                "instances": int(len(r) * len(obj_ids))}
            counts["images"] += int(len(r))
            counts["instances"] += int(len(r) * len(obj_ids))
        if cfg.split.startswith("test"):
            atomic_write_text(tmp / "test_targets_bop19.json",
                              "[\n" + ",\n".join("  " + json.dumps(t, sort_keys=True)
                                                 for t in targets) + "\n]\n")
        totals = {i: (s.name, len(r)) for i, (s, r) in enumerate(zip(sources, rows, strict=True))}
        hashes = write_frames(write_frames_task, tasks, n_frames, totals, cfg, progress)
        body = {
            "export_format": "bop", "options": cfg.options(), "classes": class_names,
            "obj_ids": {cls: bop_obj_id(cls, class_names) for cls in models},
            "models": {cls: {"source": str(cm.path), "sha256": cm.sha256, "scenes": cm.scenes}
                       for cls, cm in models.items()},
            "sources": [{**s.describe(), "scene_id": i + 1, "split": cfg.split}
                        for i, s in enumerate(sources)],
            "counts": counts, "attribution": attribution, "warnings": warns,
            "pose": "T_cam_obj as propagated (labels.h5 /frames/T_cam_obj)",
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body), hashes)
    lines = [f"{len(sources)} scene(s) in {out / cfg.split}: {counts['images']} images, "
             f"{counts['instances']} instances, {len(models)} object model(s) in {out / 'models'}"]
    for sid, c in counts["scenes"].items():
        lines.append(f"  scene {int(sid):06d} <- {c['scene']}: {c['images']} images"
                     + (f" ({c['skipped_flagged']} with flagged labels left out)"
                        if c["skipped_flagged"] else ""))
    return ExportSummary("bop", out, lines, counts, warns, None, out / "manifest.json",
                         time.perf_counter() - t0)
