"""What a tracking run returns (`TrackResult`) and writes as recon/tracking.json."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError, SceneError
from labeller.core.fileio import read_json_object, sha256_file
from labeller.formats.scene import ScenePaths
from labeller.formats.trajectory import Trajectory
from labeller.track.config import TrackConfig
from labeller.track.tracker import FrameRecord, Tracker

TRACKING_FORMAT = "labeller-tracking"
TRACKING_VERSION = 1


@dataclass
class TrackResult:
    """The outcome of `labeller.track.run`; `trajectory` holds T_world_cam per tracked frame."""

    scene: Path
    n_frames: int
    trajectory: Trajectory
    failed: dict[int, str] = field(default_factory=dict)  # frame -> reason
    n_keyframes: int = 0
    loop_closures: int = 0  # accepted loop / skip edges kept after optimisation
    mean_fitness: float = float("nan")
    mean_inlier_ratio: float = float("nan")
    longest_gap: int = 0
    seconds: float = 0.0
    tracking_seconds: float = 0.0
    cloud_points: int = 0
    resumed_from: int | None = None
    cancelled: bool = False
    n_duplicates: int = 0  # repeated frames given the pose of the frame they repeat
    consistency_warning: str | None = None  # colour and depth look shifted in time

    @property
    def n_tracked(self) -> int:
        """Frames with a pose, duplicates included."""
        return len(self.trajectory)

    @property
    def frames_per_second(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        dup = f" ({self.n_duplicates} duplicates)" if self.n_duplicates else ""
        return (f"tracked {self.n_tracked} / {self.n_frames} frames{dup}, longest gap "
                f"{self.longest_gap} frame(s), mean fitness {self.mean_fitness:.3f}, "
                f"{self.n_keyframes} keyframes, {self.loop_closures} loop edges, "
                f"{self.frames_per_second:.1f} frames/s")


def stats(values: list[float]) -> dict:
    """Mean, min and median of the finite values, rounded to 4 places (None when none)."""
    v = np.array([x for x in values if np.isfinite(x)])
    if v.size == 0:
        return {"mean": None, "min": None, "median": None}
    return {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
            "median": round(float(np.median(v)), 4)}


def tracking_report(cfg: TrackConfig, tracker: Tracker, n: int, traj: Trajectory,
                    failed: dict[int, str], fits: list[float], inls: list[float],
                    gaps: list[tuple[int, int]], longest: int, kept_loops: int,
                    cloud_points: int, seconds: float, resumed_from: int | None,
                    note: str | None) -> dict:
    """recon/tracking.json's content, less "trajectory_sha256" and "cloud_sha256" (added
    once those files are written)."""
    return {
        "format": TRACKING_FORMAT, "version": TRACKING_VERSION,
        "n_frames": n, "n_tracked": len(traj), "tracked_fraction": round(len(traj) / n, 4),
        "longest_gap": longest, "gaps": [list(g) for g in gaps],
        "failed": [{"frame": t, "reason": why} for t, why in sorted(failed.items())],
        "fitness": stats(fits), "inlier_ratio": stats(inls),
        "keyframes": tracker.kf_frames,
        "pose_graph": {"nodes": len(tracker.kf_frames),
                       "loop_candidates_tried": tracker.loop_tried,
                       "loop_edges": sum(1 for e in tracker.edges if e.kind == "loop"),
                       "skip_edges": sum(1 for e in tracker.edges if e.kind == "skip"),
                       "relocalisations": sum(1 for e in tracker.edges if e.kind == "reloc"),
                       "uncertain_edges_kept": kept_loops,
                       "verified_edges": tracker.loop_log},
        "duplicates": [{"frame": t, "of": r.reference, "what": r.reason}
                       for t, r in enumerate(tracker.records) if r.status == "duplicate"],
        "frames": [_frame_entry(t, r) for t, r in enumerate(tracker.records)],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "cloud_points": cloud_points,
        "seconds": round(seconds, 2), "frames_per_second": round(n / seconds, 2),
        "resumed_from": resumed_from, "note": note,
    }


def _frame_entry(t: int, r: FrameRecord) -> dict:
    """One frame's line of tracking.json: status, and what it was matched with or why not."""
    entry: dict = {"frame": t, "status": r.status}
    if r.status == "tracked":
        entry.update(reference=r.reference, fitness=round(r.fitness, 4),
                     inlier_ratio=round(r.inlier_ratio, 4))
        if r.note:
            entry["note"] = r.note
    elif r.status == "duplicate":
        entry.update(duplicate_of=r.reference, reason=r.reason)
    else:
        entry["reason"] = r.reason
    return entry


def read_report(scene: str | os.PathLike) -> dict:
    """The scene's recon/tracking.json as a dict.

    SceneError naming the file when it is missing, not a JSON object, or no longer
    describes the scene's trajectory.txt or recon/cloud.ply (their sha256 differ from
    those it recorded: a tracking run was cut short between its writes, or the files were
    replaced since).
    """
    paths = ScenePaths(Path(scene))
    p = paths.tracking_report
    if not p.is_file():
        raise SceneError(p, "missing: run `labeller track` first")
    try:
        rep = read_json_object(p)
    except FormatError as exc:
        raise SceneError(p, f"{exc.problem}; run `labeller track` again") from None
    for key, described in (("trajectory_sha256", paths.trajectory),
                           ("cloud_sha256", paths.cloud)):
        recorded = rep.get(key)
        if recorded is None:
            continue  # older reports recorded no cloud; a run without a cloud records None
        actual = sha256_file(described) if described.is_file() else None
        if actual != recorded:
            state = "is missing" if actual is None else "has changed"
            raise SceneError(p, f"describes another {described.name} (the scene's {state} since "
                                "this report was written: tracking was interrupted, or the file "
                                "was replaced); run `labeller track` again")
    return rep
