"""The PySide6 annotation app: views over `labeller.annotate.document.DocumentModel`.

The model (in `labeller/`, Qt-free) holds the annotations and tells listeners what
changed; the views here only draw it and turn the user's actions into undo commands
(`labeller.gui.commands`), the only way the GUI changes the model. Overlays are rendered on a
worker thread (`labeller.gui.worker`) by the Qt-free `labeller.geometry.overlay`.
"""

from __future__ import annotations

from labeller.gui import _pyside_fix

# PySide6 6.12.0 + CPython 3.11 abort after a few thousand repaints; see _pyside_fix.
_pyside_fix.install()


def main(argv: list[str] | None = None) -> int:
    """Start the app (see `labeller.gui.app.run_app`)."""
    from labeller.gui.app import run_app

    scene = argv[0] if argv else None
    return run_app(scene)
