"""The main window's actions (keys), menus and toolbars.

`make_action` builds one QAction (shortcut in its tooltip); `WindowActions` builds all
of them for a `MainWindow`, connects each to the part of the window that does the work
(the window itself, its `EditController`, its refine / preview / multi-view controllers)
and lays out the menus and toolbars. Help ▸ Keys (`keys_rows`, `KeysDialog`) is generated
from the registered actions and the frame view's own keys, so it cannot drift from them.
Every action needs an open scene except `WindowActions.sceneless` (`needing_scene`).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QMainWindow,
    QMenu,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from labeller.gui.views import VIEW_KEYS, VIEW_MOUSE

if TYPE_CHECKING:
    from labeller.gui.window import MainWindow

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


def _toolbar(w: QMainWindow, title: str, name: str,
             entries: tuple[tuple[QAction, str] | None, ...]) -> QToolBar:
    """A toolbar of `w` holding these (action, button label) pairs; None: a separator.
    The label is the action's icon text, which only buttons show (menus keep the text)."""
    tb = w.addToolBar(title)
    tb.setObjectName(name)
    for e in entries:
        if e is None:
            tb.addSeparator()
        else:
            a, label = e
            a.setIconText(label)
            tb.addAction(a)
    return tb


# An action's property naming it in Help ▸ Keys when its text changes (undo / redo).
KEYS_LABEL = "keys_label"
KeyRow = tuple[str, str, str]  # (section, keys, what they do)


def action_label(a: QAction) -> str:
    """The action's name as the menus show it, without the mnemonic '&'."""
    label = a.property(KEYS_LABEL)
    return str(label) if label else a.text().replace("&&", "\0").replace("&", "") \
        .replace("\0", "&")


def shortcut_text(a: QAction) -> str:
    """Every key of the action, as Qt writes them on this platform ('' when none)."""
    return " / ".join(k.toString(QKeySequence.SequenceFormat.NativeText)
                      for k in a.shortcuts() if not k.isEmpty())


def keys_rows(w: QMainWindow) -> list[KeyRow]:
    """Help ▸ Keys: every action of `w` with a key (grouped by the menu that holds it;
    actions in no menu under "Other"), then the frame view's own keys and mouse."""
    rows: list[KeyRow] = []
    seen: set[int] = set()

    def walk(menu: QMenu, section: str) -> None:
        for a in menu.actions():
            sub = a.menu()
            if isinstance(sub, QMenu):
                walk(sub, section)
            elif shortcut_text(a) and id(a) not in seen:
                seen.add(id(a))
                rows.append((section, shortcut_text(a), action_label(a)))

    for top in w.menuBar().actions():
        menu = top.menu()
        if isinstance(menu, QMenu):
            walk(menu, top.text().replace("&", ""))
    for a in w.actions():
        if shortcut_text(a) and id(a) not in seen:
            seen.add(id(a))
            rows.append(("Other", shortcut_text(a), action_label(a)))
    rows += [("Frame view (keys)", k, what) for k, what in VIEW_KEYS]
    rows += [("Frame view (mouse)", k, what) for k, what in VIEW_MOUSE]
    return rows


def keys_html(rows: list[KeyRow]) -> str:
    """The rows as one HTML table with a heading per section."""
    out, section = ["<table cellspacing='0' cellpadding='2'>"], None
    for sec, keys, what in rows:
        if sec != section:
            out.append(f"<tr><td colspan='2'><b>{escape(sec)}</b></td></tr>")
            section = sec
        out.append(f"<tr><td style='padding-right:16px'><tt>{escape(keys)}</tt></td>"
                   f"<td>{escape(what)}</td></tr>")
    out.append("</table>")
    return "".join(out)


