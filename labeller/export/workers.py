"""Running an export's per-frame (or per-crop) work: the bounded pool of worker processes
(`labeller.core.pool`) and the progress of the run, one bar overall and one per scene
(`labeller.core.progress`), plus the caller's `ProgressFn`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from labeller.core.pool import bounded_pool_map
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.export.config import ExportConfig, ExportWarning

R = TypeVar("R")
CANCELLED = "export cancelled"


def _worker_init() -> None:
    import cv2

    # One process per core already; OpenCV's own threads would only fight over them.
    cv2.setNumThreads(1)
    warnings.simplefilter("ignore", ExportWarning)


def run_tasks(fn: Callable[[Any], R], tasks: Sequence[Any], workers: int) -> Iterator[R]:
    """Run fn(task) for every task, yielding the results as they complete.

    workers <= 1 (or a single task) runs in this process; otherwise
    `labeller.core.pool.bounded_pool_map` (spawned processes, at most 2 tasks per worker
    in flight). An exception in a task stops the pool and is raised here.
    """
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(t)
        return
    yield from bounded_pool_map(fn, tasks, workers, initializer=_worker_init, in_flight=2)


class ExportProgress:
    """One bar overall and one per scene (tqdm on stderr, when `bars`), and the caller's
    `progress(done, total)`; a callback returning False raises `Cancelled`.

    scene_totals: scene index -> (scene name, units of work of that scene).
    """

    def __init__(self, total: int, desc: str, scene_totals: dict[int, tuple[str, int]],
                 bars: bool = True, callback: ProgressFn | None = None):
        self.total = int(total)
        self.done = 0
        self.callback = callback
        self._scene_totals = scene_totals
        self._scene_done: dict[int, int] = {}
        self._bars: dict[int, Any] = {}
        self._slots: dict[int, int] = {}
        self._bars_on = bars and total > 0
        self._overall: Any = None
        if self._bars_on:
            self._overall = bar(self.total, desc, "it", position=0, leave=True)
        check_progress(self.callback, self.done, self.total, CANCELLED)

    def update(self, scene_index: int, n: int) -> None:
        """`n` more units of work of one scene are done."""
        self.done += n
        name, stotal = self._scene_totals.get(scene_index, (str(scene_index), 0))
        sdone = self._scene_done.get(scene_index, 0) + n
        self._scene_done[scene_index] = sdone
        if self._bars_on:
            b = self._bars.get(scene_index)
            if b is None:
                # a scene's bar takes the lowest free line under the overall bar
                used = set(self._slots.values())
                pos = next(p for p in range(1, len(used) + 2) if p not in used)
                b = bar(stotal, f"  {name}", "it", position=pos)
                self._slots[scene_index] = pos
                self._bars[scene_index] = b
            b.update(n)
            self._overall.update(n)
            if sdone >= stotal:
                b.close()
                del self._bars[scene_index], self._slots[scene_index]
        check_progress(self.callback, self.done, self.total, CANCELLED)

    def close(self) -> None:
        if self._bars_on:
            for b in self._bars.values():
                b.close()
            self._overall.close()


FrameResult = tuple[int, int, dict[str, str]]


def write_frames(task_fn: Callable[[Any], FrameResult], tasks: Sequence[Any], n_frames: int,
                 totals: dict[int, tuple[str, int]], cfg: ExportConfig,
                 progress: ProgressFn | None) -> dict[str, str]:
    """Run a format's per-frame writer over `tasks` in the pool, with the progress bars;
    returns the sha256 of every file written (relative path -> hex).

    task_fn(task) -> (scene index, frames done, {relative path: sha256}).
    """
    progress_bars = ExportProgress(n_frames, "frames", totals, cfg.progress_bars, progress)
    hashes: dict[str, str] = {}
    try:
        for si, n, h in run_tasks(task_fn, tasks, cfg.n_workers):
            hashes.update(h)
            progress_bars.update(si, n)
    finally:
        progress_bars.close()
    return hashes
