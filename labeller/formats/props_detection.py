"""PROPS-Detection as the DeepRob course's `PROPSDetectionDataset` loader reads it::

    PROPS-Detection-Dataset/
      PROPS-Detection/{train,val}/rgb/{im:06d}.png     colour images (640x480 published)
      train.json, val.json     [[image_path, [{"xyxy": [x1, y1, x2, y2] (floats), "name": class}, ...]],
                                ...], image_path relative to PROPS-Detection-Dataset/
    md5.json                   beside the dataset folder: [[name, md5], ...] of train.json and
                               val.json, the loader's `object_list` for this export

The loader joins `image_path` to the dataset folder, looks the class up by name in the
ten PROPS classes (any other name is a KeyError), divides the boxes by the image size
and pads them to 10 per image (more than 10 fail, and so does an image with none). It
extracts `PROPS-Detection.tar.gz` only when the `PROPS-Detection/` folder is missing, and
md5-checks the files of its `object_list`. Boxes are in pixels with the extent of the
pixel squares, `x2 - x1` = width (the COCO box `[x, y, w, h]` as `[x, y, x + w, y + h]`),
written as floats: the loader divides the box tensor in place, which fails for integers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import FormatError
from labeller.core.fileio import read_json

DATASET_DIR = "PROPS-Detection-Dataset"
IMAGES_DIR = "PROPS-Detection"
SPLITS = ("train", "val")
MAX_BOXES = 10  # the loader pads to 10 boxes: torch.zeros(10 - len(gt_boxes), 5)
PUBLISHED_SIZE = (640, 480)  # width, height of the published images


def split_file(split: str) -> str:
    return f"{split}.json"


def image_path(split: str, name: str) -> str:
    """An image's path as train.json / val.json give it (relative to DATASET_DIR)."""
    return f"{IMAGES_DIR}/{split}/rgb/{name}"


def xyxy_of_bbox(bbox: Sequence[float]) -> list[float]:
    """COCO [x, y, w, h] (pixel-square extent) -> [x1, y1, x2, y2]."""
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def image_record(path: str, boxes: Sequence[tuple[Sequence[float], str]]) -> list:
    """One entry of a split file: [image_path, [{"xyxy" (floats), "name"}, ...]]."""
    return [path, [{"xyxy": [float(v) for v in xyxy], "name": name} for xyxy, name in boxes]]


def split_json(records: list[list]) -> str:
    """A split file, one image per line."""
    if not records:
        return "[]\n"
    return "[\n" + ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in records) + "\n]\n"


def read_split(path: str | os.PathLike) -> list[tuple[str, list[tuple[list[float], str]]]]:
    """A split file back as [(image_path, [(xyxy, class name), ...])], checked as the
    loader will use it; FormatError naming the file and the image otherwise."""
    path = Path(path)
    obj = read_json(path)
    if not isinstance(obj, list):
        raise FormatError(path, "expected a list of [image_path, boxes]")
    out = []
    for i, rec in enumerate(obj):
        try:
            p, anns = rec
            boxes = [([float(v) for v in a["xyxy"]], str(a["name"])) for a in anns]
        except (TypeError, ValueError, KeyError):
            raise FormatError(path, f"entry {i}: expected [image_path, [{{\"xyxy\": [x1, y1, "
                                    "x2, y2], \"name\": class}, ...]]") from None
        if not 0 < len(boxes) <= MAX_BOXES:
            raise FormatError(path, f"entry {i} ({p}): {len(boxes)} boxes (the loader needs 1 "
                                    f"to {MAX_BOXES})")
        bad = [n for _, n in boxes if n not in PROPS_CLASS_NAMES]
        if bad or any(len(b) != 4 for b, _ in boxes):
            raise FormatError(path, f"entry {i} ({p}): not a PROPS class or not 4 numbers "
                                    f"({', '.join(bad) or 'xyxy'})")
        out.append((str(p), boxes))
    return out
