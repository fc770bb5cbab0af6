"""Run one `labeller` command and kill it just before its K-th step on WATCH's entries.

    python -m tests.reliability.crash_runner K WATCH MODE ARGS...

A step is a rename, a removal or an atomic exchange (`os.rename`, `os.replace`,
`os.remove`, `os.rmdir`, `shutil.rmtree`, `labeller.fileio.exchange`: their audit events)
whose path names an entry directly inside the folder WATCH, the folder holding the
output DIR: the steps that decide what DIR holds. Writes inside the temporary folder do
not count. Before the K-th such step the process ends with `os._exit(KILLED)`, as a
SIGKILL or a power loss would end it (no clean-up, no `finally`). MODE ``exchange`` runs
as is; ``rename`` makes `exchange_paths` report "not supported", so the fallback (two
renames through `.DIR.old`) runs. The exit code is KILLED when the process was stopped,
else the command's own.
"""

from __future__ import annotations

import os
import sys

KILLED = 77
_ONE_PATH = {"os.remove", "os.rmdir", "shutil.rmtree"}
_TWO_PATHS = {"os.rename", "os.replace", "labeller.fileio.exchange"}
_NO_FD = (None, -1)  # how the audit events spell "no dir_fd": the path is the whole path


def _paths(event: str, args: tuple) -> list:
    if event in _ONE_PATH:
        # (path, dir_fd): a name relative to a directory fd is inside a tree being removed
        return [args[0]] if len(args) < 2 or args[1] in _NO_FD else []
    if event in _TWO_PATHS:
        if len(args) >= 4 and (args[2] not in _NO_FD or args[3] not in _NO_FD):
            return []
        return list(args[:2])
    return []


def main(argv: list[str]) -> int:
    k, watch, mode, command = int(argv[0]), os.path.realpath(argv[1]), argv[2], argv[3:]
    count = 0

    def in_watch(p) -> bool:
        if not isinstance(p, (str, bytes, os.PathLike)):
            return False
        return os.path.dirname(os.path.abspath(os.fsdecode(p))) == watch

    def hook(event: str, args: tuple) -> None:
        nonlocal count
        if any(in_watch(p) for p in _paths(event, args)):
            count += 1
            if count == k:
                os._exit(KILLED)

    import labeller.core.fileio as fileio

    if mode == "rename":
        fileio.exchange_paths = lambda a, b: False  # as on a file system without exchange
    elif mode != "exchange":
        raise SystemExit(f"unknown MODE {mode!r}")
    from labeller.cli.main import main as cli

    sys.addaudithook(hook)
    return cli(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
