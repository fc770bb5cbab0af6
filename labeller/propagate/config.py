"""`PropagateConfig`: the settings of one propagation run (metres, degrees).

Fields with `option()` metadata are the options of `labeller propagate`
(`labeller.cli.propagate` generates them); `check()` validates, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labeller.core.config import option
from labeller.core.errors import ConfigError
from labeller.geometry.icp import IcpSettings

REFINE_MODES = ("none", "icp")


def _path_or_none(text: str) -> Path | None:
    """--models DIR; an empty DIR means no models library (as no --models)."""
    return Path(text) if text else None


@dataclass(frozen=True)
class PropagateConfig:
    """Settings of one propagation run (metres, degrees).

    scene: scene directory; refine: "none" or "icp"; workers: processes (1 = in this
    process; the command line defaults to 2, capped by the CPUs, see
    `labeller.cli.propagate`); models_dir: models library (`--models`);
    delta_m: bop19 visibility tolerance and score tolerance (BOP: 15 mm);
    occlusion_margin_m: a sensor surface nearer than the model by more than this is an
    occluder nobody annotated (not scored); nearer by delta..margin counts against the pose;
    flag_min_score / flag_min_visib: flag rule (score below, scored fraction at least);
    colour_check: render textured objects and flag suspected 180-degree flips
    (`labeller.geometry.colour_consistency`; docs/propagate.md);
    icp_max_trans_m / icp_max_rot_deg: the largest ICP correction accepted;
    chunk_frames: frames per task handed to a worker; max_overlays: overlay images of the
    worst flagged frames; restart: ignore a partial or finished earlier run;
    min_frames_per_worker: a worker process costs a second or two to start (imports,
    models, renderer), so fewer workers are used when there are fewer frames than this
    per worker (1 = always `workers`).
    """

    scene: Path = option(positional=True, metavar="SCENE",
                         help="scene directory (docs/design.md layout)")
    refine: str = option("none", choices=REFINE_MODES,
                         help="icp: per-frame point-to-plane ICP against the sensor depth, "
                              "stored beside the propagated pose")
    workers: int = option(1, metavar="N",
                          help="worker processes (default: %(default)s); at most one per 100 "
                               "frames, since starting one takes a second or two")
    models_dir: Path | None = option(None, flag="--models", metavar="DIR", type=_path_or_none,
                                     help="models library, searched after the scene's own models")
    delta_m: float = option(0.015, flag="--delta", metavar="M", show_default=False,
                            help="visibility / agreement tolerance in metres (BOP: 0.015)")
    occlusion_margin_m: float = 0.05
    flag_min_score: float = option(0.6, flag="--flag-score", metavar="F",
                                   help="flag objects whose score is below F")
    flag_min_visib: float = option(0.2, flag="--flag-visib", metavar="V",
                                   help="... on at least V of the object's pixels")
    icp_max_trans_m: float = option(0.02, flag="--icp-max-trans", metavar="M",
                                    help="largest ICP correction accepted, metres")
    icp_max_rot_deg: float = option(5.0, flag="--icp-max-rot", metavar="DEG",
                                    help="largest ICP rotation accepted, degrees")
    colour_check: bool = option(True, flag="--no-colour-check",
                                help="skip the colour check (flip QA) of textured objects: "
                                     "faster, but a shape-symmetric object turned 180 "
                                     "degrees is not flagged")
    chunk_frames: int = 8
    max_overlays: int = option(12, flag="--overlays", metavar="K",
                               help="review images of the K worst flagged frames")
    restart: bool = option(False, help="ignore an interrupted or earlier run and compute "
                                       "every frame")
    min_frames_per_worker: int = 100

    def check(self) -> None:
        """ConfigError naming the first field out of range."""
        if self.refine not in REFINE_MODES:
            raise ConfigError(self, "refine", f"must be one of {', '.join(REFINE_MODES)}, "
                                              f"got {self.refine!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(self, "workers", f"must be an integer >= 1, got {self.workers!r}")
        if not 0 < self.delta_m < 1:
            raise ConfigError(self, "delta_m", f"must be in (0, 1) metres, got {self.delta_m!r}")
        if not self.occlusion_margin_m > self.delta_m:
            raise ConfigError(self, "occlusion_margin_m", f"must exceed delta_m ({self.delta_m} m), "
                                                          f"got {self.occlusion_margin_m!r}")
        if not 0 <= self.flag_min_score <= 1:
            raise ConfigError(self, "flag_min_score", f"must be in [0, 1], got {self.flag_min_score!r}")
        if not 0 <= self.flag_min_visib <= 1:
            raise ConfigError(self, "flag_min_visib", f"must be in [0, 1], got {self.flag_min_visib!r}")
        if not self.icp_max_trans_m > 0:
            raise ConfigError(self, "icp_max_trans_m", f"must be > 0, got {self.icp_max_trans_m!r}")
        if not self.icp_max_rot_deg > 0:
            raise ConfigError(self, "icp_max_rot_deg", f"must be > 0, got {self.icp_max_rot_deg!r}")
        if self.chunk_frames < 1:
            raise ConfigError(self, "chunk_frames", f"must be >= 1, got {self.chunk_frames!r}")
        if self.max_overlays < 0:
            raise ConfigError(self, "max_overlays", f"must be >= 0, got {self.max_overlays!r}")
        if self.min_frames_per_worker < 1:
            raise ConfigError(self, "min_frames_per_worker",
                              f"must be >= 1, got {self.min_frames_per_worker!r}")

    @property
    def icp(self) -> IcpSettings:
        """The ICP bounds of `refine="icp"`."""
        return IcpSettings(max_trans_m=self.icp_max_trans_m, max_rot_deg=self.icp_max_rot_deg)
