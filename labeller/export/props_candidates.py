"""PROPS crops, which objects can make one and which are chosen: the candidates of a scene
and the sampling plan (per class and split, spread over scenes and over time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.export.config import ExportConfig
from labeller.export.crops import crop_squares
from labeller.export.sampling import pick_evenly, spread_quota
from labeller.export.sources import SceneSource
from labeller.formats.props import class_pickle_name

SPLITS = ("train", "test")


@dataclass
class Candidates:
    """The crops one scene can give, in time order (labels row, then object index).

    rows / objs: (N,) labels row and object index; squares: (N, 3) [x0, y0, side] px;
    labels: (N,) class label (index in the export's class table).
    """

    rows: np.ndarray
    objs: np.ndarray
    squares: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self, n_objects: int) -> np.ndarray:
        """One sortable int per candidate (row * O + object)."""
        return self.rows * max(n_objects, 1) + self.objs


def scene_candidates(src: SceneSource, class_names: list[str], min_visib: float,
                     min_size: int) -> Candidates:
    """Objects of `src` visible enough (visib_fract >= min_visib), large enough (larger
    side of the visible box >= min_size px) and not flagged, with their crop squares."""
    bb = src.bbox_visib
    ok = ((src.visib_fract >= min_visib) & (bb[..., 2] > 0)
          & (np.maximum(bb[..., 2], bb[..., 3]) >= max(int(min_size), 1)) & ~src.flagged)
    rows, objs = np.nonzero(ok)  # row-major: time order, then annotation order
    label_of = {c: i for i, c in enumerate(class_names)}
    obj_labels = np.array([label_of[c] for c in src.object_classes], np.int64)
    return Candidates(rows.astype(np.int64), objs.astype(np.int64),
                      crop_squares(bb[rows, objs]),
                      obj_labels[objs] if len(objs) else np.zeros(0, np.int64))


@dataclass
class Plan:
    """Which candidates are chosen, and the pickles they go into."""

    held: list[bool]                       # per scene: test (held out)
    chosen: list[np.ndarray]               # per scene: (N_s,) bool
    pickle_of: dict[tuple[int, int], str]  # (label, scene) -> "<class>_<k>"
    counts: dict[str, dict[str, dict[str, int]]]  # class -> split -> requested/available/chosen
    shortfall: list[tuple[str, str, int, int]]    # (class, split, available, requested)
    present: list[int]                     # labels of classes with objects in any scene


def plan_sampling(sources: list[SceneSource], cands: list[Candidates], class_names: list[str],
                  held: list[bool], cfg: ExportConfig) -> Plan:
    """Choose cfg.train_per_class / cfg.test_per_class candidates per class and split."""
    present_names = {c for s in sources for c in s.object_classes}
    present = [i for i, c in enumerate(class_names) if c in present_names]
    chosen = [np.zeros(len(c), bool) for c in cands]
    counts: dict = {}
    shortfall = []
    for label in present:
        name = class_names[label]
        counts[name] = {}
        for si, split in enumerate(SPLITS):
            want = cfg.train_per_class if split == "train" else cfg.test_per_class
            scenes = [i for i in range(len(sources)) if held[i] == (split == "test")]
            groups = [np.flatnonzero(cands[i].labels == label) for i in scenes]
            avail = sum(len(g) for g in groups)
            quota = spread_quota([len(g) for g in groups], want)
            # One generator per (class, split): changing one class leaves the others alone.
            rng = np.random.default_rng([int(cfg.seed), label, si])
            for i, g, k in zip(scenes, groups, quota, strict=True):
                offset = rng.random()
                chosen[i][g[pick_evenly(len(g), k, offset)]] = True
            counts[name][split] = {"requested": int(want), "available": int(avail),
                                   "chosen": int(sum(quota))}
            if avail < want:
                shortfall.append((name, split, int(avail), int(want)))
    pickle_of: dict[tuple[int, int], str] = {}
    for label in present:
        k = 0
        for i, c in enumerate(cands):
            if np.any(c.labels == label):
                k += 1
                pickle_of[(label, i)] = class_pickle_name(class_names[label], k)
    return Plan(held, chosen, pickle_of, counts, shortfall, present)


def missing_props_classes(plan: Plan, class_names: list[str],
                          cfg: ExportConfig) -> list[tuple[str, str]]:
    """(class, split) of every PROPS class with no chosen crop in a split that was asked
    for (train when train_per_class > 0; test when test_per_class > 0 and a scene is held
    out). The course notebooks need all ten: the P1 example grid draws from every class.
    """
    asked = [split for split, want, has in (("train", cfg.train_per_class, not all(plan.held)),
                                            ("test", cfg.test_per_class, any(plan.held)))
             if want > 0 and has]
    out = []
    for name in class_names[:len(PROPS_CLASS_NAMES)]:
        for split in asked:
            if plan.counts.get(name, {}).get(split, {}).get("chosen", 0) == 0:
                out.append((name, split))
    return out
