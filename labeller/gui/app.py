"""Start the annotation app: `run_app(scene, models_dir)` (what `labeller gui` calls).

The window itself is `labeller.gui.window.MainWindow` (re-exported here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from labeller.gui.scene_files import APP_NAME
from labeller.gui.window import MainWindow

__all__ = ["MainWindow", "run_app"]


def run_app(scene: str | os.PathLike | None = None,
            models_dir: str | os.PathLike | None = None,
            on_shown: Callable[[MainWindow, QApplication], None] | None = None) -> int:
    """Start the app (optionally on a scene) and run until the window closes.

    on_shown(window, app) runs once the window is shown, before the event loop (test
    tooling drives the real window through it, e.g. tests/gui/screenshot_app.py)."""
    inst = QApplication.instance()
    app = inst if isinstance(inst, QApplication) else \
        QApplication([sys.argv[0] if sys.argv else APP_NAME])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    win = MainWindow(models_dir)
    win.show()
    if scene is not None:
        # After the window is up, so an invalid scene's message box has a parent.
        QTimer.singleShot(0, lambda: win.open_scene(scene))
    if on_shown is not None:
        on_shown(win, app)
    return int(app.exec())
