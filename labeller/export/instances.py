"""Image sets of visible instances (`props-detection`, `coco`): which frames become
images of which split, and the worker that copies their colour frames and measures each
visible instance from the visible-mask image of labels.h5 (COCO box, pixel area and,
for COCO, the RLE mask).

Scenes are split whole: held-out scenes are `val`. Image ids count each split's frames
from `first_id` in command-line order, then frame order. A frame with a flagged label is
left out unless `keep_flagged`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.progress import ProgressFn
from labeller.export.config import ExportConfig
from labeller.export.output import copy_hashed
from labeller.export.sources import SceneSource, worker_labels
from labeller.export.workers import ExportProgress, run_tasks
from labeller.formats.coco import mask_bbox, mask_to_rle

SPLITS = ("train", "val")
FRAMES_PER_TASK = 16


@dataclass
class PlannedImage:
    """One exported image: scene index, labels row, frame id, object indices (annotation
    order) that may be visible in it."""

    image_id: int
    scene: int
    row: int
    frame_id: int
    objects: list[int]


@dataclass
class Instance:
    """A visible instance measured from its mask: object index, COCO box [x, y, w, h]
    (pixel-square extent), visible pixels and, when asked for, the RLE mask."""

    obj: int
    bbox: list[int]
    area: int
    rle: dict | None = None


@dataclass
class ImageSets:
    images: dict[str, list[PlannedImage]]
    skipped_flagged: int = 0
    measured: dict[str, dict[int, list[Instance]]] = field(default_factory=dict)


def plan_images(sources: list[SceneSource], held: list[bool], cfg: ExportConfig,
                object_filter: Callable[[SceneSource], Iterable[int]],
                first_id: int) -> ImageSets:
    """The images of each split. object_filter(src) -> the object indices an image may
    hold (by class); frames with no such object in view (px_count_visib > 0) are kept
    here, the format decides."""
    sets = ImageSets({s: [] for s in SPLITS})
    next_id = dict.fromkeys(SPLITS, first_id)
    for i, src in enumerate(sources):
        split = "val" if held[i] else "train"
        objs = list(object_filter(src))
        flagged_any = (np.asarray(src.flagged.any(axis=1)) if src.n_objects
                       else np.zeros(len(src.frame_ids), bool))
        for r in range(len(src.frame_ids)):
            if flagged_any[r] and not cfg.keep_flagged:
                sets.skipped_flagged += 1
                continue
            seen = [k for k in objs if src.px_count_visib[r, k] > 0]
            sets.images[split].append(
                PlannedImage(next_id[split], i, r, int(src.frame_ids[r]), seen))
            next_id[split] += 1
    return sets


def image_name(image_id: int, rgb: Path) -> str:
    """The exported file name: the image id and the frame's own extension (copied as is)."""
    return f"{image_id:06d}{rgb.suffix.lower()}"


def measure_task(task: tuple) -> tuple[int, int, dict[str, str], list]:
    """Worker: copy the colour frames of a run of images and measure their instances.

    task = (scene index, out root, image folder relative to it, labels.h5 path, with_rle,
            [(split, image id, frame id, rgb path, [(object index, object id)])]);
    returns (scene index, images, {path: sha256}, [(split, image id, [Instance])]).
    """
    si, root, rel, labels_path, with_rle, frames = task
    lab = worker_labels(labels_path)
    hashes: dict[str, str] = {}
    out = []
    for split, im, t, rgb, objs in frames:
        name = image_name(im, Path(rgb))
        dest = f"{rel.format(split=split)}/{name}"
        hashes[dest] = copy_hashed(rgb, Path(root) / dest)
        mv = lab.mask_visib(t) if objs else None
        insts = []
        for k, oid in objs:
            m = mv == oid
            area = int(m.sum())
            if area == 0:  # px_count_visib > 0 said otherwise; the mask is the truth
                continue
            insts.append(Instance(k, mask_bbox(m), area, mask_to_rle(m) if with_rle else None))
        out.append((split, im, insts))
    return si, len(frames), hashes, out


def measure_images(sources: list[SceneSource], sets: ImageSets, root: Path, rel: str,
                   with_rle: bool, cfg: ExportConfig,
                   progress: ProgressFn | None) -> dict[str, str]:
    """Run `measure_task` over every planned image (pool and progress bars); fills
    `sets.measured[split][image id]` and returns the sha256 of every image written.
    `rel` is the image folder relative to root with a `{split}` field."""
    for split in SPLITS:
        (root / rel.format(split=split)).mkdir(parents=True, exist_ok=True)
    by_scene: dict[int, list] = {}
    for split in SPLITS:
        for p in sets.images[split]:
            src = sources[p.scene]
            by_scene.setdefault(p.scene, []).append(
                (split, p.image_id, p.frame_id, str(src.rgb_path(p.frame_id)),
                 [(k, int(src.object_ids[k])) for k in p.objects]))
    tasks = []
    totals: dict[int, tuple[str, int]] = {}
    for i, frames in by_scene.items():
        totals[i] = (sources[i].name, len(frames))
        for a in range(0, len(frames), FRAMES_PER_TASK):
            tasks.append((i, str(root), rel, str(sources[i].labels_path), with_rle,
                          frames[a:a + FRAMES_PER_TASK]))
    n = sum(len(v) for v in sets.images.values())
    bars = ExportProgress(n, "images", totals, cfg.progress_bars, progress)
    hashes: dict[str, str] = {}
    sets.measured = {s: {} for s in SPLITS}
    try:
        for si, k, h, res in run_tasks(measure_task, tasks, cfg.n_workers):
            hashes.update(h)
            for split, im, insts in res:
                sets.measured[split][im] = insts
            bars.update(si, k)
    finally:
        bars.close()
    return hashes
