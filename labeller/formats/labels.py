"""`labels.h5`: the per-frame labels `labeller propagate` writes (schema: docs/labels_h5.md).

One HDF5 file per scene (SCENE/labels/labels.h5). Per labelled frame and object: the
propagated pose, an optional ICP-refined pose stored beside it, BOP boxes and pixel
counts, a depth-consistency score and a review flag; per frame the visible-instance
mask, per frame and object the object-alone mask (both chunked one image per chunk and
gzip-compressed, so reading one frame decompresses one chunk).

`LabelsWriter` writes a file in place (the propagation stage points it at
`labels.h5.partial` and renames that at the end); `/frames/done` records which frames
are written, so an interrupted run resumes. `Labels` reads a finished file.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError

LABELS_FORMAT = "labeller-labels"
LABELS_VERSION = 1
# Masks are compressed by the producer (zlib = HDF5's gzip/deflate filter) and written
# as raw chunks, so worker processes do the compression, not the writing process.
MASK_GZIP_LEVEL = 1
# Small per-frame arrays are chunked by this many frames (one h5 read per ~256 frames).
ROW_CHUNK = 256

def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


# Per-frame, per-object arrays: name -> (dtype, shape after (F, O), fill value).
OBJECT_FIELDS: dict[str, tuple[str, tuple[int, ...], object]] = {
    "T_cam_obj": ("f8", (4, 4), np.nan),
    "T_cam_obj_refined": ("f8", (4, 4), np.nan),
    "refined": ("bool", (), False),
    "score_refined": ("f4", (), np.nan),
    "refine_moved_m": ("f4", (), np.nan),
    "refine_turned_deg": ("f4", (), np.nan),
    "bbox_obj": ("i4", (4,), -1),
    "bbox_visib": ("i4", (4,), -1),
    "px_count_all": ("i4", (), 0),
    "px_count_valid": ("i4", (), 0),
    "px_count_visib": ("i4", (), 0),
    "visib_fract": ("f4", (), 0.0),
    "score": ("f4", (), np.nan),
    "median_abs_dz_m": ("f4", (), np.nan),
    "score_fract": ("f4", (), 0.0),
    "flagged": ("bool", (), False),
}
# Root attributes every version-1 file has.
REQUIRED_ATTRS = ("format", "version", "width", "height", "n_frames", "delta_m",
                  "flag_min_score", "flag_min_visib", "refine", "trajectory_sha256",
                  "annotations_sha256", "classes", "labeller_version", "complete")


@dataclass
class LabelsMeta:
    """Root attributes (see docs/labels_h5.md). `inputs` fingerprints what the labels
    were computed from (hashes and settings); a run resumes only when it matches."""

    width: int
    height: int
    n_frames: int
    delta_m: float
    flag_min_score: float
    flag_min_visib: float
    refine: str
    trajectory_sha256: str
    annotations_sha256: str
    classes: list[str]
    occlusion_margin_m: float
    icp_max_trans_m: float
    icp_max_rot_deg: float
    labeller_version: str = ""
    inputs: dict = field(default_factory=dict)


@dataclass
class LabelObject:
    """One annotated object: instance id, class name, model path as stored, T_world_obj."""

    id: int
    class_name: str
    model: str
    T_world_obj: np.ndarray


@dataclass
class FrameRecord:
    """Everything written for one labelled frame (row `index` of /frames). O objects.

    Arrays are (O, ...) in annotation order; `mask_visib_z` is the zlib-compressed
    (H, W) uint16 visible-instance image, `mask_full_z[i]` the zlib-compressed (H, W)
    uint8 object-alone mask of object i, or None when the object renders nowhere.
    """

    index: int
    frame_id: int
    arrays: dict[str, np.ndarray]
    mask_visib_z: bytes
    mask_full_z: list[bytes | None]


def compress_mask(mask: np.ndarray) -> bytes:
    """zlib stream of a C-ordered mask: exactly what HDF5's gzip filter stores for a chunk."""
    return zlib.compress(np.ascontiguousarray(mask).tobytes(), MASK_GZIP_LEVEL)


