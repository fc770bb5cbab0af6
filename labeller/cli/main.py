"""The `labeller` console script: one subcommand per pipeline stage.

Exit codes (docs/design.md): 0 success, 2 bad input (one-line message naming the file and
the problem; a bad setting names the option that sets it), 1 anything else, 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from types import ModuleType

# Each subcommand module keeps its heavy imports (open3d, torch, Qt) inside its
# functions, so importing them all here keeps `labeller --help` fast.
from labeller.cli import (
    baseline,
    batch,
    demo,
    export,
    gui_stage,
    importers,
    info,
    init,
    labels,
    propagate,
    synth,
    track,
)

# (subcommand, module): each module has a docstring (its first line is the summary),
# `add_arguments(parser)`, `main(args) -> int` and optionally an `EXAMPLE` epilog.
SUBCOMMANDS: tuple[tuple[str, ModuleType], ...] = (
    ("synth", synth),
    ("info", info),
    ("import", importers),
    ("track", track),
    ("init", init),
    ("gui", gui_stage),
    ("propagate", propagate),
    ("labels", labels),
    ("export", export),
    ("baseline", baseline),
    ("batch", batch),
    ("demo", demo),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labeller",
        description="Turn recorded RGB-D video of objects into labelled datasets.",
        epilog="Run `labeller COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS:
        doc = (module.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else name
        p = sub.add_parser(
            name,
            help=summary,
            description=doc,
            epilog=textwrap.dedent(getattr(module, "EXAMPLE", "")),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


class _LowerLevelFormatter(logging.Formatter):
    """``labeller track: warning: ...``: the same shape as the CLI's own messages."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (tests swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _log_to_stderr(command: str, debug: bool) -> None:
    """The library reports through `logging`; the command line shows warnings (and with
    --debug everything) on stderr, prefixed like its errors."""
    handler = _StderrHandler()
    handler.setFormatter(_LowerLevelFormatter(f"labeller {command}: %(levelname)s: %(message)s"))
    root = logging.getLogger("labeller")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    from labeller.core.config import flag_of
    from labeller.core.errors import BadInput, ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or bool(os.environ.get("LABELLER_DEBUG"))
    _log_to_stderr(args.command, debug)
    try:
        rc = args._main(args)
        return 0 if rc is None else int(rc)
    except ConfigError as exc:
        if debug:
            raise
        # The library names the config field; the user typed the option that sets it.
        where = flag_of(exc.config_class, exc.field) or exc.path
        print(f"labeller {args.command}: error: {where}: {exc.problem}", file=sys.stderr)
        return 2
    except BadInput as exc:
        if debug:
            raise
        print(f"labeller {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `labeller labels SCENE | head`: the reader left; that is not an error. Point
        # stdout at devnull so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"labeller {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            raise
        from labeller.core.fileio import disk_error_message

        disk = disk_error_message(exc)  # full, read-only, not permitted: the user's to fix
        if disk is not None:
            print(f"labeller {args.command}: error: {disk}", file=sys.stderr)
            return 2
        print(
            f"labeller {args.command}: internal error: {type(exc).__name__}: {exc}"
            " (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
