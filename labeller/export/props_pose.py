"""PROPS-Pose (`labeller export --format props-pose`), the layout the DeepRob course's
`PROPSPoseDataset` loader reads (docs/design.md; the codec: `labeller.formats.props_pose`):

    OUT/PROPS-Pose-Dataset/{train,val}/rgb/{image:06d}.png
                                      depth/{image:06d}.png        uint16 millimetres
                                      mask_visib/{image:06d}_{instance:06d}.png   0/255
                                      {split}_gt.json       {"<image>": [{"cam_R_m2c",
                                                             "cam_t_m2c" (m), "obj_id"}]}
                                      {split}_gt_info.json  {"<image>": [{"bbox_visib"
                                                             ([] when not visible), ...}]}
                                      {split}_camera.json   only for another camera (below)
    OUT/PROPS-Pose-Dataset/model/<ycbv_id>_<name>/textured_simple.obj
    OUT/manifest.json            sources, options, counts, which image came from which frame

Scenes are split whole: the held-out ones (--test-scenes, or chosen by --seed) are `val`.
Image ids number each split's frames from 0 in command-line order, then frame order
(the manifest maps them back). An instance is every object of a PROPS class in view
(px_count_image > 0: some of it inside the image), at most 10 per image as the loader asserts. obj_id is the YCB-Video
id (1, 2, 3, 4, 5, 6, 8, 9, 14, 18).

Two visible objects of one class in an image: the loader keeps one mask per class (its
`label[class]` is overwritten, the last instance wins), so the others' visible pixels
become background. The export warns per image (log) and in the summary (how many
pixels are lost), and `one_instance_per_class` keeps only the most visible one (most
visible pixels) of each class.
"""

from __future__ import annotations

import io
import logging
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from labeller.core.classes import BY_NAME, PROPS_CLASSES
from labeller.core.errors import BadInput, ModelError
from labeller.core.fileio import atomic_dir, atomic_write_text, sha256_file
from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig, ExportSummary, emit_warning
from labeller.export.models import ClassModel, collect_models, copy_attribution, load_mesh_arrays
from labeller.export.output import (
    copy_hashed,
    finish_permissions,
    to_jsonable,
    write_manifest,
    write_png_hashed,
)
from labeller.export.sampling import open_split_scenes
from labeller.export.sources import SceneSource, worker_labels
from labeller.export.workers import FrameResult, write_frames
from labeller.formats import props_pose as pp
from labeller.formats.bop import bop_json
from labeller.formats.props_pose import (
    DATASET_DIR,
    DEPTH_UNITS_PER_M,
    MAX_INSTANCES,
    PROPS_POSE_K,
    PROPS_POSE_SIZE,
    SPLITS,
    same_camera_as_loader,
)

FRAMES_PER_TASK = 16
log = logging.getLogger(__name__)


def frame_instances(src: SceneSource, row: int, one_per_class: bool = False) -> list[int] | None:
    """Object indices written as instances of one frame, or None when more than 10 are
    visible (the frame is left out). one_per_class: of the objects of one class keep only
    the one with the most visible pixels (the first of equals)."""
    props = [k for k, c in enumerate(src.object_classes) if c in BY_NAME]
    inst = [k for k in props if src.px_count_image[row, k] > 0]
    if one_per_class:
        best: dict[str, int] = {}
        for k in inst:
            c = src.object_classes[k]
            if c not in best or src.px_count_visib[row, k] > src.px_count_visib[row, best[c]]:
                best[c] = k
        inst = [k for k in inst if best[src.object_classes[k]] == k]
    if len(inst) > MAX_INSTANCES:
        inst = [k for k in inst if src.px_count_visib[row, k] > 0]
    return inst if len(inst) <= MAX_INSTANCES else None


def repeated_classes(src: SceneSource, row: int, inst: list[int]) -> dict[str, tuple[int, int]]:
    """Classes with two or more visible instances in a frame: class -> (visible pixels of
    all its instances, visible pixels the course loader loses). The loader writes the
    masks in instance order into one channel per class, so the last visible one wins."""
    by_class: dict[str, list[int]] = {}
    for k in inst:
        if src.px_count_visib[row, k] > 0:
            by_class.setdefault(src.object_classes[k], []).append(int(src.px_count_visib[row, k]))
    return {c: (sum(px), sum(px[:-1])) for c, px in by_class.items() if len(px) > 1}


def _imread(path: str, flags: int) -> np.ndarray:
    img = cv2.imread(path, flags)
    if img is None:
        raise BadInput(path, "unreadable image (not a valid PNG/JPEG)")
    return img


