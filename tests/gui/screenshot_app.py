"""Test tooling: start the real app on a scene, grab the screen once it is drawn, quit.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m tests.gui.screenshot_app \\
        SCENE --out /tmp/gui.png [--select ID] [--models DIR]

Waits for the first frame to be drawn (at most 60 s), selects object ID first when
asked, saves the whole screen (the real window under Xvfb) to --out and quits, printing
which objects were drawn. For docs and for checking the app as a real window
(tests/gui/test_xvfb.py); not part of the product.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from labeller.gui.app import MainWindow, run_app


def screenshot_when_drawn(out: str, select: int | None = None):
    """An `on_shown` hook for `run_app` that grabs the screen to `out` and quits."""

    def hook(win: MainWindow, app: QApplication) -> None:
        t0 = time.monotonic()
        state = {"selected": False}

        def poll() -> None:
            ready = win.model is not None and win.render_idle() and win.view.shown_gen > 0
            if ready and select is not None and not state["selected"]:
                state["selected"] = True
                win.select(select)
                QTimer.singleShot(200, poll)
                return
            if not ready and time.monotonic() - t0 < 60:
                QTimer.singleShot(200, poll)
                return
            QTimer.singleShot(500, grab)

        def grab() -> None:
            pm = QGuiApplication.primaryScreen().grabWindow(0)
            if pm.isNull() or pm.width() == 0:
                pm = win.grab()
            pm.save(out)
            inst = win.view._inst
            drawn = sorted(set(np.unique(inst).tolist()) - {0}) if inst is not None else []
            print(f"screenshot saved to {out} ({pm.width()}x{pm.height()}); "
                  f"objects drawn: {', '.join(map(str, drawn)) or 'none'}", file=sys.stderr)
            app.quit()

        QTimer.singleShot(300, poll)

    return hook


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("--out", required=True)
    ap.add_argument("--select", type=int, default=None)
    ap.add_argument("--models", default=None)
    args = ap.parse_args(argv)
    return run_app(args.scene, args.models, on_shown=screenshot_when_drawn(args.out,
                                                                           args.select))


if __name__ == "__main__":
    sys.exit(main())
