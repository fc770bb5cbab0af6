"""Run a plan over many scenes: its stages per scene, then its exports, locally or on Ray.

PLAN is a TOML file (docs/batch.md): the scenes (folders or globs), the stages to run on
each (track, init, propagate, with the options of their commands), and the exports to
build over all of them (props, props-pose, bop, ... with the options of `labeller
export`). Every task is one stage on one scene, run by the stage itself in a worker
process; finished, up-to-date work is reused, so a rerun after a crash or a cancel only
does what is missing. A task whose worker died is run again (--retries); a bad input
fails that scene alone, by name, and the other scenes go on. The table at the end shows
per scene and stage: done / reused / failed (why) / retried N / not run.
"""

from __future__ import annotations

import argparse

from labeller.cli.options import add_config_arguments, config_from_args

EXAMPLE = """\
examples:
  labeller batch plan.toml                      # ray when installed, else a local pool
  labeller batch plan.toml --executor local --cpus 4
  labeller batch plan.toml --executor ray --address 10.0.0.1:6379   # join a cluster
  RAY_ADDRESS=10.0.0.1:6379 labeller batch plan.toml --executor ray

plan.toml:
  scenes = ["scenes/*"]        # relative to the plan file
  stages = ["propagate"]
  [propagate]
  refine = "icp"
  [[export]]
  format = "props"
  out = "datasets/props"
  train-per-class = 500
  test-per-class = 100

Exit code 0 when every task is done or reused, 2 when a task failed on bad input (the
table names the scene and the file), 1 for any other failure, 130 after a cancel.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from labeller.batch.config import BatchConfig

    add_config_arguments(p, BatchConfig)


def main(args: argparse.Namespace) -> int:
    import sys

    from labeller.batch import BatchConfig, run

    report = run(config_from_args(BatchConfig, args))
    print(report.format())
    for temp in report.removed_temps:
        print(f"removed {temp} (left by a killed worker)", file=sys.stderr)
    if report.cancelled:
        print("labeller batch: cancelled; rerun the same command to finish what is missing",
              file=sys.stderr)
        return 130
    failed = report.failed
    if not failed:
        return 0
    for t in failed:
        print(f"labeller batch: error: {t.spec.label} {t.spec.stage}: {t.message}",
              file=sys.stderr)
    return 2 if all(t.outcome is not None and t.outcome.bad_input for t in failed) else 1
