"""Qt-free helpers of the checks: labeller.annotate.preview and .refine (preview,
staleness, refine arguments) and the DocumentModel's recovery helpers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from labeller.annotate.document import DocumentModel
from labeller.annotate.preview import Preview, compute_preview, read_preview
from labeller.annotate.refine import refine_object
from labeller.formats.annotations import AnnotationDocument
from labeller.propagate import PropagateConfig
from labeller.propagate import run as propagate_run

BOX = 3


def test_preview_next_flagged_and_object_state():
    flagged = np.array([[False, False], [True, False], [False, False], [False, True]])
    score = np.where(flagged, 0.1, 0.9).astype(np.float32)
    pv = Preview([0, 2, 3, 7], [5, 9], score, np.ones_like(score), flagged, "computed")
    assert pv.flagged_frames() == [2, 7]
    assert pv.next_flagged(0) == 2 and pv.next_flagged(2) == 7 and pv.next_flagged(7) is None
    assert pv.next_flagged(7, -1) == 2 and pv.next_flagged(2, -1) is None
    assert pv.object_state(7) == {5: (pytest.approx(0.9), False), 9: (pytest.approx(0.1), True)}
    assert pv.object_state(1) == {}  # no camera pose / no row


def test_read_preview_fresh_stale_and_missing(scene_copy):
    scene = scene_copy()
    m = DocumentModel.open(scene)
    pv, why = read_preview(m.scene.paths.labels, m.posed_objects(), m.trajectory_sha256)
    assert pv is None and "no labels/labels.h5" in why
    propagate_run(PropagateConfig(scene=scene))
    pv, why = read_preview(m.scene.paths.labels, m.posed_objects(), m.trajectory_sha256)
    assert pv is not None and pv.source == "labels.h5" and why == ""
    live = compute_preview(m.scene, m.posed_objects())
    assert pv.frame_ids == live.frame_ids and pv.ids == live.ids
    assert np.array_equal(pv.flagged, live.flagged)  # same scoring as propagate
    assert np.allclose(pv.score, live.score, equal_nan=True, atol=1e-6)
    T = m.pose(BOX)
    T[0, 3] += 0.001
    m.set_pose(BOX, T)
    pv, why = read_preview(m.scene.paths.labels, m.posed_objects(), m.trajectory_sha256)
    assert pv is None and "annotations changed" in why
    pv, why = read_preview(m.scene.paths.labels, m.posed_objects(), "0" * 64)
    assert pv is None and "another trajectory" in why
    m.scene.paths.labels.write_bytes(b"not hdf5")
    pv, why = read_preview(m.scene.paths.labels, m.posed_objects(), m.trajectory_sha256)
    assert pv is None and "labels.h5" in why and "HDF5" in why


def test_compute_preview_cancel_returns_none(scene_copy):
    m = DocumentModel.open(scene_copy())
    calls = []

    def progress(done, total):
        calls.append(done)
        return False

    assert compute_preview(m.scene, m.posed_objects(), progress) is None
    assert calls == [1]


def test_refine_object_bad_source(scene_copy):
    m = DocumentModel.open(scene_copy())
    with pytest.raises(ValueError, match="source must be"):
        refine_object(m.scene, m.posed_objects(), BOX, [0], source="lidar")


def test_refine_of_the_true_pose_keeps_it(scene_copy):
    """At the ground truth there is nothing to gain: the pose stays (no result)."""
    m = DocumentModel.open(scene_copy())
    r = refine_object(m.scene, m.posed_objects(), BOX, [0, 5])
    if r.T_world_obj is not None:  # a tiny better fit is allowed, never a real move
        assert r.moved_m < 5e-4 and r.turned_deg < 0.1 and r.score_after >= r.score_before
    else:  # score_after is then the refused candidate's score: not better
        assert r.score_after <= r.score_before and "pose kept" in r.reason


def test_replace_document_and_autosave_offer(scene_copy):
    scene = scene_copy()
    m = DocumentModel.open(scene)
    events = []
    m.subscribe("object_added", lambda i: events.append(("+", i)))
    m.subscribe("object_removed", lambda i: events.append(("-", i)))
    assert m.autosave_offer() == (None, "")
    doc = m.document()
    doc.object(BOX).T_world_obj[1, 3] += 0.02
    # an autosave equal to what is on disk is not offered
    m.write_autosave()
    assert m.autosave_offer()[0] is None
    doc.write(m.autosave_path)
    st = m.annotations_path.stat()
    os.utime(m.autosave_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    offered, why = m.autosave_offer()
    assert offered is not None and "newer" in why
    m.replace_document(offered)
    assert m.dirty and np.array_equal(m.pose(BOX), doc.object(BOX).T_world_obj)
    assert {e for e in events if e[0] == "-"} == {("-", i) for i in m.object_ids}
    m.save()
    assert not m.autosave_path.exists() and not m.dirty
    assert np.array_equal(AnnotationDocument.read(m.annotations_path).object(BOX).T_world_obj,
                          doc.object(BOX).T_world_obj)
    # an unreadable autosave is never offered
    m.autosave_path.write_text("{")
    assert m.autosave_offer() == (None, "")
    m.discard_autosave()
    m.discard_autosave()  # twice is fine
    assert not m.autosave_path.exists()