def write_frames_task(task: tuple) -> FrameResult:
    """Worker: rgb (PNG), depth (mm PNG) and visible masks of a run of frames.

    task = (scene index, out root, split folder relative to it, labels.h5 path, depth
            units per metre of the scene, [(image id, frame id, rgb, depth,
            [(instance, object id)])]); returns (scene index, frames, {path: sha256}).
    """
    si, root, rel, labels_path, depth_scale, frames = task
    base = Path(root) / rel
    lab = worker_labels(labels_path)
    hashes: dict[str, str] = {}
    for im, t, rgb, depth, inst in frames:
        name = pp.image_file(im)
        if Path(rgb).suffix.lower() == ".png":
            hashes[f"{rel}/rgb/{name}"] = copy_hashed(rgb, base / "rgb" / name)
        else:  # the loader lists rgb/*.png
            img = _imread(rgb, cv2.IMREAD_COLOR)
            hashes[f"{rel}/rgb/{name}"] = write_png_hashed(base / "rgb" / name, img[:, :, ::-1])
        if depth_scale == DEPTH_UNITS_PER_M:
            hashes[f"{rel}/depth/{name}"] = copy_hashed(depth, base / "depth" / name)
        else:
            raw = _imread(depth, cv2.IMREAD_UNCHANGED).astype(np.float64)
            mm = np.clip(np.round(raw * (DEPTH_UNITS_PER_M / depth_scale)), 0, 65535)
            hashes[f"{rel}/depth/{name}"] = write_png_hashed(base / "depth" / name,
                                                             mm.astype(np.uint16))
        mv = lab.mask_visib(t)
        for k, oid in inst:
            mname = pp.mask_file(im, k)
            hashes[f"{rel}/mask_visib/{mname}"] = write_png_hashed(
                base / "mask_visib" / mname, (mv == oid).astype(np.uint8) * 255)
    return si, len(frames), hashes


