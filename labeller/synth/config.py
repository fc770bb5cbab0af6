"""What `labeller synth` makes: `SynthConfig`, its checks and the default camera's numbers.

The command-line options of `labeller synth` are generated from `SynthConfig`'s fields
(`labeller.cli.options`), so every default lives here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.config import option
from labeller.core.errors import BadInput, ConfigError, ModelError

# Default camera: a RealSense-like 640x480 colour camera, depth registered to it.
BASE_WIDTH, BASE_HEIGHT = 640, 480
BASE_FX, BASE_FY, BASE_CX, BASE_CY = 610.0, 609.5, 321.8, 238.4
DEPTH_SCALE = 1000.0  # depth PNG units per metre (mm)

DEFAULT_N_OBJECTS = 6
MAX_OBJECTS = 16
MAX_FRAMES = 100_000
MIN_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX = 16, 4096


@dataclass(frozen=True)
class SynthConfig:
    """What `labeller synth` makes. `classes=None` picks `n_objects` distinct classes by seed.

    annotation_noise: (metres, degrees) by which every top-level annotation is moved and
    turned (needs with_annotations). width, height: image size in pixels.
    """

    out: Path = option(positional=True, metavar="OUT", help="scene directory to create")
    frames: int = option(300, help="number of frames")
    seed: int = option(0, help="random seed; same seed, same bytes")
    classes: list[str] | None = option(
        None, metavar="CLASS",
        help="PROPS classes to place, one object each (repeat a name for two); "
             "default: 6 distinct classes chosen by the seed")
    models_dir: Path | None = option(
        None, flag="--models", metavar="DIR",
        help="use the meshes of this models library (e.g. ../shared/data/ycb_models) "
             "instead of procedural stand-ins")
    with_annotations: bool = option(
        False, help="also write the ground-truth trajectory.txt and annotations.json at the top level")
    annotation_noise: tuple[float, float] = option(
        (0.0, 0.0), nargs=2, metavar=("M", "DEG"), show_default=False,
        help="move every top-level annotation by exactly M metres and DEG degrees")
    width: int = option(BASE_WIDTH, help="image width")
    height: int = option(BASE_HEIGHT, help="image height")
    overwrite: bool = option(False, help="replace OUT if it exists")
    n_objects: int = DEFAULT_N_OBJECTS

    def check(self) -> None:
        """Raise ConfigError (naming the field) for a setting out of range, BadInput (naming
        the path) for a models library or OUT that cannot be used."""
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) \
                or not 1 <= self.frames <= MAX_FRAMES:
            raise ConfigError(self, "frames",
                              f"must be an integer from 1 to {MAX_FRAMES}, got {self.frames!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(self, "seed", f"must be an integer >= 0, got {self.seed!r}")
        for name, v in (("width", self.width), ("height", self.height)):
            if not isinstance(v, int) or not MIN_IMAGE_SIDE_PX <= v <= MAX_IMAGE_SIDE_PX:
                raise ConfigError(self, name, f"must be an integer from {MIN_IMAGE_SIDE_PX} "
                                              f"to {MAX_IMAGE_SIDE_PX}, got {v!r}")
        if self.classes is not None:
            if len(self.classes) == 0:
                raise ConfigError(self, "classes", "give at least one class name")
            if len(self.classes) > MAX_OBJECTS:
                raise ConfigError(self, "classes", f"at most {MAX_OBJECTS} objects fit on the "
                                                   f"table, got {len(self.classes)}")
            for c in self.classes:
                if c not in BY_NAME:
                    raise ConfigError(self, "classes", f"unknown class '{c}' "
                                                       f"(known: {', '.join(PROPS_CLASS_NAMES)})")
        elif not 1 <= self.n_objects <= len(PROPS_CLASS_NAMES):
            raise ConfigError(self, "n_objects", f"must be from 1 to {len(PROPS_CLASS_NAMES)}, "
                                                 f"got {self.n_objects}")
        m, deg = self.annotation_noise
        if not (math.isfinite(m) and math.isfinite(deg)) or m < 0 or deg < 0:
            raise ConfigError(self, "annotation_noise",
                              f"metres and degrees must be >= 0, got {m} {deg}")
        if (m or deg) and not self.with_annotations:
            raise ConfigError(self, "annotation_noise",
                              "needs --with-annotations (it perturbs those)")
        if self.models_dir is not None:
            md = Path(self.models_dir)
            if not md.is_dir():
                raise BadInput(md, "models library not found (not a directory)")
            if self.classes is not None:
                library_class_paths(md, sorted(set(self.classes)))
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise BadInput(out, "exists and is not a directory")
        if out.exists() and not self.overwrite:
            raise BadInput(out, "already exists (pass --overwrite to replace it)")
        if out.is_dir() and next(out.iterdir(), None) is not None and not is_synth_scene(out):
            raise BadInput(out, f"exists and is not {SYNTH_SCENE_TEXT}; refusing to replace "
                                "it even with --overwrite")


# What --overwrite may replace: a folder `labeller synth` wrote (any other is the user's).
SYNTH_SCENE_TEXT = "a scene labeller synth wrote (camera.json and gt/annotations.json)"


def is_synth_scene(path: Path) -> bool:
    """True for a folder holding what only `labeller synth` writes together: camera.json
    and the ground truth gt/annotations.json."""
    return (path / "camera.json").is_file() and (path / "gt" / "annotations.json").is_file()


def library_class_paths(models_dir: Path, names: Sequence[str]) -> dict[str, tuple[Path, str]]:
    """Class name -> (mesh path, path as stored in the annotations) in a models library.

    Raises BadInput naming the library for a class it holds no model of.
    """
    from labeller.formats.models import find_class_model

    out = {}
    for name in names:
        try:
            out[name] = find_class_model(name, None, models_dir)
        except ModelError:
            folder = BY_NAME[name].ycb_folder if name in BY_NAME else name
            raise BadInput(models_dir, f"no model for class '{name}' in this library "
                                       f"(looked for {name}/ and {folder}/)") from None
    return out
