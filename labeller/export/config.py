"""`ExportConfig`: the settings of one export; `ExportSummary`: what it wrote; and the
warnings an export gives (kept for the summary and the manifest).

Fields with `option()` metadata are the options of `labeller export`
(`labeller.cli.export` generates them); `check()` validates, naming the field.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.config import option
from labeller.core.errors import ConfigError
from labeller.core.pool import available_cpus

FORMATS = ("props", "props-pose", "bop", "props-detection", "coco")
BOP_SPLIT_RE = r"^(train|val|test)(_[A-Za-z0-9]+)?$"


def _path_or_none(text: str) -> Path | None:
    """--models DIR; an empty DIR means no models library (as no --models)."""
    return Path(text) if text else None


@dataclass(frozen=True)
class ExportConfig:
    """One export. `scenes` in command-line order (that order numbers them).

    min_visib / min_size: which objects make crops (props); train_per_class /
    test_per_class: crops per class and split (props); test_scenes: held-out scene
    folder names (props: test, the others but bop: val; default max(1, round(n/6)) of
    n >= 2 scenes chosen by `seed`); allow_short: write what exists when there are too
    few candidates or a PROPS class has none; one_instance_per_class: props-pose keeps
    the most visible object of each class per image; keep_flagged: also export frames
    with a label propagation flagged (all but props; a flagged object never makes a
    crop); split: the BOP split
    folder; workers: processes (None = one per core); cache: reuse / write the per-scene
    crop caches (SCENE/labels/crops_cache.h5); progress_bars: tqdm bars on stderr.
    Sequences are stored as tuples (the config is frozen).
    """

    format: str = option(choices=FORMATS, help="dataset format")
    out: Path = option(metavar="DIR", help="output folder")
    scenes: Sequence[Path] = option(
        positional=True, metavar="SCENE", nargs="+",
        help="labelled scene folders (their order numbers them: pickles' <k>, BOP scene ids)")
    models_dir: Path | None = option(None, flag="--models", metavar="DIR", type=_path_or_none,
                                     help="models library (after each scene's own models)")
    min_visib: float = option(0.5, metavar="F",
                              help="props: least visible fraction of an object to crop it")
    min_size: int = option(24, metavar="PX",
                           help="props: least larger side of the visible box, pixels")
    train_per_class: int = option(5000, metavar="N",
                                  help="props: training crops per class, as published")
    test_per_class: int = option(1000, metavar="N",
                                 help="props: test crops per class, as published")
    test_scenes: Sequence[str] | None = option(
        None, metavar="NAME", help="all but bop: scene folder names held out (props: test, "
                                   "the others: val)")
    seed: int = option(0, help="sampling and split seed")
    allow_short: bool = option(False, help="props: write what exists when there are too few "
                                           "candidates or a PROPS class has no crops (the "
                                           "course notebooks need all ten)")
    one_instance_per_class: bool = option(
        False, help="props-pose: keep only the most visible object of a class in an image (the "
                    "course loader keeps one mask per class)")
    keep_flagged: bool = option(False, help="all but props: also export frames with a label "
                                            "propagation flagged")
    split: str = option("test", help="bop: split folder (train, val or test, optionally _TYPE)")
    geometric_symmetries: bool = option(
        False, help="bop: declare shape-only symmetries in models_info.json (the cans and the "
                    "marker turn freely about their axis) instead of the BOP ycbv table's")
    workers: int | None = option(None, metavar="N", help="processes (default: one per core)")
    overwrite: bool = option(False, help="replace DIR if it holds an earlier export")
    cache: bool = option(True, flag="--no-cache",
                         help="props: do not read or write SCENE/labels/crops_cache.h5")
    progress_bars: bool = option(True, flag="--quiet", help="no progress bars")

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenes", tuple(self.scenes))
        if self.test_scenes is not None:
            object.__setattr__(self, "test_scenes", tuple(self.test_scenes))

    def check(self) -> None:
        """ConfigError naming the first field out of range."""
        if self.format not in FORMATS:
            raise ConfigError(self, "format",
                              f"must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0.0 <= float(self.min_visib) <= 1.0:
            raise ConfigError(self, "min_visib", f"must be in [0, 1], got {self.min_visib!r}")
        for name in ("min_size", "train_per_class", "test_per_class"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ConfigError(self, name, f"must be an integer >= 0, got {v!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ConfigError(self, "workers", f"must be an integer >= 1, got {self.workers!r}")
        if not re.match(BOP_SPLIT_RE, self.split):
            raise ConfigError(self, "split", f"must be train, val or test with an optional "
                                             f"_TYPE (BOP), got {self.split!r}")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise ConfigError(self, "models_dir", f"{self.models_dir}: not a directory")
        if self.one_instance_per_class and self.format != "props-pose":
            raise ConfigError(self, "one_instance_per_class",
                              f"applies to --format props-pose only, not {self.format}")
        if self.test_scenes is not None and self.format == "bop":
            raise ConfigError(self, "test_scenes", "BOP puts every scene in one split (--split)")

    @property
    def n_workers(self) -> int:
        """Worker processes: `workers`, or one per CPU this process may use."""
        return self.workers if self.workers is not None else available_cpus()

    def options(self) -> dict:
        """The options as recorded in the manifest."""
        # imported here: the command line reads this module to build its options
        from labeller.export.crops import CROP_MARGIN, CROP_SIZE
        from labeller.export.output import to_jsonable

        opts: dict = to_jsonable({
            "format": self.format, "models_dir": self.models_dir, "min_visib": self.min_visib,
            "min_size": self.min_size, "train_per_class": self.train_per_class,
            "test_per_class": self.test_per_class, "test_scenes": self.test_scenes,
            "seed": self.seed, "allow_short": self.allow_short, "keep_flagged": self.keep_flagged,
            "one_instance_per_class": self.one_instance_per_class,
            "split": self.split, "geometric_symmetries": self.geometric_symmetries,
            "crop_size": CROP_SIZE, "crop_margin": CROP_MARGIN})
        return opts


@dataclass
class ExportSummary:
    """What an export wrote. `format()` is the text the command prints."""

    export_format: str
    out: Path
    lines: list[str]
    counts: dict
    warnings: list[str] = field(default_factory=list)
    contact_sheet: Path | None = None
    manifest: Path | None = None
    seconds: float = 0.0

    def format(self) -> str:
        out = [f"wrote {self.export_format} dataset {self.out} in {self.seconds:.1f} s",
               *self.lines]
        if self.contact_sheet is not None:
            out.append(f"contact sheet: {self.contact_sheet}")
        if self.manifest is not None:
            out.append(f"manifest: {self.manifest}")
        out += [f"warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


class ExportWarning(UserWarning):
    """Something the user should know about the dataset (also kept in the manifest)."""


def emit_warning(warnings_list: list[str], msg: str) -> None:
    """Warn once per distinct message, and keep it for the summary and the manifest."""
    if msg in warnings_list:
        return
    warnings_list.append(msg)
    warnings.warn(msg, ExportWarning, stacklevel=3)
