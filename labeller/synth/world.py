"""`SynthWorld`: the whole synthetic scene of one config, ready to render frame by frame.

Frames: everything is built in a *table frame* (origin at the table-top centre, z up,
y away from the viewer); the trajectory and object poses it hands out are re-expressed
in the world frame of camera 0 (T_world_cam[0] = I), as docs/design.md requires.
"""

from __future__ import annotations

import numpy as np

from labeller.core.poses import inv_pose
from labeller.formats.annotations import ObjectAnnotation
from labeller.synth.camera import camera_path, make_camera
from labeller.synth.config import SynthConfig
from labeller.synth.layout import build_layout, pick_classes
from labeller.synth.lighting import Lighting
from labeller.synth.render import SceneRenderer, SynthFrame


class SynthWorld:
    """The whole synthetic scene for one config: geometry, textures, camera path, renderer.

    Deterministic in `cfg.seed` (and the other settings). `render(t)` gives frame t.
    Attributes: camera (CameraIntrinsics), T_world_cam (N, 4, 4) with T_world_cam[0] = I,
    T_table_cam (N, 4, 4), objects (list of ObjectAnnotation with T_world_obj in that world
    frame), class_names (one per object), layout (`labeller.synth.layout.SceneLayout`),
    lighting; ray_threads: threads per ray cast (0 = all cores; `run` renders frames in
    parallel and sets 1).
    """

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self.ray_threads = 0
        self.seed = int(cfg.seed)
        self.camera = make_camera(cfg.width, cfg.height)
        self.class_names = pick_classes(cfg)
        self.layout = build_layout(cfg, self.class_names)
        self.surfaces = self.layout.surfaces
        self.placed = self.layout.placed
        self.T_table_cam = camera_path(self.seed, cfg.frames, self.layout.target_table)
        T_world_table = inv_pose(self.T_table_cam[0])
        self.T_world_cam = np.einsum("ij,njk->nik", T_world_table, self.T_table_cam)
        self.T_world_cam[0] = np.eye(4)
        self.objects = [
            ObjectAnnotation(p.obj_id, p.class_name, p.model, T_world_table @ p.T_table_obj)
            for p in self.placed
        ]
        self.lighting = Lighting.draw(self.seed)
        self._renderer = SceneRenderer(self.camera, self.surfaces, self.placed, self.lighting,
                                       self.seed)

    def render(self, t: int, noisy: bool = True) -> SynthFrame:
        """Frame t: colour and depth as written (noisy unless `noisy=False`), the noise-free
        depth and the instance ids. Thread-safe: frames may be rendered concurrently."""
        return self._renderer.render(self.T_table_cam[t], t, noisy, self.ray_threads)
