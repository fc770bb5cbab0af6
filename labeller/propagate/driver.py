"""The run: prepare, lock the scene, resume or create labels.h5.partial, label, finish.

labels.h5 is written as `labels.h5.partial` and renamed at the end: an interrupted run
leaves the previous labels as they were, and a rerun with the same inputs resumes from
the frames the partial file marks done. A finished labels.h5 with the same inputs is
reused (only the flags and overlays are redone).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from labeller.core.diskspace import check_room
from labeller.core.progress import ProgressFn, check_progress
from labeller.formats.labels import Labels, LabelsWriter
from labeller.formats.labels.writer import create_bytes
from labeller.propagate.config import PropagateConfig
from labeller.propagate.lock import scene_lock
from labeller.propagate.overlays import write_overlays
from labeller.propagate.preparation import PreparedRun, prepare
from labeller.propagate.summary import PropagateSummary, summarise
from labeller.propagate.workers import iter_records

log = logging.getLogger(__name__)


def partial_path(labels_path: Path) -> Path:
    """Where a run writes `labels_path` until it finishes (``labels.h5.partial``)."""
    return labels_path.with_name(labels_path.name + ".partial")


def run(cfg: PropagateConfig, progress: ProgressFn | None = None) -> PropagateSummary:
    """Propagate the scene's annotations to every posed frame; write labels.h5.

    progress(done, total) is called after each chunk of frames (and once at the start);
    returning False (raises `labeller.core.errors.Cancelled`) or raising from it stops the
    run: labels.h5 stays as it was and `labels.h5.partial` keeps the finished frames,
    which the next run with the same inputs resumes from.
    """
    start = time.perf_counter()
    prep = prepare(cfg)
    # Room for the file's header and small arrays before anything is written (the lock
    # file included): a full disk leaves the scene as it was.
    check_room(partial_path(prep.scene.paths.labels),
               create_bytes(len(prep.frame_ids), len(prep.objects), len(prep.skipped)),
               size_now=0)
    with scene_lock(prep.scene.paths.labels_dir):
        return _run_locked(cfg, prep, progress, start)


def _run_locked(cfg: PropagateConfig, prep: PreparedRun, progress: ProgressFn | None,
                start: float) -> PropagateSummary:
    paths = prep.scene.paths
    final, partial = paths.labels, partial_path(paths.labels)
    writer = None
    if not cfg.restart:
        writer = LabelsWriter.resume(partial, prep.meta.inputs)
        if writer is None and final.is_file():
            # A finished run with the same inputs: only the flags / overlays are redone.
            check_room(partial, final.stat().st_size, size_now=0)
            shutil.copyfile(final, partial)
            writer = LabelsWriter.resume(partial, prep.meta.inputs)
    if writer is None:
        writer = LabelsWriter.create(partial, prep.meta, prep.objects, prep.frame_ids,
                                     prep.T_world_cam, prep.skipped)
    try:
        done = writer.done()
        resumed = int(done.sum())
        rows = [(r, prep.frame_ids[r], prep.T_world_cam[r]) for r in range(len(prep.frame_ids))
                if not done[r]]
        total, count = len(prep.frame_ids), resumed
        check_progress(progress, count, total, "cancelled")
        workers = max(1, min(cfg.workers, len(rows) // cfg.min_frames_per_worker))
        log.debug("%s: %d frame(s) to label on %d worker(s), %d resumed", cfg.scene,
                  len(rows), workers, resumed)
        batches = iter_records(prep.job, rows, workers, cfg.chunk_frames)
        try:
            for records in batches:
                writer.write(records)
                count += len(records)
                check_progress(progress, count, total, "cancelled")
        finally:
            batches.close()  # stops the worker pool now, not when the generator is collected
        writer.finish(cfg.flag_min_score, cfg.flag_min_visib)
    except BaseException:
        # The frames flushed so far stay marked done in the partial file: the next run
        # resumes from them (a file HDF5 cannot reopen is started afresh).
        writer.abandon()
        raise
    writer.close()
    with Labels.open(partial) as labels:
        overlays = write_overlays(labels, prep.job, paths.labels_dir / "flagged", cfg.max_overlays)
    os.replace(partial, final)
    seconds = time.perf_counter() - start
    with Labels.open(final) as labels:
        summary = summarise(labels, cfg, overlays, resumed, len(rows), seconds, workers)
    return summary
