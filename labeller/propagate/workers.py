"""Labelling many frames: in this process, or chunks spread over spawned worker processes.

Each worker process builds one `FrameLabeller` (models, renderer) at start and reuses it
for every chunk it is handed (`labeller.core.pool.bounded_pool_map`).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from labeller.core.pool import available_cpus, bounded_pool_map
from labeller.formats.labels import FrameRecord
from labeller.propagate.frame import FrameLabeller, Job

# One row to label: (row index in /frames, frame id, T_world_cam (4, 4)).
Row = tuple[int, int, np.ndarray]

# This worker process's labeller (set by `_init_worker`).
_WORKER: FrameLabeller | None = None


def _init_worker(job: Job, threads: int) -> None:
    global _WORKER
    import open3d as o3d

    # N workers share the machine: each casts on its share of the CPUs rather than all
    # of them (oversubscribed TBB threads only add switching).
    o3d.utility.set_max_threads(threads)
    _WORKER = FrameLabeller(job)


def _work(chunk: list[Row]) -> list[FrameRecord]:
    assert _WORKER is not None
    return [_WORKER.label(i, t, T) for i, t, T in chunk]


def iter_records(job: Job, rows: list[Row], workers: int,
                 chunk_frames: int) -> Generator[list[FrameRecord], None, None]:
    """Label `rows` ((index, frame id, T_world_cam)), yielding one list per chunk.

    workers == 1 labels in this process, frame by frame; otherwise a pool of spawned
    processes (each with its own renderer) takes chunks, at most 2 per worker in flight
    so memory stays flat in the number of frames. Chunks come back in completion order.
    Closing the generator stops the pool.
    """
    chunks = [rows[k:k + chunk_frames] for k in range(0, len(rows), chunk_frames)]
    if not chunks:
        return
    if workers == 1:
        labeller = FrameLabeller(job)
        for ch in chunks:
            yield [labeller.label(i, t, T) for i, t, T in ch]
        return
    threads = max(1, available_cpus() // min(workers, len(chunks)))
    yield from bounded_pool_map(_work, chunks, workers, initializer=_init_worker,
                                initargs=(job, threads), in_flight=2)