def write_obj(dest: Path, path: Path) -> None:
    """A non-OBJ model as OBJ: vertices (with colours when present), normals, faces."""
    mesh = load_mesh_arrays(path)
    buf = io.StringIO()
    buf.write(f"# labeller export: {path.name} as OBJ, metres\n")
    if mesh.colors is not None:
        np.savetxt(buf, np.hstack([mesh.vertices, mesh.colors / 255.0]),
                   fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
    else:
        np.savetxt(buf, mesh.vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, mesh.normals, fmt="vn %.6f %.6f %.6f")
    f = mesh.triangles + 1
    np.savetxt(buf, np.repeat(f, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
    dest.write_text(buf.getvalue())


def copy_model(src: Path, dest_dir: Path) -> list[str]:
    """model/<ycbv_id>_<name>/textured_simple.obj from an OBJ (with its .mtl and texture
    images) or any other mesh (converted)."""
    dest_dir.mkdir(parents=True)
    if src.suffix.lower() == ".obj":
        shutil.copyfile(src, dest_dir / pp.MODEL_FILE)
        names = [pp.MODEL_FILE]
        for p in sorted(src.parent.iterdir()):
            if p.suffix.lower() in (".mtl", ".png", ".jpg", ".jpeg") and p.is_file():
                shutil.copyfile(p, dest_dir / p.name)
                names.append(p.name)
        return names
    write_obj(dest_dir / pp.MODEL_FILE, src)
    return [pp.MODEL_FILE]


def _repeated_report(sources: list[SceneSource], plan: dict[str, list],
                     warns: list[str]) -> dict:
    """Images where the loader keeps one of several visible objects of a class: one log
    line per image, one summary warning, and for the manifest per class {images,
    visible_px, lost_px} and per split {image id: [classes]}."""
    classes: dict[str, dict[str, int]] = {}
    images: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for split in SPLITS:
        for im, (i, r, t, inst) in enumerate(plan[split]):
            rep = repeated_classes(sources[i], r, inst)
            if not rep:
                continue
            images[split][str(im)] = sorted(rep)
            for c, (px, lost) in rep.items():
                agg = classes.setdefault(c, {"images": 0, "visible_px": 0, "lost_px": 0})
                agg["images"] += 1
                agg["visible_px"] += px
                agg["lost_px"] += lost
            log.warning("%s image %d (%s frame %d): %s; the course loader keeps one mask per "
                        "class", split, im, sources[i].name, t,
                        ", ".join(f"{c}: {lost} of {px} visible px become background"
                                  for c, (px, lost) in sorted(rep.items())))
    if classes:
        n = sum(len(v) for v in images.values())
        per_class = ", ".join(
            f"{c} in {a['images']} image(s), {100.0 * a['lost_px'] / max(a['visible_px'], 1):.1f} "
            "% of its visible pixels" for c, a in sorted(classes.items()))
        emit_warning(warns, f"{n} image(s) show two or more visible objects of one class; the "
                            "course loader keeps one mask per class, so the others become "
                            f"background ({per_class}); --one-instance-per-class keeps only "
                            "the most visible one")
    return {"classes": classes, "images": images}


def export_props_pose(cfg: ExportConfig, progress: ProgressFn | None = None) -> ExportSummary:
    """Write `cfg.scenes` as a PROPS-Pose dataset into `cfg.out` (see the module doc)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources, held = open_split_scenes(cfg.scenes, out, cfg.overwrite, cfg.test_scenes, cfg.seed)
    warns: list[str] = []
    others = sorted({c for s in sources for c in s.object_classes if c not in BY_NAME})
    if others:
        emit_warning(warns, f"classes outside PROPS are not written (the loader knows only the "
                            f"ten YCB-Video ids): {', '.join(others)}")
    models = collect_models(sources, cfg.models_dir, warns)
    models = {c: m for c, m in models.items() if c in BY_NAME}
    if cfg.models_dir is not None:  # the loader opens all ten models: fill from the library
        from labeller.formats.models import find_class_model

        for c in PROPS_CLASSES:
            if c.name not in models:
                try:
                    p, _ = find_class_model(c.name, None, cfg.models_dir)
                except ModelError:
                    continue
                models[c.name] = ClassModel(c.name, p, sha256_file(p), [])
    missing = [c.name for c in PROPS_CLASSES if c.name not in models]
    if missing:
        emit_warning(warns, "the course loader opens all ten models; no model for "
                            f"{', '.join(missing)} (pass --models DIR with the YCB meshes)")
    foreign = [s for s in sources if not same_camera_as_loader(s.scene.camera)]
    if foreign:
        emit_warning(warns, f"scene(s) {', '.join(s.name for s in foreign)} were not recorded "
                            "with the camera the course loader hard-codes (640x480, fx 902.19 "
                            "fy 902.39 cx 342.35 cy 252.23); their true intrinsics "
                            "are in train_camera.json / val_camera.json")

    # image ids, instances, JSON
    plan: dict[str, list] = {s: [] for s in SPLITS}   # (scene index, row, frame id, inst)
    skipped = {"flagged": 0, "too_many_instances": 0}
    dropped = 0  # instances left out by one_instance_per_class
    for i, src in enumerate(sources):
        split = "val" if held[i] else "train"
        flagged_any = (np.asarray(src.flagged.any(axis=1)) if src.n_objects
                       else np.zeros(len(src.frame_ids), bool))
        for r in range(len(src.frame_ids)):
            if flagged_any[r] and not cfg.keep_flagged:
                skipped["flagged"] += 1
                continue
            inst = frame_instances(src, r, cfg.one_instance_per_class)
            if inst is None:
                skipped["too_many_instances"] += 1
                continue
            if cfg.one_instance_per_class:  # the objects in view beyond one per class
                in_view = [c for k, c in enumerate(src.object_classes)
                           if c in BY_NAME and src.px_count_image[r, k] > 0]
                dropped += len(in_view) - len(set(in_view))
            plan[split].append((i, r, int(src.frame_ids[r]), inst))
    if skipped["too_many_instances"]:
        emit_warning(warns, f"{skipped['too_many_instances']} frame(s) with more than "
                            f"{MAX_INSTANCES} visible objects left out (the loader asserts at "
                            f"most {MAX_INSTANCES})")
    n_frames = sum(len(v) for v in plan.values())
    if n_frames == 0:
        raise BadInput("SCENE", "no frame to export (every labelled frame has a flagged "
                                "label; review them or pass --keep-flagged)")
    counts: dict = {s: {"images": len(plan[s]), "instances": 0} for s in SPLITS}
    counts["skipped_frames"] = skipped
    if cfg.one_instance_per_class:
        counts["dropped_instances"] = dropped
    repeated = _repeated_report(sources, plan, warns)
    counts["repeated_classes"] = repeated["classes"]
    image_sources: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        root = tmp / DATASET_DIR
        tasks = []
        for split in SPLITS:
            rel = f"{DATASET_DIR}/{split}"
            for sub in pp.IMAGE_DIRS:
                (tmp / rel / sub).mkdir(parents=True)
            gt: dict[str, list] = {}
            info: dict[str, list] = {}
            camera: dict[str, dict] = {}
            frames_by_scene: dict[int, list] = {}
            for im, (i, r, t, inst) in enumerate(plan[split]):
                src = sources[i]
                key = str(im)
                gt[key], info[key] = [], []
                for k in inst:
                    gt[key].append(pp.gt_entry(BY_NAME[src.object_classes[k]].ycbv_id,
                                               src.T_cam_obj[r, k]))
                    info[key].append(pp.gt_info_entry(
                        src.bbox_obj[r, k], src.bbox_visib[r, k], src.px_count_all[r, k],
                        src.px_count_valid[r, k], src.px_count_visib[r, k],
                        src.visib_fract[r, k]))
                counts[split]["instances"] += len(inst)
                camera[key] = pp.camera_entry(src.scene.camera)
                image_sources[split][key] = [src.name, t]
                frames_by_scene.setdefault(i, []).append(
                    (im, t, str(src.rgb_path(t)), str(src.depth_path(t)),
                     [(j, int(src.object_ids[k])) for j, k in enumerate(inst)]))
            for i, frames in frames_by_scene.items():
                for a in range(0, len(frames), FRAMES_PER_TASK):
                    tasks.append((i, str(tmp), rel, str(sources[i].labels_path),
                                  float(sources[i].scene.camera.depth_scale),
                                  frames[a:a + FRAMES_PER_TASK]))
            atomic_write_text(tmp / rel / pp.gt_file(split), bop_json(gt))
            atomic_write_text(tmp / rel / pp.gt_info_file(split), bop_json(info))
            if any(not same_camera_as_loader(sources[i].scene.camera)
                   for i, _, _, _ in plan[split]):
                atomic_write_text(tmp / rel / pp.camera_file(split), bop_json(camera))
        # models
        mroot = root / pp.MODEL_DIR
        mroot.mkdir(parents=True)
        model_files = {}
        for c in PROPS_CLASSES:
            if c.name in models:
                folder = pp.model_folder(c.ycbv_id, c.name)
                model_files[folder] = {"source": str(models[c.name].path),
                                       "files": copy_model(models[c.name].path, mroot / folder)}
        attribution = copy_attribution(mroot, [m.path for m in models.values()])
        totals: dict[int, tuple[str, int]] = {}
        for t in tasks:
            name, n = totals.get(t[0], (sources[t[0]].name, 0))
            totals[t[0]] = (name, n + len(t[5]))
        hashes = write_frames(write_frames_task, tasks, n_frames, totals, cfg, progress)
        body = {
            "export_format": "props-pose", "options": cfg.options(),
            "pose_convention": ("cam_R_m2c/cam_t_m2c hold inv(T_cam_obj) in metres, as the "
                                "published PROPS-Pose files; the course loader inverts them"),
            "camera_of_loader": {"fx": PROPS_POSE_K[0], "fy": PROPS_POSE_K[1],
                                 "cx": PROPS_POSE_K[2], "cy": PROPS_POSE_K[3],
                                 "width": PROPS_POSE_SIZE[0], "height": PROPS_POSE_SIZE[1]},
            "sources": [{**s.describe(), "split": "val" if h else "train"}
                        for s, h in zip(sources, held, strict=True)],
            "counts": counts, "models": model_files, "attribution": attribution,
            "image_sources": image_sources, "repeated_class_images": repeated["images"],
            "warnings": warns,
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body), hashes)
    train = [s.name for s, h in zip(sources, held, strict=True) if not h]
    val = [s.name for s, h in zip(sources, held, strict=True) if h]
    lines = [f"train: {counts['train']['images']} images, {counts['train']['instances']} "
             f"instances from {', '.join(train) or '-'}",
             f"val:   {counts['val']['images']} images, {counts['val']['instances']} "
             f"instances from {', '.join(val) or '-'}",
             f"models: {len(model_files)} in {out / DATASET_DIR / pp.MODEL_DIR}"]
    if skipped["flagged"]:
        lines.append(f"left out {skipped['flagged']} frame(s) with flagged labels "
                     "(--keep-flagged keeps them)")
    if cfg.one_instance_per_class:
        lines.append(f"--one-instance-per-class: left out {dropped} less visible instance(s) "
                     "of a class already in their image")
    return ExportSummary("props-pose", out, lines, counts, warns, None, out / "manifest.json",
                         time.perf_counter() - t0)
