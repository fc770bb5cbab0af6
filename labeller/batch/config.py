"""`BatchConfig`: what `labeller batch` does (the command line is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labeller.core.config import option
from labeller.core.errors import ConfigError

EXECUTOR_CHOICES = ("local", "ray")
MAX_RETRIES = 10


@dataclass(frozen=True)
class BatchConfig:
    """One batch run. executor None: ray when it is installed, else local; cpus None: the
    CPUs this process may use (local pool size, or the local Ray's CPUs; a cluster brings
    its own); retries: how often a task whose worker died is run again; cancel_grace_s:
    how long a cancel waits for the running stages to stop on their own (and clean up)
    before their workers are killed."""

    plan: Path = option(positional=True, metavar="PLAN", help="the plan file (TOML, "
                                                               "docs/batch.md)")
    executor: str | None = option(None, choices=EXECUTOR_CHOICES,
                                  help="where the tasks run (default: ray when installed, "
                                       "else local)")
    address: str | None = option(None, metavar="ADDR",
                                 help="ray: join this cluster (else RAY_ADDRESS, else a "
                                      "local Ray is started)")
    cpus: int | None = option(None, metavar="N",
                              help="CPUs of the local pool or local Ray (default: all "
                                   "this process may use)")
    retries: int = option(2, metavar="N",
                          help="runs again a task whose worker died, at most N times")
    progress_bar: bool = option(True, flag="--no-progress", help="no progress bar")
    cancel_grace_s: float = 30.0

    def check(self) -> None:
        if self.executor is not None and self.executor not in EXECUTOR_CHOICES:
            raise ConfigError(self, "executor", f"must be one of {', '.join(EXECUTOR_CHOICES)}, "
                                                f"got {self.executor!r}")
        if self.cpus is not None and (not isinstance(self.cpus, int) or self.cpus < 1):
            raise ConfigError(self, "cpus", f"must be an integer >= 1, got {self.cpus!r}")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= MAX_RETRIES:
            raise ConfigError(self, "retries", f"must be an integer from 0 to {MAX_RETRIES}, "
                                               f"got {self.retries!r}")
        if self.address is not None and self.executor == "local":
            raise ConfigError(self, "address", "applies only with --executor ray")
        if not self.cancel_grace_s >= 0:
            raise ConfigError(self, "cancel_grace_s", f"must be >= 0, got {self.cancel_grace_s!r}")
