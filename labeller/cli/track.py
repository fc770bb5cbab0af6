"""Estimate the camera trajectory of a scene and fuse its frames into a coloured cloud.

Tracks every frame with RGB-D odometry (Open3D, Hybrid) against keyframes, adds
loop-closure edges, optimises the keyframe pose graph and fuses the frames into a TSDF.
Writes SCENE/trajectory.txt (T_world_cam; world = first tracked frame; frames that could
not be tracked are left out), SCENE/recon/cloud.ply and SCENE/recon/tracking.json (which
frames failed and why, fitness statistics). An interrupted run resumes where it stopped.
Refuses to replace a trajectory that saved annotations refer to, unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labeller.cli.options import add_config_arguments, config_from_args
from labeller.track.config import TrackConfig
from labeller.track.external import FORMATS

EXAMPLE = """\
examples:
  labeller track datasets/out/kitchen
  labeller track SCENE --keyframe-every 5 --voxel 0.004
  labeller track SCENE --force          # re-track although annotations.json refers to it
  labeller track SCENE --from groundtruth.txt --format tum   # use an external trajectory
  labeller track SCENE --from recon/campose.txt              # format guessed from the name

--from formats (instead of estimating; re-anchored to the first posed frame):
  tum        timestamp tx ty tz qx qy qz qw, matched to timestamps.txt within 20 ms
  orbslam3   ORB-SLAM3 Camera/KeyFrameTrajectory.txt (TUM-like); frames without a pose
             stay untracked
  campose    ProgressLabeller/COLMAP IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
             (world-to-camera; frame = NAME's number)
  log        Open3D .log: "id id n" line + 4x4 camera-to-world matrix per entry

output:
  trajectory.txt           frame_id tx ty tz qx qy qz qw per tracked frame
  recon/cloud.ply          fused coloured points (world frame, metres)
  recon/tracking.json      per-frame status, failed frames and why, fitness statistics
"""

MAX_LISTED_FAILURES = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    # SCENE, --keyframe-every, --voxel, --force, --no-cloud, --fresh: from TrackConfig.
    add_config_arguments(p, TrackConfig)
    p.add_argument("--odometry-only", action="store_true",
                   help="plain frame-to-frame odometry: no keyframes, loop closures or pose graph")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="import this external trajectory instead of estimating one")
    p.add_argument("--format", choices=FORMATS,
                   help="format of --from FILE (default: guessed from its name; else tum)")


def _main_from(args: argparse.Namespace) -> int:
    from labeller.track.external import import_trajectory

    res = import_trajectory(args.scene, args.from_file, args.format, force=args.force)
    for note in res.notes:
        print(f"labeller track: warning: {note}", file=sys.stderr)
    print(f"imported {res.n_posed} of {res.n_frames} frames' poses from {res.source} "
          f"({res.format}, {res.n_entries} poses in the file); world = frame {res.first_frame}")
    print(f"wrote {res.scene / 'trajectory.txt'}")
    return 0


def main(args: argparse.Namespace) -> int:
    from labeller.track import run

    if args.from_file is not None:
        return _main_from(args)
    if args.format is not None:
        from labeller.core.errors import BadInput

        raise BadInput("--format", "applies only with --from FILE")
    cfg = config_from_args(TrackConfig, args, mode="odometry" if args.odometry_only else "full")
    res = run(cfg)
    if res.resumed_from is not None:
        print(f"resumed an interrupted run at frame {res.resumed_from}")
    print(res.summary())
    for t, why in list(sorted(res.failed.items()))[:MAX_LISTED_FAILURES]:
        print(f"  frame {t}: {why}", file=sys.stderr)
    if len(res.failed) > MAX_LISTED_FAILURES:
        print(f"  ... and {len(res.failed) - MAX_LISTED_FAILURES} more failed frames "
              "(see recon/tracking.json)", file=sys.stderr)
    out = [str(Path(args.scene) / "trajectory.txt"), str(Path(args.scene) / "recon/tracking.json")]
    if cfg.write_cloud and res.cloud_points:
        out.append(f"{Path(args.scene) / 'recon/cloud.ply'} ({res.cloud_points} points)")
    print("wrote " + ", ".join(out))
    if res.n_tracked == 0:
        print("labeller track: warning: no frame could be tracked", file=sys.stderr)
    return 0
