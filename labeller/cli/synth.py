"""Make a synthetic RGB-D scene with ground truth (objects on a table, hand-held orbit).

Writes OUT in the native scene layout (rgb/, depth/, camera.json, models/) with the ground
truth under OUT/gt/ (trajectory.txt, annotations.json, masks/). The top level gets no
trajectory.txt or annotations.json unless --with-annotations copies the ground truth
there (optionally perturbed by --annotation-noise, for tests and demos).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """
examples:
  labeller synth datasets/synth1 --frames 300 --seed 1
  labeller synth /tmp/s --frames 60 --seed 3 --classes mug mug cracker_box large_marker
  labeller synth /tmp/ycb --frames 100 --models ../shared/data/ycb_models --with-annotations \\
      --annotation-noise 0.01 5
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, metavar="OUT", help="scene directory to create")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    p.add_argument("--classes", nargs="+", metavar="CLASS",
                   help="PROPS classes to place, one object each (repeat a name for two); "
                        "default: 6 distinct classes chosen by the seed")
    p.add_argument("--models", type=Path, metavar="DIR", dest="models_dir",
                   help="use the meshes of this models library (e.g. ../shared/data/ycb_models) "
                        "instead of procedural stand-ins")
    p.add_argument("--with-annotations", action="store_true",
                   help="also write the ground-truth trajectory.txt and annotations.json at the top level")
    p.add_argument("--annotation-noise", nargs=2, type=float, metavar=("M", "DEG"), default=(0.0, 0.0),
                   help="move every top-level annotation by exactly M metres and DEG degrees")
    p.add_argument("--width", type=int, default=640, help="image width (default 640)")
    p.add_argument("--height", type=int, default=480, help="image height (default 480)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def main(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from labeller.synth import SynthConfig, run

    cfg = SynthConfig(
        out=args.out, frames=args.frames, seed=args.seed, classes=args.classes,
        models_dir=args.models_dir, with_annotations=args.with_annotations,
        annotation_noise=tuple(args.annotation_noise), overwrite=args.overwrite,
        width=args.width, height=args.height,
    )
    bar = tqdm(total=args.frames, unit="frame", desc="synth", file=sys.stderr, leave=False,
               disable=None)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        res = run(cfg, progress)
    finally:
        bar.close()
    objs = ", ".join(f"{o.id}:{o.class_name}" for o in res.objects)
    print(f"wrote {res.out}: {res.frames} frames {res.camera.width}x{res.camera.height}, "
          f"{len(res.objects)} objects ({objs}) in {res.seconds:.1f} s")
    if cfg.with_annotations:
        m, deg = cfg.annotation_noise
        print("top-level trajectory.txt and annotations.json written"
              + (f" (annotations perturbed by {m:g} m, {deg:g} deg)" if (m or deg) else ""))
    return 0
