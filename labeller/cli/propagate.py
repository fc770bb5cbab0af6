"""Label every posed frame from the annotations: poses, masks, boxes, a depth-check score.

Reads the scene's frames, trajectory.txt, annotations.json and the object models; writes
SCENE/labels/labels.h5 (schema: docs/labels_h5.md) and, for the worst flagged frames,
review overlays in SCENE/labels/flagged/. The file is written as labels.h5.partial and
renamed at the end: an interrupted run leaves the previous labels as they were, and a
rerun with the same inputs resumes where it stopped (--restart to start afresh).
"""

from __future__ import annotations

import argparse

from labeller.cli.options import add_config_arguments, config_from_args, run_with_bar

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
    from labeller.core.pool import available_cpus
    from labeller.propagate import PropagateConfig

    add_config_arguments(p, PropagateConfig)
    # The library labels in-process by default (workers=1: the GUI, tests, scripts); the
    # command line, which labels whole scenes, defaults to two workers capped by the CPUs.
    p.set_defaults(workers=min(2, available_cpus()))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from labeller.propagate import PropagateConfig, run

    summary = run_with_bar(run, config_from_args(PropagateConfig, args), "propagate", args.no_progress)
    print(summary.format())
    return 0
