"""Classification crops: a square around an object's visible box, cut out of the frame
(padded outside it) and resized to CROP_SIZE x CROP_SIZE.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# Crops: a square of side max(w, h) * (1 + 2 * CROP_MARGIN) centred on the visible box,
# so the whole visible object plus a little context is in the 32x32 image.
CROP_MARGIN = 0.1
CROP_SIZE = 32
# Parts of the square outside the image are filled with this colour (black), never
# with stretched or mirrored image content that was not there.
CROP_PAD_RGB = (0, 0, 0)


def crop_squares(bbox_xywh: Any, margin: float = CROP_MARGIN) -> np.ndarray:
    """Squares (N, 3) int [x0, y0, side] around BOP boxes (N, 4) [x, y, w, h], pixels.

    side = max(w, h) * (1 + 2 margin), rounded; the square is centred on the box.
    """
    b = np.asarray(bbox_xywh, np.float64).reshape(-1, 4)
    side = np.maximum(1.0, np.floor(np.maximum(b[:, 2], b[:, 3]) * (1.0 + 2.0 * margin) + 0.5))
    # centre in continuous coordinates where pixel i spans [i, i + 1)
    x0 = np.floor(b[:, 0] + b[:, 2] / 2.0 - side / 2.0 + 0.5)
    y0 = np.floor(b[:, 1] + b[:, 3] / 2.0 - side / 2.0 + 0.5)
    return np.stack([x0, y0, side], axis=1).astype(np.int32)


def crop_resize(img: np.ndarray, square: tuple[int, int, int], size: int = CROP_SIZE,
                pad: tuple[int, ...] = CROP_PAD_RGB) -> np.ndarray:
    """Cut the square (x0, y0, side) out of img (H, W, C), padding outside the image,
    and resize it to (size, size, C) with area interpolation; `pad` is in img's channel
    order."""
    x0, y0, side = square
    H, W = img.shape[:2]  # noqa: N806
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if xa == x0 and ya == y0 and xb == x0 + side and yb == y0 + side:
        patch = img[y0:y0 + side, x0:x0 + side]
    else:
        patch = np.empty((side, side, img.shape[2]), img.dtype)
        patch[:] = np.asarray(pad, img.dtype)[: img.shape[2]]
        if xb > xa and yb > ya:
            patch[ya - y0:yb - y0, xa - x0:xb - x0] = img[ya:yb, xa:xb]
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
