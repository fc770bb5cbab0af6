"""The PySide6 annotation app: views over `labeller.annotate.document.DocumentModel`.

The model (in `labeller.annotate`, Qt-free) holds the annotations and tells listeners
what changed; the views here only draw it and turn the user's actions into undo commands
(`labeller.gui.commands`), the only way the GUI changes the model. Overlays are rendered
on a worker thread (`labeller.gui.worker`) by the Qt-free `labeller.geometry.overlay`.

Modules: `app` (start), `window` (the main window shell), `actions` (menus and keys),
`scene_files` (open / save / recent), `editing` (pose edits), `tracking` (banner),
`refine`, `preview`, `multiview`, `autosave`, `export_dialog`, `views`, `panels`,
`worker`, `tasks` (background stages), `state`, `qt_version` (refused PySide6 versions).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Start the app (see `labeller.gui.app.run_app`)."""
    from labeller.gui.app import run_app

    scene = argv[0] if argv else None
    return run_app(scene)
