"""One batch task, as a worker runs it: a stage on one scene, or one export.

`run_task(spec)` is what every executor calls in a worker process (a local pool worker
or a Ray worker): it builds nothing itself, it calls the stage's own `run(cfg)` with the
config the plan built, and reports a `TaskOutcome` instead of raising, so a bad-input
error (the exit-2 class) travels back as data and is never retried, while a worker that
dies (no outcome at all) is retried by the executor.

Reuse: the stages write atomically and resume; on top of that a task that finds its
outputs up to date does not call the stage at all, so a rerun leaves finished scenes'
files untouched (`is_up_to_date`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeller.core.errors import BadInput, Cancelled

DONE, REUSED, FAILED, CANCELLED = "done", "reused", "failed", "cancelled"


@dataclass(frozen=True)
class TaskSpec:
    """What a worker needs: `stage` (track, init, propagate or export), its frozen config,
    `label` (scene name or export folder, for the report), `cpus` (declared to the
    executor), `cancel_file` (the run is cancelled once this file exists: every worker of
    the batch sees it on the shared file system) and `die_once_file` (test hook: the first
    task to create this file kills its own worker, as a lost node would)."""

    key: str
    stage: str
    label: str
    config: Any
    cpus: int
    cancel_file: str
    die_once_file: str | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """What a task did: status done | reused | failed | cancelled, a one-line `message`
    (the stage's summary head, or why it failed), `bad_input` (a user error, exit 2),
    wall and CPU seconds, peak memory of the worker (MiB) and the worker's pid."""

    key: str
    status: str
    message: str
    bad_input: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mib: float = 0.0
    pid: int = 0
    count: int = 0  # export: the dataset's items (crops for props); others: frames


def _cancel_check(cancel_file: str):
    """A ProgressFn that asks the stage to stop once `cancel_file` exists (checked at
    most twice a second: a stat per frame would be wasted on a local disk)."""
    last = [0.0, False]

    def progress(done: int, total: int) -> bool:
        now = time.monotonic()
        if now - last[0] > 0.5:
            last[0] = now
            last[1] = os.path.exists(cancel_file)
        return not last[1]

    return progress


def _die_once(marker: str) -> None:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(137)  # as SIGKILL leaves it: no cleanup, no result


def _newest_mtime(folder: Path) -> float:
    with os.scandir(folder) as it:
        return max((e.stat().st_mtime for e in it if e.is_file()), default=0.0)


def track_up_to_date(cfg: Any) -> bool:
    """trajectory.txt and recon/tracking.json written by a finished run with the same
    settings (the tracker's fingerprint, voxel and cloud), newer than every frame."""
    from labeller.track.config import TrackConfig

    scene = Path(cfg.scene)
    report_path, traj = scene / "recon" / "tracking.json", scene / "trajectory.txt"
    if not (report_path.is_file() and traj.is_file()):
        return False
    if (scene / "recon" / "track_checkpoint.npz").exists():
        return False
    try:
        stored = json.loads(report_path.read_text())["config"]
        names = {f.name for f in dataclasses.fields(TrackConfig)}
        old = TrackConfig(**{k: v for k, v in stored.items() if k in names})
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if (old.fingerprint() != cfg.fingerprint() or old.voxel_m != cfg.voxel_m
            or old.write_cloud != cfg.write_cloud or old.integrate_every != cfg.integrate_every):
        return False
    if cfg.write_cloud and not (scene / "recon" / "cloud.ply").is_file():
        return False
    written = min(report_path.stat().st_mtime, traj.stat().st_mtime)
    frames = [scene / d for d in ("rgb", "depth") if (scene / d).is_dir()]
    return all(_newest_mtime(d) <= written for d in frames) \
        and (scene / "camera.json").stat().st_mtime <= written


def propagate_up_to_date(cfg: Any) -> bool:
    """labels.h5 finished from the same inputs (the propagate stage's own fingerprint:
    trajectory, annotations, camera, models, depth frames, settings) with the same flag
    rule: what `labeller propagate` would only copy and re-flag."""
    from labeller.formats.labels import Labels
    from labeller.propagate import prepare

    prep = prepare(cfg)
    path = prep.scene.paths.labels
    if not path.is_file():
        return False
    try:
        with Labels.open(path) as labels:
            a = labels.attrs
            return (json.loads(a.get("inputs", "null"))
                    == json.loads(json.dumps(prep.meta.inputs, sort_keys=True))
                    and float(a["flag_min_score"]) == cfg.flag_min_score
                    and float(a["flag_min_visib"]) == cfg.flag_min_visib)
    except (BadInput, OSError, KeyError, ValueError):
        return False


def export_up_to_date(cfg: Any) -> bool:
    """OUT/manifest.json of an export with the same options from the same scenes (by
    path and labels.h5 sha256, in order)."""
    from labeller.core.fileio import sha256_file

    manifest = Path(cfg.out) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        body = json.loads(manifest.read_text())
        sources = [(s["scene"], s["labels_sha256"]) for s in body["sources"]]
        options = body["options"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    want = [(str(s), sha256_file(Path(s) / "labels" / "labels.h5")
             if (Path(s) / "labels" / "labels.h5").is_file() else None) for s in cfg.scenes]
    return sources == want and options == json.loads(json.dumps(cfg.options()))


def _run_stage(spec: TaskSpec) -> tuple[str, str, int]:
    """(status, message, count) of the stage itself."""
    cfg = spec.config
    progress = _cancel_check(spec.cancel_file)
    if spec.stage == "track":
        from labeller.track import run as track

        if track_up_to_date(cfg):
            return REUSED, "trajectory.txt up to date", 0
        res = track(cfg, progress=progress)
        if res.cancelled:
            raise Cancelled("cancelled")
        return DONE, res.summary().splitlines()[0], res.n_tracked
    if spec.stage == "init":
        from labeller.init_poses import run as init

        init_summary = init(cfg, progress=progress)
        return DONE, init_summary.format().splitlines()[0], 0
    if spec.stage == "propagate":
        from labeller.propagate import run as propagate

        if propagate_up_to_date(cfg):
            return REUSED, "labels.h5 up to date", 0
        labelled = propagate(cfg, progress=progress)
        status = REUSED if labelled.computed_frames == 0 else DONE
        return status, labelled.format().splitlines()[0], labelled.n_labelled
    if spec.stage == "export":
        import warnings

        from labeller.export import ExportWarning
        from labeller.export import run as export

        if export_up_to_date(cfg):
            return REUSED, f"{cfg.out} up to date", 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExportWarning)  # kept in the manifest
            exported = export(cfg, progress=progress)
        totals: dict[str, int] = {}
        if exported.manifest is not None:  # props: {"train": crops, "test": crops}
            totals = json.loads(Path(exported.manifest).read_text()).get("totals") or {}
        return DONE, exported.format().splitlines()[0], int(sum(totals.values()))
    raise ValueError(spec.stage)


def _peak_mib() -> float:
    """Peak resident memory of this worker or of one of its finished children, MiB (a
    pool worker runs several tasks: it is the peak of its life so far)."""
    import resource

    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kib / 1024.0  # Linux: KiB


def run_task(spec: TaskSpec) -> TaskOutcome:
    """Run one task in this (worker) process; never raises for a stage's failure."""
    if spec.die_once_file is not None:
        _die_once(spec.die_once_file)
    t0, c0 = time.perf_counter(), time.process_time()
    ch0 = os.times()
    status, message, bad, count = FAILED, "", False, 0
    try:
        status, message, count = _run_stage(spec)
    except Cancelled:
        status, message = CANCELLED, "cancelled"
    except BadInput as exc:
        status, message, bad = FAILED, str(exc), True
    except Exception as exc:  # noqa: BLE001 - reported in the table, the batch goes on
        from labeller.core.fileio import disk_error_message

        disk = disk_error_message(exc)
        status, message, bad = FAILED, disk or f"internal error: {type(exc).__name__}: {exc}", \
            disk is not None
    ch1 = os.times()
    # CPU time of this process plus the stage's own worker processes (waited-for children)
    cpu = time.process_time() - c0 + (ch1.children_user - ch0.children_user) \
        + (ch1.children_system - ch0.children_system)
    return TaskOutcome(spec.key, status, message, bad, time.perf_counter() - t0, cpu,
                       _peak_mib(), os.getpid(), count)
