"""`TrackConfig`: what `labeller track` does (the command line is generated from it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from labeller.core.config import option
from labeller.core.errors import ConfigError


@dataclass(frozen=True)
class TrackConfig:
    """What `labeller track` does. Distances in metres, angles in degrees."""

    scene: Path = option(positional=True, metavar="SCENE", help="the scene folder")
    keyframe_every: int = option(10, metavar="N",
                                 help="make a keyframe at least every N frames")
    voxel_m: float = option(0.006, flag="--voxel", metavar="M",
                            help="TSDF voxel size of the fused cloud in metres")
    force: bool = option(False, help="replace trajectory.txt even if saved annotations refer "
                                     "to it")
    mode: str = "full"  # "full" (keyframes + pose graph) | "odometry" (frame to frame only)
    depth_max_m: float = 3.0  # depth beyond this is ignored (odometry and fusion)
    min_overlap: float = 0.3  # of valid source pixels landing on valid target depth
    min_depth_inliers: float = 0.6  # of overlapping pixels
    min_intensity_inliers: float = 0.5  # of depth inliers
    max_step_m: float = 0.10  # camera motion per frame above this is a jump (3 m/s at 30 fps)
    max_step_deg: float = 15.0
    max_loop_candidates: int = 1  # per new keyframe
    integrate_every: int = 10  # fuse keyframes and every N-th tracked frame
    write_cloud: bool = option(True, flag="--no-cloud",
                               help="skip the TSDF fusion and cloud.ply")
    resume: bool = option(True, flag="--fresh",
                          help="ignore the checkpoint of an interrupted run and start again")
    checkpoint_every: int = 10
    keyframe_cache: int = 6  # keyframe pyramids kept in memory
    progress_bar: bool = True

    def check(self) -> None:
        """Raise ConfigError naming the first field out of range."""
        if self.mode not in ("full", "odometry"):
            raise ConfigError(self, "mode", f"must be 'full' or 'odometry', got {self.mode!r}")
        if not isinstance(self.keyframe_every, int) or self.keyframe_every < 1:
            raise ConfigError(self, "keyframe_every",
                              f"must be an integer >= 1, got {self.keyframe_every!r}")
        if not (0.0005 <= self.voxel_m <= 0.2):
            raise ConfigError(self, "voxel_m",
                              f"must be between 0.0005 and 0.2 m, got {self.voxel_m!r}")
        if self.integrate_every < 1:
            raise ConfigError(self, "integrate_every",
                              f"must be >= 1, got {self.integrate_every!r}")
        if self.depth_max_m <= 0:
            raise ConfigError(self, "depth_max_m", f"must be > 0, got {self.depth_max_m!r}")

    def fingerprint(self) -> str:
        """Hash of the settings that change the trajectory (a checkpoint must match)."""
        d = asdict(self)
        for k in ("scene", "force", "write_cloud", "resume", "checkpoint_every",
                  "keyframe_cache", "progress_bar", "voxel_m", "integrate_every"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
