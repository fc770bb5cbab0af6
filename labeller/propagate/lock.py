"""The scene lock: one `labeller propagate` per scene at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from labeller.core.errors import BadInput


@contextlib.contextmanager
def scene_lock(labels_dir: Path) -> Iterator[None]:
    """Hold SCENE/labels/.propagate.lock for the run: a second run on the same scene stops
    at once (HDF5 would truncate the first run's partial file before noticing its lock)."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(labels_dir / ".propagate.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(labels_dir, "another `labeller propagate` is running on this "
                                       "scene; wait for it to finish") from None
        yield
    finally:
        os.close(fd)  # releases the lock
