"""`Labels`: reads a finished labels.h5 file (docs/labels_h5.md).

Small per-frame arrays are loaded at open; masks are read (one chunk decompressed) on
demand.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import FormatError
from labeller.formats.labels.schema import (
    LABELS_FORMAT,
    LABELS_VERSION,
    OBJECT_FIELDS,
    REQUIRED_ATTRS,
    LabelObject,
)


@dataclass
class ObjectLabels:
    """One object in one frame. Boxes are BOP [x, y, w, h] ([-1]*4 when empty); metres."""

    index: int
    id: int
    class_name: str
    T_cam_obj: np.ndarray
    T_cam_obj_refined: np.ndarray | None
    refined: bool
    score_refined: float
    bbox_obj: list[int]
    bbox_visib: list[int]
    px_count_all: int
    px_count_valid: int
    px_count_visib: int
    visib_fract: float
    score: float
    median_abs_dz_m: float
    score_fract: float
    flagged: bool


@dataclass
class FrameLabels:
    """Labels of one frame: camera pose, per-object labels, visible-instance mask (H, W) uint16."""

    frame_id: int
    T_world_cam: np.ndarray
    objects: list[ObjectLabels]
    mask_visib: np.ndarray
    _labels: Labels = field(repr=False)
    _row: int = field(repr=False)

    def mask_full(self, i: int) -> np.ndarray:
        """Object-alone mask (H, W) bool of object index i (annotation order)."""
        return self._labels.mask_full(self.frame_id, i)

    def visible_mask(self, i: int) -> np.ndarray:
        """Visible mask (H, W) bool of object index i."""
        return self.mask_visib == self.objects[i].id


class Labels:
    """Reader of a labels.h5 file. Small arrays are loaded at open; masks on demand.

    frame_ids (F,) int64 and T_world_cam (F, 4, 4) of the labelled frames; `arrays`: every
    per-object field by name, (F, O, ...) in annotation order (`OBJECT_FIELDS`); skipped:
    frame id -> why it has no labels.
    """

    def __init__(self, path: str | os.PathLike, allow_incomplete: bool = False):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(self.path, "file not found (run `labeller propagate SCENE` first)")
        try:
            self._f: Any = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(self.path, f"not a readable HDF5 file ({exc})") from None
        try:
            self._load(allow_incomplete)
        except BaseException:
            self._f.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike, allow_incomplete: bool = False) -> Labels:
        return cls(path, allow_incomplete)

    def _load(self, allow_incomplete: bool) -> None:
        f, a = self._f, self._f.attrs

        def bad(field_: str, problem: str) -> FormatError:
            return FormatError(self.path, f"{field_}: {problem}")

        fmt = a.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != LABELS_FORMAT:
            raise bad("format", f"expected '{LABELS_FORMAT}', got {fmt!r}")
        version = int(a.get("version", -1))
        if version > LABELS_VERSION:
            raise bad("version", f"{version} is newer than this labeller reads "
                                 f"({LABELS_VERSION}); upgrade labeller")
        if version < 1:
            raise bad("version", f"unsupported version {version}")
        missing = [k for k in REQUIRED_ATTRS if k not in a]
        if missing:
            raise bad(missing[0], "missing attribute")
        if not bool(a["complete"]) and not allow_incomplete:
            raise bad("complete", "the run that wrote this file did not finish; "
                                  "rerun `labeller propagate`")
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}
        self.width, self.height = int(a["width"]), int(a["height"])
        self.n_frames = int(a["n_frames"])
        self.refine = str(self.attrs["refine"])
        self.classes: list[str] = json.loads(self.attrs["classes"])
        for k in ("objects/id", "frames/frame_id", "frames/mask_visib", "skipped/frame_id"):
            if k not in f:
                raise bad(k, "missing dataset")
        ids = f["objects/id"][:]
        cls_ = [s.decode() if isinstance(s, bytes) else s for s in f["objects/class"][:]]
        mdl = [s.decode() if isinstance(s, bytes) else s for s in f["objects/model"][:]]
        Tw = f["objects/T_world_obj"][:]
        self.objects = [LabelObject(int(i), c, m, T) for i, c, m, T in zip(ids, cls_, mdl, Tw, strict=True)]
        self.frame_ids = np.asarray(f["frames/frame_id"][:], np.int64)
        self._row = {int(t): r for r, t in enumerate(self.frame_ids)}
        self.T_world_cam = f["frames/T_world_cam"][:]
        fr = f["frames"]
        # Extensions of later writers are optional to a reader (fill values when absent).
        self.arrays: dict[str, np.ndarray] = {}
        shape = (len(self.frame_ids), len(self.objects))
        for name, (dt, tail, fill) in OBJECT_FIELDS.items():
            self.arrays[name] = fr[name][:] if name in fr else np.full((*shape, *tail), fill, dt)
        self.skipped = {int(t): (r.decode() if isinstance(r, bytes) else r)
                        for t, r in zip(f["skipped/frame_id"][:], f["skipped/reason"][:], strict=True)}

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Labels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def complete(self) -> bool:
        return bool(self.attrs["complete"])

    def row(self, t: int) -> int:
        """Row of frame id t in /frames; FormatError when the frame has no labels."""
        r = self._row.get(int(t))
        if r is None:
            why = self.skipped.get(int(t))
            problem = (f"frame {t} has no labels: {why}" if why else
                       f"frame {t} is not in this file (frames 0..{self.n_frames - 1})")
            raise FormatError(self.path, problem)
        return r

    def mask_visib(self, t: int) -> np.ndarray:
        """(H, W) uint16: id of the object visible at each pixel, 0 for none."""
        return self._f["frames/mask_visib"][self.row(t)]

    def mask_full(self, t: int, i: int) -> np.ndarray:
        """(H, W) bool object-alone mask of object index i (annotation order)."""
        return self._f["frames/mask_full"][self.row(t), i].astype(bool)

    def frame(self, t: int, masks: bool = True) -> FrameLabels:
        """Labels of frame id t (one chunk decompressed for the visible mask)."""
        r = self.row(t)
        A = self.arrays
        objs = []
        for i, o in enumerate(self.objects):
            refined = bool(A["refined"][r, i])
            objs.append(ObjectLabels(
                index=i, id=o.id, class_name=o.class_name,
                T_cam_obj=A["T_cam_obj"][r, i].copy(),
                T_cam_obj_refined=A["T_cam_obj_refined"][r, i].copy() if refined else None,
                refined=refined, score_refined=float(A["score_refined"][r, i]),
                bbox_obj=[int(v) for v in A["bbox_obj"][r, i]],
                bbox_visib=[int(v) for v in A["bbox_visib"][r, i]],
                px_count_all=int(A["px_count_all"][r, i]),
                px_count_valid=int(A["px_count_valid"][r, i]),
                px_count_visib=int(A["px_count_visib"][r, i]),
                visib_fract=float(A["visib_fract"][r, i]), score=float(A["score"][r, i]),
                median_abs_dz_m=float(A["median_abs_dz_m"][r, i]),
                score_fract=float(A["score_fract"][r, i]), flagged=bool(A["flagged"][r, i])))
        mv = self.mask_visib(t) if masks else np.zeros((0, 0), np.uint16)
        return FrameLabels(int(t), self.T_world_cam[r].copy(), objs, mv, self, r)
