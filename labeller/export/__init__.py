"""Dataset export from labelled scenes (`labeller export`): PROPS classification crops,
PROPS-Pose, PROPS-Detection, COCO instances and BOP (formats in docs/design.md and
docs/export.md).

    from labeller.export import ExportConfig, run
    summary = run(ExportConfig(format="props", out=Path("out"), scenes=[a, b, c],
                               train_per_class=200, test_per_class=50))
    print(summary.format())

Every export reads SCENE/labels/labels.h5 (written by `labeller propagate`), writes into
a temporary folder beside `out` renamed into place at the end (an interrupted export
leaves nothing behind and never touches an existing dataset unless `overwrite`), and
writes `out/manifest.json` (sources, options, counts, sha256 of every file).

Modules: `config` (ExportConfig, ExportSummary, warnings), `sources` (scenes and their
labels), `sampling` (held-out scenes, quotas), `crops`, `workers` (pool and progress),
`output` (output folder, hashed writes, manifest), `models` (models and attribution),
one module per format (`bop`, `props_pose`, `props` with `props_candidates`,
`props_crop_cache`, `props_dataset`, `props_detection` and `coco` with `instances`); the
on-disk formats are in `labeller.formats`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from labeller.core.errors import Cancelled
from labeller.core.locks import exclusive_lock
from labeller.core.progress import ProgressFn
from labeller.export.config import FORMATS, ExportConfig, ExportSummary, ExportWarning


def run(cfg: ExportConfig, progress: ProgressFn | None = None) -> ExportSummary:
    """Export `cfg.scenes` as `cfg.format` into `cfg.out`.

    progress(done, total) is called as work completes (done/total count crops for
    props, frames for the others); returning False cancels (`Cancelled`, nothing
    written). Raises BadInput (exit code 2 on the command line) for anything the user can
    fix: a missing or unfinished labels.h5, an existing output, too few candidates, ...
    """
    cfg.check()
    with output_lock(cfg.out):
        return _run(cfg, progress)


def output_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """One export into `out` at a time: a lock file beside it (`.OUT.export.lock`, removed
    at the end; in the nearest existing folder above when its parent does not exist yet);
    a second export into the same folder stops at once."""
    out = Path(out).absolute()
    home = out.parent
    while not home.is_dir() and home != home.parent:
        home = home.parent  # no folders are made before the export itself starts
    name = str(out.relative_to(home)).replace(os.sep, "_")
    return exclusive_lock(home / f".{name}.export.lock", out,
                          "another `labeller export` is writing this folder; wait for it to "
                          "finish", remove=True)


def _run(cfg: ExportConfig, progress: ProgressFn | None) -> ExportSummary:
    if cfg.format == "props":
        from labeller.export.props import export_props

        return export_props(cfg, progress)
    if cfg.format == "props-pose":
        from labeller.export.props_pose import export_props_pose

        return export_props_pose(cfg, progress)
    if cfg.format == "props-detection":
        from labeller.export.props_detection import export_props_detection

        return export_props_detection(cfg, progress)
    if cfg.format == "coco":
        from labeller.export.coco import export_coco

        return export_coco(cfg, progress)
    from labeller.export.bop import export_bop

    return export_bop(cfg, progress)


__all__ = ["FORMATS", "Cancelled", "ExportConfig", "ExportSummary", "ExportWarning", "run"]
