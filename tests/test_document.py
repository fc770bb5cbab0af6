"""The Qt-free document model the GUI edits: events, dirty tracking, save, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from labeller.annotate.class_models import available_classes
from labeller.annotate.document import DocumentModel
from labeller.core.errors import BadInput, ModelError, SceneError
from labeller.core.fileio import sha256_file
from labeller.core.poses import make_pose
from labeller.formats.annotations import AnnotationDocument
from labeller.synth import SynthConfig, run
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    out = tmp_path_factory.mktemp("doc") / "scene"
    run(SynthConfig(out, frames=4, seed=5, width=160, height=120, n_objects=3,
                    with_annotations=True))
    return out


@pytest.fixture
def scene(master, tmp_path):
    dst = tmp_path / "scene"
    shutil.copytree(master, dst)
    return dst


class Recorder:
    def __init__(self, model: DocumentModel):
        self.events: list[tuple] = []
        self.unsub = [model.subscribe(e, lambda *a, e=e: self.events.append((e, *a)))
                      for e in ("object_added", "object_removed", "pose_changed",
                                "keyframes_changed", "visibility_changed", "classes_changed",
                                "trajectory_changed", "dirty_changed", "saved")]


def test_events_and_dirty_tracking(scene):
    m = DocumentModel.open(scene)
    rec = Recorder(m)
    ids = m.object_ids
    assert len(ids) == 3 and not m.dirty
    T0 = m.pose(ids[0])
    T1 = T0.copy()
    T1[0, 3] += 0.01
    m.set_pose(ids[0], T1)
    assert rec.events == [("pose_changed", ids[0]), ("dirty_changed", True)]
    assert m.dirty
    m.set_pose(ids[0], T0)  # back to the saved state: clean again
    assert rec.events[-2:] == [("pose_changed", ids[0]), ("dirty_changed", False)]
    assert not m.dirty and np.array_equal(m.pose(ids[0]), T0)
    n = len(rec.events)
    m.set_pose(ids[0], T0)  # no change, no event
    assert len(rec.events) == n
    m.set_visible(ids[1], False)
    assert rec.events[-1] == ("visibility_changed", ids[1]) and not m.dirty
    assert not m.is_visible(ids[1])
    m.set_keyframes(ids[2], [3, 1, 1])
    assert m.keyframes(ids[2]) == [1, 3]
    assert ("keyframes_changed", ids[2]) in rec.events and m.dirty
    with pytest.raises(ValueError, match="keyframes outside"):
        m.set_keyframes(ids[2], [99])
    o, i = m.remove_object(ids[1])
    assert rec.events[-1] == ("object_removed", ids[1]) and i == 1
    m.insert_object(o, i)
    assert m.object_ids == ids and rec.events[-1][0] == "object_added"
    for u in rec.unsub:
        u()
    m.set_keyframes(ids[2], [])
    assert rec.events[-1][0] == "object_added"  # unsubscribed: nothing recorded


def test_accessors_return_copies(scene):
    m = DocumentModel.open(scene)
    i = m.object_ids[0]
    T = m.pose(i)
    T[0, 3] = 99.0
    m.object(i).T_world_obj[1, 3] = 99.0
    m.objects()[0].keyframes.append(2)
    assert m.pose(i)[0, 3] != 99.0 and m.pose(i)[1, 3] != 99.0
    assert m.keyframes(i) == [] and not m.dirty


def test_invalid_pose_is_refused(scene):
    m = DocumentModel.open(scene)
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="not rigid"):
        m.set_pose(m.object_ids[0], bad)


def test_new_class_is_added_to_classes(scene):
    m = DocumentModel.open(scene)
    shutil.copytree(scene / "models" / m.object(m.object_ids[0]).class_name,
                    scene / "models" / "widget")
    src = next((scene / "models" / "widget").iterdir())
    src.rename(src.with_name("widget.ply"))
    rec = Recorder(m)
    o = m.new_object("widget", make_pose(np.eye(3), [0, 0, 0.5]))
    assert o.model == "models/widget/widget.ply" and o.id == m.next_id()
    m.insert_object(o)
    assert m.classes[-1] == "widget" and ("classes_changed",) in rec.events
    with pytest.raises(ValueError, match="classes in use"):
        m.set_classes(m.classes[:-1])


def test_save_stamps_trajectory_sha_and_round_trips(scene):
    m = DocumentModel.open(scene)
    rec = Recorder(m)
    i = m.object_ids[0]
    T = m.pose(i)
    T[:3, 3] += [0.001, -0.002, 0.003]
    m.set_pose(i, T)
    path = m.save()
    assert path == scene / "annotations.json"
    assert not m.dirty and ("saved", path) in rec.events
    d = json.loads(path.read_text())
    assert d["trajectory_sha256"] == sha256_file(scene / "trajectory.txt")
    again = DocumentModel.open(scene)
    assert np.array_equal(again.pose(i), T)
    assert again.document().to_dict() == m.document().to_dict()


def test_failed_save_leaves_previous_file_and_stays_dirty(scene, monkeypatch):
    import labeller.core.fileio

    m = DocumentModel.open(scene)
    before = (scene / "annotations.json").read_bytes()
    m.set_keyframes(m.object_ids[0], [0])

    def fail(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(labeller.core.fileio.os, "replace", fail)
    with pytest.raises(BadInput, match="annotations.json: could not save .Permission denied"):
        m.save()
    assert (scene / "annotations.json").read_bytes() == before
    assert m.dirty


def test_save_refuses_if_trajectory_changed_on_disk(scene):
    m = DocumentModel.open(scene)
    (scene / "trajectory.txt").write_text((scene / "gt" / "trajectory.txt").read_text() + "\n")
    with pytest.raises(BadInput, match="trajectory.txt: changed on disk"):
        m.save()
    m.reload_trajectory()  # e.g. after tracking from the GUI
    m.save()
    assert json.loads((scene / "annotations.json").read_text())["trajectory_sha256"] == \
        sha256_file(scene / "trajectory.txt")


def test_corrupt_annotations_open_empty_and_are_kept(scene):
    bad = b"{not json"
    (scene / "annotations.json").write_bytes(bad)
    m = DocumentModel.open(scene)
    assert m.object_ids == [] and not m.dirty
    assert "annotations.json: not valid JSON" in str(m.annotations_error)
    assert (scene / "annotations.json").read_bytes() == bad
    m.save()
    kept = list(scene.glob("annotations.unreadable-*.json"))
    assert [k.read_bytes() for k in kept] == [bad]
    assert AnnotationDocument.read(scene / "annotations.json").objects == []
    assert m.annotations_error is None


def test_invalid_scene_raises_scene_error(scene):
    (scene / "camera.json").unlink()
    with pytest.raises(SceneError, match="camera.json: file not found"):
        DocumentModel.open(scene)


def test_bad_trajectory_raises_at_open(scene):
    (scene / "trajectory.txt").write_text("0 0 0 0 0 0 0 2\n")
    with pytest.raises(SceneError, match="trajectory.txt:1: frame 0: pose is not rigid"):
        DocumentModel.open(scene)


def test_no_trajectory_and_untracked_frames(scene):
    lines = (scene / "trajectory.txt").read_text().splitlines()
    (scene / "trajectory.txt").write_text("\n".join(x for x in lines if not x.startswith("2 ")))
    m = DocumentModel.open(scene)
    assert m.T_world_cam(2) is None and m.T_world_cam(1) is not None
    assert m.trajectory_mismatch  # the annotations were saved against the full trajectory
    (scene / "trajectory.txt").unlink()
    m = DocumentModel.open(scene)
    assert not m.has_trajectory and m.T_world_cam(0) is None


def test_model_errors_are_collected_not_raised(scene):
    m = DocumentModel.open(scene)
    o = m.object(m.object_ids[0])
    (scene / o.model).write_bytes(b"garbage")
    m2 = DocumentModel.open(scene)
    assert m2.object_model(o.id) is None
    errs = m2.model_errors()
    assert len(errs) == 1 and o.model.split("/")[-1] in errs[0] and f"object {o.id}" in errs[0]
    with pytest.raises(ModelError):
        m2.new_object(o.class_name, np.eye(4))


def test_available_classes_scene_and_library(scene, shared_data):
    av = available_classes(scene, shared_data / "ycb_models")
    m = DocumentModel.open(scene)
    for o in m.objects():
        assert av[o.class_name].source == "scene"
        assert av[o.class_name].stored == o.model
    lib = {n for n, c in av.items() if c.source == "library"}
    assert "mug" in av and "master_chef_can" in av
    assert av["large_marker"].path.name == "textured.obj" or "large_marker" not in lib
    assert len(av) == 10


def test_autosave_side_file(scene):
    m = DocumentModel.open(scene)
    m.set_keyframes(m.object_ids[0], [1])
    p = m.write_autosave()
    assert p.name == ".annotations.autosave.json"
    assert AnnotationDocument.read(p).object(m.object_ids[0]).keyframes == [1]
    assert m.dirty  # an autosave is not a save


def test_core_never_imports_qt():
    """The document and overlay modules load without PySide6 (napari-style layering)."""
    code = ("import sys; sys.modules['PySide6'] = None; "
            "import labeller.annotate.document, labeller.geometry.overlay; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lint = ROOT / ".venv" / "bin" / "lint-imports"
    if lint.exists():
        res = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
        assert res.returncode == 0 and " 0 broken" in res.stdout, res.stdout
