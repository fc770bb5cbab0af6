"""Helpers for tests: real-data location, tiny scenes, snapshots of a directory."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The real captures and YCB meshes sit beside the project (../shared/data); never copied in.
SHARED_DATA = Path(os.environ.get("LABELLER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def write_tiny_scene(root: Path, n: int = 3, w: int = 32, h: int = 24,
                     depth_scale: float = 1000.0, depth_m: float = 0.8) -> Path:
    """Write a valid scene of `n` flat frames (textured rgb, constant depth)."""
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    for t in range(n):
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "rgb" / f"{t:06d}.png"), rgb)
        d = np.full((h, w), round(depth_m * depth_scale), np.uint16)
        cv2.imwrite(str(root / "depth" / f"{t:06d}.png"), d)
    cam = {"width": w, "height": h, "fx": 30.0, "fy": 30.0, "cx": (w - 1) / 2,
           "cy": (h - 1) / 2, "depth_scale": depth_scale}
    (root / "camera.json").write_text(json.dumps(cam))
    return root


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root, to check that nothing was changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


POSECNN = SHARED_DATA / "rgbd" / "posecnn_ycb"


def posecnn_frame_scene(root: Path, frame: str) -> Path:
    """A one-frame scene (camera = world) from PoseCNN demo frame `frame` ("000001") in
    ../shared: its colour and depth images, the camera read from the folder's meta.yml
    (``INTRINSICS``: row-major 3x3 K; depth in millimetres), an identity trajectory."""
    from ruamel.yaml import YAML

    from labeller.core.camera import CameraIntrinsics
    from labeller.formats.trajectory import Trajectory

    K = np.asarray(YAML(typ="safe").load((POSECNN / "meta.yml").read_text())["INTRINSICS"],
                   np.float64).reshape(3, 3)
    color = POSECNN / f"{frame}-color.png"
    h, w = cv2.imread(str(color), cv2.IMREAD_UNCHANGED).shape[:2]
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "rgb" / "000000.png").write_bytes(color.read_bytes())
    (root / "depth" / "000000.png").write_bytes((POSECNN / f"{frame}-depth.png").read_bytes())
    CameraIntrinsics(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2], 1000.0).write(root / "camera.json")
    Trajectory({0: np.eye(4)}).write(root / "trajectory.txt")
    return root


def flag_labels(labels_h5: Path, cells: list[tuple[int, int]]) -> None:
    """Make labels (row, object index) of a finished labels.h5 flagged as propagation
    would have: a depth score of 0 over the whole object, so `flagged` still equals the
    file's flag rule (the reader checks that)."""
    import h5py

    with h5py.File(labels_h5, "r+") as f:
        fr = f["frames"]
        score, fract, flagged = fr["score"][()], fr["score_fract"][()], fr["flagged"][()]
        for r, i in cells:
            score[r, i], fract[r, i], flagged[r, i] = 0.0, 1.0, True
        fr["score"][...], fr["score_fract"][...], fr["flagged"][...] = score, fract, flagged