class KeysDialog(QDialog):
    """Help ▸ Keys: the table of `keys_rows`, rebuilt each time it is shown (non-modal)."""

    def __init__(self, w: QMainWindow, parent: QWidget | None = None):
        super().__init__(parent or w)
        self.window_ = w
        self.setWindowTitle("Keys")
        self.setObjectName("keys_dialog")
        self.resize(620, 640)
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser()
        lay.addWidget(self.browser)
        self.rows: list[KeyRow] = []

    def refresh(self) -> None:
        self.rows = keys_rows(self.window_)
        self.browser.setHtml(keys_html(self.rows))


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
        self.undo.setProperty(KEYS_LABEL, "Undo")  # its text names the command to undo
        self.redo = w.undo_stack.createRedoAction(w, "&Redo")
        self.redo.setShortcut(QKeySequence(SK.Redo))
        self.redo.setProperty(KEYS_LABEL, "Redo")
        w.addAction(self.undo)
        w.addAction(self.redo)
        self.delete = act("&Delete object", ed.delete_selected, SK.Delete)
        self.place = act("&Place (click)", ed.set_place_mode, "P",
                         "Click a pixel to put the selected object on its depth",
                         checkable=True)
        self.align_points = act("&Align by points…", w.point_aligner.open, "A",
                                "Click 3+ points on the model, then the same points in the "
                                "frame: a rigid fit, then ICP (one undo step)")
        # Turning about the object (docs/gui.md "Turning and standing on the support").
        self.turn_frame = act("Turn about the &object's own axes", ed.set_turn_about_object,
                              "G", "I/K J/L U/O and Ctrl+drag turn about the object's own "
                              "x / y / z instead of the camera's (the status bar says which)",
                              checkable=True)

        def show_turn_frame(on: bool) -> None:  # Help ▸ Keys says which frame is on
            self.turn_frame.setChecked(on)
            self.turn_frame.setProperty(KEYS_LABEL, "Turn about the object's own axes (now: "
                                        f"{'object' if on else 'camera'} axes)")

        show_turn_frame(ed.turn_about_object)
        ed.turnFrameChanged.connect(show_turn_frame)
        self.yaw90 = act("Turn +&90° about up", lambda: ed.yaw_step(1), "Y",
                         "Turn the selected object +90° about its up axis (the model axis "
                         "closest to the support's normal) through its centre")
        self.yaw180 = act("Turn 18&0° about up", lambda: ed.yaw_step(2), "Shift+Y",
                          "Turn the selected object 180° about its up axis")
        self.stand = act("&Stand on support", lambda: ed.stand_on_support(), "S",
                         "Fit the plane under the selected object (depth, else the fused "
                         "cloud) and stand the object on it, keeping its yaw")
        self.copy_rotation = act("&Copy rotation from…", ed.popup_copy_rotation,
                                 "Ctrl+Shift+C", "Give the selected object the rotation of "
                                 "another object (its centre stays)")
        self.deselect = act("&Deselect", w.escape, "Escape",
                            "Leave place mode, else deselect; in a text field: back to "
                            "the frame view")
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
        ov = w.overlay_toggles
        self.overlay_mode = act(f"Overlay &style (now: {ov.mode})", ov.cycle_mode, "T",
                                "Draw the objects textured and shaded, as flat silhouettes "
                                "or as outlines (cycles)")
        ov.modeChanged.connect(
            lambda mode: self.overlay_mode.setText(f"Overlay &style (now: {mode})"))
        self.axes = act("Object a&xes", lambda on: ov.toggle_axes(on), "X",
                        "Draw each object's axes from its origin: x red, y green, z blue",
                        checkable=True)
        ov.axesChanged.connect(self.axes.setChecked)
        self.zoom_in = act("Zoom in", lambda: w.view.zoom(1.25), SK.ZoomIn)
        self.zoom_out = act("Zoom out", lambda: w.view.zoom(0.8), SK.ZoomOut)
        self.view3d = act("&3D view", w.view3d.toggle, "Ctrl+3",
                          "The fused cloud, the placed models and the camera path in 3D "
                          "(left drag: orbit, right drag: pan, wheel: zoom, click: select)",
                          checkable=True)
        self.window = w
        self.keys_dialog: KeysDialog | None = None
        self.keys = act("&Keys…", self.show_keys, SK.HelpContents,
                        "Every key and mouse gesture")
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
                              self.keyframe, self.depth, self.place, self.delete,
                              self.align_points, self.turn_frame, self.yaw90, self.yaw180,
                              self.stand, self.copy_rotation,
                              self.view3d, self.overlay_mode, self.axes)

        mb = w.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.open)
        self.recent_menu = m.addMenu("Open &recent")
        m.addAction(self.save)
        m.addSeparator()
        m.addAction(self.quit)
        _fill(mb.addMenu("&Edit"), (self.undo, self.redo, None, self.place,
                                    self.align_points, self.delete, self.deselect, None,
                                    self.turn_frame, self.yaw90, self.yaw180, self.stand,
                                    self.copy_rotation))
        _fill(mb.addMenu("&Frame"), (self.prev, self.next, self.prev_kf, self.next_kf, None,
                                     self.keyframe))
        _fill(mb.addMenu("&View"), (self.depth, self.overlay_mode, self.axes, self.fit,
                                    self.zoom_in, self.zoom_out, None, self.view3d))
        _fill(mb.addMenu("&Check"), (self.refine, self.refine_cloud, None, self.preview,
                                     self.next_flag, self.prev_flag, None, self.multiview,
                                     None, self.export))
        mb.addMenu("&Help").addAction(self.keys)
        # Toolbars: the actions used on every object, with short button labels so all of
        # them fit in one row at 1280 px (tests/gui/test_focus_feedback.py checks it); the
        # rest are in the menus and on their keys.
        self.toolbars = (
            _toolbar(w, "Main", "main", (
                (self.open, "Open"), (self.save, "Save"), None, (self.undo, "Undo"),
                (self.redo, "Redo"), None, (self.prev, "◀"), (self.next, "▶"),
                (self.keyframe, "Keyframe"), None, (self.place, "Place"),
                (self.align_points, "Align"), (self.stand, "Stand"),
                (self.turn_frame, "Obj. axes"), None, (self.depth, "Depth"),
                (self.overlay_mode, "Style"), (self.fit, "Fit"))),
            _toolbar(w, "Check", "check", (
                (self.refine, "Refine"), (self.preview, "Preview"),
                (self.next_flag, "Next flag"), (self.multiview, "Multi-view"),
                (self.view3d, "3D"), (self.export, "Export"))),
        )
        # What works without a scene; every other action of the window is disabled then.
        self.sceneless = (self.open, self.quit, self.keys, self.undo, self.redo)

    def needing_scene(self) -> list[QAction]:
        """Every action of the window that needs an open scene (all but `sceneless`;
        undo / redo follow the undo stack)."""
        free = {id(a) for a in self.sceneless}
        return [a for a in self.window.actions() if id(a) not in free]

    def show_keys(self) -> KeysDialog:
        """Help ▸ Keys: show the (rebuilt) table of every key."""
        if self.keys_dialog is None:
            self.keys_dialog = KeysDialog(self.window)
        self.keys_dialog.refresh()
        self.keys_dialog.show()
        self.keys_dialog.raise_()
        return self.keys_dialog
