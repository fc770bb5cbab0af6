"""Textures of the synthetic scene geometry: table top, walls, floor and boxes.

Every texture is an (H, W, 3) uint8 RGB image drawn from the caller's seeded generator
(same draws in the same order, same image); `px_per_m` says how many texels make a metre
of the surface it covers. Image row = (1 - v) * H, as for the object textures.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from labeller.synth.procedural import value_noise


def _rand_text(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(int(c)) for c in rng.integers(65, 91, n))


def _rot_rect(img, rng, center, size, angle, color) -> np.ndarray:
    box = cv2.boxPoints(((float(center[0]), float(center[1])), (float(size[0]), float(size[1])),
                         float(angle)))
    cv2.fillConvexPoly(img, box.astype(np.int32), color, cv2.LINE_AA)
    return box


def _paper(img, rng, center, size, angle, px_per_m: float) -> None:
    """A sheet of printed paper: light background, lines of text, a picture."""
    shade = int(rng.integers(215, 250))
    _rot_rect(img, rng, center, size, angle, (shade, shade, int(shade * 0.97)))
    # Text lines and a picture drawn on an upright patch, then rotated in.
    w, h = int(size[0]), int(size[1])
    patch = np.full((h, w, 3), shade, np.uint8)
    fs = max(0.3, px_per_m / 2500)
    y = int(0.08 * h) + 12
    while y < h - 8:
        x = 6
        while x < w - 30:
            word = _rand_text(rng, int(rng.integers(2, 8)))
            cv2.putText(patch, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (25, 25, 30), 1, cv2.LINE_AA)
            x += int(len(word) * 14 * fs / 0.5) + 8
        y += int(20 * fs / 0.5) + 4
    if rng.random() < 0.8:
        pw, ph = int(w * rng.uniform(0.3, 0.6)), int(h * rng.uniform(0.2, 0.4))
        px, py = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
        pic = (value_noise(rng, (ph, pw), 6)[..., None] * 0.5 + 0.5) * rng.uniform(60, 255, 3)
        patch[py:py + ph, px:px + pw] = pic.astype(np.uint8)
    # Warp only into the sheet's bounding box (warping into the whole image is slow).
    r = 0.5 * math.hypot(w, h) + 2
    bx0, by0 = max(int(center[0] - r), 0), max(int(center[1] - r), 0)
    bx1, by1 = min(int(center[0] + r) + 1, img.shape[1]), min(int(center[1] + r) + 1, img.shape[0])
    if bx1 <= bx0 or by1 <= by0:
        return
    M = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    M[:, 2] += np.asarray(center) - [w / 2, h / 2] - [bx0, by0]
    mask = np.zeros((h, w), np.uint8) + 255
    roi = img[by0:by1, bx0:bx1]
    warped = cv2.warpAffine(patch, M, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR)
    wmask = cv2.warpAffine(mask, M, (bx1 - bx0, by1 - by0), flags=cv2.INTER_NEAREST)
    roi[wmask > 0] = warped[wmask > 0]


def table_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A wooden table top (H, W, 3) uint8 with papers, a mat and stickers on it.

    Feature sizes stay above ~3 texels (texel ~1 mm): finer detail would alias when seen
    from 0.5-1.5 m and flicker from frame to frame, which biases photometric tracking.
    """
    h, w = size_px
    base = np.array([rng.uniform(120, 190), rng.uniform(80, 130), rng.uniform(45, 85)], np.float32)
    # Grain: noise stretched along x, at two scales; blotches in every direction.
    g1 = cv2.resize(rng.uniform(-1, 1, (max(2, h // 14), max(2, w // 120))).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    g2 = cv2.resize(rng.uniform(-1, 1, (max(2, h // 6), max(2, w // 40))).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    shade = (1.0 + 0.15 * g1 + 0.08 * g2 + 0.15 * value_noise(rng, (h, w), 8)
             + 0.12 * value_noise(rng, (h, w), max(8, w // 25)))
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    # Planks.
    plank = int(px_per_m * rng.uniform(0.12, 0.2))
    for y in range(int(rng.integers(0, plank)), h, plank):
        cv2.line(img, (0, y), (w, y), tuple(int(c) for c in base * 0.45), 2, cv2.LINE_AA)
    # Papers, a mat, stickers: strong corners and edges for visual tracking.
    for _ in range(int(rng.integers(7, 12))):
        s = rng.uniform(0.12, 0.28) * px_per_m
        _paper(img, rng, (rng.uniform(0, w), rng.uniform(0, h)), (s, s * rng.uniform(1.2, 1.5)),
               rng.uniform(-40, 40), px_per_m)
    for _ in range(int(rng.integers(60, 100))):
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = int(rng.uniform(0.006, 0.025) * px_per_m)
        if rng.random() < 0.5:
            cv2.circle(img, c, r, col, -1, cv2.LINE_AA)
        else:
            _rot_rect(img, rng, c, (2 * r, r), rng.uniform(0, 180), col)
    return img


def wall_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A painted wall (H, W, 3) uint8 with posters, shelves of books and scribbles."""
    h, w = size_px
    base = rng.uniform(150, 230, 3).astype(np.float32)
    shade = 1.0 + 0.10 * value_noise(rng, (h, w), 10) + 0.05 * value_noise(rng, (h, w), 80)
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 11))):
        pw = rng.uniform(0.25, 0.7) * px_per_m
        ph = pw * rng.uniform(0.6, 1.5)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, y0 = int(cx - pw / 2), int(cy - ph / 2)
        x1, y1 = int(cx + pw / 2), int(cy + ph / 2)
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if xb <= xa or yb <= ya:
            continue
        kind = rng.integers(0, 3)
        if kind == 0:  # a photo-like poster: coloured smooth noise
            pic = (value_noise(rng, (yb - ya, xb - xa), 8)[..., None] * 0.5 + 0.5)
            pic = pic * rng.uniform(40, 255, 3) + (1 - pic) * rng.uniform(0, 200, 3)
            img[ya:yb, xa:xb] = np.clip(pic, 0, 255).astype(np.uint8)
        elif kind == 1:  # a chart: blocks of colour
            img[ya:yb, xa:xb] = rng.integers(200, 256)
            for _ in range(int(rng.integers(5, 14))):
                col = tuple(int(c) for c in rng.integers(0, 256, 3))
                bx, by = rng.uniform(xa, xb), rng.uniform(ya, yb)
                bw, bh = rng.uniform(0.05, 0.3) * pw, rng.uniform(0.05, 0.3) * ph
                cv2.rectangle(img, (int(bx), int(by)), (int(bx + bw), int(by + bh)), col, -1)
        else:  # a notice: text
            _paper(img, rng, (cx, cy), (pw, ph), 0.0, px_per_m)
        cv2.rectangle(img, (x0, y0), (x1, y1), (30, 30, 30), 3)
    # A band of "books" on a shelf line.
    y = int(rng.uniform(0.2, 0.5) * h)
    x = 0
    while x < w:
        bw = int(rng.uniform(0.02, 0.06) * px_per_m)
        bh = int(rng.uniform(0.15, 0.3) * px_per_m)
        col = tuple(int(c) for c in rng.integers(20, 240, 3))
        cv2.rectangle(img, (x, y - bh), (x + bw, y), col, -1)
        cv2.rectangle(img, (x, y - bh), (x + bw, y), (15, 15, 15), 1)
        x += bw + int(rng.integers(0, 4))
    cv2.rectangle(img, (0, y), (w, y + int(0.02 * px_per_m)), (60, 45, 35), -1)
    return img


def floor_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A tiled floor (H, W, 3) uint8: tiles of random shade, grout, noise."""
    h, w = size_px
    tile = max(4, int(rng.uniform(0.25, 0.4) * px_per_m))
    base = rng.uniform(90, 200, 3)
    ny, nx = h // tile + 1, w // tile + 1
    shades = rng.uniform(0.75, 1.2, (ny, nx)).astype(np.float32)
    shade = cv2.resize(shades, (nx * tile, ny * tile), interpolation=cv2.INTER_NEAREST)[:h, :w]
    shade = shade * (1.0 + 0.15 * value_noise(rng, (h, w), 40))
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    img[::tile, :] = 40
    img[:, ::tile] = 40
    return img


def box_texture(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """A cardboard box or book (size, size, 3) uint8, printed."""
    base = np.array([rng.uniform(140, 200), rng.uniform(100, 150), rng.uniform(60, 100)])
    if rng.random() < 0.5:
        base = rng.uniform(30, 230, 3)
    img = np.clip(base[None, None] * (1 + 0.1 * value_noise(rng, (size, size), 16))[..., None], 0,
                  255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 9))):
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = rng.integers(0, size, 2)
        d = rng.integers(size // 16, size // 3, 2)
        cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[0] + d[0]), int(p[1] + d[1])), col, -1)
    for _ in range(int(rng.integers(8, 16))):
        org = (int(rng.integers(0, size - 60)), int(rng.integers(20, size)))
        cv2.putText(img, _rand_text(rng, int(rng.integers(3, 7))), org, cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.6, 1.4)), (20, 20, 20), 2, cv2.LINE_AA)
    return img
