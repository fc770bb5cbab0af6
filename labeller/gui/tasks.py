"""Long pipeline stages (tracking now; propagate/export later) run in the background.

`BackgroundTask(fn)` runs `fn(progress)` on a QThread, where `progress(done, total)`
reports to the UI (signal `progress`) and returns False once `cancel()` was asked, which
the stages take as "stop". The outcome arrives as exactly one of `finished(result)`,
`failed(message)`, `cancelled()`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from labeller.core.errors import BadInput

Progress = Callable[[int, int], bool]


class StageCancelled(Exception):
    """Raised inside a task when the stage stopped because progress returned False."""


class _Thread(QThread):
    def __init__(self, task: BackgroundTask):
        super().__init__()
        self.task = task

    def run(self) -> None:
        t = self.task
        try:
            result = t.fn(t._progress)
        except StageCancelled:
            t._outcome.emit("cancelled", None)
            return
        except Exception as exc:  # noqa: BLE001 - sorted below
            if t.cancel_requested:  # the stage stopped its own way (e.g. its Cancelled)
                t._outcome.emit("cancelled", None)
            elif isinstance(exc, BadInput):
                t._outcome.emit("failed", str(exc))
            else:
                t._outcome.emit("failed", f"{type(exc).__name__}: {exc}")
            return
        t._outcome.emit("cancelled" if t.cancel_requested else "finished", result)


class BackgroundTask(QObject):
    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    _outcome = Signal(str, object)

    def __init__(self, fn: Callable[[Progress], object], parent: QObject | None = None):
        super().__init__(parent)
        self.fn = fn
        self.cancel_requested = False
        self._outcome.connect(self._on_outcome)
        self._thread = _Thread(self)

    def _progress(self, done: int, total: int) -> bool:
        self.progress.emit(int(done), int(total))
        return not self.cancel_requested

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_requested = True

    def running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self._thread.wait(ms)

    def _on_outcome(self, kind: str, payload: object) -> None:
        self._thread.wait()
        if kind == "finished":
            self.finished.emit(payload)
        elif kind == "failed":
            self.failed.emit(str(payload))
        else:
            self.cancelled.emit()


def tracking_stage() -> tuple[Callable[..., object] | None, str]:
    """(a function `track(scene_dir, progress)`, "") when `labeller.track` offers
    `TrackConfig` and `run`; otherwise (None, why not)."""
    try:
        mod = importlib.import_module("labeller.track")
    except ModuleNotFoundError as exc:
        if exc.name == "labeller.track":
            return None, ("tracking is not available in this installation (labeller.track "
                          "is missing); run `labeller track SCENE` once it is")
        return None, f"tracking cannot start: {exc}"
    except Exception as exc:  # noqa: BLE001 - a half-written module must not crash the GUI
        return None, f"tracking cannot start: {type(exc).__name__}: {exc}"
    cfg_cls, run = getattr(mod, "TrackConfig", None), getattr(mod, "run", None)
    if cfg_cls is None or not callable(run):
        return None, "tracking is not available yet (labeller.track has no TrackConfig/run)"

    # The GUI shows its own progress: no tqdm bar on the terminal when the stage has one.
    quiet = {"progress_bar": False} if "progress_bar" in _field_names(cfg_cls) else {}

    def track(scene_dir: str | os.PathLike, progress: Progress):
        return run(cfg_cls(scene=Path(scene_dir), **quiet), progress=progress)

    return track, ""


def _field_names(cls) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
