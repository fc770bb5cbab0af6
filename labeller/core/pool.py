"""One bounded process pool for the stages that spread frames over cores.

`bounded_pool_map(fn, tasks, workers, ...)` yields ``fn(task)`` for every task in
completion order, with at most `in_flight` tasks per worker submitted at once, so
memory stays flat however many tasks there are. Workers are fresh *spawned*
processes: the parent may hold Open3D/OpenMP threads or open HDF5 files, which a forked
child would inherit in an undefined state. An exception in a task cancels what is
pending and is raised in the caller. Workers die with the process that started them,
however it dies (a SIGKILLed export leaves no worker behind).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# How often a worker looks whether its parent is still there (the fallback of the
# kernel's parent-death signal), in seconds.
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, use_signal: bool) -> None:
    """End this worker when `parent_pid` dies, however it dies (SIGKILL included): the
    kernel's PR_SET_PDEATHSIG on Linux, and a thread that watches the parent pid
    everywhere (a worker re-parented to init or a subreaper has lost its parent)."""
    if use_signal and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread only
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(parent_pid: int, use_signal: bool, initializer: Callable[..., None] | None,
                  initargs: tuple[Any, ...]) -> None:
    die_with_parent(parent_pid, use_signal)
    if initializer is not None:
        initializer(*initargs)


def bounded_pool_map(fn: Callable[[Any], R], tasks: Sequence[Any], workers: int, *,
                     initializer: Callable[..., None] | None = None,
                     initargs: tuple[Any, ...] = (), in_flight: int = 2) -> Iterator[R]:
    """``fn(task)`` for each of `tasks`, in completion order, on `workers` processes.

    `fn`, `initializer` and the tasks must be picklable (module-level functions). The
    caller decides when to run in-process instead (usually ``workers <= 1``); this
    function always uses a pool of ``min(workers, len(tasks))`` processes.
    """
    if not tasks:
        return
    # Imported here: the command line reads `available_cpus` while building its parser.
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n = max(1, min(workers, len(tasks)))
    # The kernel's parent-death signal follows the thread that started the worker: asked
    # for only when that is the main thread (the pool's other threads may end first).
    on_main = threading.current_thread() is threading.main_thread()
    ex = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"),
                             initializer=_start_worker,
                             initargs=(os.getpid(), on_main, initializer, initargs))
    pending: set[Future[R]] = set()
    it = iter(tasks)
    try:
        for t in it:
            pending.add(ex.submit(fn, t))
            if len(pending) >= in_flight * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for _ in done:
                for t in it:
                    pending.add(ex.submit(fn, t))
                    break
            for fut in done:
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=True, cancel_futures=True)
