"""Dataset export from labelled scenes (`labeller export`): PROPS classification crops,
PROPS-Pose and BOP (formats in docs/design.md and docs/export.md).

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
`props_crop_cache`, `props_dataset`); the on-disk formats are in `labeller.formats`.
"""

from __future__ import annotations

from labeller.core.errors import Cancelled
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
    if cfg.format == "props":
        from labeller.export.props import export_props

        return export_props(cfg, progress)
    if cfg.format == "props-pose":
        from labeller.export.props_pose import export_props_pose

        return export_props_pose(cfg, progress)
    from labeller.export.bop import export_bop

    return export_bop(cfg, progress)


__all__ = ["FORMATS", "Cancelled", "ExportConfig", "ExportSummary", "ExportWarning", "run"]
