"""`run(cfg)`: the tracking stage from frames on disk to trajectory.txt, cloud and report.

Order: check the config, lock the scene (SCENE/recon/.track.lock: one run per scene),
check the annotations guard, resume from the checkpoint when it
matches, track every frame (checkpoint every `checkpoint_every` frames), optimise the
pose graph, fuse, then write recon/cloud.ply, trajectory.txt and, last,
recon/tracking.json (naming the sha256 of the other two) and drop the checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeller.core.errors import Cancelled
from labeller.core.fileio import atomic_write_json, sha256_file
from labeller.core.locks import exclusive_lock
from labeller.core.progress import ProgressFn, bar
from labeller.formats.trajectory import Trajectory
from labeller.track.after_stream import pose_lost_stretches, repose_stale_colour
from labeller.track.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    restore_tracker,
    save_checkpoint,
)
from labeller.track.config import TrackConfig
from labeller.track.frames import FrameSource
from labeller.track.fusion import fuse, write_cloud
from labeller.track.guard import check_annotations_guard
from labeller.track.report import TrackResult, tracking_report
from labeller.track.tracker import Tracker

logger = logging.getLogger(__name__)

LOCK_NAME = ".track.lock"  # in SCENE/recon/
LOCK_BUSY = "another `labeller track` is running on this scene; wait for it to finish"


def run(cfg: TrackConfig, progress: ProgressFn | None = None) -> TrackResult:
    """Track `cfg.scene` and write trajectory.txt, recon/cloud.ply and recon/tracking.json.

    `progress(done, total)` is called after every frame (tracking, then fusion); returning
    False cancels: the work so far is kept in the checkpoint and the result has
    `cancelled=True` (nothing else is written). Raises BadInput for a bad scene,
    ConfigError (a BadInput) for a bad config, or BadInput when saved annotations refer to
    the current trajectory and `cfg.force` is False.
    """
    import open3d  # noqa: F401  (loaded before the clock starts: frames/s is about frames)

    t_start = time.perf_counter()
    cfg = replace(cfg, scene=Path(cfg.scene))
    cfg.check()
    src = FrameSource(cfg.scene)
    # One run per scene: two would overwrite each other's checkpoint and outputs.
    with exclusive_lock(src.paths.recon / LOCK_NAME, cfg.scene, LOCK_BUSY):
        return _run_locked(cfg, src, progress, t_start)


def _run_locked(cfg: TrackConfig, src: FrameSource, progress: ProgressFn | None,
                t_start: float) -> TrackResult:
    """`run` once the scene's lock is held."""
    paths = src.paths
    check_annotations_guard(paths, cfg.force)
    if cfg.mode == "odometry":
        cfg = replace(cfg, keyframe_every=1)  # every frame is matched against the one before
    n = src.n_frames
    header = {"config": cfg.fingerprint(), "scene": src.fingerprint()}
    ckpt = checkpoint_path(paths)
    tracker = Tracker(cfg, src)
    resumed_from = None
    stage = "track"
    loaded = load_checkpoint(ckpt, header) if cfg.resume else None
    if loaded is not None:
        meta, arrays = loaded
        restore_tracker(tracker, meta, arrays)
        stage = meta.get("stage", "track")
        resumed_from = tracker.next_t
    kept_loops = int(loaded[0].get("kept_loops", 0)) if loaded is not None else 0

    # A disabled bar (cfg.progress_bar False) draws nothing; its calls are no-ops.
    progress_bar = bar(n, "track", "frame", initial=tracker.next_t, enabled=cfg.progress_bar)
    total_steps = [n]
    done = [tracker.next_t]

    def tick() -> bool:
        done[0] += 1
        progress_bar.update(1)
        if progress is not None and progress(done[0], total_steps[0]) is False:
            return False
        return True

    t_track0 = time.perf_counter()
    try:
        if stage == "track":
            while tracker.next_t < n:
                t = tracker.next_t
                tracker.step(t)
                tracker.next_t = t + 1
                cancel = not tick()
                if cancel or (tracker.next_t % cfg.checkpoint_every == 0 and tracker.next_t < n):
                    save_checkpoint(ckpt, header, tracker, "track")
                if cancel:
                    raise Cancelled(f"{cfg.scene}: tracking cancelled at frame {t + 1}")
            pose_lost_stretches(tracker)
            tracker.release_frames()
            kept_loops = tracker.optimise()
            repose_stale_colour(tracker)
            tracker.release_frames()
            stage = "fuse"
            save_checkpoint(ckpt, {**header, "kept_loops": kept_loops}, tracker, "fuse")
    except Cancelled:
        progress_bar.close()
        return _partial_result(cfg, tracker, n, t_start, resumed_from)
    except BaseException:
        # Interrupted (Ctrl-C) or failed mid-frame: the state may be half-updated, so the
        # last periodic checkpoint (at most checkpoint_every frames back) is what resumes.
        progress_bar.close()
        raise
    finally:
        tracker.close()
    t_track = time.perf_counter() - t_track0

    traj = tracker.trajectory()
    failed = {t: r.reason or "failed" for t, r in enumerate(tracker.records) if not r.posed}
    consistency = tracker.consistency.verdict()
    if consistency["warning"]:
        logger.warning("%s: %s", cfg.scene, consistency["warning"])
    cloud_points = 0
    if cfg.write_cloud and len(traj):
        kf_set = set(tracker.kf_frames) if cfg.mode == "full" else set()
        fuse_frames = [t for t in traj.frame_ids if t in kf_set or t % cfg.integrate_every == 0]
        total_steps[0] = n + len(fuse_frames)
        done[0] = n
        progress_bar.close()
        progress_bar = bar(len(fuse_frames), "fuse", "frame", enabled=cfg.progress_bar)
        try:
            pcd = fuse(src, traj, fuse_frames, cfg, tick)
            if pcd is None:
                return _partial_result(cfg, tracker, n, t_start, resumed_from)
            cloud_points = write_cloud(pcd, paths.cloud)
        finally:
            progress_bar.close()  # an error (a full disk) then starts on a line of its own
    progress_bar.close()

    # The first frame is the world, matched against nothing: it has no fitness to report.
    matched = [(t, r) for t, r in enumerate(tracker.records)
               if r.status == "tracked" and r.reference != t]
    fits = [r.fitness for _, r in matched]
    inls = [r.inlier_ratio for _, r in matched]
    seconds = time.perf_counter() - t_start
    gaps = traj.gaps(n)
    longest = max((b - a + 1 for a, b in gaps), default=0)
    result = TrackResult(
        scene=cfg.scene, n_frames=n, trajectory=traj, failed=failed,
        n_keyframes=len(tracker.kf_frames), loop_closures=kept_loops,
        mean_fitness=float(np.mean(fits)) if fits else float("nan"),
        mean_inlier_ratio=float(np.mean(inls)) if inls else float("nan"),
        longest_gap=longest, seconds=seconds, tracking_seconds=t_track,
        cloud_points=cloud_points, resumed_from=resumed_from,
        n_duplicates=sum(1 for r in tracker.records if r.status == "duplicate"),
        consistency_warning=consistency["warning"])

    # Check again just before replacing: annotations may have been saved meanwhile.
    note = check_annotations_guard(paths, cfg.force)
    report = tracking_report(cfg, tracker, n, traj, failed, fits, inls, gaps, longest,
                             kept_loops, cloud_points, seconds, resumed_from, note)
    report["consistency"] = consistency
    # recon/tracking.json is written last and names the sha256 of the trajectory.txt and
    # cloud.ply it describes: a run killed between these renames leaves a report that
    # `read_report` refuses (it no longer matches), never one that silently disagrees.
    traj.write(paths.trajectory)
    report["trajectory_sha256"] = sha256_file(paths.trajectory)
    report["cloud_sha256"] = sha256_file(paths.cloud) if cloud_points else None
    atomic_write_json(paths.tracking_report, report)
    if ckpt.exists():
        ckpt.unlink()
    return result


def _partial_result(cfg: TrackConfig, tracker: Tracker, n: int, t_start: float,
                    resumed_from: int | None) -> TrackResult:
    """The result of a cancelled run: no trajectory (the checkpoint holds the work)."""
    return TrackResult(scene=cfg.scene, n_frames=n, trajectory=Trajectory(),
                       seconds=time.perf_counter() - t_start, resumed_from=resumed_from,
                       cancelled=True, n_keyframes=len(tracker.kf_frames))
