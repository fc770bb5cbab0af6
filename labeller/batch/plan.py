"""The batch plan: a TOML file naming the scenes, the per-scene stages and the exports.

A plan (docs/batch.md has a commented example)::

    scenes = ["scenes/*", "more/kitchen"]    # folders or globs, relative to the plan file
    stages = ["propagate"]                   # per scene, any of track, init, propagate

    [propagate]                              # the options of `labeller propagate`,
    refine = "icp"                           # named as its flags without the dashes

    [[export]]                               # one table per dataset, over all the scenes
    format = "props"
    out = "datasets/props"                   # relative to the plan file
    train-per-class = 500

Option names and values are checked against the stage's config dataclass
(`labeller.core.config.option` metadata: the same names, choices and types the stage's
command line is generated from), so a plan cannot drift from the CLIs; an unknown
option is a `BadInput` naming the plan file, the section and the option, and a value out
of range is the stage's own `check()` message, named the same way.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import glob
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeller.core.config import cli_option
from labeller.core.errors import BadInput, ConfigError

# Per-scene stages in the order they run on a scene: a trajectory first, then initial
# poses (registration needs the fused cloud), then the labels.
SCENE_STAGES = ("track", "init", "propagate")
EXPORT_SECTION = "export"
TOP_KEYS = {"scenes", "stages", *SCENE_STAGES, EXPORT_SECTION}


def stage_config_class(stage: str) -> type:
    """The config dataclass of a per-scene stage or of the exports."""
    # Imported here: each config module is light, but the plan of a track-only batch
    # should not import the others.
    if stage == "track":
        from labeller.track.config import TrackConfig

        return TrackConfig
    if stage == "init":
        from labeller.init_poses.config import InitConfig

        return InitConfig
    if stage == "propagate":
        from labeller.propagate.config import PropagateConfig

        return PropagateConfig
    if stage == EXPORT_SECTION:
        from labeller.export.config import ExportConfig

        return ExportConfig
    raise ValueError(stage)


@dataclass(frozen=True)
class PlanOption:
    """One field of a stage config as a plan key: `key` is the CLI flag without dashes."""

    key: str
    field: str
    annotation: Any
    is_bool: bool
    inverted: bool  # a flag like --no-cloud: `no-cloud = true` sets the field False
    choices: tuple[Any, ...] | None
    convert: Any  # the option's own str -> value converter (CliOption.type), or None


def plan_options(config_class: type) -> dict[str, PlanOption]:
    """Plan key -> option, for every non-positional `option()` field of `config_class`."""
    hints = typing.get_type_hints(config_class)
    out: dict[str, PlanOption] = {}
    for f in dataclasses.fields(config_class):
        opt = cli_option(f)
        if opt is None or opt.positional:
            continue
        key = (opt.flag or "--" + f.name.replace("_", "-")).lstrip("-")
        is_bool = hints[f.name] is bool
        out[key] = PlanOption(key, f.name, hints[f.name], is_bool,
                              is_bool and f.default is True,
                              tuple(opt.choices) if opt.choices is not None else None,
                              opt.type)
    return out


def _where(plan_path: Path, section: str, key: str) -> str:
    return f"{plan_path} [{section}] {key}"


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(element type, is_sequence) of an annotation like `Sequence[str] | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else (str, False)
    if origin in (list, tuple, collections.abc.Sequence):
        inner = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return (_base_type(inner[0])[0] if inner else str), True
    return annotation, False


def _scalar(value: Any, typ: Any, opt: PlanOption, where: str, base: Path) -> Any:
    if opt.convert is not None and isinstance(value, str):
        try:
            value = opt.convert(value)
        except (TypeError, ValueError) as exc:
            raise BadInput(where, str(exc)) from None
    elif typ is Path:
        if not isinstance(value, str):
            raise BadInput(where, f"must be a path (a string), got {value!r}")
        value = Path(value)
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(where, f"must be a number, got {value!r}")
        value = float(value)
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(where, f"must be an integer, got {value!r}")
    elif typ is str and not isinstance(value, str):
        raise BadInput(where, f"must be a string, got {value!r}")
    if isinstance(value, Path) and not value.is_absolute() and str(value):
        value = base / value  # relative to the plan file, as the scenes are
    if opt.choices is not None and value not in opt.choices:
        raise BadInput(where, f"must be one of {', '.join(map(str, opt.choices))}, got {value!r}")
    return value


def parse_options(config_class: type, table: Mapping[str, Any], plan_path: Path,
                  section: str, base: Path, *, reserved: Sequence[str] = ()) -> dict[str, Any]:
    """Config field -> value from a plan table of `config_class` options (BadInput naming
    the plan file, section and key for an unknown key or a value of the wrong type)."""
    known = plan_options(config_class)
    fields: dict[str, Any] = {}
    for key, value in table.items():
        where = _where(plan_path, section, key)
        opt = known.get(key)
        if opt is None or key in reserved:
            names = ", ".join(sorted(k for k in known if k not in reserved))
            raise BadInput(where, f"unknown option (known: {names})")
        if opt.is_bool:
            if not isinstance(value, bool):
                raise BadInput(where, f"must be true or false, got {value!r}")
            fields[opt.field] = (not value) if opt.inverted else value
            continue
        typ, is_seq = _base_type(opt.annotation)
        if is_seq:
            if not isinstance(value, list):
                raise BadInput(where, f"must be a list, got {value!r}")
            fields[opt.field] = tuple(_scalar(v, typ, opt, where, base) for v in value)
        else:
            fields[opt.field] = _scalar(value, typ, opt, where, base)
    return fields


def check_config(cfg: Any, plan_path: Path, section: str) -> None:
    """`cfg.check()`, its ConfigError renamed to the plan key that sets the field."""
    try:
        cfg.check()
    except ConfigError as exc:
        key = next((o.key for o in plan_options(type(cfg)).values() if o.field == exc.field),
                   exc.field)
        raise BadInput(_where(plan_path, section, key), exc.problem) from None


@dataclass(frozen=True)
class ExportPlan:
    """One export over all the plan's scenes: its config fields (without `scenes`)."""

    fields: Mapping[str, Any]

    @property
    def format(self) -> str:
        return str(self.fields["format"])

    @property
    def out(self) -> Path:
        return Path(self.fields["out"])


