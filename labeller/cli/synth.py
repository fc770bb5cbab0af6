"""Make a synthetic RGB-D scene with ground truth (objects on a table, hand-held orbit).

Writes OUT in the native scene layout (rgb/, depth/, camera.json, models/) with the ground
truth under OUT/gt/ (trajectory.txt, annotations.json, masks/). The top level gets no
trajectory.txt or annotations.json unless --with-annotations copies the ground truth
there (optionally perturbed by --annotation-noise, for tests and demos).
"""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """
examples:
  labeller synth datasets/synth1 --frames 300 --seed 1
  labeller synth /tmp/s --frames 60 --seed 3 --classes mug mug cracker_box large_marker
  labeller synth /tmp/ycb --frames 100 --models ../shared/data/ycb_models --with-annotations \\
      --annotation-noise 0.01 5
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from labeller.cli.options import add_config_arguments
    from labeller.synth.config import SynthConfig

    add_config_arguments(p, SynthConfig)


def main(args: argparse.Namespace) -> int:
    from labeller.cli.options import config_from_args
    from labeller.core.progress import bar
    from labeller.synth import SynthConfig, run

    cfg = config_from_args(SynthConfig, args)
    # A bar only on a terminal: piped or logged stderr stays clean.
    frames_bar = bar(cfg.frames, "synth", enabled=sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        frames_bar.update(done - frames_bar.n)

    try:
        res = run(cfg, progress)
    finally:
        frames_bar.close()
    objs = ", ".join(f"{o.id}:{o.class_name}" for o in res.objects)
    print(f"wrote {res.out}: {res.frames} frames {res.camera.width}x{res.camera.height}, "
          f"{len(res.objects)} objects ({objs}) in {res.seconds:.1f} s")
    if cfg.with_annotations:
        m, deg = cfg.annotation_noise
        print("top-level trajectory.txt and annotations.json written"
              + (f" (annotations perturbed by {m:g} m, {deg:g} deg)" if (m or deg) else ""))
    return 0
