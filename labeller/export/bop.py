"""BOP scenes (`labeller export --format bop`): the BOP toolkit's
docs/bop_datasets_format.md (layout, units and JSON in `labeller.formats.bop`), with the
choices docs/design.md fixes:

    OUT/camera.json                       the first scene's intrinsics (sensor simulation)
    OUT/models/obj_{id:06d}.ply           ASCII PLY in mm with vertex normals (+ colours)
    OUT/models/models_info.json           diameter, min_x.., size_x.. (mm), symmetries
    OUT/models_eval/                      the same models and models_info.json: what the
                                          toolkit's eval_bop19_pose reads
    OUT/{split}/{scene_id:06d}/rgb/{im:06d}.png|jpg   copied byte for byte
                                 depth/{im:06d}.png   copied byte for byte
                                 mask/, mask_visib/, scene_camera.json, scene_gt.json,
                                 scene_gt_info.json
    OUT/test_targets_bop19.json           (test splits) instances with visib_fract >= 0.1
    OUT/manifest.json

Image id = the BOP image id a scene imported from BOP recorded (SCENE/bop_image_ids.txt,
so import -> export keeps the ids), else the frame id (never renumbered); scene ids 1, 2,
... in command-line order; the
gt index of an object is its index in the annotations (every object, every image, as
BOP lists every annotated instance; an object out of view has empty masks and boxes
[-1, -1, -1, -1]). obj_id is the YCB-Video id for the ten PROPS classes, 100 + the index
in the export's class table for any other. Symmetries: the BOP ycbv table (the
textured objects), or with --geometric-symmetries the shape-only one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import atomic_dir, atomic_write_text
from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig, ExportSummary, emit_warning
from labeller.export.models import collect_models, copy_attribution, load_mesh_arrays
from labeller.export.output import (
    check_out_dir,
    copy_hashed,
    finish_permissions,
    to_jsonable,
    write_manifest,
    write_png_hashed,
)
from labeller.export.sources import SceneSource, class_table, open_sources, worker_labels
from labeller.export.workers import FrameResult, write_frames
from labeller.formats import bop
from labeller.formats.bop import bop_obj_id
from labeller.formats.models import mesh_diameter_m

FRAMES_PER_TASK = 16


def write_frames_task(task: tuple) -> FrameResult:
    """Worker: copy the frames and write the masks of a run of frames of one scene.

    task = (scene index, out root, scene folder relative to it, labels.h5 path,
            instance ids (O,) as in the labels' masks,
            [(frame_id, BOP image id, rgb path, depth path)]);
    returns (scene index, frames done, {relative path: sha256}).
    """
    si, root, rel, labels_path, instance_ids, frames = task
    base = Path(root) / rel
    lab = worker_labels(labels_path)
    hashes: dict[str, str] = {}
    for t, im, rgb, depth in frames:
        ext = ".jpg" if Path(rgb).suffix.lower() in (".jpg", ".jpeg") else ".png"
        for sub, src, name in (("rgb", rgb, bop.image_file(im, ext)),
                               ("depth", depth, bop.image_file(im))):
            hashes[f"{rel}/{sub}/{name}"] = copy_hashed(src, base / sub / name)
        mv = lab.mask_visib(t)
        for k, iid in enumerate(instance_ids):
            name = bop.mask_file(im, k)
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


def check_gt_info_rule(src: SceneSource) -> None:
    """FormatError for labels written before boxes and counts followed the BOP toolkit."""
    from labeller.formats.labels import Labels
    from labeller.formats.labels.schema import GT_INFO_MIN_VERSION

    with Labels.open(src.labels_path) as lab:
        version = int(lab.attrs["version"])
    if version < GT_INFO_MIN_VERSION:
        raise FormatError(src.labels_path, f"version {version} labels have boxes one pixel wider "
                                           "and counts clipped to the image; rerun `labeller "
                                           f"propagate {src.root}` before a BOP export")


def image_ids(src: SceneSource, rows: np.ndarray) -> list[int]:
    """The BOP image id of each exported row: as recorded at import (bop_image_ids.txt),
    else the frame id."""
    path = src.root / bop.IMAGE_IDS_FILE
    recorded = bop.read_image_ids(path)
    frames = [int(src.frame_ids[r]) for r in rows]
    if recorded is None:
        return frames
    missing = [t for t in frames if t not in recorded]
    if missing:
        raise BadInput(path, f"no image id for frame {missing[0]} ({len(missing)} labelled "
                             "frame(s) missing); delete the file to number images by frame id")
    return [recorded[t] for t in frames]


def scene_json(src: SceneSource, rows: np.ndarray, obj_ids: list[int],
               ims: list[int]) -> tuple[dict, dict, dict]:
    """(scene_camera, scene_gt, scene_gt_info) of one scene, keyed by str(image id);
    ims: the image id of each row."""
    cam = src.scene.camera
    K = bop.intrinsics_K(cam)
    depth_scale_mm = bop.depth_scale_mm(cam)
    camera: dict[str, Any] = {}
    gt: dict[str, list] = {}
    info: dict[str, list] = {}
    for r, im in zip(rows, ims, strict=True):
        t = str(im)
        camera[t] = bop.camera_entry(K, depth_scale_mm, src.T_world_cam[r])
        gt[t] = []
        info[t] = []
        for k, oid in enumerate(obj_ids):
            gt[t].append(bop.gt_entry(oid, src.T_cam_obj[r, k]))
            info[t].append(bop.gt_info_entry(
                src.bbox_obj[r, k], src.bbox_visib[r, k], src.px_count_all[r, k],
                src.px_count_valid[r, k], src.px_count_visib[r, k], src.visib_fract[r, k]))
    return camera, gt, info


def export_bop(cfg: ExportConfig, progress: ProgressFn | None = None) -> ExportSummary:
    """Write `cfg.scenes` as BOP scenes into `cfg.out` (see the module doc)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources = open_sources(cfg.scenes)
    check_out_dir(out, sources, cfg.overwrite)
    for src in sources:
        check_gt_info_rule(src)
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
        atomic_write_text(tmp / bop.DATASET_CAMERA,
                          bop.dataset_camera_text(sources[0].scene.camera))
        # models
        mdir = tmp / bop.MODELS_DIR
        mdir.mkdir()
        edir = tmp / bop.MODELS_EVAL_DIR
        edir.mkdir()
        infos = {}
        for cls, cm in sorted(models.items(), key=lambda kv: bop_obj_id(kv[0], class_names)):
            oid = bop_obj_id(cls, class_names)
            mesh = load_mesh_arrays(cm.path)
            text = bop.ply_mm_text(mesh.vertices, mesh.normals, mesh.triangles, mesh.colors,
                                   f"labeller export: {cls} from {cm.path.name}, mm")
            for folder in (mdir, edir):
                atomic_write_text(folder / bop.model_file(oid), text)
            infos[str(oid)] = bop.model_info(cls, mesh.vertices, mesh_diameter_m(mesh.vertices),
                                             cfg.geometric_symmetries)
            counts["objects"][str(oid)] = cls
        for folder in (mdir, edir):
            atomic_write_text(folder / bop.MODELS_INFO, bop.bop_json(infos))
        attribution = copy_attribution(tmp, [cm.path for cm in models.values()])
        # frames: JSON here, images and masks in the workers
        tasks = []
        targets: list[dict] = []
        for i, (src, r) in enumerate(zip(sources, rows, strict=True)):
            scene_id = i + 1
            rel = bop.scene_dir(cfg.split, scene_id)
            for sub in bop.IMAGE_DIRS:
                (tmp / rel / sub).mkdir(parents=True)
            obj_ids = [bop_obj_id(c, class_names) for c in src.object_classes]
            ims = image_ids(src, r)
            camera, gt, info = scene_json(src, r, obj_ids, ims)
            for name, d in ((bop.SCENE_CAMERA, camera), (bop.SCENE_GT, gt),
                            (bop.SCENE_GT_INFO, info)):
                atomic_write_text(tmp / rel / name, bop.bop_json(d))
            frames = [(int(src.frame_ids[x]), im, str(src.rgb_path(src.frame_ids[x])),
                       str(src.depth_path(src.frame_ids[x]))) for x, im in zip(r, ims, strict=True)]
            for a in range(0, len(frames), FRAMES_PER_TASK):
                tasks.append((i, str(tmp), rel, str(src.labels_path),
                               [int(v) for v in src.object_ids], frames[a:a + FRAMES_PER_TASK]))
            for x, im in zip(r, ims, strict=True):
                targets += bop.frame_targets(scene_id, im, obj_ids, src.visib_fract[x])
            counts["scenes"][str(scene_id)] = {
                "scene": src.name, "images": int(len(r)),
                "skipped_flagged": int(len(src.frame_ids) - len(r)),
                "instances": int(len(r) * len(obj_ids))}
            counts["images"] += int(len(r))
            counts["instances"] += int(len(r) * len(obj_ids))
        if cfg.split.startswith("test"):
            atomic_write_text(tmp / bop.TEST_TARGETS, bop.test_targets_text(targets))
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
