"""Export labelled scenes as a dataset: PROPS classification crops, PROPS-Pose or BOP.

Reads SCENE/labels/labels.h5 (written by `labeller propagate`) of every scene given.
The output is written to a temporary folder beside DIR and renamed into place at the
end; an existing DIR is replaced only with --overwrite (and only if it is empty or an
earlier export). DIR/manifest.json records the sources, options, counts and the sha256
of every file.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

EXAMPLE = """\
examples:
  labeller export --format props --out datasets/props scenes/a scenes/b scenes/c \\
      --train-per-class 500 --test-per-class 100
  labeller export --format props-pose --out datasets/props_pose scenes/* --models ../shared/data/ycb_models
  labeller export --format bop --out datasets/bop scenes/a scenes/b
  labeller export --format props --out out s1 s2 s3 s4 --test-scenes s2   (scenes before
      --test-scenes, which takes every name after it)

props: DIR/Progress-Objects-Sample/{meta.pkl,<class>_<k>.pkl}, DIR/crops.h5 (every
candidate crop), DIR/contact_sheet.png. Whole scenes are held out for the test split
(--test-scenes, default max(1, round(n/6)) of n >= 2 scenes chosen by --seed). With
too few candidates the command stops and prints available vs requested per class and
split, unless --allow-short.
props-pose: DIR/PROPS-Pose-Dataset/{train,val}/..., model/<ycbv_id>_<name>/.
bop: DIR/{split}/{scene:06d}/... and DIR/models/ (BOP toolkit format, millimetres).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenes", nargs="+", metavar="SCENE",
                   help="labelled scene folders (their order numbers them: pickles' <k>, BOP "
                        "scene ids)")
    p.add_argument("--format", required=True, choices=["props", "props-pose", "bop"],
                   help="dataset format")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="models library (after each scene's own models)")
    p.add_argument("--min-visib", type=float, default=0.5, metavar="F",
                   help="props: least visible fraction of an object to crop it (default 0.5)")
    p.add_argument("--min-size", type=int, default=24, metavar="PX",
                   help="props: least larger side of the visible box, pixels (default 24)")
    p.add_argument("--train-per-class", type=int, default=5000, metavar="N",
                   help="props: training crops per class (default 5000, as published)")
    p.add_argument("--test-per-class", type=int, default=1000, metavar="N",
                   help="props: test crops per class (default 1000, as published)")
    p.add_argument("--test-scenes", nargs="+", default=None, metavar="NAME",
                   help="props / props-pose: scene folder names held out (test / val)")
    p.add_argument("--seed", type=int, default=0, help="sampling and split seed (default 0)")
    p.add_argument("--allow-short", action="store_true",
                   help="props: write what exists when there are too few candidates")
    p.add_argument("--keep-flagged", action="store_true",
                   help="props-pose / bop: also export frames with a label propagation flagged")
    p.add_argument("--split", default="test",
                   help="bop: split folder (train, val or test, optionally _TYPE; default test)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes (default: one per core)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR if it holds an earlier export")
    p.add_argument("--no-cache", action="store_true",
                   help="props: do not read or write SCENE/labels/crops_cache.h5")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from labeller.export import ExportConfig, ExportWarning, run
    from labeller.export.props import ShortfallError

    cfg = ExportConfig(
        format=args.format, out=Path(args.out), scenes=[Path(s) for s in args.scenes],
        models_dir=Path(args.models) if args.models else None, min_visib=args.min_visib,
        min_size=args.min_size, train_per_class=args.train_per_class,
        test_per_class=args.test_per_class, test_scenes=args.test_scenes, seed=args.seed,
        allow_short=args.allow_short, keep_flagged=args.keep_flagged, split=args.split,
        workers=args.workers, overwrite=args.overwrite, cache=not args.no_cache,
        progress_bars=not args.quiet)
    try:
        with warnings.catch_warnings():
            # the summary lists every warning once ("warning: ..."); no Python-style repeat
            warnings.simplefilter("ignore", ExportWarning)
            summary = run(cfg)
    except ShortfallError as exc:
        print(exc.table(), file=sys.stderr)
        raise
    print(summary.format())
    return 0
