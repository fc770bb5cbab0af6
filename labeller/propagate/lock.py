"""The scene lock: one `labeller propagate` per scene at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from labeller.core.locks import exclusive_lock


@contextlib.contextmanager
def scene_lock(labels_dir: Path) -> Iterator[None]:
    """Hold SCENE/labels/.propagate.lock for the run: a second run on the same scene stops
    at once (HDF5 would truncate the first run's partial file before noticing its lock)."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(labels_dir / ".propagate.lock", labels_dir,
                        "another `labeller propagate` is running on this scene; wait for it "
                        "to finish"):
        yield
