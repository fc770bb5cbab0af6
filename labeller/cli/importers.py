"""Import an RGB-D recording from another layout (TUM, 7-Scenes, ...) as a scene.

Writes SCENE in the native layout (rgb/, depth/, camera.json, gt/trajectory.txt when the
source has poses, timestamps.txt when it has timestamps). The scene is written into a
temporary folder and renamed at the end: a failed import leaves nothing behind and never
touches an existing SCENE (unless --overwrite).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labeller.importers import FORMATS  # light: no Open3D/torch; lists the formats below

EXAMPLE = """\
examples:
  labeller import 7scenes ../shared/data/rgbd/sevenscenes_kitchen datasets/out/kitchen
  labeller import tum ~/data/rgbd_dataset_freiburg1_xyz datasets/out/fr1_xyz --link
  labeller import tum SEQ SCENE --intrinsics 525 525 319.5 239.5
  labeller import bop ycbv/test/000048 datasets/out/ycbv48 --models ycbv/models
  labeller import rosbag recording.bag datasets/out/desk
  labeller import rosbag rosbag2_dir SCENE --depth-topic /camera/aligned_depth_to_color/image_raw
  labeller import rosbag compressed.mcap_dir SCENE     # CompressedImage / compressedDepth too
  labeller import realsense 20240101_120000.bag SCENE  # realsense-viewer / rs-record file
  labeller import realsense rec.bag SCENE --no-register --strict
  labeller import progresslabeller ~/pl_workspace datasets/out/pl_scene

formats:
""" + "".join(f"  {name:<17} {spec.summary}\n" for name, spec in sorted(FORMATS.items()))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", metavar="FORMAT", choices=sorted(FORMATS),
                   help="source layout: " + ", ".join(sorted(FORMATS)))
    p.add_argument("src", metavar="SRC", help="the source folder")
    p.add_argument("scene", metavar="SCENE", help="the scene folder to create")
    p.add_argument("--link", action="store_true",
                   help="hard-link frames instead of copying them (same file system only; "
                        "frames that need converting are still written)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing SCENE")
    p.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics in pixels, instead of the format's own or default")
    p.add_argument("--models", metavar="DIR",
                   help="bop: the dataset's models/ folder (obj_NNNNNN.ply in mm), converted "
                        "to metres into SCENE/models/")
    p.add_argument("--rgb-topic", "--color-topic", dest="rgb_topic", metavar="T",
                   help="rosbag: the colour image topic (Image or CompressedImage)")
    p.add_argument("--depth-topic", metavar="T",
                   help="rosbag: the depth image topic (Image or compressedDepth; aligned to "
                        "colour, or registered into it)")
    p.add_argument("--info-topic", metavar="T", help="rosbag: the colour camera_info topic")
    p.add_argument("--no-register", dest="register", action="store_false",
                   help="rosbag, realsense, 7scenes: keep depth in its own camera instead of "
                        "registering it into the colour camera (needs the same image size)")
    p.add_argument("--strict", action="store_true",
                   help="treat warnings (implausible depth scale or intrinsics, unpaired "
                        "frames, mm models) as errors: exit 2, nothing written")


def main(args: argparse.Namespace) -> int:
    from labeller.importers import import_scene

    options: dict[str, Any] = {}
    if args.intrinsics is not None:
        options["intrinsics"] = tuple(args.intrinsics)
    for name in ("models", "rgb_topic", "depth_topic", "info_topic"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if not args.register:
        options["register"] = False
    res = import_scene(args.format, args.src, args.scene, link=args.link,
                       overwrite=args.overwrite, strict=args.strict,
                       models_dir=args.models if args.format != "bop" else None, **options)
    for w in res.warnings:
        print(f"labeller import: warning: {w}", file=sys.stderr)
    how = []
    if res.n_linked:
        how.append(f"{res.n_linked} files hard-linked")
    if res.n_copied:
        how.append(f"{res.n_copied} copied")
    if res.n_rewritten:
        how.append(f"{res.n_rewritten} depth frames converted")
    print(f"imported {res.n_frames} frames from {args.src} into {res.scene} ({', '.join(how)})")
    for note in res.notes:
        print(f"  {note}")
    print(f"  ground truth trajectory: {'gt/trajectory.txt' if res.has_gt_trajectory else 'none'}"
          f"; timestamps: {'timestamps.txt' if res.has_timestamps else 'none'}")
    return 0
