"""COCO instances JSON (the `instances_*.json` of COCO 2017, read by pycocotools)::

    {"info": {...}, "licenses": [],
     "images": [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "segmentation": {"size": [h, w],
                      "counts": [...]}, "area", "bbox": [x, y, w, h], "iscrowd": 0}, ...],
     "categories": [{"id", "name", "supercategory"}, ...]}

Masks are run-length encoded the way the BOP toolkit's `pycoco_utils.binary_mask_to_rle`
writes them: uncompressed RLE, column-major (Fortran) order, counts alternating
background / object starting with background (a leading 0 when the first pixel is set).
pycocotools reads it (`annToMask` through `frPyObjects`). Boxes follow COCO, as
pycocotools' `toBbox` of the mask: `[x_min, y_min, x_max - x_min + 1, y_max - y_min + 1]`
in pixels, i.e. the extent of the pixel squares (BOP's `bbox_visib` is one pixel
narrower: it spans pixel centres). `area` is the mask's pixel count. Ids start at 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
from labeller.core.fileio import read_json_object

SUPERCATEGORY = "ycb"
OTHER_SUPERCATEGORY = "other"


def mask_to_rle(mask: np.ndarray) -> dict:
    """(H, W) bool mask -> {"size": [H, W], "counts": [int, ...]} (uncompressed COCO RLE)."""
    m = np.asarray(mask, bool)
    flat = m.ravel(order="F")
    counts: list[int] = []
    if flat.size == 0:
        return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts}
    if flat[0]:
        counts.append(0)  # runs start with background
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts.extend(int(v) for v in np.diff(edges))
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts}


def rle_to_mask(rle: dict) -> np.ndarray:
    """The inverse of `mask_to_rle`: (H, W) bool."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, not {h} * {w}")
    values = np.arange(len(counts)) % 2 == 1  # odd runs are the object
    return np.repeat(values, counts).reshape((h, w), order="F")


def mask_bbox(mask: np.ndarray) -> list[int]:
    """COCO box [x, y, w, h] of a non-empty (H, W) mask (pycocotools `toBbox`)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask has no box")
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def category(cat_id: int, name: str, props: bool) -> dict:
    return {"id": int(cat_id), "name": name,
            "supercategory": SUPERCATEGORY if props else OTHER_SUPERCATEGORY}


def image_entry(image_id: int, file_name: str, width: int, height: int) -> dict:
    return {"id": int(image_id), "file_name": file_name, "width": int(width),
            "height": int(height)}


def annotation(ann_id: int, image_id: int, category_id: int, rle: dict, bbox: Sequence[int],
               area: int) -> dict:
    """One instance: its visible mask (RLE), COCO box and pixel area; never a crowd."""
    return {"id": int(ann_id), "image_id": int(image_id), "category_id": int(category_id),
            "segmentation": rle, "area": int(area), "bbox": [int(v) for v in bbox],
            "iscrowd": 0}


def instances_json(description: str, images: list[dict], annotations: list[dict],
                   categories: list[dict]) -> str:
    """The whole file; one image / annotation per line so it stays greppable."""
    from labeller import __version__

    info = {"description": description, "version": __version__,
            "contributor": "labeller export --format coco"}

    def rows(items: list[dict]) -> str:
        if not items:
            return "[]"
        return "[\n" + ",\n".join("  " + json.dumps(v, separators=(",", ":")) for v in items) + "\n]"

    return "".join(['{\n"info": ', json.dumps(info), ',\n"licenses": [],\n"categories": ',
                    rows(categories), ',\n"images": ', rows(images), ',\n"annotations": ',
                    rows(annotations), "\n}\n"])


def read_instances(path: str | os.PathLike) -> dict:
    """An instances JSON, checked for the keys and cross references pycocotools needs;
    FormatError naming the file and the entry otherwise."""
    path = Path(path)
    d = read_json_object(path, "a COCO instances object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(d.get(key), list):
            raise FormatError(path, f"'{key}' is missing or not a list")
    image_ids = {im.get("id") for im in d["images"]}
    cat_ids = {c.get("id") for c in d["categories"]}
    for a in d["annotations"]:
        if a.get("image_id") not in image_ids:
            raise FormatError(path, f"annotation {a.get('id')}: image_id {a.get('image_id')} "
                                    "is not an image")
        if a.get("category_id") not in cat_ids:
            raise FormatError(path, f"annotation {a.get('id')}: category_id "
                                    f"{a.get('category_id')} is not a category")
    return d
