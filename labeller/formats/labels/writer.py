"""`LabelsWriter`: writes a labels.h5 file in place, resumably (docs/labels_h5.md).

The propagation stage points it at `labels.h5.partial` and renames that at the end;
`/frames/done` is set after each batch of frames, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import FormatError
from labeller.formats.labels.schema import (
    LABELS_FORMAT,
    LABELS_VERSION,
    MASK_GZIP_LEVEL,
    OBJECT_FIELDS,
    ROW_CHUNK,
    FrameRecord,
    LabelObject,
    LabelsMeta,
    flag_rule,
)


def _str_dtype() -> Any:
    import h5py

    return h5py.string_dtype("utf-8")


class LabelsWriter:
    """Writes a labels file in place; see `create` and `resume`."""

    def __init__(self, f: Any, path: Path):
        # f: the open h5py.File (None once closed).
        self._f: Any = f
        self.path = path
        self.n_rows = int(f["frames/frame_id"].shape[0])
        self.n_objects = int(f["objects/id"].shape[0])

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, meta: LabelsMeta, objects: list[LabelObject],
               frame_ids: list[int], T_world_cam: np.ndarray,
               skipped: list[tuple[int, str]]) -> LabelsWriter:
        """A new file (replacing any at `path`) with every dataset allocated, nothing done.

        T_world_cam: (F, 4, 4) camera poses of the F labelled frames (`frame_ids`).
        """
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
        """(F,) bool: which rows of /frames are written."""
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

    def __exit__(self, *exc: object) -> None:
        self.close()
