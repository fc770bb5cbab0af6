"""Many scenes, many machines (`labeller batch PLAN`): the plan's stages per scene and its
exports over all scenes, as one task graph on a local process pool or on Ray.

Modules:

* `plan`: the TOML plan, its options checked against the stage configs (`load_plan`).
* `config`: `BatchConfig`, the run's settings (the CLI options are generated from it).
* `tasks`: `TaskSpec`, `TaskOutcome` and `run_task`, what a worker runs; reuse checks.
* `executors`: `LocalExecutor` (spawned process pool) and `RayExecutor` (Ray core tasks;
  ray is imported only there).
* `runner`: `run`, the scheduler (dependencies, retries, cancel) and `BatchReport`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeller.core.lazy import lazy_exports

if TYPE_CHECKING:
    from labeller.batch.config import BatchConfig
    from labeller.batch.plan import Plan, load_plan
    from labeller.batch.runner import BatchReport, run
    from labeller.batch.tasks import TaskOutcome, TaskSpec

# Public name -> the module that defines it, imported on first use (labeller.core.lazy).
_HOMES = {
    "BatchConfig": "config",
    "BatchReport": "runner",
    "Plan": "plan",
    "TaskOutcome": "tasks",
    "TaskSpec": "tasks",
    "load_plan": "plan",
    "run": "runner",
}
__getattr__ = lazy_exports(__name__, _HOMES)
__all__ = ["BatchConfig", "BatchReport", "Plan", "TaskOutcome", "TaskSpec", "load_plan", "run"]
