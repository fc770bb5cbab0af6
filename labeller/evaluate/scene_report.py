"""Validation report of a scene: `labeller info SCENE`.

`scene_report(root)` returns either the problems (one line each) or a summary of the
frames, camera, depth, trajectory and annotations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.formats.scene import Scene, scene_problems

# Depth statistics read a sample of frames: enough to describe the recording, and
# `info` stays fast on 10,000-frame scenes.
DEPTH_SAMPLE_FRAMES = 30


@dataclass
class SceneReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, max_problems: int = 3) -> str:
        if self.problems:
            shown = self.problems[:max_problems]
            more = len(self.problems) - len(shown)
            return "\n".join(shown + ([f"… and {more} more"] if more > 0 else []))
        return "\n".join(self.lines)


def scene_report(root: str | os.PathLike, deep: bool = True,
                 models_dir: str | os.PathLike | None = None) -> SceneReport:
    root = Path(root)
    problems = scene_problems(root, deep=deep, models_dir=models_dir)
    if problems:
        return SceneReport(root, problems)
    scene = Scene(root)
    cam = scene.camera
    n = scene.n_frames
    lines = [
        f"scene       {root}",
        f"frames      {n} ({cam.width}x{cam.height}, rgb {scene.rgb_file(0).suffix[1:]})",
        f"intrinsics  fx {cam.fx:.2f}  fy {cam.fy:.2f}  cx {cam.cx:.2f}  cy {cam.cy:.2f}  "
        f"depth_scale {cam.depth_scale:g} units/m",
    ]
    ids = np.unique(np.linspace(0, n - 1, min(n, DEPTH_SAMPLE_FRAMES)).round().astype(int))
    fills, vals = [], []
    for t in ids:
        d = scene.depth(int(t))
        valid = d > 0
        fills.append(valid.mean())
        if valid.any():
            vals.append(np.percentile(d[valid], [1, 50, 99]))
    if vals:
        v = np.array(vals)
        lines.append(f"depth       {v[:, 0].min():.3f}–{v[:, 2].max():.3f} m (median {np.median(v[:, 1]):.3f} m), "
                     f"fill {100 * np.mean(fills):.1f}% (over {len(ids)} sampled frames)")
    else:
        lines.append("depth       no valid depth in the sampled frames")
    if scene.has_trajectory:
        traj = scene.trajectory
        gaps = traj.gaps(n)
        longest = max((b - a + 1 for a, b in gaps), default=0)
        lines.append(f"trajectory  {len(traj)}/{n} frames tracked, {len(gaps)} gap(s), longest {longest}")
    else:
        lines.append("trajectory  none (run `labeller track`)")
    if scene.has_annotations:
        doc = scene.annotations()
        classes = sorted({o.class_name for o in doc.objects})
        lines.append(f"annotations {len(doc.objects)} object(s): {', '.join(classes) or '-'}")
        sha = scene.trajectory_sha256()
        if doc.trajectory_sha256 and sha and doc.trajectory_sha256 != sha:
            lines.append("            warning: annotations refer to another trajectory.txt "
                         "(trajectory_sha256 differs; re-tracked since?)")
    else:
        lines.append("annotations none (annotate with `labeller gui`)")
    if scene.paths.gt.is_dir():
        parts = [p for p, ok in (("trajectory", scene.paths.gt_trajectory.is_file()),
                                 ("annotations", scene.paths.gt_annotations.is_file()),
                                 ("masks", (scene.paths.gt / "masks").is_dir())) if ok]
        lines.append(f"ground truth {', '.join(parts) or 'empty gt/'}")
    if scene.paths.labels.is_file():
        lines.append(f"labels      {scene.paths.labels}")
    return SceneReport(root, [], lines)