@dataclass(frozen=True)
class Plan:
    """A parsed plan. `scenes`: absolute scene folders in plan order (globs sorted);
    `stages`: per-scene stages in run order; `options`: stage -> config fields."""

    path: Path
    scenes: tuple[Path, ...]
    stages: tuple[str, ...]
    options: Mapping[str, Mapping[str, Any]]
    exports: tuple[ExportPlan, ...]

    def stage_config(self, stage: str, scene: Path) -> Any:
        """The stage's config for `scene` (what `labeller STAGE SCENE ...` would build)."""
        cls = stage_config_class(stage)
        return cls(scene=scene, **self.options.get(stage, {}))

    def export_config(self, export: ExportPlan) -> Any:
        cls = stage_config_class(EXPORT_SECTION)
        return cls(scenes=self.scenes, **export.fields)


def _scene_list(value: Any, plan_path: Path, base: Path) -> tuple[Path, ...]:
    where = f"{plan_path} scenes"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadInput(where, "must be a non-empty list of scene folders or globs")
    scenes: list[Path] = []
    for pattern in value:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(full) if Path(p).is_dir())
            if not found:
                raise BadInput(where, f"{pattern!r} matches no folder")
        else:
            if not Path(full).is_dir():
                raise BadInput(where, f"{pattern!r}: no such folder")
            found = [Path(full)]
        for p in found:
            p = p.resolve()
            if p not in scenes:
                scenes.append(p)
    names = [p.name for p in scenes]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:  # the exports name scenes by folder name (test-scenes, reports)
        raise BadInput(where, f"two scene folders are named {dup!r}")
    return tuple(scenes)


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan file; every scene and export config is built and checked
    here, so a bad plan stops before any task starts."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10: the same parser as a package
        import tomli as tomllib

    plan_path = Path(path)
    try:
        data = tomllib.loads(plan_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(plan_path, "no such plan file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(plan_path, f"cannot read the plan: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(plan_path, f"not valid TOML: {exc}") from None
    base = plan_path.resolve().parent
    for key in data:
        if key not in TOP_KEYS:
            raise BadInput(f"{plan_path} {key}", "unknown key (known: "
                                                  f"{', '.join(sorted(TOP_KEYS))})")
    if "scenes" not in data:
        raise BadInput(plan_path, "no `scenes` list")
    scenes = _scene_list(data["scenes"], plan_path, base)
    raw_stages = data.get("stages", [])
    if not isinstance(raw_stages, list) or not all(isinstance(s, str) for s in raw_stages):
        raise BadInput(f"{plan_path} stages", f"must be a list of stage names, got {raw_stages!r}")
    for s in raw_stages:
        if s not in SCENE_STAGES:
            raise BadInput(f"{plan_path} stages", f"unknown stage {s!r} (known: "
                                                  f"{', '.join(SCENE_STAGES)})")
    stages = tuple(s for s in SCENE_STAGES if s in raw_stages)
    options: dict[str, dict[str, Any]] = {}
    for stage in SCENE_STAGES:
        table = data.get(stage, {})
        if not isinstance(table, dict):
            raise BadInput(f"{plan_path} [{stage}]", "must be a table of options")
        if table and stage not in stages:
            raise BadInput(f"{plan_path} [{stage}]", "options for a stage not in `stages`")
        options[stage] = parse_options(stage_config_class(stage), table, plan_path, stage, base)
    raw_exports = data.get(EXPORT_SECTION, [])
    if isinstance(raw_exports, dict):
        raw_exports = [raw_exports]
    if not isinstance(raw_exports, list):
        raise BadInput(f"{plan_path} [[export]]", "must be tables of export options")
    if not stages and not raw_exports:
        raise BadInput(plan_path, "nothing to do: no `stages` and no [[export]]")
    exports = []
    for i, table in enumerate(raw_exports):
        section = f"export {i + 1}"
        if not isinstance(table, dict):
            raise BadInput(f"{plan_path} [{section}]", "must be a table of export options")
        for required in ("format", "out"):
            if required not in table:
                raise BadInput(f"{plan_path} [{section}]", f"needs `{required}`")
        exports.append(ExportPlan(parse_options(stage_config_class(EXPORT_SECTION), table,
                                                plan_path, section, base)))
    outs = [e.out.resolve() for e in exports]
    if len(set(outs)) != len(outs):
        raise BadInput(f"{plan_path} [[export]]", "two exports write the same `out` folder")
    plan = Plan(plan_path, scenes, stages, options, tuple(exports))
    for stage in stages:
        check_config(plan.stage_config(stage, scenes[0]), plan_path, stage)
    for i, e in enumerate(plan.exports):
        check_config(plan.export_config(e), plan_path, f"export {i + 1}")
    return plan
