"""Command-line options generated from a stage's config dataclass (`labeller.core.config`).

`add_config_arguments(parser, XConfig)` adds one argument per field that has `option()`
metadata, with the field's default, type and help; `config_from_args(XConfig, args)`
builds the frozen config back from the parsed namespace. Defaults live only in the
dataclass, so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from labeller.core.config import CliOption, cli_option

C = TypeVar("C")


def _scalar_type(annotation: Any) -> tuple[Any, bool, bool]:
    """(argparse type, is_bool, is_sequence) of a field annotation like `float | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0]) if len(args) == 1 else (str, False, False)
    if origin in (list, tuple, collections.abc.Sequence):
        inner = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return (_scalar_type(inner[0])[0] if inner else str), False, True
    if annotation is bool:
        return bool, True, False
    if annotation in (int, float, str, Path):
        return annotation, False, False
    return str, False, False


def _help(opt: CliOption, default: Any) -> str:
    if not opt.show_default or default is dataclasses.MISSING or default is None \
            or isinstance(default, bool) or "default" in opt.help:
        return opt.help
    if isinstance(default, (list, tuple)):
        default = " ".join(str(x) for x in default)
    return f"{opt.help} (default: {default})"


def add_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                         config_class: type, *,
                         exclude: typing.Collection[str] = ()) -> None:
    """Add an argument to `parser` for every field of `config_class` with a CliOption."""
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        opt = cli_option(f)
        if opt is None or f.name in exclude:
            continue
        typ, is_bool, is_seq = _scalar_type(hints[f.name])
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        kw: dict[str, Any] = {"help": _help(opt, default)}
        if opt.positional:
            kw["type"] = opt.type or typ
            if opt.metavar is not None:
                kw["metavar"] = opt.metavar
            if opt.nargs is not None:
                kw["nargs"] = opt.nargs
            if default is not dataclasses.MISSING:
                kw.setdefault("nargs", "?")
                kw["default"] = default
            parser.add_argument(f.name, **kw)
            continue
        flag = opt.flag or "--" + f.name.replace("_", "-")
        kw["dest"] = f.name
        if is_bool:
            kw["action"] = "store_false" if default is True else "store_true"
            kw["default"] = bool(default)
        else:
            kw["type"] = opt.type or typ
            kw["default"] = None if default is dataclasses.MISSING else default
            if opt.metavar is not None:
                kw["metavar"] = opt.metavar
            if opt.choices is not None:
                kw["choices"] = list(opt.choices)
            if opt.nargs is not None:
                kw["nargs"] = opt.nargs
            elif is_seq:
                kw["nargs"] = "+"
            if default is dataclasses.MISSING:
                kw["required"] = True
        parser.add_argument(flag, **kw)


def config_from_args(config_class: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    """`config_class` from the parsed `args` (fields with a CliOption), plus `overrides`.

    Sequence values are stored as tuples when the field's default is a tuple, so a frozen
    config stays hashable; a positional Path field gets a Path.
    """
    assert dataclasses.is_dataclass(config_class)
    hints = typing.get_type_hints(config_class)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        if cli_option(f) is None or f.name in overrides or not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        if isinstance(v, list) and isinstance(f.default, tuple):
            v = tuple(v)
        typ = _scalar_type(hints[f.name])[0]
        if typ is Path and isinstance(v, str):
            v = Path(v)
        kw[f.name] = v
    kw.update(overrides)
    return config_class(**kw)


def run_with_bar(run: Callable[..., Any], cfg: Any, label: str, no_progress: bool) -> Any:
    """`run(cfg, progress=...)` with a progress bar named `label` on stderr (none when
    `no_progress`), the bar closed however the run ends; what `run` returns."""
    from labeller.core.progress import bar_progress

    progress, close_bar = (None, None) if no_progress else bar_progress(label)
    try:
        return run(cfg, progress=progress)
    finally:
        if close_bar is not None:
            close_bar()
