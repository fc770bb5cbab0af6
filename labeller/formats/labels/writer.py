"""`LabelsWriter`: writes a labels.h5 file in place, resumably (docs/labels_h5.md).

The propagation stage points it at `labels.h5.partial` and renames that at the end;
`/frames/done` is set after each batch of frames, so an interrupted run resumes.

HDF5 cannot be trusted after a write that failed half-way (later calls fail or kill the
process), so every write first checks that the file has room for what it adds
(`labeller.core.diskspace.check_room`) and stops with a clean disk error while the file
is still consistent: the frames flushed so far are resumed by the next run. A failure
HDF5 reports anyway comes out as an OSError naming the file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.diskspace import HDF5_OVERHEAD_BYTES, check_room
from labeller.core.errors import FormatError
from labeller.formats.labels.schema import (
    COMPACT_ATTRS,
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

# Bytes of one (frame, object) row over every per-object field.
_ROW_BYTES = sum(int(np.dtype(dt).itemsize * np.prod(tail, dtype=np.int64))
                 for dt, tail, _ in OBJECT_FIELDS.values())
# Room asked for on top of a batch's payload (chunk index and metadata updates).
_BATCH_OVERHEAD_BYTES = 64 * 1024


def create_bytes(n_frames: int, n_objects: int, n_skipped: int) -> int:
    """What a new file needs before any frame is written (header, small arrays), in bytes."""
    return (HDF5_OVERHEAD_BYTES + n_frames * (16 * 8 + 4 + 1) + n_objects * (16 * 8 + 4 + 512)
            + n_frames * n_objects * _ROW_BYTES + n_skipped * 128)


def _hdf5_disk_error(exc: BaseException, path: Path) -> OSError | None:
    """The disk error inside an HDF5 failure message ("errno = 28"), naming `path`."""
    m = re.search(r"errno = (\d+)", str(exc))
    if m is None:
        return None
    code = int(m[1])
    return OSError(code, os.strerror(code), str(path))


def _numeric(group: Any, name: str, data: np.ndarray) -> None:
    """A small numeric dataset, chunked with the Fletcher32 checksum (when not empty)."""
    data = np.asarray(data)
    if data.size == 0:
        group.create_dataset(name, data=data)
    else:
        group.create_dataset(name, data=data, chunks=data.shape, fletcher32=True)


def _text(value: str) -> np.bytes_:
    """A string attribute as fixed-length UTF-8, stored in its object's checksummed header
    (a variable-length one goes to HDF5's global heap: no checksum, and damage there can
    make HDF5 loop forever)."""
    return np.bytes_(value.encode())


def _strings(group: Any, name: str, values: list[str]) -> None:
    """A string dataset as fixed-length UTF-8 with the Fletcher32 checksum (no filter
    applies to variable-length strings, and they live in the global heap)."""
    raw = [v.encode() for v in values]
    _numeric(group, name, np.array(raw, dtype=f"S{max([1, *map(len, raw)])}"))


def _new_file(path: Path) -> Any:
    """A new HDF5 file (truncating any at `path`) in the 1.10 format, with every attribute
    kept in its object's (checksummed) header: HDF5 stores more than 8 attributes in a
    separate heap without checksums by default, whose damage it may loop on forever.
    No creation times are recorded, so the same labels give the same bytes (exports list
    labels.h5 hashes; a rerun on another machine must not change them)."""
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_attr_phase_change(COMPACT_ATTRS, COMPACT_ATTRS - 1)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def _close_quietly(f: Any) -> None:
    """Close an HDF5 file after a failure; a second failure would only hide the first."""
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the first error is the one reported
        pass


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

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        check_room(path, create_bytes(len(frame_ids), len(objects), len(skipped)), size_now=0)
        try:
            f = _new_file(path)
        except BlockingIOError:
            raise FormatError(path, "locked: another run is writing it (wait for it to finish)") from None
        try:
            a = f.attrs
            a["format"] = _text(LABELS_FORMAT)
            a["version"] = LABELS_VERSION
            for k in ("width", "height", "n_frames"):
                a[k] = int(getattr(meta, k))
            for k in ("delta_m", "flag_min_score", "flag_min_visib", "occlusion_margin_m",
                      "icp_max_trans_m", "icp_max_rot_deg"):
                a[k] = float(getattr(meta, k))
            a["refine"] = _text(meta.refine)
            a["trajectory_sha256"] = _text(meta.trajectory_sha256)
            a["annotations_sha256"] = _text(meta.annotations_sha256)
            a["classes"] = _text(json.dumps(list(meta.classes)))
            a["labeller_version"] = _text(meta.labeller_version)
            a["inputs"] = _text(json.dumps(meta.inputs, sort_keys=True))
            a["complete"] = False
            n_obj, F = len(objects), len(frame_ids)
            H, W = int(meta.height), int(meta.width)
            g = f.create_group("objects")
            _numeric(g, "id", np.array([o.id for o in objects], np.int32))
            _strings(g, "class", [o.class_name for o in objects])
            _strings(g, "model", [o.model for o in objects])
            _numeric(g, "T_world_obj", np.array(
                [o.T_world_obj for o in objects], np.float64).reshape(n_obj, 4, 4))
            fr = f.create_group("frames")
            _numeric(fr, "frame_id", np.asarray(frame_ids, np.int32))
            _numeric(fr, "T_world_cam", np.asarray(T_world_cam, np.float64).reshape(F, 4, 4))
            _numeric(fr, "done", np.zeros(F, bool))
            rc = max(1, min(F, ROW_CHUNK))
            for name, (dt, tail, fill) in OBJECT_FIELDS.items():
                if F * n_obj == 0:
                    fr.create_dataset(name, shape=(F, n_obj, *tail), dtype=dt)
                    continue
                fr.create_dataset(name, shape=(F, n_obj, *tail), dtype=dt, chunks=(rc, n_obj, *tail),
                                  fillvalue=fill, fletcher32=True)
            fr.create_dataset("mask_visib", shape=(F, H, W), dtype="<u2", chunks=(1, H, W),
                              compression="gzip", compression_opts=MASK_GZIP_LEVEL, fillvalue=0)
            fr.create_dataset("mask_full", shape=(F, n_obj, H, W), dtype="u1", chunks=(1, 1, H, W),
                              compression="gzip", compression_opts=MASK_GZIP_LEVEL, fillvalue=0)
            sk = f.create_group("skipped")
            _numeric(sk, "frame_id", np.array([t for t, _ in skipped], np.int32))
            _strings(sk, "reason", [r for _, r in skipped])
            f.flush()
        except BaseException as exc:
            _close_quietly(f)
            disk = _hdf5_disk_error(exc, path)
            if disk is not None:
                raise disk from None
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
            fmt = a.get("format")
            ok = ((fmt.decode() if isinstance(fmt, bytes) else fmt) == LABELS_FORMAT and int(a.get("version", -1)) == LABELS_VERSION
                  and json.loads(a.get("inputs", "null")) == json.loads(json.dumps(inputs, sort_keys=True))
                  and "frames/done" in f and "frames/mask_full" in f)
            if ok:
                f["frames/done"][:]  # readable bookkeeping, or start afresh
        except Exception:  # noqa: BLE001 - any damage means: start afresh
            ok = False
        if not ok:
            f.close()
            return None
        try:
            f.attrs["complete"] = False  # until finish(), also when resuming a finished copy
        except Exception:  # noqa: BLE001 - not writable as it is: start afresh
            _close_quietly(f)
            return None
        return cls(f, path)

    # -- writing ----------------------------------------------------------------------
    def done(self) -> np.ndarray:
        """(F,) bool: which rows of /frames are written."""
        return np.asarray(self._f["frames/done"][:], bool)

    def write(self, records: list[FrameRecord]) -> None:
        """Write frames (any order); their `done` flags are set after their data, then flushed."""
        if not records:
            return
        need = _BATCH_OVERHEAD_BYTES + sum(
            len(r.mask_visib_z) + sum(len(z) for z in r.mask_full_z if z is not None)
            + self.n_objects * _ROW_BYTES for r in records)
        check_room(self.path, need)
        try:
            self._write(records)
        except (OSError, RuntimeError) as exc:
            disk = _hdf5_disk_error(exc, self.path)
            if disk is None:
                raise
            raise disk from None

    def _write(self, records: list[FrameRecord]) -> None:
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
        check_room(self.path, _BATCH_OVERHEAD_BYTES + self.n_rows * self.n_objects)
        a = self._f.attrs
        a["flag_min_score"] = float(flag_min_score)
        a["flag_min_visib"] = float(flag_min_visib)
        if self.n_rows and self.n_objects:
            fr["flagged"][:] = flag_rule(fr["score"][:], fr["score_fract"][:],
                                         flag_min_score, flag_min_visib, fr["colour_state"][:])
        a["complete"] = True
        self._f.flush()

    def close(self) -> None:
        """Close the file. After a failed write, use `abandon` instead."""
        if self._f:
            f, self._f = self._f, None
            f.close()

    def abandon(self) -> None:
        """Close after a failure: errors while closing are dropped (the first one counts)."""
        if self._f:
            f, self._f = self._f, None
            _close_quietly(f)

    def __enter__(self) -> LabelsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
