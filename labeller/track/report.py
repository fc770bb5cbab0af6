"""What a tracking run returns (`TrackResult`) and writes as recon/tracking.json."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import SceneError
from labeller.formats.scene import ScenePaths
from labeller.formats.trajectory import Trajectory
from labeller.track.config import TrackConfig
from labeller.track.tracker import Tracker

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

    @property
    def n_tracked(self) -> int:
        return len(self.trajectory)

    @property
    def frames_per_second(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (f"tracked {self.n_tracked} / {self.n_frames} frames, longest gap "
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
    """recon/tracking.json's content, less "trajectory_sha256" (added once it is written)."""
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
                       "uncertain_edges_kept": kept_loops},
        "frames": [{"frame": t, "status": r.status,
                    **({"reference": r.reference, "fitness": round(r.fitness, 4),
                        "inlier_ratio": round(r.inlier_ratio, 4)} if r.status == "tracked"
                       else {"reason": r.reason})}
                   for t, r in enumerate(tracker.records)],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "cloud_points": cloud_points,
        "seconds": round(seconds, 2), "frames_per_second": round(n / seconds, 2),
        "resumed_from": resumed_from, "note": note,
    }


def read_report(scene: str | os.PathLike) -> dict:
    """The scene's recon/tracking.json as a dict (FormatError-free: SceneError if missing)."""
    p = ScenePaths(Path(scene)).tracking_report
    if not p.is_file():
        raise SceneError(p, "missing: run `labeller track` first")
    return json.loads(p.read_text())
