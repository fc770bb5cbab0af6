"""Open the annotation GUI: place object models on a scene's frames, undo, save annotations.json.

Without SCENE the window opens empty (File > Open, or a recent scene). A scene without a
trajectory opens with a banner that offers to run tracking in the background. Object
models come from the scene's models/ folder and from --models DIR (e.g. the YCB meshes,
folders like 025_mug offered as class mug).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLE = """\
example:
  labeller synth /tmp/scene --frames 60 --seed 1
  labeller gui /tmp/scene --models ../shared/data/ycb_models

  # a real window on a machine without a screen:
  xvfb-run -a labeller gui /tmp/scene

Keys: arrows / PgUp / PgDn nudge the selected object along the camera axes (Shift: coarse),
I/K J/L U/O turn it, P then click places it on the clicked depth, M toggles a keyframe,
Ctrl+Z / Ctrl+Shift+Z undo / redo, Ctrl+S saves. See docs/gui.md.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", nargs="?", default=None, help="scene directory (optional)")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="models library: <name>/textured.obj or <name>/*.ply meshes in metres")


# The X11 libraries Qt >= 6.5's xcb platform plugin loads that minimal Linux installs
# lack (soname stem -> Debian/Ubuntu package). Without them Qt aborts the process.
XCB_LIBS = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
            "xcb-keysyms": "libxcb-keysyms1"}


def _display_problem() -> tuple[str, str] | None:
    """(what, why) Qt could not open a window here, or None. (Qt aborts otherwise.)"""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not sys.platform.startswith("linux"):
        return None
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return None
    if not os.environ.get("DISPLAY"):
        return ("DISPLAY", "not set: there is no display to open a window on; run it under "
                           "`xvfb-run -a labeller gui ...` or set QT_QPA_PLATFORM=offscreen")
    import ctypes.util

    missing = [pkg for lib, pkg in XCB_LIBS.items() if ctypes.util.find_library(lib) is None]
    if missing:
        return ("Qt xcb platform", f"system libraries missing: install {' '.join(missing)} "
                                   "(e.g. `apt-get install " + " ".join(missing) + "`)")
    return None


def main(args: argparse.Namespace) -> int:
    from labeller.core.errors import BadInput

    if args.models is not None and not Path(args.models).is_dir():
        raise BadInput(args.models, "models library not found (not a directory)")
    from labeller.gui.qt_version import pyside6_problem

    if (problem := pyside6_problem() or _display_problem()) is not None:
        raise BadInput(*problem)
    from labeller.gui.app import run_app

    return run_app(args.scene, args.models)
