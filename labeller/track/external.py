"""External camera trajectories: `labeller track SCENE --from FILE [--format F]`.

Instead of estimating the trajectory, read one another tool wrote and store it as the
scene's `trajectory.txt` (T_world_cam, re-anchored so the first posed frame is the world).

Formats (`--format`; guessed from the file name when not given):

- ``tum``: ``timestamp tx ty tz qx qy qz qw`` (T_world_cam, seconds, metres). Each frame
  takes the pose whose timestamp is nearest its own (from the scene's `timestamps.txt`)
  if it is at most `MAX_MATCH_DT_S` away; no interpolation.
- ``orbslam3``: ORB-SLAM3's ``CameraTrajectory.txt`` / ``KeyFrameTrajectory.txt``: TUM
  lines; timestamps in nanoseconds (EuRoC runs) are recognised and converted. Frames
  without a pose (keyframe-only files) stay untracked.
- ``campose``: ProgressLabeller / COLMAP ``recon/campose.txt``:
  ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME``; the frame is NAME's number
  (``000012.png`` → frame 12). The file does not say which way its poses point, nor
  their units: with a ProgressLabeller ``configuration.json`` beside or up to two folders
  above it, its ``camera.inverse_pose`` (true = world-to-camera) and
  ``reconstruction.scale`` are used; otherwise `convention` ('c2w' | 'w2c') and `scale`
  (``--convention``, ``--scale``) must be given, and the import is refused rather than
  guessed. Given ones override the configuration's (with a note). Translations are
  multiplied by the scale, then a w2c pose is inverted.
- ``log``: Open3D / Redwood ``.log``: per entry a line of 3 integers (the first is the
  frame id) then 4 lines of a 4x4 camera-to-world matrix (T_world_cam).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import sha256_file
from labeller.formats.external_trajectory import (
    CONVENTIONS,
    find_campose_config,
    read_campose,
    read_campose_conventions,
    read_campose_frames,
    read_open3d_log,
)
from labeller.formats.scene import Scene
from labeller.formats.trajectory import TimedTrajectory, Trajectory
from labeller.track.guard import check_annotations_guard

FORMATS = ("tum", "orbslam3", "campose", "log")
MAX_MATCH_DT_S = 0.020  # a pose more than 20 ms from a frame's timestamp is not that frame's
# Timestamps above this are nanoseconds (ORB-SLAM3 on EuRoC writes ns); seconds since 1970
# stay below 1e10 until the year 2286.
NS_STAMP_MIN = 1e14


@dataclass
class ExternalResult:
    scene: Path
    source: Path
    format: str
    n_frames: int
    n_posed: int
    n_entries: int  # poses in the file
    first_frame: int
    trajectory_sha256: str
    notes: list[str]  # warnings
    info: list[str]  # how the file was read (conventions), for the summary


def guess_format(path: str | os.PathLike) -> str:
    """The format a file name suggests: .log → log, campose*.txt → campose, else tum."""
    name = Path(path).name.lower()
    if name.endswith(".log"):
        return "log"
    if name.startswith("campose"):
        return "campose"
    if "keyframetrajectory" in name or "cameratrajectory" in name:
        return "orbslam3"
    return "tum"


def _read_timed(path: Path, fmt: str) -> TimedTrajectory:
    timed = TimedTrajectory.read_tum(path)
    if len(timed.stamps) == 0:
        raise FormatError(path, "holds no poses")
    if fmt == "orbslam3" and timed.stamps.max() > NS_STAMP_MIN:
        timed = TimedTrajectory(timed.stamps * 1e-9, timed.poses)
    return timed


def match_by_time(timed: TimedTrajectory, frame_stamps: dict[int, float], path: Path,
                  max_dt: float = MAX_MATCH_DT_S) -> dict[int, np.ndarray]:
    """frame id -> T_world_cam of the pose nearest in time (at most `max_dt` s away).

    Each pose is used for one frame at most (the nearest). BadInput when none matches.
    """
    stamps = timed.stamps
    cand = []
    for t, s in frame_stamps.items():
        k = int(np.searchsorted(stamps, s))
        for j in (k - 1, k):
            if 0 <= j < len(stamps) and abs(stamps[j] - s) <= max_dt:
                cand.append((abs(stamps[j] - s), t, j))
    cand.sort()
    used_t: set[int] = set()
    used_j: set[int] = set()
    out: dict[int, np.ndarray] = {}
    for _, t, j in cand:
        if t in used_t or j in used_j:
            continue
        used_t.add(t)
        used_j.add(j)
        out[t] = timed.poses[j]
    if not out:
        fs = sorted(frame_stamps.values())
        raise BadInput(path, f"its timestamps match no frame within {max_dt * 1000:.0f} ms "
                             f"(file {stamps[0]:.3f}..{stamps[-1]:.3f} s, frames in "
                             f"timestamps.txt {fs[0]:.3f}..{fs[-1]:.3f} s)")
    return out


# Formats whose files do not say which way their poses point (or in which units).
AMBIGUOUS_FORMATS = ("campose",)


def campose_conventions(path: Path, convention: str | None, scale: float | None
                        ) -> tuple[str, float, str]:
    """(convention, scale, where they came from) for a campose file; BadInput asking for
    --convention and --scale when neither they nor a configuration.json say."""
    if convention is not None and convention not in CONVENTIONS:
        raise BadInput("--convention", f"must be one of {', '.join(CONVENTIONS)}, got "
                                       f"'{convention}'")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise BadInput("--scale", f"must be a number > 0, got {scale}")
    cfg = find_campose_config(path)
    if cfg is None:
        if convention is None or scale is None:
            missing = " and ".join(f for f, v in (("--convention c2w|w2c", convention),
                                                  ("--scale S", scale)) if v is None)
            raise BadInput(path, "does not say whether its poses are camera-to-world (c2w: "
                                 "ProgressLabeller's KinectFusion/ORB-SLAM runs) or "
                                 "world-to-camera (w2c: COLMAP), nor their scale, and there "
                                 "is no ProgressLabeller configuration.json beside or above it;"
                                 f" give {missing} (--scale 1 for metric poses)")
        return convention, scale, "--convention/--scale"
    cfg_convention, cfg_scale = read_campose_conventions(cfg)
    used = (convention or cfg_convention, scale if scale is not None else cfg_scale)
    source = f"{cfg} (camera.inverse_pose, reconstruction.scale)"
    if (convention is not None and convention != cfg_convention) or (
            scale is not None and scale != cfg_scale):
        source = (f"--convention/--scale, overriding {cfg} ({cfg_convention}, scale "
                  f"{cfg_scale:g})")
    return used[0], used[1], source


def read_external(scene: Scene, path: Path, fmt: str, convention: str | None = None,
                  scale: float | None = None) -> tuple[dict[int, np.ndarray], int, list[str]]:
    """(frame id -> T_world_cam within the scene's frames, number of poses in the file,
    notes). `convention`/`scale` apply to the formats that need them (campose)."""
    notes: list[str] = []
    if fmt not in FORMATS:
        raise BadInput("--format", f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    if not path.is_file():
        raise BadInput(path, "file not found")
    if fmt not in AMBIGUOUS_FORMATS and (convention is not None or scale is not None):
        raise BadInput("--convention" if convention is not None else "--scale",
                       f"applies only to --format {'/'.join(AMBIGUOUS_FORMATS)} (a {fmt} "
                       "file says which way its poses point, in metres)")
    if fmt in ("tum", "orbslam3"):
        stamps = scene.timestamps()
        if not stamps:
            raise BadInput(scene.paths.timestamps, f"missing: a {fmt} trajectory is given by time "
                                                   "and needs the frames' timestamps "
                                                   "(importers write timestamps.txt)")
        timed = _read_timed(path, fmt)
        stamps = {t: s for t, s in stamps.items() if 0 <= t < scene.n_frames}
        return match_by_time(timed, stamps, path), len(timed.stamps), notes
    if fmt == "campose":
        read_campose(path)  # a malformed file is reported before what it lacks
        conv, s, source = campose_conventions(path, convention, scale)
        poses = read_campose_frames(path, conv, s)
        direction = "world-to-camera (inverted)" if conv == "w2c" else "camera-to-world"
        notes.append(f"campose poses read as {direction}, translations x {s:g}; from {source}")
    else:
        poses = read_open3d_log(path)
    inside = {t: T for t, T in poses.items() if 0 <= t < scene.n_frames}
    if not inside:
        raise BadInput(path, f"its {len(poses)} poses name no frame of the scene "
                             f"(frames 0..{scene.n_frames - 1})")
    return inside, len(poses), notes


def import_trajectory(scene_dir: str | os.PathLike, src: str | os.PathLike, fmt: str | None = None,
                      force: bool = False, convention: str | None = None,
                      scale: float | None = None) -> ExternalResult:
    """Store the trajectory in `src` as SCENE/trajectory.txt (re-anchored; atomic).

    Raises BadInput for a malformed file, one that matches no frame, a campose file whose
    direction and scale nothing states (see the module doc), or (without `force`) when
    saved annotations refer to the current trajectory.txt.
    """
    scene = Scene(scene_dir)
    src = Path(src)
    fmt = fmt or guess_format(src)
    poses, n_entries, info = read_external(scene, src, fmt, convention, scale)
    notes = []
    note = check_annotations_guard(scene.paths, force)
    if note:
        notes.append(note)
    traj = Trajectory(poses).reanchored()
    traj.write(scene.paths.trajectory)
    return ExternalResult(scene.root, src, fmt, scene.n_frames, len(traj), n_entries,
                          traj.frame_ids[0], sha256_file(scene.paths.trajectory), notes, info)
