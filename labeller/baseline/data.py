"""Read a PROPS classification dataset the way the course loaders do.

The on-disk format is fixed by docs/design.md ("PROPS classification format")::

    Progress-Objects-Sample/
      meta.pkl               {"test_split": ["mug_3", "cracker_box_12", ...]}
      <class>_<k>.pkl        {"data": uint8 (n, 32, 32, 3) RGB, "labels": [int] * n}

Every pickle is read with `labeller.formats.props.RestrictedUnpickler` (the PROPS codec),
which resolves only the handful of globals numpy needs to rebuild arrays and scalars;
anything else (a custom class, a function, `os.system`) is refused before it is called.
After loading, the object tree is checked again: only dicts, lists, tuples, numpy arrays
(not of dtype object) and scalars may appear.

Preprocessing (subsets, the validation split, features) is `labeller.baseline.preprocess`.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError
from labeller.formats.props import (  # noqa: F401 - RestrictedUnpickler, load_pickle: re-exported
    IMAGE_SHAPE,
    META_FILE,
    PROPS_FOLDER,
    RestrictedUnpickler,
    load_class_pickle,
    load_pickle,
)

NUM_FEATURES = 32 * 32 * 3


@dataclass
class PropsDataset:
    """A PROPS classification dataset in memory, as stored (no preprocessing).

    `train_images`/`test_images`: uint8 (N, 32, 32, 3) RGB; `train_labels`/
    `test_labels`: int64 (N,) in 0..C-1; `class_names`: C names in label order;
    `train_source`/`test_source`: (N,) index into `train_files`/`test_files`, the pickle
    stem each image came from. `root` is the `Progress-Objects-Sample` folder.
    """

    root: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...] = PROPS_CLASS_NAMES
    train_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    train_source: np.ndarray | None = None
    test_source: np.ndarray | None = None


def find_props_root(path: str | os.PathLike) -> Path:
    """The `Progress-Objects-Sample` folder for `path` (that folder or its parent)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(path, "directory not found")
    if not path.is_dir():
        raise BadInput(path, "not a directory (expected a PROPS dataset folder)")
    if (path / META_FILE).is_file():
        return path
    if (path / PROPS_FOLDER / META_FILE).is_file():
        return path / PROPS_FOLDER
    raise BadInput(
        path, f"no {META_FILE} here or in {PROPS_FOLDER}/ (not a PROPS classification dataset)"
    )


def load_props(path: str | os.PathLike, class_names=PROPS_CLASS_NAMES) -> PropsDataset:
    """Read a PROPS classification dataset the way the course loaders do.

    `path` is the `Progress-Objects-Sample` folder (holding `meta.pkl`) or its parent.
    Train = every `*.pkl` except `meta.pkl` not named in `meta.pkl["test_split"]`;
    test = the named ones. Files are read in sorted order, so the result does not
    depend on the directory listing.

    Raises BadInput / FormatError (one line, naming the file) for: no `meta.pkl`, a
    pickle holding disallowed types, data of the wrong shape or dtype, labels out of
    range, a `test_split` naming a missing file, a class without training images, no
    test images.
    """
    root = find_props_root(path)
    meta_path = root / META_FILE
    meta = load_pickle(meta_path)
    if not isinstance(meta, dict) or "test_split" not in meta:
        raise FormatError(meta_path, "expected a dict with a 'test_split' list")
    split = meta["test_split"]
    if isinstance(split, np.ndarray):
        split = split.tolist()
    if not isinstance(split, (list, tuple)) or not all(isinstance(s, str) for s in split):
        raise FormatError(meta_path, "'test_split' must be a list of pickle names (str)")
    # The published meta.pkl names pickles by stem ("mug_3"); accept "mug_3.pkl" too.
    test_stems = [s[:-4] if s.endswith(".pkl") else s for s in split]
    available = sorted(p.stem for p in root.glob("*.pkl") if p.name != META_FILE and p.is_file())
    missing = [s for s in test_stems if s not in set(available)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FormatError(meta_path, f"test_split names '{missing[0]}' but {root / (missing[0] + '.pkl')} does not exist{more}")

    num_classes = len(class_names)
    # per split: (images, labels, pickle stems, source index per image), one entry per pickle
    parts: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[str], list[np.ndarray]]] = {
        "train": ([], [], [], []), "test": ([], [], [], [])}
    test_set = set(test_stems)
    for stem in available:
        which = "test" if stem in test_set else "train"
        images, labels = load_class_pickle(root / f"{stem}.pkl", num_classes)
        imgs, labs, files, src = parts[which]
        src.append(np.full(len(labels), len(files), np.int64))
        files.append(stem)
        imgs.append(images)
        labs.append(labels)

    def cat(which):
        imgs, labs, files, src = parts[which]
        if not imgs:
            return np.zeros((0, *IMAGE_SHAPE), np.uint8), np.zeros(0, np.int64), files, np.zeros(0, np.int64)
        return np.concatenate(imgs), np.concatenate(labs), files, np.concatenate(src)

    tr_x, tr_y, tr_f, tr_s = cat("train")
    te_x, te_y, te_f, te_s = cat("test")
    counts = np.bincount(tr_y, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        names = ", ".join(f"'{class_names[i]}' (label {i})" for i in empty[:3])
        more = f" and {empty.size - 3} more" if empty.size > 3 else ""
        raise BadInput(root, f"no training images for class {names}{more}")
    if te_y.size == 0:
        raise BadInput(meta_path, "test_split selects no images (the test set is empty)")
    return PropsDataset(root, tr_x, tr_y, te_x, te_y, tuple(class_names), tr_f, te_f, tr_s, te_s)


def write_props(
    out_dir: str | os.PathLike,
    scenes: dict[str, tuple[np.ndarray, list[int] | np.ndarray]],
    test_split: list[str],
) -> Path:
    """Write a PROPS classification dataset (used by tests, the bench and demos).

    `scenes` maps a pickle stem (`<class>_<k>`) to (uint8 (n, 32, 32, 3), labels);
    returns the `Progress-Objects-Sample` folder under `out_dir`. Plain pickles, as
    the course loaders expect (only dicts, lists and numpy arrays inside).
    """
    from labeller.core.fileio import atomic_write_bytes

    root = Path(out_dir) / PROPS_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    for stem, (data, labels) in scenes.items():
        payload = {"data": np.asarray(data, np.uint8), "labels": [int(v) for v in labels]}
        atomic_write_bytes(root / f"{stem}.pkl", pickle.dumps(payload, protocol=2))
    atomic_write_bytes(root / META_FILE, pickle.dumps({"test_split": list(test_split)}, protocol=2))
    return root
