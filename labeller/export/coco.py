"""COCO instances (`labeller export --format coco`), the COCO 2017 layout that
pycocotools, detectron2 and mmdetection read (the codec: `labeller.formats.coco`):

    OUT/train/{image:06d}.png, OUT/val/{image:06d}.png   colour frames, copied as they are
    OUT/annotations/instances_train.json, instances_val.json
    OUT/manifest.json     sources, options, counts, which image came from which frame

Scenes are split whole: the held-out ones (--test-scenes, or chosen by --seed) are `val`.
Every labelled frame is an image (one without a visible object is a negative example);
an annotation is one visible object: its visible mask as RLE, its COCO box and area,
`iscrowd` 0. Categories are the export's class table in PROPS order (id = label + 1:
1 master_chef_can ... 10 large_marker, then any other class). Image and annotation ids
count from 1 in each file.
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
from labeller.export.sources import SceneSource, class_table
from labeller.formats import coco

ANNOTATIONS_DIR = "annotations"


def instances_file(split: str) -> str:
    return f"{ANNOTATIONS_DIR}/instances_{split}.json"


def _all_objects(src: SceneSource) -> range:
    return range(src.n_objects)


def export_coco(cfg: ExportConfig, progress: ProgressFn | None = None) -> ExportSummary:
    """Write `cfg.scenes` as COCO instances into `cfg.out` (module doc)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    sources, held = open_split_scenes(cfg.scenes, out, cfg.overwrite, cfg.test_scenes, cfg.seed)
    warns: list[str] = []
    if not any(held):
        emit_warning(warns, "one scene only: instances_val.json has no images")
    scenes_of = {split: [s.name for s, h in zip(sources, held, strict=True)
                         if h == (split == "val")] for split in SPLITS}
    class_names = class_table(sources)
    cat_id = {c: i + 1 for i, c in enumerate(class_names)}
    categories = [coco.category(cat_id[c], c, c in BY_NAME) for c in class_names]
    sets = plan_images(sources, held, cfg, _all_objects, first_id=1)
    n_images = sum(len(v) for v in sets.images.values())
    if n_images == 0:
        raise BadInput("SCENE", "no frame to export (every labelled frame has a flagged "
                                "label; review them or pass --keep-flagged)")
    counts: dict = {}
    image_sources: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        (tmp / ANNOTATIONS_DIR).mkdir()
        hashes = measure_images(sources, sets, tmp, "{split}", True, cfg, progress)
        for split in SPLITS:
            images: list[dict] = []
            anns: list[dict] = []
            for p in sets.images[split]:
                src = sources[p.scene]
                cam = src.scene.camera
                name = image_name(p.image_id, src.rgb_path(p.frame_id))
                images.append(coco.image_entry(p.image_id, name, cam.width, cam.height))
                image_sources[split][str(p.image_id)] = [src.name, p.frame_id]
                for x in sets.measured[split][p.image_id]:
                    assert x.rle is not None  # measured with_rle
                    anns.append(coco.annotation(len(anns) + 1, p.image_id,
                                                cat_id[src.object_classes[x.obj]], x.rle,
                                                x.bbox, x.area))
            atomic_write_text(tmp / instances_file(split), coco.instances_json(
                f"labeller export, {split}: {', '.join(scenes_of[split]) or '-'}",
                images, anns, categories))
            counts[split] = {"images": len(images), "annotations": len(anns)}
        counts["skipped_frames"] = {"flagged": sets.skipped_flagged}
        body = {
            "export_format": "coco", "options": cfg.options(), "classes": class_names,
            "box_convention": "COCO [x, y, w, h]: the extent of the visible mask's pixel "
                              "squares (pycocotools toBbox)",
            "sources": [{**s.describe(), "split": "val" if h else "train"}
                        for s, h in zip(sources, held, strict=True)],
            "counts": counts, "image_sources": image_sources, "warnings": warns,
        }
        finish_permissions(tmp)
        write_manifest(tmp, to_jsonable(body), hashes)
    lines = [f"{split + ':':<6} {counts[split]['images']} images, "
             f"{counts[split]['annotations']} annotations from "
             f"{', '.join(scenes_of[split]) or '-'} ({out / instances_file(split)})"
             for split in SPLITS]
    if sets.skipped_flagged:
        lines.append(f"left out {sets.skipped_flagged} frame(s) with flagged labels "
                     "(--keep-flagged keeps them)")
    return ExportSummary("coco", out, lines, counts, warns, None, out / "manifest.json",
                         time.perf_counter() - t0)
