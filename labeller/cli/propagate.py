"""Label every posed frame from the annotations: poses, masks, boxes, a depth-check score.

Reads the scene's frames, trajectory.txt, annotations.json and the object models; writes
SCENE/labels/labels.h5 (schema: docs/labels_h5.md) and, for the worst flagged frames,
review overlays in SCENE/labels/flagged/. The file is written as labels.h5.partial and
renamed at the end: an interrupted run leaves the previous labels as they were, and a
rerun with the same inputs resumes where it stopped (--restart to start afresh).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXAMPLE = """\
examples:
  labeller synth /tmp/scene --frames 60 --with-annotations
  labeller propagate /tmp/scene --workers 2
  labeller propagate /tmp/scene --refine icp
  labeller labels /tmp/scene --frame 10

A frame is flagged when an object's depth-consistency score is below --flag-score on
at least --flag-visib of the object (see docs/propagate.md for the exact definitions).
Exit code 2 on bad input (missing trajectory, unknown class, missing model, newer or
stale annotations), with a one-line message naming the file and the field.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", metavar="SCENE", help="scene directory (docs/design.md layout)")
    p.add_argument("--refine", choices=("none", "icp"), default="none",
                   help="icp: per-frame point-to-plane ICP against the sensor depth, stored "
                        "beside the propagated pose (default: none)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), metavar="N",
                   help="worker processes (default: %(default)s); at most one per 100 "
                        "frames, since starting one takes a second or two")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="models library, searched after the scene's own models")
    p.add_argument("--delta", type=float, default=0.015, metavar="M",
                   help="visibility / agreement tolerance in metres (BOP: 0.015)")
    p.add_argument("--flag-score", type=float, default=0.6, metavar="F",
                   help="flag objects whose score is below F (default: 0.6)")
    p.add_argument("--flag-visib", type=float, default=0.2, metavar="V",
                   help="... on at least V of the object's pixels (default: 0.2)")
    p.add_argument("--icp-max-trans", type=float, default=0.02, metavar="M",
                   help="largest ICP correction accepted, metres (default: 0.02)")
    p.add_argument("--icp-max-rot", type=float, default=5.0, metavar="DEG",
                   help="largest ICP rotation accepted, degrees (default: 5)")
    p.add_argument("--overlays", type=int, default=12, metavar="K",
                   help="review images of the K worst flagged frames (default: 12)")
    p.add_argument("--restart", action="store_true",
                   help="ignore an interrupted or earlier run and compute every frame")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    import sys

    from labeller.propagate import PropagateConfig, run

    cfg = PropagateConfig(
        scene=Path(args.scene), models_dir=Path(args.models) if args.models else None,
        refine=args.refine, workers=args.workers, delta_m=args.delta,
        flag_min_score=args.flag_score, flag_min_visib=args.flag_visib,
        icp_max_trans_m=args.icp_max_trans, icp_max_rot_deg=args.icp_max_rot,
        max_overlays=args.overlays, restart=args.restart)
    bar = None
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, initial=done, unit="frame", desc="propagate",
                           file=sys.stderr, dynamic_ncols=True)
            else:
                bar.update(done - bar.n)

    try:
        summary = run(cfg, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(summary.format())
    return 0
