"""Where batch tasks run: a local process pool, or Ray (a local instance or a cluster).

Both offer the same small interface to the scheduler (`labeller.batch.runner`):
`submit(spec)`, `wait(timeout)` -> the tasks that ended, each with its `TaskOutcome` or
None when its worker died (the scheduler retries those), `kill_all()` (the last step of a
cancel) and `close()`. Ray is imported only by `RayExecutor`, so the package works
without the extra installed.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from labeller.batch.tasks import CANCELLED, FAILED, TaskOutcome, TaskSpec, run_task
from labeller.core.errors import BadInput

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
WORKER_DIED = "worker died"

# (task key, outcome or None when the worker died, why it died)
Ended = tuple[str, "TaskOutcome | None", str]


def ray_available() -> bool:
    """Whether the `ray` extra is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def default_executor() -> str:
    return "ray" if ray_available() else "local"


def _start_local_worker(parent_pid: int) -> None:
    # Ctrl+C reaches the whole process group: the batch's driver turns it into a
    # cancel that every task sees; a worker interrupted mid-write would only be retried.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from labeller.core.pool import die_with_parent

    die_with_parent(parent_pid, True)


class LocalExecutor:
    """The plan's tasks on a pool of spawned processes on this machine (one per CPU); a
    pool broken by a dead worker is replaced and the tasks it held are reported dead."""

    name = "local"
    limits_cpus = True  # the scheduler submits only what fits on `total_cpus`

    def __init__(self, cpus: int):
        self.total_cpus = max(1, cpus)
        self._pool: Any = None
        self._futures: dict[Any, str] = {}

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.total_cpus,
                                             mp_context=mp.get_context("spawn"),
                                             initializer=_start_local_worker,
                                             initargs=(os.getpid(),))
        return self._pool

    def submit(self, spec: TaskSpec) -> None:
        fut = self._ensure_pool().submit(run_task, spec)
        self._futures[fut] = spec.key

    def wait(self, timeout: float) -> list[Ended]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        ended: list[Ended] = []
        for fut in done:
            key = self._futures.pop(fut)
            try:
                ended.append((key, fut.result(), ""))
            except BrokenProcessPool:
                ended.append((key, None, WORKER_DIED))
                self._discard_pool()
            except Exception as exc:  # noqa: BLE001 - e.g. a result that failed to pickle
                ended.append((key, TaskOutcome(key, FAILED, f"internal error: "
                                                         f"{type(exc).__name__}: {exc}"), ""))
        return ended

    def _discard_pool(self) -> None:
        # Every task of a broken pool fails with BrokenProcessPool; the next submit
        # starts a fresh pool.
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def kill_all(self) -> None:
        if self._pool is None:
            return
        for p in list(getattr(self._pool, "_processes", {}).values()):
            p.kill()
        for p in list(getattr(self._pool, "_processes", {}).values()):
            p.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._futures.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """The plan's tasks as Ray core tasks, one per scene-stage, each declaring its CPUs.

    `address` (or RAY_ADDRESS) joins a running cluster; otherwise a local Ray is started
    with `cpus` CPUs and stopped again by `close()`. A task whose worker or node died
    comes back as None: the scheduler resubmits it (the count goes in the table, which
    Ray's own `max_retries` would hide), and a stage's bad-input error is an ordinary
    `TaskOutcome`, never a Ray error, so Ray retries nothing by itself.
    """

    name = "ray"
    limits_cpus = False  # Ray places the tasks on the cluster's CPUs itself

    def __init__(self, cpus: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise BadInput("--executor ray", "ray is not installed (pip install "
                                             "'labeller[ray]'), or use --executor local") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address or os.environ.get("RAY_ADDRESS"):
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, cpus), include_dashboard=False, log_to_driver=False)
        self.total_cpus = max(1, int(ray.cluster_resources().get("CPU", cpus)))
        self._remote = ray.remote(max_retries=0, retry_exceptions=False)(run_task)
        self._refs: dict[Any, str] = {}

    def submit(self, spec: TaskSpec) -> None:
        ref = self._remote.options(num_cpus=spec.cpus, name=spec.key).remote(spec)
        self._refs[ref] = spec.key

    def wait(self, timeout: float) -> list[Ended]:
        ray = self._ray
        if not self._refs:
            return []
        ready, rest = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        ended: list[Ended] = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                ended.append((key, ray.get(ref), ""))
            except ray.exceptions.TaskCancelledError:
                ended.append((key, TaskOutcome(key, CANCELLED, "cancelled"), ""))
            except ray.exceptions.RayTaskError as exc:  # raised inside run_task: not a death
                ended.append((key, TaskOutcome(key, FAILED, f"internal error: {exc}"), ""))
            except ray.exceptions.RayError as exc:  # worker crashed, node died, object lost
                ended.append((key, None, f"{WORKER_DIED} ({type(exc).__name__})"))
        return ended

    def kill_all(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(name: str, cpus: int, address: str | None = None) -> LocalExecutor | RayExecutor:
    if name == "local":
        if address:
            raise BadInput("--address", "applies only with --executor ray (ray is not "
                                        "installed: pip install 'labeller[ray]')")
        return LocalExecutor(cpus)
    if name == "ray":
        return RayExecutor(cpus, address)
    raise BadInput("--executor", f"must be one of {', '.join(EXECUTORS)}, got {name!r}")
