"""Overlay rendering off the UI thread.

`OverlayService.request(...)` snapshots what to draw (frame, camera pose, object poses,
style) and hands it to one worker thread (a QThreadPool of one) that reads the frame
and runs the Qt-free `labeller.geometry.overlay.OverlayRenderer`. At most one job runs; a request
made meanwhile waits as the single pending one and replaces any older pending request,
which is thereby dropped (a drag never queues up work). A result older than one already
shown, or from another scene, is dropped too. Results arrive on the UI thread through
the `ready` signal.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from labeller.formats.scene import Scene
from labeller.geometry.overlay import (
    OverlayObject,
    OverlayRenderer,
    OverlayResult,
    OverlayStyle,
    depth_false_colour,
)


class FrameCache:
    """Thread-safe LRU of decoded frames: rgb (H, W, 3) uint8, depth (H, W) float32 m,
    depth in false colour. The same array object comes back while cached (read-only),
    so a view can tell an unchanged background by identity."""

    def __init__(self, scene: Scene, size: int = 16):
        self.scene = scene
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def _get(self, kind: str, t: int) -> np.ndarray:
        key = (kind, t)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        if kind == "rgb":
            img = self.scene.rgb(t)
        elif kind == "depth":
            img = self.scene.depth(t)
        else:
            img = depth_false_colour(self._get("depth", t))
        img.setflags(write=False)
        with self._lock:
            self._items[key] = img
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return img

    def rgb(self, t: int) -> np.ndarray:
        return self._get("rgb", t)

    def depth(self, t: int) -> np.ndarray:
        return self._get("depth", t)

    def depth_colour(self, t: int) -> np.ndarray:
        """Depth frame t in false colour, (H, W, 3) uint8 RGB."""
        return self._get("depth_colour", t)


@dataclass(frozen=True)
class RenderRequest:
    """Everything one render needs, copied at request time (the worker never reads the
    model). T_world_cam None: the frame has no camera pose, draw the frame alone."""

    gen: int
    epoch: int
    frame: int
    background: str  # "rgb" or "depth"
    T_world_cam: np.ndarray | None
    objects: tuple[OverlayObject, ...]
    selected: int | None
    style: OverlayStyle
    preview: bool


@dataclass
class RenderResult:
    request: RenderRequest
    background: np.ndarray  # (H, W, 3) uint8 RGB
    overlay: OverlayResult | None
    seconds: float
    error: str | None = None

    @property
    def gen(self) -> int:
        return self.request.gen


class _Signals(QObject):
    done = Signal(object)


class _Job(QRunnable):
    def __init__(self, service: OverlayService, req: RenderRequest):
        super().__init__()
        self.setAutoDelete(True)
        self.service = service
        self.req = req
        self.signals = service._signals  # lives on the UI thread: the emit is queued

    def run(self) -> None:
        t0 = time.perf_counter()
        req = self.req
        try:
            frames = self.service.frames
            bg = (frames.rgb(req.frame) if req.background == "rgb"
                  else frames.depth_colour(req.frame))
            ov = None
            if req.T_world_cam is not None:
                ov = self.service.renderer.render(
                    frames.scene.camera, req.T_world_cam, req.objects, req.selected,
                    req.style, req.preview)
            res = RenderResult(req, bg, ov, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - reported to the window, never lost
            tb = traceback.format_exc(limit=3)
            res = RenderResult(req, np.zeros((1, 1, 3), np.uint8), None,
                               time.perf_counter() - t0, f"{type(exc).__name__}: {exc}\n{tb}")
        self.signals.done.emit(res)


class OverlayService(QObject):
    """Renders frames + overlays on one worker thread; emits `ready(RenderResult)`."""

    ready = Signal(object)

    def __init__(self, scene: Scene, parent: QObject | None = None):
        super().__init__(parent)
        self.frames = FrameCache(scene)
        self.renderer = OverlayRenderer()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)
        self._gen = 0
        self.epoch = 0
        self._busy = False
        self._pending: RenderRequest | None = None
        self.shown_gen = 0
        self.dropped = 0
        self.completed = 0

    @property
    def latest_gen(self) -> int:
        return self._gen

    def idle(self) -> bool:
        """No job running or waiting, and the newest request's result was delivered."""
        return not self._busy and self._pending is None and self.shown_gen == self._gen

    def request(self, frame: int, T_world_cam: np.ndarray | None,
                objects: tuple[OverlayObject, ...], selected: int | None = None,
                style: OverlayStyle = OverlayStyle(), preview: bool = False,
                background: str = "rgb") -> int:
        self._gen += 1
        req = RenderRequest(self._gen, self.epoch, frame, background,
                            None if T_world_cam is None else np.array(T_world_cam),
                            tuple(objects), selected, style, preview)
        if self._busy:
            if self._pending is not None:
                self.dropped += 1
            self._pending = req
        else:
            self._start(req)
        return req.gen

    def _start(self, req: RenderRequest) -> None:
        self._busy = True
        self.pool.start(_Job(self, req))

    def _on_done(self, res: RenderResult) -> None:
        self._busy = False
        self.completed += 1
        if self._pending is not None:
            req, self._pending = self._pending, None
            self._start(req)
        if res.request.epoch != self.epoch or res.gen <= self.shown_gen:
            self.dropped += 1
            return
        self.shown_gen = res.gen
        self.ready.emit(res)

    def shutdown(self) -> None:
        """Drop pending work and wait for the running job (before the scene goes away)."""
        self._pending = None
        self.epoch += 1
        self.pool.waitForDone(5000)
