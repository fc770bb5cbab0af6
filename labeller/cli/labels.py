"""Print a scene's propagated labels (labels.h5): a summary, or one frame in full.

Without --frame: the objects, per-object visibility and scores, flagged and skipped
frames. With --frame T: every object's pose, boxes, pixel counts, score and flag in
frame T (and the ICP-refined pose when there is one).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from labeller.formats.labels import Labels

EXAMPLE = """\
examples:
  labeller labels /tmp/scene
  labeller labels /tmp/scene --frame 10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", metavar="SCENE",
                   help="scene directory (reads SCENE/labels/labels.h5), or a labels.h5 file")
    p.add_argument("--frame", type=int, default=None, metavar="T", help="print frame T in full")


def _fmt(x: float | None, spec: str = ".3f") -> str:
    import math

    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_frame(labels: Labels, t: int) -> str:
    """Every object's pose, boxes, counts, score and flag in frame t."""
    from labeller.core.poses import matrix_to_quat_xyzw

    f = labels.frame(t)
    lines = [f"frame {t} of {labels.path} (refine {labels.refine})",
             "T_world_cam t = [" + ", ".join(f"{v:.4f}" for v in f.T_world_cam[:3, 3]) + "] m"]
    for o in f.objects:
        q = matrix_to_quat_xyzw(o.T_cam_obj[:3, :3])
        lines.append(f"  #{o.id} {o.class_name}" + ("  FLAGGED" if o.flagged else ""))
        lines.append("    T_cam_obj t = [" + ", ".join(f"{v:.4f}" for v in o.T_cam_obj[:3, 3])
                     + "] m, q_xyzw = [" + ", ".join(f"{v:.4f}" for v in q) + "]")
        if o.T_cam_obj_refined is not None:
            lines.append("    refined   t = [" + ", ".join(f"{v:.4f}" for v in o.T_cam_obj_refined[:3, 3])
                         + f"] m (ICP, score {_fmt(o.score_refined)})")
        lines.append(f"    bbox_obj {o.bbox_obj}  bbox_visib {o.bbox_visib}")
        lines.append(f"    px_count_all {o.px_count_all}  valid {o.px_count_valid}  visib "
                     f"{o.px_count_visib}  visib_fract {o.visib_fract:.3f}")
        dz = "-" if o.median_abs_dz_m != o.median_abs_dz_m else f"{o.median_abs_dz_m * 1000:.1f} mm"
        lines.append(f"    score {_fmt(o.score)} on {o.score_fract:.2f} of the object, "
                     f"median |d_model - d_sensor| {dz}")
    ids, counts = _unique(f.mask_visib)
    lines.append("  mask_visib pixels: " + (", ".join(f"#{i}: {c}" for i, c in zip(ids, counts, strict=True))
                                             or "none"))
    return "\n".join(lines)


def _unique(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """Object ids present in an (H, W) instance mask and their pixel counts."""
    import numpy as np

    ids, counts = np.unique(mask[mask > 0], return_counts=True)
    return [int(i) for i in ids], [int(c) for c in counts]


def format_summary(labels: Labels) -> str:
    """Per-object visibility, scores and flags; flagged and skipped frames."""
    import numpy as np

    A = labels.arrays
    a = labels.attrs
    lines = [f"{labels.path}: {len(labels.frame_ids)} labelled of {labels.n_frames} frames, "
             f"{len(labels.objects)} object(s), {labels.width}x{labels.height}, refine {labels.refine}",
             f"  delta {a['delta_m']:g} m; flagged when score < {a['flag_min_score']:g} on >= "
             f"{a['flag_min_visib']:g} of the object"]
    for i, o in enumerate(labels.objects):
        sc = A["score"][:, i]
        fin = np.isfinite(sc)
        inview = A["px_count_image"][:, i] > 0
        lines.append(f"  #{o.id} {o.class_name} ({o.model}): in view {int(inview.sum())}, "
                     f"mean visib_fract {A['visib_fract'][inview, i].mean() if inview.any() else 0:.2f}, "
                     f"median score {np.median(sc[fin]) if fin.any() else float('nan'):.2f}, "
                     f"flagged {int(A['flagged'][:, i].sum())}, refined {int(A['refined'][:, i].sum())}")
    fl = A["flagged"].any(1) if A["flagged"].size else np.zeros(0, bool)
    ft = [int(t) for t in labels.frame_ids[fl]]
    lines.append(f"  flagged frames ({len(ft)}): " + (", ".join(map(str, ft[:30]))
                                                     + (" …" if len(ft) > 30 else "") if ft else "none"))
    sk = sorted(labels.skipped.items())
    lines.append(f"  skipped frames ({len(sk)}): " + ("; ".join(f"{t}: {r}" for t, r in sk[:10])
                                                     + (" …" if len(sk) > 10 else "") if sk else "none"))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from labeller.formats.labels import Labels

    p = Path(args.scene)
    path = p if p.is_file() else p / "labels" / "labels.h5"
    with Labels.open(path) as labels:
        print(format_frame(labels, args.frame) if args.frame is not None else format_summary(labels))
    return 0
