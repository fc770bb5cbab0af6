"""Bad input in the GUI: an invalid scene, a model that fails to load, a corrupt
annotations.json, a failed save. Each shows a message (captured, never blocking), keeps
the app up and never overwrites the user's files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.formats.annotations import AnnotationDocument
from tests.gui.conftest import wait_render


def test_invalid_scene_lists_the_validator_findings_and_app_stays_up(qtbot, make_window,
                                                                     scene_copy, dialogs):
    good = scene_copy(name="good")
    bad = scene_copy(name="bad")
    (bad / "camera.json").unlink()
    (bad / "depth" / "000004.png").unlink()
    w = make_window()
    assert w.open_scene(good)
    assert not w.open_scene(bad)
    assert dialogs.kinds() == ["critical"]
    _, title, text = dialogs.calls[0]
    assert title == "Cannot open scene"
    assert "camera.json: file not found" in text
    assert "000004.png: missing depth frame 4" in text
    assert w.isVisible()
    assert w.model is not None and w.model.root == good  # the open scene is kept
    # a path that is not a scene at all
    assert not w.open_scene(bad / "nope")
    assert "not a directory" in dialogs.calls[-1][2]
    assert w.isVisible()


def test_invalid_scene_from_the_start_leaves_an_empty_window(qtbot, make_window, tmp_path,
                                                             dialogs):
    empty = tmp_path / "empty"
    empty.mkdir()
    w = make_window()
    assert not w.open_scene(empty)
    assert w.model is None and w.isVisible() and w.placeholder.isVisible()
    text = dialogs.calls[0][2]
    assert "camera.json: file not found" in text and "rgb: missing" in text


def test_model_that_fails_to_load_is_refused_with_a_message(qtbot, make_window, scene_copy,
                                                           dialogs):
    scene = scene_copy(annotations=False)
    (scene / "models" / "mug" / "mug.ply").write_bytes(b"ply\nthis is not a mesh\n")
    w = make_window()
    assert w.open_scene(scene)
    assert w.editor.add_object("mug") is None
    assert dialogs.kinds() == ["warning"]
    assert "mug.ply" in dialogs.calls[0][2]
    assert w.model.object_ids == [] and w.undo_stack.count() == 0
    assert not w.model.dirty
    # a model in millimetres is refused too, naming the problem
    ply = scene / "models" / "cracker_box" / "cracker_box.ply"
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(ply))
    mesh.scale(1000.0, center=(0, 0, 0))
    o3d.io.write_triangle_mesh(str(ply), mesh)
    assert w.editor.add_object("cracker_box") is None
    assert "metres" in dialogs.calls[-1][2]


def test_annotations_whose_model_is_missing_open_and_keep_the_object(qtbot, make_window,
                                                                    scene_copy, dialogs):
    scene = scene_copy()
    doc = AnnotationDocument.read(scene / "annotations.json")
    victim = doc.objects[0]
    (scene / victim.model).unlink()
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    assert dialogs.kinds() == ["warning"]
    assert dialogs.calls[0][1] == "Models not loaded"
    assert victim.model in dialogs.calls[0][2]
    assert victim.id in w.model.object_ids  # kept, not drawn
    assert victim.id not in set(np.unique(w.view._inst).tolist())
    assert "model not loaded" in w.panel.list.item(0).text()
    # saving keeps it
    w.select(doc.objects[1].id)
    w.editor.nudge(0, +1)
    assert w.save()
    again = AnnotationDocument.read(scene / "annotations.json")
    assert np.array_equal(again.object(victim.id).T_world_obj, victim.T_world_obj)


def test_corrupt_annotations_message_and_nothing_overwritten(qtbot, make_window, scene_copy,
                                                             dialogs):
    scene = scene_copy()
    bad = b'{"format": "labeller-annotations", "version": 1, "objects": [ {"id": 1,'
    (scene / "annotations.json").write_bytes(bad)
    w = make_window()
    assert w.open_scene(scene)
    assert dialogs.kinds() == ["warning"]
    assert dialogs.calls[0][1] == "Annotations not loaded"
    assert "annotations.json: not valid JSON" in dialogs.calls[0][2]
    assert w.model.object_ids == [] and not w.model.dirty
    w.close()  # clean: closes without asking and writes nothing
    assert (scene / "annotations.json").read_bytes() == bad
    # work done after such an opening is saved, and the unreadable file is kept aside
    w2 = make_window()
    assert w2.open_scene(scene)
    assert w2.editor.add_object("mug") is not None
    assert w2.save()
    kept = list(scene.glob("annotations.unreadable-*.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == bad
    assert AnnotationDocument.read(scene / "annotations.json").objects[0].class_name == "mug"


def test_failed_save_shows_error_and_keeps_previous_file(qtbot, make_window, scene_copy,
                                                         dialogs, monkeypatch):
    import labeller.core.fileio

    scene = scene_copy()
    before = (scene / "annotations.json").read_bytes()
    w = make_window()
    assert w.open_scene(scene)
    w.select(w.model.object_ids[0])
    w.editor.nudge(2, +1, coarse=True)

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(labeller.core.fileio.os, "replace", no_space)
    assert not w.save()
    assert dialogs.kinds() == ["critical"]
    assert dialogs.calls[0][1] == "Save failed"
    assert "annotations.json" in dialogs.calls[0][2]
    assert "No space left on device" in dialogs.calls[0][2]
    assert (scene / "annotations.json").read_bytes() == before
    assert not [p for p in scene.iterdir() if ".tmp" in p.name]
    assert w.model.dirty and w.isWindowModified()
    monkeypatch.undo()
    assert w.save()
    assert not w.isWindowModified()


def test_save_refuses_when_trajectory_changed_on_disk(qtbot, make_window, scene_copy, dialogs):
    scene = scene_copy()
    before = (scene / "annotations.json").read_bytes()
    w = make_window()
    assert w.open_scene(scene)
    w.select(w.model.object_ids[0])
    w.editor.nudge(0, -1)
    traj = scene / "trajectory.txt"
    traj.write_text(traj.read_text().replace("\n1 ", "\n#1 ", 1))  # drop a frame's pose
    assert not w.save()
    assert "trajectory.txt: changed on disk" in dialogs.calls[-1][2]
    assert (scene / "annotations.json").read_bytes() == before


def test_cli_bad_models_dir_exits_2(tmp_path, capsys):
    rc = cli_main(["gui", str(tmp_path), "--models", str(tmp_path / "nope")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "labeller gui: error:" in err and "nope: models library not found" in err


def test_cli_without_display_exits_2(monkeypatch, tmp_path, capsys):
    for k in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(k, raising=False)
    rc = cli_main(["gui", str(tmp_path)])
    assert rc == 2
    assert "DISPLAY: not set" in capsys.readouterr().err


@pytest.mark.parametrize("content,needle", [
    ({"format": "labeller-annotations", "version": 9, "objects": []}, "version"),
    ({"format": "labeller-annotations", "version": 1, "objects": [], "extra": 1}, "extra"),
])
def test_annotations_rejected_by_the_codec_are_reported(qtbot, make_window, scene_copy, dialogs,
                                                        content, needle):
    scene = scene_copy()
    text = json.dumps(content)
    (scene / "annotations.json").write_text(text)
    w = make_window()
    assert w.open_scene(scene)
    assert needle in dialogs.calls[0][2]
    assert (scene / "annotations.json").read_text() == text


def test_cli_missing_x11_libraries_exit_2_naming_the_packages(monkeypatch, tmp_path, capsys):
    import ctypes.util

    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda name: None if name == "xcb-icccm" else real(name))
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    rc = cli_main(["gui", str(tmp_path)])
    assert rc == 2
    assert "install libxcb-icccm4" in capsys.readouterr().err


def test_cli_refuses_pyside6_6_12_0_naming_the_fix(monkeypatch, tmp_path, capsys):
    import PySide6

    monkeypatch.setattr(PySide6, "__version__", "6.12.0")
    rc = cli_main(["gui", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert err.startswith("labeller gui: error: PySide6 6.12.0: ")
    assert "pip install 'PySide6-Essentials!=6.12.0'" in err
    monkeypatch.setattr(PySide6, "__version__", "6.11.3")
    from labeller.gui.qt_version import pyside6_problem

    assert pyside6_problem() is None
