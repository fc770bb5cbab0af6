"""The scenes an export reads: each scene (frames, camera) and the bulk arrays of its
`labels/labels.h5` (poses, boxes, pixel counts, scores; not the masks, which workers read
frame by frame through `worker_labels`), and the class table of an export.

Array shapes: F labelled frames, O objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError, SceneError
from labeller.core.fileio import sha256_file
from labeller.formats.scene import Scene

if TYPE_CHECKING:
    from labeller.formats.labels import Labels


@dataclass
class SceneSource:
    """One scene given on the command line and the bulk arrays of its labels.h5.

    Read with `labeller.formats.labels.Labels` (schema in docs/labels_h5.md). Poses in metres
    (T_cam_obj: (F, O, 4, 4), T_world_cam: (F, 4, 4)); boxes BOP [x, y, w, h] (F, O, 4),
    [-1, -1, -1, -1] for an empty mask; counts and fractions (F, O). Masks, boxes and
    scores describe the propagated pose `T_cam_obj` (an ICP correction is stored beside
    it, not used for them), so that is the pose every export writes.
    """

    index: int  # position on the command line (0-based)
    root: Path
    name: str
    scene: Scene
    labels_path: Path
    classes: list[str]
    object_ids: np.ndarray
    object_classes: list[str]
    object_models: list[str]
    frame_ids: np.ndarray
    T_world_cam: np.ndarray
    arrays: dict[str, np.ndarray]
    _sha256: str | None = None

    @property
    def n_objects(self) -> int:
        return len(self.object_ids)

    def __getattr__(self, name: str) -> np.ndarray:
        # T_cam_obj, bbox_visib, visib_fract, flagged, ... straight from the labels' arrays
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def labels_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.labels_path)
        return self._sha256

    def rgb_path(self, frame_id: int) -> Path:
        return self.scene.rgb_file(int(frame_id))

    def depth_path(self, frame_id: int) -> Path:
        return self.scene.depth_file(int(frame_id))

    def describe(self) -> dict:
        """For the manifest: where the scene and its labels came from."""
        return {"scene": str(self.root), "name": self.name, "labels": str(self.labels_path),
                "labels_sha256": self.labels_sha256, "frames": int(self.scene.n_frames),
                "labelled_frames": int(len(self.frame_ids)), "objects": int(self.n_objects)}


def open_scene_source(root: str | os.PathLike, index: int = 0) -> SceneSource:
    """Open a scene and read its labels.h5, checked.

    Raises SceneError / FormatError naming the file: no labels yet, a run that did not
    finish, another format or version, labels for another frame size, or labels of an
    earlier annotations.json (the labels record its sha256).
    """
    from labeller.formats.labels import Labels

    root = Path(root)
    if not root.is_dir():
        raise SceneError(root, "not a directory (give scene folders)")
    scene = Scene.open(root)
    path = scene.paths.labels
    if not path.is_file():
        raise FormatError(path, f"file not found: run `labeller propagate {root}` first")
    with Labels.open(path) as lab:
        src = SceneSource(
            index=index, root=root, name=root.resolve().name, scene=scene, labels_path=path,
            classes=list(lab.classes), object_ids=np.array([o.id for o in lab.objects], np.int64),
            object_classes=[o.class_name for o in lab.objects],
            object_models=[o.model for o in lab.objects], frame_ids=lab.frame_ids.copy(),
            T_world_cam=np.asarray(lab.T_world_cam, np.float64).reshape(-1, 4, 4),
            arrays=lab.arrays)
        w, h = lab.width, lab.height
        labelled_sha = str(lab.attrs["annotations_sha256"])
    ann = scene.paths.annotations
    if ann.is_file() and sha256_file(ann) != labelled_sha:
        raise SceneError(ann, f"changed since `labeller propagate` wrote {path.name}; run "
                              f"`labeller propagate {root}` again")
    cam = scene.camera
    if (w, h) != (cam.width, cam.height):
        raise FormatError(path, f"labels are for {w}x{h} frames but the scene's camera is "
                                f"{cam.width}x{cam.height}; rerun `labeller propagate {root}`")
    fids = src.frame_ids
    if len(fids) and (fids.min() < 0 or fids.max() >= scene.n_frames):
        raise FormatError(path, f"frame ids outside the scene's {scene.n_frames} frames; "
                                f"rerun `labeller propagate {root}`")
    return src


_worker_labels: dict[str, Labels] = {}
# Readers a process keeps open (tasks of a few scenes interleave in a pool).
MAX_OPEN_LABELS = 8


def worker_labels(path: str | os.PathLike) -> Labels:
    """A `Labels` reader kept open per process (workers read masks frame by frame)."""
    from labeller.formats.labels import Labels

    key = str(path)
    lab = _worker_labels.pop(key, None)
    if lab is None:
        while len(_worker_labels) >= MAX_OPEN_LABELS:
            _worker_labels.pop(next(iter(_worker_labels))).close()
        lab = Labels.open(path)
    _worker_labels[key] = lab  # most recently used last
    return lab


def close_worker_labels() -> None:
    for lab in _worker_labels.values():
        lab.close()
    _worker_labels.clear()


def open_sources(scenes: Sequence[str | os.PathLike]) -> list[SceneSource]:
    """Open every scene, refusing the same scene twice."""
    if not scenes:
        raise BadInput("SCENE", "give at least one scene")
    seen: dict[Path, str] = {}
    out = []
    for i, s in enumerate(scenes):
        r = Path(s).resolve()
        if r in seen:
            raise BadInput(s, f"scene given twice (also as {seen[r]})")
        seen[r] = str(s)
        out.append(open_scene_source(s, i))
    return out


def class_table(sources: Sequence[SceneSource]) -> list[str]:
    """The label order: the ten PROPS classes, then any other class in order of appearance
    (the scenes' class lists in command-line order, then their objects)."""
    names = list(PROPS_CLASS_NAMES)
    for s in sources:
        for c in [*s.classes, *s.object_classes]:
            if c not in names:
                names.append(c)
    return names
