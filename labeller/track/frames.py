"""The tracker's frame reader: a missing or broken frame is that frame's failure.

`labeller.formats.scene.Scene` is not used here on purpose: it refuses to open a scene
with a missing rgb/depth file and reads frame 0 at open, while tracking must go on past
such a frame and record why it failed; and the failure reasons it writes into
recon/tracking.json ("missing depth frame 30", "depth must be a single-channel 16-bit
PNG, got ...") are worded differently from Scene's. The frame listing is shared
(`list_frame_files`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, SceneError
from labeller.core.fileio import read_image
from labeller.formats.scene import ScenePaths, list_frame_files


class FrameSource:
    """Tolerant frame reader: a missing or broken frame is that frame's failure, not the run's.

    Unlike `Scene`, a scene with a missing rgb/depth file still opens; `read(t)` raises
    BadInput naming the file for that frame only.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.paths = ScenePaths(self.root)
        if not self.root.is_dir():
            raise SceneError(self.root, "not a directory")
        self.camera = CameraIntrinsics.read(self.paths.camera)
        self.rgb = list_frame_files(self.paths.rgb_dir)
        self.depth = list_frame_files(self.paths.depth_dir)
        self.n_frames = max(max(self.rgb, default=-1), max(self.depth, default=-1)) + 1
        if self.n_frames == 0:
            raise SceneError(self.paths.rgb_dir, "no frames (expected rgb/000000.png and "
                                                 "depth/000000.png ...)")

    def fingerprint(self) -> dict:
        """Identity of the frames on disk (for checkpoint validity): the frame count, the
        camera and [name, size, mtime_ns] of the first, middle and last frames' files."""
        probe = sorted({0, self.n_frames // 2, self.n_frames - 1})
        files: list[list[str | int] | None] = []
        for t in probe:
            for p in (self.rgb.get(t), self.depth.get(t)):
                if p is None or not p.exists():
                    files.append(None)
                    continue
                st = p.stat()
                files.append([p.name, st.st_size, st.st_mtime_ns])
        return {"n_frames": self.n_frames, "camera": self.camera.to_dict(), "files": files}

    def read(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) uint16) of frame t; BadInput naming the file."""
        cam = self.camera
        rgb_path = self.rgb.get(t, self.paths.rgb_path(t))
        depth_path = self.depth.get(t, self.paths.depth_path(t))
        if t not in self.depth:
            raise BadInput(depth_path, f"missing depth frame {t}")
        if t not in self.rgb:
            raise BadInput(rgb_path, f"missing rgb frame {t}")
        rgb = read_image(rgb_path)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.dtype != np.uint8:
            raise BadInput(rgb_path, f"colour frame must be 8-bit, got {rgb.dtype}")
        depth = read_image(depth_path)
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise BadInput(depth_path,
                           f"depth must be a single-channel 16-bit PNG, got {depth.dtype}")
        for p, img in ((rgb_path, rgb), (depth_path, depth)):
            if img.shape[:2] != (cam.height, cam.width):
                raise BadInput(p, f"size {img.shape[1]}x{img.shape[0]} differs from camera.json's "
                                  f"{cam.width}x{cam.height}")
        return rgb, depth
