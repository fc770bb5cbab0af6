"""Initial object poses (`labeller init`): estimates fused over frames, the rest registered.

`--estimates FILE` reads a pose estimator's per-frame results (BOP results CSV, PoseCNN
`.mat`), lifts each into the world through the trajectory
(``T_world_obj = T_world_cam[t] @ T_cam_obj``) and fuses them per object robustly
(sequential RANSAC over the estimates, then a weighted mean; weights from the
estimator's score and the depth-consistency score; rotations compared modulo the
class's symmetries; several instances of a class found as separate clusters).
`--register` finds models in the fused cloud `recon/cloud.ply` by global registration
(FPFH + RANSAC, point-to-plane ICP) and keeps hypotheses that pass the depth check.
Fused poses go into annotations.json (objects already there are kept unless
`--replace`); registered ones, and with `--suggest` the fused ones too, go into
suggestions.json for review in the GUI. docs/init.md explains the method and its limits.

Modules:

* `config`: `InitConfig`, the run's settings (the CLI options are generated from it).
* `estimates`: reading estimates, object ids to classes with models.
* `symmetry`: rotation distances and means modulo a class's symmetries.
* `fusion`: `fuse_class`, sequential RANSAC and the weighted mean.
* `depth_score`: depth-consistency scores of estimates and of world poses; the units check.
* `registration`: `register_models`, global registration against the fused cloud.
* `report`: `InitSummary`, what a run did and its table.
* `stage`: `run`, the stage itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.init_poses.config import InitConfig
    from labeller.init_poses.fusion import FusedInstance, FusionSettings, fuse_class
    from labeller.init_poses.report import InitSummary, ObjectRow
    from labeller.init_poses.stage import run
    from labeller.init_poses.symmetry import Symmetry, class_symmetry

_HOMES = {
    "FusedInstance": "fusion",
    "FusionSettings": "fusion",
    "InitConfig": "config",
    "InitSummary": "report",
    "ObjectRow": "report",
    "Symmetry": "symmetry",
    "class_symmetry": "symmetry",
    "fuse_class": "fusion",
    "run": "stage",
}
__getattr__ = lazy_exports(__name__, _HOMES)
__all__ = [
    "FusedInstance",
    "FusionSettings",
    "InitConfig",
    "InitSummary",
    "ObjectRow",
    "Symmetry",
    "class_symmetry",
    "fuse_class",
    "run",
]
