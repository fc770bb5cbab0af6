"""Package attributes imported on first use, so that importing a stage package is cheap.

The command line builds every subcommand's options from `labeller.<stage>.config` at
start-up; a stage package whose ``__init__`` imported its driver would drag in the whole
stage (and Open3D, torch) for ``labeller --help``. A stage package instead declares where
each public name lives and installs `lazy_exports` as its module ``__getattr__``::

    __getattr__ = lazy_exports(__name__, {"TrackConfig": "config", "run": "stage"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: name -> ``package.<homes[name]>.<name>``.

    The first access imports the submodule and caches the value in the package, so
    later accesses are plain attribute reads.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
