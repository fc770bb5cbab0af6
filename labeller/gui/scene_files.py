"""Opening, saving and remembering scenes: the dialogs around `DocumentModel.open` / `save`.

Functions take what they need (the dialog parent, the document, the undo stack, the
status bar); the main window strings them together when a scene opens or closes.
Remembered in the app's QSettings (`app_settings`): the recent scenes, the models folder
each scene was opened with, the window's geometry and its toolbars' and docks' places.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox, QStatusBar, QWidget

from labeller.annotate.document import DocumentModel
from labeller.core.errors import BadInput
from labeller.formats.scene import scene_problems

APP_NAME = "labeller"
MAX_RECENT = 8
MAX_PROBLEMS_SHOWN = 15


def app_settings() -> QSettings:
    """Recent scenes etc.; LABELLER_CONFIG_DIR redirects them (tests, portable setups)."""
    d = os.environ.get("LABELLER_CONFIG_DIR")
    if d:
        return QSettings(str(Path(d) / "labeller.ini"), QSettings.Format.IniFormat)
    return QSettings(APP_NAME, APP_NAME)


def recent_scenes() -> list[str]:
    """The scenes opened last, newest first (absolute paths)."""
    v = app_settings().value("recent_scenes", [])
    if isinstance(v, str):  # QSettings gives a one-entry list back as a plain string
        return [v]
    return [str(x) for x in v] if isinstance(v, list | tuple) else []


def remember_scene(path: Path, models_dir: Path | None = None) -> None:
    """Put the scene first in the recent list and remember its models folder (None: it
    has none beyond its own models/)."""
    s = str(path.resolve())
    rec = [s] + [r for r in recent_scenes() if r != s]
    st = app_settings()
    st.setValue("recent_scenes", rec[:MAX_RECENT])
    models = dict(_scene_models(st))
    models.pop(s, None)
    if models_dir is not None:
        models[s] = str(Path(models_dir).resolve())
    # Kept for the recent scenes only, so the list cannot grow without bound.
    st.setValue("scene_models", [f"{k}\t{v}" for k, v in models.items() if k in rec[:MAX_RECENT]])


def _scene_models(st: QSettings) -> list[tuple[str, str]]:
    v = st.value("scene_models", [])
    items = [v] if isinstance(v, str) else list(v) if isinstance(v, list | tuple) else []
    out = []
    for x in items:
        scene, sep, models = str(x).partition("\t")
        if sep:
            out.append((scene, models))
    return out


def remembered_models(path: Path) -> Path | None:
    """The models folder `path` was last opened with (None: none remembered)."""
    s = str(path.resolve())
    for scene, models in _scene_models(app_settings()):
        if scene == s:
            return Path(models)
    return None


def save_window(w: QMainWindow) -> None:
    """Remember the window's geometry and its toolbars' and docks' places and sizes."""
    st = app_settings()
    st.setValue("window/geometry", w.saveGeometry())
    st.setValue("window/state", w.saveState())


def restore_window(w: QMainWindow) -> bool:
    """Put the window back as `save_window` left it; False when nothing was saved."""
    st = app_settings()
    geometry, state = st.value("window/geometry"), st.value("window/state")
    done = False
    if isinstance(geometry, QByteArray | bytes):
        done = w.restoreGeometry(QByteArray(geometry))
    if isinstance(state, QByteArray | bytes):
        done = w.restoreState(QByteArray(state)) and done
    return done


def fill_recent_menu(menu: QMenu, open_scene: Callable[[str], object]) -> None:
    """One entry per recent scene (opening it), or a disabled "(none)"."""
    menu.clear()
    for r in recent_scenes():
        a = menu.addAction(r)
        a.triggered.connect(lambda _=False, r=r: open_scene(r))
    if not menu.actions():
        menu.addAction("(none)").setEnabled(False)


def load_document(parent: QWidget, path: Path,
                  models_dir: Path | None) -> DocumentModel | None:
    """The scene's document, or None after a message box listing why it is not valid."""
    try:
        return DocumentModel.open(path, models_dir)
    except BadInput as exc:
        problems = scene_problems(path, deep=False) if path.is_dir() else []
        if not problems or str(exc) not in problems:
            problems = [str(exc)] + problems
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        QMessageBox.critical(
            parent, "Cannot open scene",
            f"{path} is not a valid scene:\n\n" + "\n".join(f"• {p}" for p in shown)
            + (f"\n… and {more} more (run `labeller info {path}`)" if more > 0 else ""))
        return None


def report_open_problems(parent: QWidget, model: DocumentModel,
                         annotations: bool = True) -> None:
    """Warn about an unreadable annotations.json (when `annotations`) and unloaded models."""
    if model.annotations_error is not None and annotations:
        QMessageBox.warning(
            parent, "Annotations not loaded",
            f"{model.annotations_error}\n\nThe scene is open without them. The file is left "
            "as it is; saving first moves it aside to annotations.unreadable-<time>.json.")
    show_sanity_warnings(parent, model)
    errors = model.model_errors()
    if errors:
        QMessageBox.warning(
            parent, "Models not loaded",
            "These objects' models could not be loaded; they are kept in the document "
            "but not drawn (pass --models DIR to find them):\n\n"
            + "\n".join(f"• {e}" for e in errors[:MAX_PROBLEMS_SHOWN]))


def show_sanity_warnings(parent: QWidget, model: DocumentModel) -> QMessageBox | None:
    """A non-blocking box listing what `labeller info` would warn about (likely wrong depth
    scale, intrinsics, timestamps, mm models), each with its fix; None when there is none."""
    from labeller.formats.sanity import scene_warnings

    warnings = scene_warnings(model.root, model.models_dir)
    if not warnings:
        return None
    box = QMessageBox(QMessageBox.Icon.Warning, "Scene looks wrong",
                      "The scene opened, but these look wrong (labels would be offset):\n\n"
                      + "\n".join(f"• {w}" for w in warnings[:MAX_PROBLEMS_SHOWN]), parent=parent)
    box.setObjectName("sanity_warnings")
    box.open()  # not exec(): the scene stays usable while the box is up
    return box


def save_document(parent: QWidget, model: DocumentModel, undo_stack: QUndoStack,
                  status: QStatusBar) -> bool:
    """Save annotations.json; False after an error box when it failed."""
    try:
        path = model.save()
    except (BadInput, OSError) as exc:
        QMessageBox.critical(parent, "Save failed", f"{exc}")
        return False
    undo_stack.setClean()
    status.showMessage(f"Saved {path}", 5000)
    return True


def ask_to_save(parent: QWidget, model: DocumentModel | None,
                save: Callable[[], bool]) -> bool:
    """True when it is fine to drop the document (saved, discarded or clean)."""
    if model is None or not model.dirty:
        return True
    ans = QMessageBox.question(
        parent, "Unsaved changes",
        f"Save the changes to {model.annotations_path}?",
        QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
    if ans == QMessageBox.StandardButton.Save:
        return save()
    if ans == QMessageBox.StandardButton.Discard:
        model.discard_autosave()  # the user chose to lose these changes
        return True
    return False
