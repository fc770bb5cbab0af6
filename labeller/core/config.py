"""Stage settings: each stage is a frozen dataclass ``XConfig`` plus ``run(cfg)``.

A field says how the command line shows it through `option(...)` metadata, so the CLI
options are generated from the dataclass (`labeller.cli.options`) and every default
lives in exactly one place::

    @dataclass(frozen=True)
    class TrackConfig:
        scene: Path = option(positional=True, metavar="SCENE", help="the scene folder")
        voxel_m: float = option(0.006, flag="--voxel", metavar="M",
                                help="TSDF voxel size of the fused cloud in metres")
        write_cloud: bool = option(True, flag="--no-cloud", help="skip the TSDF fusion")
        checkpoint_every: int = 10          # no option(): not on the command line

        def check(self) -> None:
            if not 0.0005 <= self.voxel_m <= 0.2:
                raise ConfigError(self, "voxel_m", f"must be in [0.0005, 0.2], got ...")

`check()` raises `ConfigError(self, field, problem)`, naming the field; the command line
turns the field into its option's flag when it prints the message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

# Key of a field's metadata that holds its `CliOption`.
CLI_KEY = "labeller.cli"


@dataclasses.dataclass(frozen=True)
class CliOption:
    """How one config field appears on the command line.

    flag: the option's name (default ``--field-name``); for a bool whose default is
    True, a flag like ``--no-cloud`` sets it False. positional: an argument, not an
    option. nargs, choices, metavar, type: as argparse's (type defaults from the field's
    annotation). show_default: append "(default: X)" to the help.
    """

    help: str
    flag: str | None = None
    positional: bool = False
    metavar: str | tuple[str, ...] | None = None
    choices: Sequence[Any] | None = None
    nargs: int | str | None = None
    type: Callable[[str], Any] | None = None
    show_default: bool = True


def option(default: Any = dataclasses.MISSING, *, help: str,
           default_factory: Any = dataclasses.MISSING, flag: str | None = None,
           positional: bool = False, metavar: str | tuple[str, ...] | None = None,
           choices: Sequence[Any] | None = None, nargs: int | str | None = None,
           type: Callable[[str], Any] | None = None, show_default: bool = True) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring)."""
    meta = {CLI_KEY: CliOption(help=help, flag=flag, positional=positional, metavar=metavar,
                               choices=choices, nargs=nargs, type=type,
                               show_default=show_default)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cli_option(f: dataclasses.Field) -> CliOption | None:
    """The `CliOption` of a field, or None when it is not on the command line."""
    opt = f.metadata.get(CLI_KEY)
    return opt if isinstance(opt, CliOption) else None


def flag_of(config_class: type, field: str) -> str | None:
    """The command-line flag (or positional name) that sets `field`, if any."""
    for f in dataclasses.fields(config_class):
        if f.name == field:
            opt = cli_option(f)
            if opt is None:
                return None
            if opt.positional:
                return str(opt.metavar or f.name.upper())
            return opt.flag or "--" + f.name.replace("_", "-")
    return None
