"""Validate a scene and print a summary (or its problems, one per line)."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """\
example:
  labeller synth /tmp/scene --frames 60 --seed 1
  labeller info /tmp/scene

Exit code 0 when the scene is valid, 2 when it is not (the problems are printed, at
most 3, then "… and K more").
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene directory (docs/design.md layout)")
    p.add_argument("--quick", action="store_true",
                   help="check only the first frame's contents (default: every frame)")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="models library for the annotations' models (after the scene's own)")


def main(args: argparse.Namespace) -> int:
    from labeller.evaluate.scene_report import scene_report

    report = scene_report(args.scene, deep=not args.quick, models_dir=args.models)
    if not report.ok:
        print(report.format(), file=sys.stderr)
        return 2
    print(report.format())
    return 0
