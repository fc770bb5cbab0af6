"""`InitConfig`: the settings of one `labeller init` run (metres, degrees).

Fields with `option()` metadata are the options of `labeller init` (`labeller.cli.init`
generates them); `check()` validates, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labeller.core.config import option
from labeller.core.errors import ConfigError


def _path_or_none(text: str) -> Path | None:
    return Path(text) if text else None


@dataclass(frozen=True)
class InitConfig:
    """Settings of one init run.

    scene: scene directory. estimates: a BOP results CSV, a PoseCNN `.mat`, or a folder
    of PoseCNN `.mat` files (T_cam_obj per frame); register: instead (or as well), find
    `classes` by global registration against `recon/cloud.ply`. obj_map: JSON
    {"obj_id": "class name"} for estimates of sets other than YCB-V; bop_scene_id: which
    `scene_id` rows of a CSV belong to this scene (None: all; several ids then are an
    error). replace: estimates replace objects of the same class already in
    annotations.json (default: those are left alone). as_suggestions: write fused
    estimates to suggestions.json for review in the GUI instead of annotations.json.

    Fusion: an estimate is an inlier of a hypothesis within `inlier_m` and
    `inlier_deg` (rotation modulo the class's symmetries); an instance needs at least
    `min_frames` inlier frames and `min_fraction` of the frames that detect its class;
    at most `max_instances` per class. `depth_delta_m`, `occlusion_margin_m`: the
    depth-consistency check (labeller.geometry.depth_check). `score_frames`: frames the
    fused pose is scored on. Registration: `voxel_m` downsampling of the cloud and the
    models, a hypothesis is kept when its depth score reaches `min_depth_score` and its
    ICP fitness `min_fitness`. seed: RANSAC seed (registration).
    """

    scene: Path = option(positional=True, metavar="SCENE", help="scene directory (docs/design.md layout)")
    estimates: Path | None = option(None, metavar="FILE", type=_path_or_none,
                                    help="pose estimates: a BOP results CSV, a PoseCNN .mat or "
                                         "a folder of them")
    register: bool = option(False, help="find the --classes (default: every class with a model) "
                                        "by global registration against recon/cloud.ply")
    classes: tuple[str, ...] = option((), metavar="CLASS",
                                      help="classes to register (default: every class with a model)")
    obj_map: Path | None = option(None, metavar="JSON", type=_path_or_none,
                                  help='object ids to classes for sets other than YCB-V: {"1": "mug"}')
    bop_scene_id: int | None = option(None, flag="--scene-id", metavar="ID",
                                      help="use the CSV rows of this BOP scene_id (default: all rows)")
    models_dir: Path | None = option(None, flag="--models", metavar="DIR", type=_path_or_none,
                                     help="models library, searched after the scene's own models")
    replace: bool = option(False, help="replace objects of the same class already in annotations.json")
    as_suggestions: bool = option(False, flag="--suggest",
                                  help="write fused estimates to suggestions.json (review them in "
                                       "the GUI) instead of annotations.json")
    inlier_m: float = option(0.05, flag="--inlier", metavar="M",
                             help="an estimate agrees with a hypothesis within M metres ...")
    inlier_deg: float = option(30.0, flag="--inlier-deg", metavar="DEG",
                               help="... and DEG degrees (modulo the class's symmetries)")
    min_frames: int = option(3, metavar="N", help="an object needs at least N agreeing frames")
    min_fraction: float = 0.1
    max_instances: int = 8
    depth_delta_m: float = 0.015
    occlusion_margin_m: float = 0.05
    score_frames: int = 10
    voxel_m: float = option(0.005, flag="--voxel", metavar="M",
                            help="registration: voxel size of the cloud and the models, metres")
    # High on purpose: a registered pose has no other evidence, and on the benchmark
    # scenes wrong placements (a model fitted onto a clutter box) scored up to 0.86.
    min_depth_score: float = option(0.9, metavar="F",
                                    help="registration: keep hypotheses whose depth score is at least F")
    min_fitness: float = 0.3
    seed: int = option(0, help="random seed of the registration's RANSAC")

    def check(self) -> None:
        """ConfigError naming the first field out of range."""
        if self.estimates is None and not self.register:
            raise ConfigError(self, "estimates", "give --estimates FILE, --register, or both")
        if not 0 < self.inlier_m < 1:
            raise ConfigError(self, "inlier_m", f"must be in (0, 1) metres, got {self.inlier_m!r}")
        if not 0 < self.inlier_deg <= 180:
            raise ConfigError(self, "inlier_deg", f"must be in (0, 180] degrees, got {self.inlier_deg!r}")
        if not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise ConfigError(self, "min_frames", f"must be an integer >= 1, got {self.min_frames!r}")
        if not 0 <= self.min_fraction <= 1:
            raise ConfigError(self, "min_fraction", f"must be in [0, 1], got {self.min_fraction!r}")
        if not 0.0005 <= self.voxel_m <= 0.1:
            raise ConfigError(self, "voxel_m", f"must be in [0.0005, 0.1] metres, got {self.voxel_m!r}")
        if not 0 <= self.min_depth_score <= 1:
            raise ConfigError(self, "min_depth_score", f"must be in [0, 1], got {self.min_depth_score!r}")
        if self.as_suggestions and self.replace:
            raise ConfigError(self, "replace", "has no effect with --suggest (nothing is replaced)")
