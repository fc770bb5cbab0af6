"""`run(cfg)`: the plan's task graph on an executor, to the end or to a clean cancel.

The graph: per scene, its stages in order (track -> init -> propagate), each waiting for
the one before; every export waits for the last stage of every scene, and its scenes are
the plan's, in plan order, so the dataset does not depend on which scene finished first.
A failed task stops the rest of its scene and the exports (they would silently lack a
scene): those are reported "not run". A task whose worker died is run again up to
`cfg.retries` times. Cancelling (the progress callback returns False, or Ctrl+C) creates
the cancel file every running stage polls: the stages stop through their own
`Cancelled` path (atomic writers leave the previous files, resumable state is kept);
what has not stopped after `cfg.cancel_grace_s` is killed, and the temporaries of the
killed workers are removed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from labeller.batch.config import BatchConfig
from labeller.batch.executors import default_executor, make_executor
from labeller.batch.plan import Plan, load_plan
from labeller.batch.tasks import CANCELLED, DONE, FAILED, REUSED, TaskOutcome, TaskSpec
from labeller.core.errors import Cancelled
from labeller.core.fileio import remove_dead_temps
from labeller.core.pool import available_cpus
from labeller.core.progress import ProgressFn, bar

log = logging.getLogger(__name__)

PENDING, RUNNING, NOT_RUN = "pending", "running", "not run"
POLL_S = 0.25
# Test hook (see TaskSpec.die_once_file): the first task to start kills its worker once.
DIE_ONCE_ENV = "LABELLER_BATCH_DIE_ONCE"


@dataclass
class TaskState:
    """One node of the graph and what became of it."""

    spec: TaskSpec
    deps: tuple[str, ...]
    status: str = PENDING
    message: str = ""
    retried: int = 0
    outcome: TaskOutcome | None = None

    @property
    def ok(self) -> bool:
        return self.status in (DONE, REUSED)


@dataclass
class BatchReport:
    """What a batch did: every task's state in graph order, the executor, wall seconds."""

    plan: Plan
    executor: str
    tasks: list[TaskState]
    seconds: float
    cancelled: bool = False
    cpus: int = 1
    removed_temps: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskState]:
        return [t for t in self.tasks if t.status == FAILED]

    @property
    def all_ok(self) -> bool:
        return all(t.ok for t in self.tasks)

    def format(self) -> str:
        """The table: per scene and stage, done / reused / failed (why) / retried N."""
        rows = [("scene", "stage", "result", "note")]
        for t in self.tasks:
            result = t.status + (f", retried {t.retried}" if t.retried else "")
            rows.append((t.spec.label, t.spec.stage, result, t.message))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        lines = [f"{a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]
        counts = {s: sum(t.status == s for t in self.tasks)
                  for s in (DONE, REUSED, FAILED, CANCELLED, NOT_RUN)}
        tail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        head = "cancelled" if self.cancelled else "finished"
        lines.append(f"{head}: {len(self.tasks)} task(s) on {self.executor} ({self.cpus} CPUs) "
                     f"in {self.seconds:.1f} s: {tail}")
        return "\n".join(lines)


def build_graph(plan: Plan, cancel_file: Path, total_cpus: int,
                die_once_file: str | None = None) -> list[TaskState]:
    """The tasks of `plan` in graph order (scenes in plan order, stages in run order,
    then the exports), each with the keys of the tasks it waits for."""
    tasks: list[TaskState] = []
    last_of_scene: list[str] = []
    for scene in plan.scenes:
        prev: str | None = None
        for stage in plan.stages:
            cfg = plan.stage_config(stage, scene)
            if stage == "track":
                cfg = dataclasses.replace(cfg, progress_bar=False)
            cpus = getattr(cfg, "workers", 1) if stage == "propagate" else 1
            key = f"{scene.name}/{stage}"
            spec = TaskSpec(key, stage, scene.name, cfg, min(cpus, total_cpus),
                            str(cancel_file), die_once_file)
            tasks.append(TaskState(spec, (prev,) if prev else ()))
            prev = key
        if prev is not None:
            last_of_scene.append(prev)
    for i, export in enumerate(plan.exports):
        cfg = plan.export_config(export)
        # An export is the last task: it may use every CPU the batch has.
        cfg = dataclasses.replace(cfg, progress_bars=False,
                                  workers=cfg.workers or min(total_cpus, available_cpus()))
        key = f"export {i + 1}/{export.format}"
        spec = TaskSpec(key, "export", export.out.name, cfg, min(cfg.n_workers, total_cpus),
                        str(cancel_file), die_once_file)
        tasks.append(TaskState(spec, tuple(last_of_scene)))
    return tasks


def _sweep_temps(plan: Plan) -> list[Path]:
    """Remove what killed workers left: fileio temporaries of dead processes in the scene
    folders the stages write and beside the exports."""
    folders: list[Path] = []
    for scene in plan.scenes:
        folders += [scene, scene / "labels", scene / "recon", scene / "labels" / "flagged"]
    for e in plan.exports:
        folders += [e.out.parent, e.out]
    removed: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            removed += remove_dead_temps(folder, once=False)
    return removed


class _Scheduler:
    def __init__(self, tasks: list[TaskState], executor, retries: int):
        self.tasks = tasks
        self.by_key = {t.spec.key: t for t in tasks}
        self.ex = executor
        self.retries = retries

    def running(self) -> list[TaskState]:
        return [t for t in self.tasks if t.status == RUNNING]

    def submit_ready(self) -> None:
        busy = sum(t.spec.cpus for t in self.running())
        for t in self.tasks:
            if t.status != PENDING:
                continue
            deps = [self.by_key[d] for d in t.deps]
            bad = next((d for d in deps if d.status in (FAILED, NOT_RUN, CANCELLED)), None)
            if bad is not None:
                t.status = NOT_RUN
                t.message = f"needs {bad.spec.key} ({bad.status})"
                continue
            if not all(d.ok for d in deps):
                continue
            if self.ex.limits_cpus and busy and busy + t.spec.cpus > self.ex.total_cpus:
                continue
            self.ex.submit(t.spec)
            t.status = RUNNING
            busy += t.spec.cpus

    def collect(self, timeout: float) -> int:
        n = 0
        for key, outcome, why in self.ex.wait(timeout):
            t = self.by_key[key]
            if outcome is None:
                if t.retried < self.retries:
                    t.retried += 1
                    log.warning("%s: %s; running it again (%d of %d)", key, why, t.retried,
                                self.retries)
                    self.ex.submit(t.spec)
                    continue
                t.status, t.message = FAILED, f"{why}, {t.retried + 1} time(s)"
            else:
                t.outcome, t.status, t.message = outcome, outcome.status, outcome.message
            n += 1
        return n

    def finished(self) -> bool:
        return not any(t.status in (PENDING, RUNNING) for t in self.tasks)


def run(cfg: BatchConfig, progress: ProgressFn | None = None) -> BatchReport:
    """Run the plan `cfg.plan`; return the report (a failed task does not raise: the
    report lists it). `progress(done, total)` counts finished tasks; returning False
    cancels, and so does KeyboardInterrupt; either way the report has `cancelled` set
    and `Cancelled` is not raised, so the caller can print the table."""
    cfg.check()
    plan = load_plan(cfg.plan)
    t0 = time.perf_counter()
    cpus = cfg.cpus or available_cpus()
    executor = make_executor(cfg.executor or default_executor(), cpus, cfg.address)
    cancel_file = plan.path.resolve().parent / f".{plan.path.name}.cancel-{uuid.uuid4().hex[:12]}"
    tasks = build_graph(plan, cancel_file, executor.total_cpus, os.environ.get(DIE_ONCE_ENV))
    sched = _Scheduler(tasks, executor, cfg.retries)
    overall = bar(len(tasks), "batch", "task", enabled=cfg.progress_bar, leave=True)
    cancelled = False
    shown: tuple[int, str] = (-1, "")
    try:
        try:
            while True:
                sched.submit_ready()
                if sched.finished():
                    break
                sched.collect(POLL_S)
                done = sum(t.status not in (PENDING, RUNNING) for t in tasks)
                now = (done, ", ".join(t.spec.key for t in sched.running()))
                if now != shown:  # redraw on change only: the log of a batch stays short
                    shown = now
                    overall.n = done
                    overall.set_postfix_str(now[1], refresh=True)
                if progress is not None and progress(done, len(tasks)) is False:
                    raise Cancelled("cancelled")
        except (Cancelled, KeyboardInterrupt):
            cancelled = not sched.finished()  # a cancel after the last task is none
            if cancelled:
                _cancel(sched, cancel_file, cfg.cancel_grace_s)
    finally:
        overall.close()
        try:
            executor.close()
        finally:
            cancel_file.unlink(missing_ok=True)
    # After a cancel or a worker death: what the killed processes left (dead pids only).
    died = any(t.retried for t in tasks) or any(t.message.startswith("worker died")
                                                  for t in tasks)
    removed = _sweep_temps(plan) if cancelled or died else []
    return BatchReport(plan, executor.name, tasks, time.perf_counter() - t0, cancelled,
                       executor.total_cpus, removed)


def _cancel(sched: _Scheduler, cancel_file: Path, grace_s: float) -> None:
    """Ask every running stage to stop, wait up to `grace_s`, then kill the rest."""
    cancel_file.write_text("cancelled\n")
    deadline = time.monotonic() + grace_s
    for t in sched.tasks:
        if t.status == PENDING:
            t.status, t.message = NOT_RUN, "cancelled before it started"
    sched.retries = 0  # a worker that dies now is not run again
    try:
        while sched.running() and time.monotonic() < deadline:
            sched.collect(POLL_S)
    except KeyboardInterrupt:  # a second Ctrl+C: stop waiting
        pass
    if sched.running():
        sched.ex.kill_all()
        for t in sched.running():
            t.status, t.message = CANCELLED, "killed after the cancel"
