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
    COLOUR_STATE_NAMES,
    LABELS_FORMAT,
    LABELS_VERSION,
    OBJECT_FIELDS,
    REQUIRED_ATTRS,
    LabelObject,
    flag_rule,
)


def _hdf5_reason(exc: BaseException) -> str:
    """The first line of an HDF5 error, shortened (its messages run over several lines)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _expect_shape(bad: Any, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if tuple(got) != tuple(want):
        raise bad(name, f"shape {tuple(got)} does not match the file's other datasets {tuple(want)}")


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
    colour_score: float = float("nan")
    colour_turned_score: float = float("nan")
    colour_state: int = 0

    @property
    def colour_state_name(self) -> str:
        """'ok', 'flip suspected', 'undecidable', 'no texture' or 'not computed'."""
        return COLOUR_STATE_NAMES[self.colour_state]


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
        except (OSError, ValueError, RuntimeError) as exc:
            raise FormatError(self.path, f"not a readable HDF5 file ({exc})") from None
        try:
            self._load(allow_incomplete)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            # damage HDF5 or an attribute's parser noticed (checksummed metadata, a
            # truncated attribute, JSON that is not)
            self._f.close()
            raise FormatError(self.path, f"damaged file ({_hdf5_reason(exc)})") from None
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
        for k in ("objects/id", "objects/class", "objects/model", "objects/T_world_obj",
                  "frames/frame_id", "frames/T_world_cam", "frames/mask_visib",
                  "skipped/frame_id", "skipped/reason"):
            if k not in f:
                raise bad(k, "missing dataset")

        def read(name: str) -> np.ndarray:
            """All of dataset `name`; HDF5's checksum failures and damage: FormatError."""
            try:
                return f[name][()]
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise bad(name, f"damaged data ({_hdf5_reason(exc)})") from None

        def strings(name: str) -> list[str]:
            raw = [s if isinstance(s, bytes) else str(s).encode() for s in read(name)]
            try:
                return [s.decode() for s in raw]
            except UnicodeDecodeError:
                raise bad(name, "damaged data (not UTF-8)") from None

        ids = read("objects/id")
        cls_ = strings("objects/class")
        mdl = strings("objects/model")
        Tw = read("objects/T_world_obj")
        n_obj = len(ids)
        _expect_shape(bad, "objects/class", (len(cls_),), (n_obj,))
        _expect_shape(bad, "objects/model", (len(mdl),), (n_obj,))
        _expect_shape(bad, "objects/T_world_obj", Tw.shape, (n_obj, 4, 4))
        self.objects = [LabelObject(int(i), c, m, T) for i, c, m, T in zip(ids, cls_, mdl, Tw, strict=True)]
        self.frame_ids = np.asarray(read("frames/frame_id"), np.int64)
        F = len(self.frame_ids)  # noqa: N806
        self._row = {int(t): r for r, t in enumerate(self.frame_ids)}
        self.T_world_cam = read("frames/T_world_cam")
        _expect_shape(bad, "frames/T_world_cam", self.T_world_cam.shape, (F, 4, 4))
        fr = f["frames"]
        # Extensions of later writers are optional to a reader (fill values when absent).
        self.arrays: dict[str, np.ndarray] = {}
        shape = (F, n_obj)
        for name, (dt, tail, fill) in OBJECT_FIELDS.items():
            if name in fr:
                self.arrays[name] = read(f"frames/{name}")
                _expect_shape(bad, f"frames/{name}", self.arrays[name].shape, (*shape, *tail))
            else:
                self.arrays[name] = np.full((*shape, *tail), fill, dt)
        if "px_count_image" not in fr:  # version 1: px_count_all was clipped to the image
            self.arrays["px_count_image"] = self.arrays["px_count_all"].copy()
        _expect_shape(bad, "frames/mask_visib", fr["mask_visib"].shape, (F, self.height, self.width))
        if "mask_full" in fr:
            _expect_shape(bad, "frames/mask_full", fr["mask_full"].shape,
                          (F, n_obj, self.height, self.width))
        sk_ids, sk_why = read("skipped/frame_id"), strings("skipped/reason")
        _expect_shape(bad, "skipped/reason", (len(sk_why),), (len(sk_ids),))
        self.skipped = {int(t): r for t, r in zip(sk_ids, sk_why, strict=True)}
        done = read("frames/done") if "done" in fr else np.ones(F, bool)
        _expect_shape(bad, "frames/done", done.shape, (F,))
        self._validate(bad, ids, Tw, np.asarray(done, bool), allow_incomplete)

    def _validate(self, bad: Any, ids: np.ndarray, T_world_obj: np.ndarray, done: np.ndarray,
                  allow_incomplete: bool) -> None:
        """Values in range: FormatError naming the dataset (a damaged or crafted file).

        Rows not marked done (an unfinished file read with allow_incomplete) hold fill
        values and are not checked.
        """
        if len(ids) and (ids.min() < 1 or ids.max() > np.iinfo(np.uint16).max
                         or len(np.unique(ids)) != len(ids)):
            raise bad("objects/id", "instance ids must be distinct and in 1..65535")
        unknown = [o.class_name for o in self.objects if o.class_name not in self.classes]
        if unknown:
            raise bad("objects/class", f"class {unknown[0]!r} is not in the file's classes")
        if not np.isfinite(T_world_obj).all():
            raise bad("objects/T_world_obj", "values that are not finite")
        fids = self.frame_ids
        if len(fids) and (fids.min() < 0 or fids.max() >= self.n_frames or np.any(np.diff(fids) <= 0)):
            raise bad("frames/frame_id", f"frame ids must increase within 0..{self.n_frames - 1}")
        if not np.isfinite(self.T_world_cam).all():
            raise bad("frames/T_world_cam", "values that are not finite")
        rows = done if allow_incomplete else np.ones(len(fids), bool)
        A = {k: v[rows] for k, v in self.arrays.items()}  # noqa: N806
        if not np.isfinite(A["T_cam_obj"]).all():
            raise bad("frames/T_cam_obj", "values that are not finite")
        if not np.isfinite(A["T_cam_obj_refined"][A["refined"]]).all():
            raise bad("frames/T_cam_obj_refined", "values that are not finite")
        for name in ("visib_fract", "score_fract"):
            v = A[name]
            if not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()):
                raise bad(f"frames/{name}", "values outside [0, 1]")
        for name in ("score", "score_refined"):
            v = A[name]
            with np.errstate(invalid="ignore"):
                if np.isinf(v).any() or (v < 0).any() or (v > 1).any():
                    raise bad(f"frames/{name}", "values outside [0, 1] (NaN: not scored)")
        for name in ("colour_score", "colour_turned_score"):
            v = A[name]
            with np.errstate(invalid="ignore"):
                if np.isinf(v).any() or (v < -1).any() or (v > 1).any():
                    raise bad(f"frames/{name}", "values outside [-1, 1] (NaN: not computed)")
        if (A["colour_state"] >= len(COLOUR_STATE_NAMES)).any():
            raise bad("frames/colour_state", f"values outside 0..{len(COLOUR_STATE_NAMES) - 1}")
        for name in ("median_abs_dz_m", "refine_moved_m", "refine_turned_deg"):
            v = A[name]
            with np.errstate(invalid="ignore"):
                if np.isinf(v).any() or (v < 0).any():
                    raise bad(f"frames/{name}", "negative or infinite values")
        for name in ("px_count_all", "px_count_valid", "px_count_visib", "px_count_image"):
            if (A[name] < 0).any():
                raise bad(f"frames/{name}", "negative pixel counts")
        # bbox_obj covers the whole silhouette (it may start left of or above the image)
        if (A["bbox_obj"][..., 2:] < -1).any():
            raise bad("frames/bbox_obj", "boxes with a width or height below -1")
        if (A["bbox_visib"] < -1).any():
            raise bad("frames/bbox_visib", "boxes with values below -1")
        # `flagged` is derived: the writer stores flag_rule(scores) when it finishes. A
        # chunk zeroed together with its Fletcher-32 checksum (zeros sum to zero) passes
        # HDF5's check; comparing with the rule catches it in this dataset.
        if self.complete and int(self.attrs["version"]) >= 4 and "flag_min_score" in self.attrs:
            want = flag_rule(A["score"], A["score_fract"], float(self.attrs["flag_min_score"]),
                             float(self.attrs["flag_min_visib"]), A["colour_state"])
            if not np.array_equal(np.asarray(A["flagged"], bool), want):
                raise bad("frames/flagged", "does not match the scores under the file's flag "
                                            "rule (damaged file?); rerun `labeller propagate`")

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

    def _chunk(self, name: str, index: tuple[int, ...], t: int) -> np.ndarray:
        """One mask chunk; a damaged one (its deflate stream fails Adler-32): FormatError."""
        try:
            return self._f[name][index]
        except (OSError, ValueError, RuntimeError) as exc:
            raise FormatError(self.path, f"{name}: frame {t}: damaged data "
                                         f"({_hdf5_reason(exc)})") from None

    def mask_visib(self, t: int) -> np.ndarray:
        """(H, W) uint16: id of the object visible at each pixel, 0 for none."""
        return self._chunk("frames/mask_visib", (self.row(t),), t)

    def mask_full(self, t: int, i: int) -> np.ndarray:
        """(H, W) bool object-alone mask of object index i (annotation order)."""
        if not 0 <= i < len(self.objects):
            raise IndexError(f"object index {i} out of range ({len(self.objects)} objects)")
        return self._chunk("frames/mask_full", (self.row(t), i), t).astype(bool)

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
                score_fract=float(A["score_fract"][r, i]), flagged=bool(A["flagged"][r, i]),
                colour_score=float(A["colour_score"][r, i]),
                colour_turned_score=float(A["colour_turned_score"][r, i]),
                colour_state=int(A["colour_state"][r, i])))
        mv = self.mask_visib(t) if masks else np.zeros((0, 0), np.uint16)
        return FrameLabels(int(t), self.T_world_cam[r].copy(), objs, mv, self, r)
