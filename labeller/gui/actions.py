"""The main window's actions (keys), menus and toolbars.

`make_action` builds one QAction (shortcut in its tooltip); `WindowActions` builds all
of them for a `MainWindow`, connects each to the part of the window that does the work
(the window itself, its `EditController`, its refine / preview / multi-view controllers)
and lays out the menus and toolbars. Key reference: `KEYS_HELP`, docs/gui.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

if TYPE_CHECKING:
    from labeller.gui.window import MainWindow

KEYS_HELP = """\
Selected object (click it, or pick it in the list):
  ←/→ ↑/↓  move along the camera's x / y (1 mm; Shift: 1 cm)
  PgUp/PgDn  move away from / towards the camera (z)
  I/K  J/L  U/O  turn about the camera's x / y / z through the object's centre
             (1°; Shift: 5°)
  drag  move in the image plane;  Ctrl+drag  turn;  Shift+wheel (or wheel while dragging)  depth
  P then click  place the object's surface on the clicked pixel's depth
  Delete  remove it;  Esc  deselect
Frames:  , .  previous / next;  [ ]  previous / next keyframe;  M  toggle keyframe
View:  wheel  zoom;  middle/right drag  pan;  F  fit;  D  depth in false colour
Ctrl+Z / Ctrl+Shift+Z undo / redo;  Ctrl+S save"""

Shortcut = QKeySequence | QKeySequence.StandardKey | str | None


def make_action(window: QMainWindow, text: str, slot: Callable[..., object],
                shortcut: Shortcut = None, tip: str = "", checkable: bool = False) -> QAction:
    """An action of `window` (its shortcut works anywhere in it) that calls `slot`."""
    a = QAction(text, window)
    if shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    a.setToolTip(f"{tip or text} ({a.shortcut().toString()})" if shortcut else tip or text)
    a.setStatusTip(tip or text)
    a.setCheckable(checkable)
    a.triggered.connect(slot)
    window.addAction(a)
    return a


def _fill(container: QMenu, actions: tuple[QAction | None, ...]) -> None:
    for a in actions:
        if a is None:
            container.addSeparator()
        else:
            container.addAction(a)


class WindowActions:
    """Every action of the main window, its menus (`recent_menu`: File ▸ Open recent) and
    its two toolbars. `scene_actions` are enabled only while a scene is open."""

    def __init__(self, w: MainWindow):
        SK = QKeySequence.StandardKey
        ed = w.editor

        def act(text: str, slot: Callable[..., object], shortcut: Shortcut = None,
                tip: str = "", checkable: bool = False) -> QAction:
            return make_action(w, text, slot, shortcut, tip, checkable)

        self.open = act("&Open scene…", w.open_dialog, SK.Open)
        self.save = act("&Save", w.save, SK.Save, "Save annotations.json")
        self.quit = act("&Quit", w.close, SK.Quit)
        self.undo = w.undo_stack.createUndoAction(w, "&Undo")
        self.undo.setShortcut(QKeySequence(SK.Undo))
        self.redo = w.undo_stack.createRedoAction(w, "&Redo")
        self.redo.setShortcut(QKeySequence(SK.Redo))
        w.addAction(self.undo)
        w.addAction(self.redo)
        self.delete = act("&Delete object", ed.delete_selected, SK.Delete)
        self.place = act("&Place (click)", ed.set_place_mode, "P",
                         "Click a pixel to put the selected object on its depth",
                         checkable=True)
        self.deselect = act("Deselect", ed.escape, "Escape")
        self.prev = act("Previous frame", lambda: w.step_frame(-1), ",")
        self.next = act("Next frame", lambda: w.step_frame(+1), ".")
        self.prev_kf = act("Previous keyframe", lambda: w.jump_keyframe(-1), "[")
        self.next_kf = act("Next keyframe", lambda: w.jump_keyframe(+1), "]")
        self.keyframe = act("Toggle &keyframe", ed.toggle_keyframe, "M",
                            "Mark/unmark this frame as a keyframe of the selected "
                            "object (of all objects when none is selected)")
        self.depth = act("Show &depth", w.toggle_depth, "D",
                         "Show the depth frame in false colour", checkable=True)
        self.fit = act("&Fit view", w.view.fit, "F")
        self.zoom_in = act("Zoom in", lambda: w.view.zoom(1.25), SK.ZoomIn)
        self.zoom_out = act("Zoom out", lambda: w.view.zoom(0.8), SK.ZoomOut)
        self.keys = act("Keys…", lambda: QMessageBox.information(w, "Keys", KEYS_HELP))
        # The checks: refine, preview, multi-view, export.
        self.refine = act("&Refine (ICP on depth)", lambda: w.refiner.refine_selected("depth"),
                          "R", "Point-to-plane ICP of the selected model against the depth "
                          "of this frame (and of the multi-view frames when shown)")
        self.refine_cloud = act("Refine on fused &cloud",
                                lambda: w.refiner.refine_selected("cloud"), "Shift+R",
                                "ICP against recon/cloud.ply (written by tracking)")
        self.preview = act("Propagation pre&view", w.previewer.toggle, "V",
                           "Scrub all frames with the propagated poses scored against the "
                           "depth (green ok, red flagged)", checkable=True)
        self.next_flag = act("Next flagged frame", lambda: w.previewer.jump_flagged(+1), "N")
        self.prev_flag = act("Previous flagged frame", lambda: w.previewer.jump_flagged(-1),
                             "Shift+N")
        self.multiview = act("&Multi-view check", w.multiview.toggle, "Ctrl+M",
                             "Show other frames side by side", checkable=True)
        self.export = act("&Export dataset…", w.export_dialog_open, "Ctrl+E")
        self.scene_actions = (self.save, self.prev, self.next, self.prev_kf, self.next_kf,
                              self.keyframe, self.depth, self.place, self.delete)

        mb = w.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.open)
        self.recent_menu = m.addMenu("Open &recent")
        m.addAction(self.save)
        m.addSeparator()
        m.addAction(self.quit)
        _fill(mb.addMenu("&Edit"), (self.undo, self.redo, None, self.place, self.delete,
                                    self.deselect))
        _fill(mb.addMenu("&Frame"), (self.prev, self.next, self.prev_kf, self.next_kf, None,
                                     self.keyframe))
        _fill(mb.addMenu("&View"), (self.depth, self.fit, self.zoom_in, self.zoom_out))
        mb.addMenu("&Help").addAction(self.keys)
        tb = w.addToolBar("Main")
        tb.setObjectName("main")
        for a in (self.open, self.save, None, self.undo, self.redo, None, self.prev,
                  self.next, self.keyframe, None, self.place, self.depth, self.fit):
            tb.addSeparator() if a is None else tb.addAction(a)
        _fill(mb.addMenu("&Check"), (self.refine, self.refine_cloud, None, self.preview,
                                     self.next_flag, self.prev_flag, None, self.multiview,
                                     None, self.export))
        tb = w.addToolBar("Check")
        tb.setObjectName("check")
        for a in (self.refine, self.preview, self.next_flag, self.multiview, self.export):
            tb.addAction(a)
