"""`labeller baseline --predict`: classify images or PROPS test splits with a checkpoint."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from labeller.core.errors import BadInput


def predict_paths(checkpoint: str | os.PathLike, paths: Iterable[str | os.PathLike],
                  device: str = "cpu") -> list[dict]:
    """Classify images (PNG/JPEG files, resized to 32×32 when needed) or the test split
    of PROPS datasets with a linear checkpoint. Returns one dict per input:
    {"path", "class", "label", "score"} for an image; {"path", "accuracy", "n",
    "per_class_accuracy"} for a dataset."""
    import cv2

    from labeller.baseline.data import find_props_root, load_props
    from labeller.baseline.device import resolve_device
    from labeller.baseline.report import (
        confusion_matrix,
        load_checkpoint,
        per_class_accuracy,
        predict_with_checkpoint,
    )
    from labeller.core.fileio import read_image

    dev = resolve_device(device)
    ck = load_checkpoint(checkpoint)
    names = list(ck["class_names"])
    results = []
    for p in map(Path, paths):
        if p.is_dir():
            ds = load_props(find_props_root(p), class_names=tuple(names))
            pred, _ = predict_with_checkpoint(ck, ds.test_images, dev)
            conf = confusion_matrix(ds.test_labels, pred, len(names))
            results.append({"path": str(p), "n": int(len(pred)), "accuracy": float((pred == ds.test_labels).mean()),
                            "per_class_accuracy": per_class_accuracy(conf, names)})
            continue
        img = read_image(p)
        if img.ndim != 3 or img.dtype != np.uint8:
            raise BadInput(p, f"expected an 8-bit RGB image (got shape {img.shape}, dtype {img.dtype})")
        if img.shape[:2] != (32, 32):
            img = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
        pred, scores = predict_with_checkpoint(ck, img[None], dev)
        lab = int(pred[0])
        results.append({"path": str(p), "label": lab, "class": names[lab], "score": float(scores[0, lab])})
    return results
