"""PROPS-Detection (`labeller export --format props-detection`), the layout the DeepRob
course's `PROPSDetectionDataset` loader reads (the codec: `labeller.formats.props_detection`):

    OUT/PROPS-Detection-Dataset/PROPS-Detection/{train,val}/rgb/{image:06d}.png
    OUT/PROPS-Detection-Dataset/train.json, val.json
                          [[image_path, [{"xyxy": [x1, y1, x2, y2], "name": class}, ...]], ...]
    OUT/md5.json          [[name, md5], ...] of train.json and val.json (the loader's
                          `object_list` for this export)
    OUT/manifest.json     sources, options, counts, which image came from which frame

Scenes are split whole: the held-out ones (--test-scenes, or chosen by --seed) are `val`,
so no val scene is in train. An image is a labelled frame with 1 to 10 visible objects of
the ten PROPS classes (the loader pads to 10 boxes and cannot take an image without one);
a box is the extent of an object's visible mask. Colour frames are copied byte for byte
(the published images are 640x480; other sizes are written as they are, with a warning:
the loader resizes every image anyway).
"""

from __future__ import annotations

import time
from pathlib import Path

from labeller.core.classes import BY_NAME
from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_dir, atomic_write_text
from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig, ExportSummary, emit_warning
from labeller.export.instances import SPLITS, image_name, measure_images, plan_images
from labeller.export.output import finish_permissions, to_jsonable, write_manifest
from labeller.export.sampling import open_split_scenes
from labeller.export.sources import SceneSource
from labeller.formats import props_detection as pd
from labeller.formats.props import MD5_FILE, md5_json, md5_list


def _props_objects(src: SceneSource) -> list[int]:
    return [k for k, c in enumerate(src.object_classes) if c in BY_NAME]


def export_props_detection(cfg: ExportConfig,
                           progress: ProgressFn | None = None) -> ExportSummary:
    """Write `cfg.scenes` as a PROPS-Detection dataset into `cfg.out` (module doc)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources, held = open_split_scenes(cfg.scenes, out, cfg.overwrite, cfg.test_scenes, cfg.seed)
    warns: list[str] = []
    if not any(held):
        emit_warning(warns, "one scene only: val.json is empty (val scenes must differ from "
                            "the train scenes)")
    others = sorted({c for s in sources for c in s.object_classes if c not in BY_NAME})
    if others:
        emit_warning(warns, "classes outside PROPS are not written (the loader knows only the "
                            f"ten PROPS names): {', '.join(others)}")
    sizes = sorted({(s.scene.camera.width, s.scene.camera.height) for s in sources
                    if (s.scene.camera.width, s.scene.camera.height) != pd.PUBLISHED_SIZE})
    if sizes:
        emit_warning(warns, "images of " + ", ".join(f"{w}x{h}" for w, h in sizes) + " are "
                            "written as they are (the published set is 640x480; the loader "
                            "resizes every image to its image_size)")
    sets = plan_images(sources, held, cfg, _props_objects, first_id=0)
    skipped = {"flagged": sets.skipped_flagged, "no_visible_object": 0,
               "too_many_objects": 0}
    for split in SPLITS:
        keep = []
        for p in sets.images[split]:
            if not p.objects:
                skipped["no_visible_object"] += 1
            elif len(p.objects) > pd.MAX_BOXES:
                skipped["too_many_objects"] += 1
            else:
                keep.append(p)
        for n, p in enumerate(keep):  # ids count the images written, from 0
            p.image_id = n
        sets.images[split] = keep
    if skipped["too_many_objects"]:
        emit_warning(warns, f"{skipped['too_many_objects']} frame(s) with more than "
                            f"{pd.MAX_BOXES} visible objects left out (the loader pads to "
                            f"{pd.MAX_BOXES} boxes)")
    if not sets.images["train"]:
        raise BadInput("SCENE", "no train image with a visible PROPS object (frames with a "
                                "flagged label are left out unless --keep-flagged)")
    counts: dict = {}
    image_sources: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        root = tmp / pd.DATASET_DIR
        rel = f"{pd.DATASET_DIR}/{pd.IMAGES_DIR}/{{split}}/rgb"
        hashes = measure_images(sources, sets, tmp, rel, False, cfg, progress)
        for split in SPLITS:
            records = []
            n_boxes = 0
            for p in sets.images[split]:
                src = sources[p.scene]
                insts = sets.measured[split][p.image_id]
                name = image_name(p.image_id, src.rgb_path(p.frame_id))
                if not insts:  # every mask empty after all: the loader cannot take it
                    (tmp / rel.format(split=split) / name).unlink()
                    hashes.pop(f"{rel.format(split=split)}/{name}", None)
                    skipped["no_visible_object"] += 1
                    continue
                boxes = [(pd.xyxy_of_bbox(x.bbox), src.object_classes[x.obj]) for x in insts]
                records.append(pd.image_record(pd.image_path(split, name), boxes))
                image_sources[split][name] = [src.name, p.frame_id]
                n_boxes += len(boxes)
            atomic_write_text(root / pd.split_file(split), pd.split_json(records))
            counts[split] = {"images": len(records), "boxes": n_boxes}
        counts["skipped_frames"] = skipped
        atomic_write_text(tmp / MD5_FILE, md5_json(md5_list(
            root, [pd.split_file(s) for s in SPLITS])))
        body = {
            "export_format": "props-detection", "options": cfg.options(),
            "box_convention": "xyxy in pixels, the extent of the visible mask's pixel squares",
            "sources": [{**s.describe(), "split": "val" if h else "train"}
                        for s, h in zip(sources, held, strict=True)],
            "counts": counts, "image_sources": image_sources, "warnings": warns,
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body), hashes)
    train = [s.name for s, h in zip(sources, held, strict=True) if not h]
    val = [s.name for s, h in zip(sources, held, strict=True) if h]
    lines = [f"train: {counts['train']['images']} images, {counts['train']['boxes']} boxes "
             f"from {', '.join(train) or '-'}",
             f"val:   {counts['val']['images']} images, {counts['val']['boxes']} boxes "
             f"from {', '.join(val) or '-'}",
             f"course loader's object_list: {out / MD5_FILE}"]
    if skipped["flagged"]:
        lines.append(f"left out {skipped['flagged']} frame(s) with flagged labels "
                     "(--keep-flagged keeps them)")
    if skipped["no_visible_object"]:
        lines.append(f"left out {skipped['no_visible_object']} frame(s) with no visible PROPS "
                     "object")
    return ExportSummary("props-detection", out, lines, counts, warns, None,
                         out / "manifest.json", time.perf_counter() - t0)
