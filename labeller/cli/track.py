"""Estimate the camera trajectory of a scene and fuse its frames into a coloured cloud.

Tracks every frame with RGB-D odometry (Open3D, Hybrid) against keyframes, closes loops
and relocalises with ORB features verified by PnP-RANSAC, optimises the keyframe pose
graph and fuses the frames into a TSDF. Writes SCENE/trajectory.txt (T_world_cam; world
= first tracked frame; a byte-identical repeated frame gets the pose of the frame it
repeats; frames that could not be placed are left out), SCENE/recon/cloud.ply and
SCENE/recon/tracking.json (which frames failed and why, duplicates, verified loop edges,
fitness statistics). An interrupted run resumes where it stopped.
Refuses to replace a trajectory that saved annotations refer to, unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labeller.cli.options import add_config_arguments, config_from_args
from labeller.formats.external_trajectory import CONVENTIONS
from labeller.track.config import TrackConfig
from labeller.track.external import FORMATS

EXAMPLE = """\
examples:
  labeller track datasets/out/kitchen
  labeller track SCENE --keyframe-every 5 --voxel 0.004
  labeller track SCENE --force          # re-track although annotations.json refers to it
  labeller track SCENE --evaluate SCENE/gt/trajectory.txt   # then ATE / RPE by evo
  labeller track SCENE --from groundtruth.txt --format tum   # use an external trajectory
  labeller track SCENE --from recon/campose.txt              # format guessed from the name
  labeller track SCENE --from campose.txt --convention c2w --scale 1   # no configuration.json

--from formats (instead of estimating; re-anchored to the first posed frame):
  tum        timestamp tx ty tz qx qy qz qw, matched to timestamps.txt within 20 ms
  orbslam3   ORB-SLAM3 Camera/KeyFrameTrajectory.txt (TUM-like); frames without a pose
             stay untracked
  campose    ProgressLabeller/COLMAP IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
             (frame = NAME's number); direction and scale from a ProgressLabeller
             configuration.json beside or above it (camera.inverse_pose,
             reconstruction.scale), else --convention c2w|w2c and --scale are required
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
    p.add_argument("--evaluate", metavar="GT",
                   help="afterwards print ATE and RPE (by evo) against this ground-truth "
                        "trajectory.txt (e.g. SCENE/gt/trajectory.txt), then how well each "
                        "of the two explains the scene's depth")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="import this external trajectory instead of estimating one")
    p.add_argument("--format", choices=FORMATS,
                   help="format of --from FILE (default: guessed from its name; else tum)")
    p.add_argument("--convention", choices=CONVENTIONS,
                   help="--from campose: the poses are camera-to-world (c2w) or world-to-camera "
                        "(w2c); default: the ProgressLabeller configuration.json's inverse_pose")
    p.add_argument("--scale", type=float, metavar="S",
                   help="--from campose: metres per unit of the translations; default: the "
                        "configuration.json's reconstruction.scale")


def _main_from(args: argparse.Namespace) -> int:
    from labeller.track.external import import_trajectory

    res = import_trajectory(args.scene, args.from_file, args.format, force=args.force,
                            convention=args.convention, scale=args.scale)
    for note in res.notes:
        print(f"labeller track: warning: {note}", file=sys.stderr)
    print(f"imported {res.n_posed} of {res.n_frames} frames' poses from {res.source} "
          f"({res.format}, {res.n_entries} poses in the file); world = frame {res.first_frame}")
    for line in res.info:
        print(f"  {line}")
    print(f"wrote {res.scene / 'trajectory.txt'}")
    if args.evaluate is not None:
        from labeller.formats.trajectory import Trajectory

        _print_evaluation(Trajectory.read(res.scene / "trajectory.txt"), Path(args.evaluate),
                          Path(res.scene))
    return 0


def _print_evaluation(est: object, gt_path: Path, scene: Path) -> None:
    """ATE / RPE by evo of the new trajectory against the ground truth at gt_path, then
    both trajectories held against the scene's depth (the reference may be wrong too)."""
    from labeller.core.errors import BadInput
    from labeller.core.progress import bar_progress
    from labeller.evaluate.depth_agreement import check_against_depth
    from labeller.evaluate.evo_metrics import evo_figures
    from labeller.formats.scene import Scene
    from labeller.formats.trajectory import Trajectory

    gt = Trajectory.read(gt_path)
    assert isinstance(est, Trajectory)
    try:
        print(evo_figures(est, gt).summary())
    except ValueError as exc:
        raise BadInput(gt_path, str(exc)) from None
    progress, close = bar_progress("check against the depth", "step")
    try:
        report = check_against_depth(Scene(scene, allow_missing_depth=True), est, gt, progress)
    finally:
        close()
    for line in report.summary():
        print(line)


def main(args: argparse.Namespace) -> int:
    from labeller.track import run

    if args.from_file is not None:
        return _main_from(args)
    for flag, value in (("--format", args.format), ("--convention", args.convention),
                        ("--scale", args.scale)):
        if value is not None:
            from labeller.core.errors import BadInput

            raise BadInput(flag, "applies only with --from FILE")
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
    if args.evaluate is not None:
        _print_evaluation(res.trajectory, Path(args.evaluate), Path(args.scene))
    if res.n_tracked == 0:
        print("labeller track: warning: no frame could be tracked", file=sys.stderr)
    return 0
