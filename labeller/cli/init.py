"""Start from rough poses: fuse a pose estimator's results over frames, register the rest.

`--estimates FILE` (a BOP results CSV, a PoseCNN .mat or a folder of them): each
per-frame estimate is lifted into the world through trajectory.txt and fused per object
(RANSAC over frames, then a weighted mean; symmetric classes compared modulo their
symmetry; several instances of a class kept apart); fused poses are written to
annotations.json (objects already there are kept unless --replace). `--register`: the
--classes (default: every class with a model and no object yet) are found in
recon/cloud.ply by global registration and written to suggestions.json for review in
the GUI. A table of what was found is printed; docs/init.md explains the method.
"""

from __future__ import annotations

import argparse

from labeller.cli.options import add_config_arguments, config_from_args, run_with_bar

EXAMPLE = """\
examples:
  labeller init SCENE --estimates posecnn_bop.csv --models ../shared/data/ycb_models
  labeller init SCENE --estimates results/ --obj-map ids.json --replace
  labeller init SCENE --register --classes mug cracker_box
  labeller init SCENE --estimates est.csv --register      # estimates first, registration for the rest

Exit code 2 on bad input (unknown obj_id, a frame outside the scene, a rotation that is
not one, t in metres where the CSV wants mm, an empty file, a .mat without
poses_refined), with a one-line message naming the file and the row; nothing is written.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from labeller.init_poses import InitConfig

    add_config_arguments(p, InitConfig)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from labeller.init_poses import InitConfig, run

    summary = run_with_bar(run, config_from_args(InitConfig, args), "init", args.no_progress)
    print(summary.format())
    return 0
