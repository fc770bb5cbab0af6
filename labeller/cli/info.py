"""Validate a scene and print a summary (or its problems, one per line), then its sanity
warnings (likely wrong depth scale, intrinsics, timestamps, model units)."""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLE = """\
example:
  labeller synth /tmp/scene --frames 60 --seed 1
  labeller info /tmp/scene
  labeller info SCENE --strict      # warnings are errors (exit 2), e.g. in a CI check

Exit code 0 when the scene is valid, 2 when it is not (the problems are printed, at
most 3, then "… and K more"). Warnings (median depth outside 0.1-10 m, fx outside
0.3-3 x width or principal point outside the middle half, timestamps that do not pair
with the frames, a model ~1000x off for its class) go to stderr, each with the likely
fix; with --strict any warning makes the exit code 2.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene directory (docs/design.md layout)")
    p.add_argument("--quick", action="store_true",
                   help="check only the first frame's contents (default: every frame)")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="models library for the annotations' models (after the scene's own)")
    p.add_argument("--strict", action="store_true",
                   help="treat sanity warnings as errors (exit 2)")


def import_line(scene: str) -> str | None:
    """'import  <format> from <source>; depth <how>' from the importer's import.json."""
    from pathlib import Path

    from labeller.importers.writer import IMPORT_INFO

    p = Path(scene) / IMPORT_INFO
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
        return f"import      {d['format']} from {d['source']}; depth {d['depth']}"
    except (ValueError, KeyError, TypeError):
        return f"import      {p}: unreadable"


def main(args: argparse.Namespace) -> int:
    from labeller.evaluate.scene_report import scene_report
    from labeller.formats.sanity import scene_warnings

    report = scene_report(args.scene, deep=not args.quick, models_dir=args.models)
    if not report.ok:
        print(report.format(), file=sys.stderr)
        return 2
    print(report.format())
    line = import_line(args.scene)
    if line:
        print(line)
    warnings = scene_warnings(args.scene, models_dir=args.models)
    for w in warnings:
        print(f"labeller info: warning: {w}", file=sys.stderr)
    if warnings and args.strict:
        print(f"labeller info: error: {len(warnings)} warning(s) and --strict", file=sys.stderr)
        return 2
    return 0
