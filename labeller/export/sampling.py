"""How an export chooses: which whole scenes are held out, and how a quota of picks is
shared over scenes and spread over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeller.core.errors import BadInput
from labeller.export.output import check_out_dir
from labeller.export.sources import SceneSource, open_sources


def default_n_test(n_scenes: int) -> int:
    """How many of n scenes are held out by default: max(1, round(n / 6)) for n >= 2."""
    return 0 if n_scenes < 2 else max(1, round(n_scenes / 6))


def choose_test_scenes(sources: Sequence[SceneSource], test_scenes: Sequence[str] | None,
                       seed: int) -> list[bool]:
    """Which scenes are held out (True), by folder name or path, or chosen by `seed`.

    Whole scenes only, so no scene feeds both splits.
    """
    n = len(sources)
    if test_scenes is None:
        k = default_n_test(n)
        rng = np.random.default_rng(seed)
        picked = set(rng.choice(n, size=k, replace=False).tolist()) if k else set()
        return [i in picked for i in range(n)]
    held = [False] * n
    names = [s.name for s in sources]
    for t in test_scenes:
        tp = Path(t)
        matches = [i for i, s in enumerate(sources)
                   if s.name == t or (tp.exists() and tp.resolve() == s.root.resolve())]
        if not matches:
            raise BadInput("--test-scenes", f"'{t}' is not one of the scenes given "
                                            f"({', '.join(names)})")
        if len(matches) > 1:
            raise BadInput("--test-scenes", f"'{t}' names {len(matches)} scenes; give its path")
        held[matches[0]] = True
    return held


def spread_quota(available: Sequence[int], k: int) -> list[int]:
    """Share k picks over groups as evenly as their sizes allow (water filling).

    Every group gets the same share unless it has fewer items; what it cannot take goes
    to the others. Returns picks per group (sum = min(k, sum(available))).
    """
    avail = [int(a) for a in available]
    out = [0] * len(avail)
    remaining = min(int(k), sum(avail))
    order = sorted(range(len(avail)), key=lambda i: (avail[i], i))
    for j, i in enumerate(order):
        left = len(order) - j
        share = -(-remaining // left)  # ceil: the largest groups absorb the remainder
        out[i] = min(avail[i], share)
        remaining -= out[i]
    return out


def pick_evenly(n: int, k: int, offset: float) -> np.ndarray:
    """k distinct indices of 0..n-1 evenly spaced (stride n/k), shifted by offset in [0, 1).

    Items are in time order, so the picks spread over the whole recording instead of
    taking its first k frames (consecutive frames are near-duplicates).
    """
    if k <= 0:
        return np.zeros(0, np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    return np.floor((np.arange(k) + offset) * (n / k)).astype(np.int64)


def open_split_scenes(scenes: Sequence[str | Path], out: Path, overwrite: bool,
                      test_scenes: Sequence[str] | None, seed: int
                      ) -> tuple[list[SceneSource], list[bool]]:
    """The scenes of an exporter that splits whole scenes into train and val/test: opened,
    `out` checked as a place to write, and which of them are held out (`choose_test_scenes`);
    BadInput when every scene would be held out."""
    sources = open_sources(scenes)
    check_out_dir(out, sources, overwrite)
    held = choose_test_scenes(sources, test_scenes, seed)
    if all(held):
        raise BadInput("--test-scenes", "holds out every scene; leave at least one for train")
    return sources, held
