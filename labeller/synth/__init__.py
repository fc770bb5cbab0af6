"""Synthetic RGB-D scenes with ground truth (`labeller synth`).

A textured table stands in a room whose walls are turned against it; objects of the PROPS
classes stand on the table top (no two intersect, random yaw); a hand-held-like camera
orbits the table. Every frame is ray-cast with Open3D's RaycastingScene: depth from the
hit distance (with sensor-like noise, edge holes and dropouts, quantised to mm), colour
from our own shading of the hits (textures through barycentric UVs, Lambertian light with
shadows, ambient), instance ids from the noise-free cast.

Output (docs/design.md native layout)::

    OUT/rgb/000000.png  depth/000000.png  camera.json  models/<class>/<class>.ply
    OUT/gt/trajectory.txt  gt/annotations.json  gt/masks/000000.png

Frames: everything is built in a *table frame* (origin at the table-top centre, z up,
y away from the viewer); the written trajectory and object poses are re-expressed in
the world frame of camera 0 (T_world_cam[0] = I), as docs/design.md requires.

Determinism: every random draw comes from `numpy.random.default_rng([seed, stream, ...])`,
so the same seed gives byte-identical files.

Modules:
    config        `SynthConfig` (the CLI options are generated from it) and its `check()`
    layout        table, room, objects and clutter in the table frame (`SceneLayout`)
    textures      table, wall, floor and box textures
    procedural    stand-in meshes and textures of the PROPS classes
    camera        the default intrinsics (`make_camera`) and the hand-held orbit
    lighting      the key light, ambient and sky; lighting baked into static textures
    atlas         one texture atlas for the scene, mip-mapped lookups
    sensor        depth noise, holes, dropouts and range; colour noise
    render        `SceneRenderer`: ray-cast colour, depth and instance ids (`SynthFrame`)
    world         `SynthWorld`: layout + camera path + renderer of one config
    scene_writer  `run`: writes the scene and its ground truth (`SynthResult`)
    overview      `contact_sheet`: an overview image of a scene for docs
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.synth.camera import make_camera
    from labeller.synth.config import SynthConfig
    from labeller.synth.overview import contact_sheet
    from labeller.synth.render import SynthFrame
    from labeller.synth.scene_writer import SynthResult, run
    from labeller.synth.sensor import depth_noise_sigma_m
    from labeller.synth.world import SynthWorld

# Public name -> the module that defines it, imported on first use (labeller.core.lazy),
# so that the command line can read `labeller.synth.config` without importing OpenCV.
_HOME = {
    "SynthConfig": "config", "SynthResult": "scene_writer", "run": "scene_writer",
    "SynthFrame": "render", "SynthWorld": "world", "make_camera": "camera",
    "depth_noise_sigma_m": "sensor", "contact_sheet": "overview",
}

__all__ = ["SynthConfig", "SynthResult", "SynthFrame", "SynthWorld", "run", "make_camera",
           "depth_noise_sigma_m", "contact_sheet"]

__getattr__ = lazy_exports(__name__, _HOME)
