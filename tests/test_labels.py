"""labels.h5 codec: writer/reader round trip, validation, resume bookkeeping, the CLI."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.errors import FormatError
from labeller.formats.labels import (
    LABELS_FORMAT,
    LABELS_VERSION,
    OBJECT_FIELDS,
    FrameRecord,
    LabelObject,
    Labels,
    LabelsMeta,
    LabelsWriter,
    compress_mask,
    flag_rule,
)

H, W = 12, 16
IDS = (3, 7)


def meta(**kw) -> LabelsMeta:
    d = dict(width=W, height=H, n_frames=5, delta_m=0.015, flag_min_score=0.6,
             flag_min_visib=0.2, refine="none", trajectory_sha256="a" * 64,
             annotations_sha256="b" * 64, classes=["mug", "sugar_box"], occlusion_margin_m=0.05,
             icp_max_trans_m=0.02, icp_max_rot_deg=5.0, labeller_version="test",
             inputs={"x": 1})
    d.update(kw)
    return LabelsMeta(**d)


OBJECTS = [LabelObject(3, "mug", "models/mug.ply", np.eye(4)),
           LabelObject(7, "sugar_box", "models/sugar.ply", np.diag([1.0, -1.0, -1.0, 1.0]))]


def record(index: int, frame_id: int, score=(0.9, 0.3), score_fract=(0.8, 0.5)) -> FrameRecord:
    """A frame whose object 0 covers a 3x4 block and object 1 a 2x2 block (partly hidden)."""
    arrays = {name: np.full((2, *tail), fill, dtype=dt) for name, (dt, tail, fill) in OBJECT_FIELDS.items()}
    arrays["T_cam_obj"][:] = np.eye(4)
    arrays["T_cam_obj"][:, 2, 3] = 0.5 + frame_id
    arrays["score"][:] = score
    arrays["score_fract"][:] = score_fract
    arrays["px_count_all"][:] = (12, 4)
    arrays["bbox_obj"][:] = [[2 + frame_id, 1, 4, 3], [9, 9, 2, 2]]
    mv = np.zeros((H, W), np.uint16)
    mv[1:4, 2 + frame_id:6 + frame_id] = 3
    mv[9, 9:11] = 7
    full0 = (mv == 3).astype(np.uint8)
    full1 = np.zeros((H, W), np.uint8)
    full1[9:11, 9:11] = 1
    return FrameRecord(index, frame_id, arrays, compress_mask(mv), [compress_mask(full0), compress_mask(full1)])


def write_file(path: Path, frame_ids=(0, 1, 3), skipped=((2, "no camera pose"), (4, "no camera pose")),
               finish=True) -> None:
    Twc = np.stack([np.eye(4)] * len(frame_ids))
    with LabelsWriter.create(path, meta(), OBJECTS, list(frame_ids), Twc, list(skipped)) as w:
        # out of order, in two batches: rows are placed by index
        recs = [record(r, t) for r, t in enumerate(frame_ids)]
        w.write(recs[2:])
        assert list(w.done()) == [False, False, True]
        w.write(recs[:2])
        if finish:
            w.finish(0.6, 0.2)


def test_round_trip(tmp_path):
    p = tmp_path / "labels.h5"
    write_file(p)
    with Labels.open(p) as L:
        assert L.complete and L.refine == "none" and L.classes == ["mug", "sugar_box"]
        assert list(L.frame_ids) == [0, 1, 3] and L.n_frames == 5 and (L.width, L.height) == (W, H)
        assert [(o.id, o.class_name, o.model) for o in L.objects] == [
            (3, "mug", "models/mug.ply"), (7, "sugar_box", "models/sugar.ply")]
        np.testing.assert_array_equal(L.objects[1].T_world_obj, np.diag([1.0, -1.0, -1.0, 1.0]))
        assert L.skipped == {2: "no camera pose", 4: "no camera pose"}
        f = L.frame(3)
        assert f.frame_id == 3 and f.mask_visib.dtype == np.uint16 and f.mask_visib.shape == (H, W)
        assert (f.mask_visib == 3).sum() == 12 and (f.mask_visib == 7).sum() == 2
        assert f.objects[0].T_cam_obj[2, 3] == 3.5 and f.objects[0].bbox_obj == [5, 1, 4, 3]
        assert f.objects[0].T_cam_obj_refined is None and not f.objects[0].refined
        # flags decided at finish(): score < 0.6 with score_fract >= 0.2
        assert [o.flagged for o in f.objects] == [False, True]
        full = f.mask_full(1)
        assert full.dtype == bool and full.sum() == 4 and full[9:11, 9:11].all()
        assert np.array_equal(f.visible_mask(0), f.mask_visib == 3)
        with pytest.raises(FormatError, match=r"labels.h5: frame 2 has no labels: no camera pose"):
            L.frame(2)
        with pytest.raises(FormatError, match=r"frame 9 is not in this file \(frames 0..4\)"):
            L.frame(9)


def test_masks_are_stored_chunked_and_compressed(tmp_path):
    p = tmp_path / "labels.h5"
    write_file(p)
    with h5py.File(p, "r") as f:
        mv = f["frames/mask_visib"]
        assert mv.chunks == (1, H, W) and mv.compression == "gzip"
        assert f["frames/mask_full"].chunks == (1, 1, H, W)
        # text attributes are fixed-length UTF-8 (kept in the checksummed object header)
        assert f.attrs["format"] == LABELS_FORMAT.encode() and f.attrs["version"] == LABELS_VERSION


def test_flag_rule():
    s = np.array([0.5, 0.5, 0.7, np.nan, 0.1], np.float32)
    fr = np.array([0.3, 0.1, 0.9, 0.9, 0.2], np.float32)
    assert flag_rule(s, fr, 0.6, 0.2).tolist() == [True, False, False, False, True]


def test_reader_rejects_other_files(tmp_path):
    with pytest.raises(FormatError, match="file not found"):
        Labels.open(tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match=r"bad.h5: not a readable HDF5 file"):
        Labels.open(bad)
    p = tmp_path / "labels.h5"
    write_file(p)
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = LABELS_VERSION + 1
    with pytest.raises(FormatError, match=rf"labels.h5: version: {LABELS_VERSION + 1} is newer"):
        Labels.open(p)
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = LABELS_VERSION
        f.attrs["format"] = "something-else"
    with pytest.raises(FormatError, match="labels.h5: format: expected 'labeller-labels'"):
        Labels.open(p)


def test_unfinished_file_is_refused_unless_asked(tmp_path):
    p = tmp_path / "labels.h5.partial"
    write_file(p, finish=False)
    with pytest.raises(FormatError, match="complete: the run that wrote this file did not finish"):
        Labels.open(p)
    with Labels.open(p, allow_incomplete=True) as L:
        assert not L.complete and L.frame(1).objects[0].T_cam_obj[2, 3] == 1.5


def test_resume_only_with_the_same_inputs(tmp_path):
    p = tmp_path / "labels.h5.partial"
    Twc = np.stack([np.eye(4)] * 3)
    with LabelsWriter.create(p, meta(), OBJECTS, [0, 1, 2], Twc, []) as w:
        w.write([record(1, 1)])
    assert LabelsWriter.resume(p, {"x": 2}) is None
    with LabelsWriter.resume(p, {"x": 1}) as w:
        assert list(w.done()) == [False, True, False]
        with pytest.raises(RuntimeError, match="frames still to do"):
            w.finish(0.6, 0.2)
        w.write([record(0, 0), record(2, 2)])
        w.finish(0.6, 0.2)
    assert Labels.open(p).complete
    p.write_bytes(b"\x89HDF garbage from a killed run")
    assert LabelsWriter.resume(p, {"x": 1}) is None


def test_labels_cli_missing_file(tmp_path, capsys):
    assert cli_main(["labels", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'labels' / 'labels.h5'}: file not found" in err


def test_labels_cli_prints_a_file(tmp_path, capsys):
    p = tmp_path / "labels.h5"
    write_file(p)
    assert cli_main(["labels", str(p)]) == 0
    out = capsys.readouterr().out
    assert "3 labelled of 5 frames" in out and "flagged frames (3): 0, 1, 3" in out
    assert "skipped frames (2): 2: no camera pose; 4: no camera pose" in out
    assert cli_main(["labels", str(p), "--frame", "1"]) == 0
    out = capsys.readouterr().out
    assert "#7 sugar_box  FLAGGED" in out and "mask_visib pixels: #3: 12, #7: 2" in out
    assert cli_main(["labels", str(p), "--frame", "2"]) == 2
    assert "frame 2 has no labels: no camera pose" in capsys.readouterr().err
