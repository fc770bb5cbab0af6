"""Keyframe suggestions: a few frames that see the objects from far-apart viewpoints."""

from __future__ import annotations

import numpy as np

from labeller.formats.scene import Scene


def suggest_keyframes(scene: Scene, n: int = 4, centre_world: np.ndarray | None = None,
                      first: int | None = None) -> list[int]:
    """3-6 frames spread over the camera's viewpoints (farthest-point sampling of the
    viewing directions towards `centre_world`, default the point 1 m before the first
    camera, plus the camera positions). The sampling starts from frame `first` (default:
    the first tracked frame), which is included: the others are far from its view."""
    n = int(min(max(n, 3), 6))
    traj = scene.trajectory
    frames = [t for t in range(scene.n_frames) if t in traj]
    if len(frames) <= n:
        return frames
    T = np.stack([np.asarray(traj[t], np.float64) for t in frames])
    pos = T[:, :3, 3]
    if centre_world is None:
        centre_world = T[0, :3, :3] @ np.array([0.0, 0.0, 1.0]) + T[0, :3, 3]
    d = np.asarray(centre_world, np.float64) - pos
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    k0 = frames.index(first) if first in frames else 0
    chosen = [k0]
    dist = np.arccos(np.clip(d @ d[k0], -1, 1))
    for _ in range(n - 1):
        k = int(np.argmax(dist))
        if dist[k] <= 0:
            break
        chosen.append(k)
        dist = np.minimum(dist, np.arccos(np.clip(d @ d[k], -1, 1)))
    return sorted(frames[k] for k in chosen)
