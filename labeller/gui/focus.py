"""Keyboard focus: keys belong to the frame view unless a number is being typed.

The trap this removes: a focused spin box (a pose field, the frame box) takes every
plain key, so after typing a value the single-key shortcuts (R, M, N, V, ...) and the
view's own keys (arrows, I/K, J/L, U/O) silently stopped working.

The rules (docs/gui.md, "Keyboard focus"):

- Panels' buttons, lists, sliders and combo boxes never take the keyboard focus
  (`keep_keys_for_view`): clicking them leaves it on the frame view.
- A number field keeps the keys a number is typed with (digits, sign, decimal point,
  arrows, Backspace...). Letters and [ ] cannot be part of a number, so they go to the
  shortcuts and the view's keys even while the field has the focus.
- Enter commits the field and gives the focus back to the view; Escape drops what was
  typed and gives it back too (it does not deselect; Esc in the view does). Leaving the
  field by clicking elsewhere commits it and leaves the focus where the click put it.

`FieldKeys` is the event filter behind the last two points; the window forwards view
keys that reach it unused to the view (`labeller.gui.window.MainWindow.keyPressEvent`).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QWidget,
)

from labeller.gui.views import FrameView

# Widgets that have nothing to do with the keys once clicked.
NO_FOCUS_TYPES = (QAbstractButton, QAbstractItemView, QAbstractSlider, QComboBox)
_COMMAND_MODIFIERS = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                      | Qt.KeyboardModifier.MetaModifier)


def is_letter_key(event: QKeyEvent) -> bool:
    """A plain letter or bracket key (Shift allowed): never part of a number."""
    key = event.key()
    return ((Qt.Key.Key_A <= key <= Qt.Key.Key_Z
             or key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight))
            and not event.modifiers() & _COMMAND_MODIFIERS)


class FieldKeys(QObject):
    """Event filter of one number field (`field`): letters go to the shortcuts and to
    `view`'s keys; Escape calls `revert()` (default: show the field's value again) and
    focuses `view`; Enter (editingFinished while the field still has the focus) focuses
    `view`."""

    def __init__(self, field: QAbstractSpinBox, view: FrameView,
                 revert: Callable[[], None] | None = None):
        super().__init__(field)
        self.field = field
        self.view = view
        self.revert = revert or self._show_value
        field.installEventFilter(self)
        field.editingFinished.connect(self._editing_finished)

    def _show_value(self) -> None:
        f = self.field
        f.blockSignals(True)
        if hasattr(f, "setValue") and hasattr(f, "value"):
            f.setValue(f.value())  # re-shows the value, dropping what was typed
        f.blockSignals(False)

    def _editing_finished(self) -> None:
        # Emitted by Enter (the field still has the focus) and by the focus leaving it
        # (it has not): only Enter hands the keys back, a click elsewhere keeps its target.
        if self.field.hasFocus() and self.view.isVisible():
            self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        et = event.type()
        if et not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        assert isinstance(event, QKeyEvent)
        if event.key() == Qt.Key.Key_Escape:
            if et == QEvent.Type.ShortcutOverride:
                event.accept()  # the field's Escape, not the window's Deselect
                return True
            self.field.lineEdit().setModified(False)  # what was typed is dropped
            self.revert()
            if self.view.isVisible():
                self.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
            return True
        if is_letter_key(event):
            if et == QEvent.Type.ShortcutOverride:
                return True  # left unaccepted: the shortcuts see the key
            # No shortcut took it: it may be one of the view's keys (I/K/J/L/U/O).
            self.view.handle_key(event)
            return True
        return False


def _inside_combo(w: QWidget, root: QWidget) -> bool:
    """Part of a combo box's popup (its list keeps its own keyboard handling)."""
    p = w.parentWidget()
    while p is not None and p is not root:
        if isinstance(p, QComboBox):
            return True
        p = p.parentWidget()
    return False


def keep_keys_for_view(root: QWidget, view: FrameView) -> list[FieldKeys]:
    """Under `root`: buttons, lists, sliders and combo boxes take no keyboard focus;
    every spin box gets a `FieldKeys` filter. Returns the filters (one per spin box)."""
    for w in root.findChildren(QWidget):
        if isinstance(w, NO_FOCUS_TYPES) and not _inside_combo(w, root):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return [FieldKeys(sb, view) for sb in root.findChildren(QAbstractSpinBox)]
