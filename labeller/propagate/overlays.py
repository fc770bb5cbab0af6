"""Review overlays: SCENE/labels/flagged/NNN_frameTTTTTT.png for the worst flagged frames.

Each image is the frame's RGB with the flagged objects' pixels tinted by depth-check class
(agree / model in front of the observed surface / behind it), model silhouettes outlined,
and a header band naming the frame and its worst object (docs/propagate.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from labeller.formats.labels import Labels
from labeller.geometry.depth_check import AGREE, MODEL_BEHIND, MODEL_IN_FRONT
from labeller.propagate.frame import FrameLabeller, Job, roi_slices

# Pixel tints of the overlay (RGB): where the model agrees with the sensor, floats in
# front of the observed surface, or sits behind it.
TINT_AGREE = (40, 200, 40)
TINT_IN_FRONT = (255, 40, 40)
TINT_BEHIND = (255, 0, 255)
# Overlays show flagged frames at least this far apart (while there are enough).
OVERLAY_MIN_GAP = 5


def overlay_image(fl: FrameLabeller, labels: Labels, t: int) -> np.ndarray:
    """(H + band, W, 3) RGB review image of frame t.

    Flagged objects: their pixels tinted by class (agree / model in front of the observed
    surface / model behind it), a thick yellow outline of the full model silhouette and
    "#id class score |dz|". Other objects: a thin white outline and "#id score".
    """
    f = labels.frame(t, masks=False)
    _, views, _, _, _ = fl.analyse(f.T_world_cam, fl.scene.depth(t))
    img = fl.scene.rgb(t).astype(np.float32) * 0.8
    for v, o in zip(views, f.objects, strict=True):
        if v.roi is None or not o.flagged:
            continue
        ys, xs = roi_slices(v.roi)
        sub = img[ys, xs]
        for code, tint in ((AGREE, TINT_AGREE), (MODEL_IN_FRONT, TINT_IN_FRONT),
                           (MODEL_BEHIND, TINT_BEHIND)):
            sel = v.code == code
            sub[sel] = 0.4 * sub[sel] + 0.6 * np.asarray(tint, np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    H, W = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, W / 1500)
    thick = 1
    labels_drawn: list[tuple[tuple[int, int], str, tuple[int, int, int]]] = []
    # Unflagged first, so flagged outlines and text end on top.
    for v, o in sorted(zip(views, f.objects, strict=True), key=lambda p: p[1].flagged):
        if v.roi is None or o.px_count_all == 0:
            continue
        assert v.dist_model is not None  # set together with the roi
        full = np.zeros((H, W), np.uint8)
        ys, xs = roi_slices(v.roi)
        full[ys, xs] = v.dist_model > 0
        contours, _ = cv2.findContours(full, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        col = (255, 230, 0) if o.flagged else (235, 235, 235)
        cv2.drawContours(img, contours, -1, col, 2 if o.flagged else 1, cv2.LINE_AA)
        sc = "n/a" if not np.isfinite(o.score) else f"{o.score:.2f}"
        if o.flagged:
            dz = "" if not np.isfinite(o.median_abs_dz_m) else f" |dz| {o.median_abs_dz_m * 1000:.0f} mm"
            text = f"#{o.id} {o.class_name} score {sc}{dz}"
            if o.colour_state_name == "flip suspected":  # the depth agrees; the print does not
                text += f", colour {o.colour_score:.2f}: turned 180?"
        else:
            text = f"#{o.id} {sc}"
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        x, y, _, _ = o.bbox_obj
        org = (int(np.clip(x, 2, max(W - tw - 2, 2))), int(np.clip(y - 5, th + 2, H - 3)))
        labels_drawn.append((org, text, col))
    for org, text, col in labels_drawn:
        cv2.putText(img, text, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(img, text, org, font, scale, col, thick, cv2.LINE_AA)
    # A header band: frame id, the worst flagged object, the legend.
    (_, th), _ = cv2.getTextSize("Ag", font, scale, thick)
    band_h = th + 14
    band = np.full((band_h, W, 3), 32, np.uint8)
    worst = min((o for o in f.objects if o.flagged), key=lambda o: o.score, default=None)
    head = f"frame {t}" + (f"  worst: #{worst.id} {worst.score:.2f}   " if worst else "   ")
    base = band_h - 7
    cv2.putText(band, head, (4, base), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    x = 4 + cv2.getTextSize(head, font, scale, thick)[0][0]
    for name, tint in (("agree", TINT_AGREE), ("model in front of surface", TINT_IN_FRONT),
                       ("model behind surface", TINT_BEHIND)):
        cv2.rectangle(band, (x, base - th), (x + th, base), tint, -1)
        cv2.putText(band, name, (x + th + 4, base), font, scale, (230, 230, 230), thick, cv2.LINE_AA)
        x += th + 16 + cv2.getTextSize(name, font, scale, thick)[0][0]
    return np.concatenate([band, img], axis=0)


def worst_flagged_frames(labels: Labels, n: int, min_gap: int = OVERLAY_MIN_GAP) -> list[int]:
    """Up to n flagged frame ids, worst (lowest flagged score) first, at least `min_gap`
    frames apart while there are enough (neighbouring frames show the same problem)."""
    fl = labels.arrays["flagged"]
    if not fl.size or not fl.any():
        return []
    sc = np.where(fl, labels.arrays["score"], np.inf).min(1)
    order = [int(r) for r in np.argsort(sc, kind="stable") if np.isfinite(sc[r])]
    ids = labels.frame_ids
    picked: list[int] = []
    for r in order:
        if len(picked) < n and all(abs(int(ids[r]) - int(ids[p])) >= min_gap for p in picked):
            picked.append(r)
    for r in order:  # not enough far-apart frames: fill with the next worst
        if len(picked) < n and r not in picked:
            picked.append(r)
    return [int(ids[r]) for r in picked]


def write_overlays(labels: Labels, job: Job, dest: Path, n: int) -> list[Path]:
    """Replace the folder `dest` by overlays of the `n` worst flagged frames; their paths."""
    from labeller.core.fileio import atomic_dir, write_image

    frames = worst_flagged_frames(labels, n)
    out: list[Path] = []
    with atomic_dir(dest, overwrite=True) as tmp:
        if frames:
            fl = FrameLabeller(job)
            for rank, t in enumerate(frames):
                name = f"{rank:03d}_frame{t:06d}.png"
                write_image(tmp / name, overlay_image(fl, labels, t), atomic=False)
                out.append(dest / name)
    return out