def flag_rule(score: np.ndarray, score_fract: np.ndarray, min_score: float,
              min_visib: float) -> np.ndarray:
    """Flagged where the score is below `min_score` on an object whose scored part covers at
    least `min_visib` of its full mask (score_fract; see docs/propagate.md for why not
    visib_fract). NaN scores are never flagged."""
    with np.errstate(invalid="ignore"):
        return (score < min_score) & (score_fract >= min_visib) & np.isfinite(score)


class LabelsWriter:
    """Writes a labels file in place; see `create` and `resume`."""

    def __init__(self, f, path: Path):
        self._f = f
        self.path = path
        self.n_rows = int(f["frames/frame_id"].shape[0])
        self.n_objects = int(f["objects/id"].shape[0])

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, meta: LabelsMeta, objects: list[LabelObject],
               frame_ids: list[int], T_world_cam: np.ndarray,
               skipped: list[tuple[int, str]]) -> LabelsWriter:
        """A new file (replacing any at `path`) with every dataset allocated, nothing done."""
        import h5py

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            f = h5py.File(path, "w")
        except BlockingIOError:
            raise FormatError(path, "locked: another run is writing it (wait for it to finish)") from None
        try:
            a = f.attrs
            a["format"] = LABELS_FORMAT
            a["version"] = LABELS_VERSION
            for k in ("width", "height", "n_frames"):
                a[k] = int(getattr(meta, k))
            for k in ("delta_m", "flag_min_score", "flag_min_visib", "occlusion_margin_m",
                      "icp_max_trans_m", "icp_max_rot_deg"):
                a[k] = float(getattr(meta, k))
            a["refine"] = meta.refine
            a["trajectory_sha256"] = meta.trajectory_sha256
            a["annotations_sha256"] = meta.annotations_sha256
            a["classes"] = json.dumps(list(meta.classes))
            a["labeller_version"] = meta.labeller_version
            a["inputs"] = json.dumps(meta.inputs, sort_keys=True)
            a["complete"] = False
            S = _str_dtype()
            n_obj, F = len(objects), len(frame_ids)
            H, W = int(meta.height), int(meta.width)
            g = f.create_group("objects")
            g.create_dataset("id", data=np.array([o.id for o in objects], np.int32))
            g.create_dataset("class", data=[o.class_name for o in objects], dtype=S)
            g.create_dataset("model", data=[o.model for o in objects], dtype=S)
            g.create_dataset("T_world_obj", data=np.array(
                [o.T_world_obj for o in objects], np.float64).reshape(n_obj, 4, 4))
            fr = f.create_group("frames")
            fr.create_dataset("frame_id", data=np.asarray(frame_ids, np.int32))
            fr.create_dataset("T_world_cam", data=np.asarray(T_world_cam, np.float64).reshape(F, 4, 4))
            fr.create_dataset("done", data=np.zeros(F, bool))
            rc = max(1, min(F, ROW_CHUNK))
            for name, (dt, tail, fill) in OBJECT_FIELDS.items():
                fr.create_dataset(name, shape=(F, n_obj, *tail), dtype=dt, chunks=(rc, max(n_obj, 1), *tail),
                                  fillvalue=fill)
            fr.create_dataset("mask_visib", shape=(F, H, W), dtype="<u2", chunks=(1, H, W),
                              compression="gzip", compression_opts=MASK_GZIP_LEVEL, fillvalue=0)
            fr.create_dataset("mask_full", shape=(F, n_obj, H, W), dtype="u1", chunks=(1, 1, H, W),
                              compression="gzip", compression_opts=MASK_GZIP_LEVEL, fillvalue=0)
            sk = f.create_group("skipped")
            sk.create_dataset("frame_id", data=np.array([t for t, _ in skipped], np.int32))
            sk.create_dataset("reason", data=[r for _, r in skipped], dtype=S)
            f.flush()
        except BaseException:
            f.close()
            raise
        return cls(f, path)

    @classmethod
    def resume(cls, path: str | os.PathLike, inputs: dict) -> LabelsWriter | None:
        """Reopen an unfinished file whose inputs fingerprint equals `inputs`; else None.

        An unreadable file (a run killed mid-write) or one computed from other inputs
        is not resumed (the caller starts afresh).
        """
        import h5py

        path = Path(path)
        if not path.is_file():
            return None
        try:
            f = h5py.File(path, "r+")
        except OSError:
            return None
        try:
            a = f.attrs
            ok = (a.get("format") == LABELS_FORMAT and int(a.get("version", -1)) == LABELS_VERSION
                  and json.loads(a.get("inputs", "null")) == json.loads(json.dumps(inputs, sort_keys=True))
                  and "frames/done" in f and "frames/mask_full" in f)
            if ok:
                f["frames/done"][:]  # readable bookkeeping, or start afresh
        except Exception:  # noqa: BLE001 - any damage means: start afresh
            ok = False
        if not ok:
            f.close()
            return None
        f.attrs["complete"] = False  # until finish(), also when resuming a finished copy
        return cls(f, path)

    # -- writing ----------------------------------------------------------------------
    def done(self) -> np.ndarray:
        return np.asarray(self._f["frames/done"][:], bool)

    def write(self, records: list[FrameRecord]) -> None:
        """Write frames (any order); their `done` flags are set after their data, then flushed."""
        if not records:
            return
        fr = self._f["frames"]
        records = sorted(records, key=lambda r: r.index)
        # Consecutive rows are written as one slice per dataset (fewer HDF5 calls).
        runs: list[list[FrameRecord]] = [[records[0]]]
        for r in records[1:]:
            if r.index == runs[-1][-1].index + 1:
                runs[-1].append(r)
            else:
                runs.append([r])
        for run in runs:
            lo, hi = run[0].index, run[-1].index + 1
            for name in OBJECT_FIELDS:
                if name == "flagged":
                    continue  # decided in finish() from the thresholds
                fr[name][lo:hi] = np.stack([r.arrays[name] for r in run])
        mv, mf = fr["mask_visib"].id, fr["mask_full"].id
        for r in records:
            mv.write_direct_chunk((r.index, 0, 0), r.mask_visib_z)
            for i, z in enumerate(r.mask_full_z):
                if z is not None:
                    mf.write_direct_chunk((r.index, i, 0, 0), z)
        self._f.flush()
        done = fr["done"]
        for run in runs:
            done[run[0].index:run[-1].index + 1] = True
        self._f.flush()

    def finish(self, flag_min_score: float, flag_min_visib: float) -> None:
        """Decide the flags from the scores, mark the file complete."""
        fr = self._f["frames"]
        if self.n_rows and not self.done().all():
            raise RuntimeError(f"{self.path}: finish() with frames still to do")
        a = self._f.attrs
        a["flag_min_score"] = float(flag_min_score)
        a["flag_min_visib"] = float(flag_min_visib)
        if self.n_rows and self.n_objects:
            fr["flagged"][:] = flag_rule(fr["score"][:], fr["score_fract"][:],
                                         flag_min_score, flag_min_visib)
        a["complete"] = True
        self._f.flush()

    def close(self) -> None:
        if self._f:
            self._f.close()
            self._f = None

    def __enter__(self) -> LabelsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- reading --------------------------------------------------------------------------

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
    """Reader of a labels.h5 file. Small arrays are loaded at open; masks on demand."""

    def __init__(self, path: str | os.PathLike, allow_incomplete: bool = False):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(self.path, "file not found (run `labeller propagate SCENE` first)")
        try:
            self._f = h5py.File(self.path, "r")
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

    def __exit__(self, *exc) -> None:
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
