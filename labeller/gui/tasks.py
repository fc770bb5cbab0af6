"""Long pipeline stages (tracking, refine, preview, propagate + export) run in the background.

`BackgroundTask(fn)` runs `fn(progress)` on a QThread, where `progress(done, total)`
(a `labeller.core.progress.ProgressFn`) reports to the UI (signal `progress`) and returns
False once `cancel()` was asked, which the stages take as "stop" (they raise
`labeller.core.errors.Cancelled`). The outcome arrives as exactly one of
`finished(result)`, `failed(message)`, `cancelled()`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal

from labeller.core.errors import BadInput
from labeller.core.progress import Cancelled, ProgressFn


class _Thread(QThread):
    def __init__(self, task: BackgroundTask):
        super().__init__()
        self.task = task

    def run(self) -> None:
        t = self.task
        try:
            result = t.fn(t._progress)
        except Cancelled:
            t._outcome.emit("cancelled", None)
            return
        except Exception as exc:  # noqa: BLE001 - sorted below
            if t.cancel_requested:  # the stage stopped its own way
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

    def __init__(self, fn: Callable[[ProgressFn], object], parent: QObject | None = None):
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


def stop_task(task: BackgroundTask | None, cancel: bool = True) -> None:
    """Ask a running task to stop (unless `cancel` is False) and wait for its thread."""
    if task is not None and task.running():
        if cancel:
            task.cancel()
        task.wait()
