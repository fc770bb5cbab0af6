"""What the window's parts share about the screen: the open document, the main view's
frame, the selected object, the main view's overlay service and style.

The main window alone changes it (opening and closing a scene, `set_frame`, `select`,
opacity); the controllers (`editing`, `refine`, `preview`, `multiview`, `autosave`,
`tracking`) read it and ask the window for changes through the callbacks they are given.
"""

from __future__ import annotations

from collections.abc import Callable

from labeller.annotate.document import DocumentModel
from labeller.geometry.overlay import OverlayStyle
from labeller.gui.worker import OverlayService

# request_render(preview): None = a half-resolution preview while a drag is on.
RequestRender = Callable[..., None]


class WindowState:
    """model: the open document (None: no scene); frame: the main view's frame index;
    selected_id: the selected object's id (None: none); service: the main view's
    renderer (None: no scene); overlay_style: how objects are drawn (textured by default;
    T / X change it, `labeller.gui.overlay_toggles`)."""

    def __init__(self) -> None:
        self.model: DocumentModel | None = None
        self.frame = 0
        self.selected_id: int | None = None
        self.service: OverlayService | None = None
        self.overlay_style = OverlayStyle(mode="textured")
