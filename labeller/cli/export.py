"""Export labelled scenes as a dataset: PROPS classification crops, PROPS-Pose,
PROPS-Detection, COCO instances or BOP.

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

from labeller.cli.options import add_config_arguments, config_from_args

EXAMPLE = """\
examples:
  labeller export --format props --out datasets/props scenes/a scenes/b scenes/c \\
      --train-per-class 500 --test-per-class 100
  labeller export --format props-pose --out datasets/props_pose scenes/* --models ../shared/data/ycb_models
  labeller export --format bop --out datasets/bop scenes/a scenes/b
  labeller export --format props-detection --out datasets/props_det scenes/*
  labeller export --format coco --out datasets/coco scenes/*
  labeller export --format props --out out s1 s2 s3 s4 --test-scenes s2   (scenes before
      --test-scenes, which takes every name after it)

props: DIR/Progress-Objects-Sample/{meta.pkl,<class>_<k>.pkl}, DIR/crops.h5 (every
candidate crop), DIR/contact_sheet.png. Whole scenes are held out for the test split
(--test-scenes, default max(1, round(n/6)) of n >= 2 scenes chosen by --seed). With
too few candidates the command stops and prints available vs requested per class and
split, or when one of the ten PROPS classes has no crops, unless --allow-short.
DIR/md5.json is the course loaders' object_list for this export.
props-pose: DIR/PROPS-Pose-Dataset/{train,val}/..., model/<ycbv_id>_<name>/.
--one-instance-per-class keeps the most visible object of a class per image.
props-detection: DIR/PROPS-Detection-Dataset/{train,val}.json and images, DIR/md5.json.
coco: DIR/{train,val}/ images, DIR/annotations/instances_{train,val}.json (RLE masks).
bop: DIR/{split}/{scene:06d}/... and DIR/models/, DIR/models_eval/ (BOP toolkit format,
millimetres; scene_gt_info as its calc_gt_info computes it; symmetries as the BOP ycbv
models_info.json declares them, or shape-only with --geometric-symmetries; images keep
the ids a `labeller import bop` recorded).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from labeller.export.config import ExportConfig

    add_config_arguments(p, ExportConfig)


def main(args: argparse.Namespace) -> int:
    from labeller.export import ExportConfig, ExportWarning, run
    from labeller.export.props import ShortfallError

    cfg = config_from_args(ExportConfig, args)
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
