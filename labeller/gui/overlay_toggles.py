"""View ▸ Overlay style (T) and View ▸ Object axes (X): how the main view draws objects.

Both change only `WindowState.overlay_style` (view state: no undo step, the document
stays clean) and ask the window for a new render; the multi-view frames follow the same
style. Styles: see `labeller.geometry.overlay` (OVERLAY_MODES).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QStatusBar

from labeller.geometry.overlay import OVERLAY_MODES, next_overlay_mode
from labeller.gui.state import RequestRender, WindowState

MODE_TEXT = {
    "textured": "textured and shaded (the model's own colours)",
    "silhouette": "silhouette (flat fill in the class colour)",
    "outline": "outline only",
}


class OverlayToggles(QObject):
    """state: the window's state (its `overlay_style` changes); request_render(): the
    window's; status: where the new style is announced. `modeChanged(str)` and
    `axesChanged(bool)` tell the actions to update their text / check mark."""

    modeChanged = Signal(str)
    axesChanged = Signal(bool)

    def __init__(self, state: WindowState, request_render: RequestRender, status: QStatusBar,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.request_render = request_render
        self.status = status

    @property
    def mode(self) -> str:
        return self.state.overlay_style.mode

    @property
    def axes(self) -> bool:
        return self.state.overlay_style.axes

    def set_mode(self, mode: str) -> None:
        if mode not in OVERLAY_MODES:
            raise ValueError(f"unknown overlay style {mode!r}")
        self.state.overlay_style = replace(self.state.overlay_style, mode=mode)
        self.status.showMessage(f"Overlay: {MODE_TEXT[mode]}", 4000)
        self.modeChanged.emit(mode)
        self.request_render()

    def cycle_mode(self) -> str:
        """textured -> silhouette -> outline -> textured; returns the new style."""
        mode = next_overlay_mode(self.mode)
        self.set_mode(mode)
        return mode

    def toggle_axes(self, on: bool | None = None) -> bool:
        """Show or hide every object's axes (on=None flips them); returns the new state."""
        axes = (not self.axes) if on is None else bool(on)
        self.state.overlay_style = replace(self.state.overlay_style, axes=axes)
        self.status.showMessage("Object axes: x red, y green, z blue" if axes
                                else "Object axes hidden", 4000)
        self.axesChanged.emit(axes)
        self.request_render()
        return axes
