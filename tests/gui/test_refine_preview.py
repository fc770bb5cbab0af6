"""Refine in the window (ICP, score before/after, one undo step) and the propagation preview
(flagged frames of a scene whose annotation is off by 2 cm, labels.h5 vs on the fly)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from labeller.annotate.keyframes import suggest_keyframes
from labeller.annotate.preview import compute_preview
from labeller.core.poses import rotation_error_deg, translation_error_m
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.scene import Scene
from labeller.propagate import PropagateConfig
from labeller.propagate import run as propagate_run
from tests.gui.conftest import wait_render

BOX = 3  # the cracker box of the seed-3 synthetic scene (non-symmetric, well visible)


def _offset(T: np.ndarray, d_world, deg: float = 0.0, axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    from labeller.core.poses import axis_angle_to_matrix

    out = np.array(T, dtype=np.float64)
    out[:3, 3] += np.asarray(d_world, float)
    out[:3, :3] = out[:3, :3] @ axis_angle_to_matrix(np.asarray(axis, float), np.radians(deg))
    return out


def _write_pose(scene_dir, obj_id: int, T: np.ndarray) -> None:
    doc = AnnotationDocument.read(scene_dir / "annotations.json")
    doc.object(obj_id).T_world_obj = T
    doc.write(scene_dir / "annotations.json")


def test_refine_raises_score_and_undo_restores_exact_pose(qtbot, make_window, scene_copy,
                                                          dialogs):
    scene = scene_copy()
    gt = AnnotationDocument.read(scene / "annotations.json").object(BOX).T_world_obj
    T_bad = _offset(gt, (0.008, -0.006, 0.005), deg=4.0)
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    w.model.set_pose(BOX, T_bad)  # as if the user had placed it roughly
    w.select(BOX)
    before = w.refiner.current_scores()[BOX]
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_R)  # the Refine action (ICP on this frame's depth)
    assert not w.refiner.idle()  # runs in the background: the UI stays responsive
    qtbot.waitUntil(lambda: w.refiner.idle() and w.refiner.last_result is not None, timeout=60000)
    res = w.refiner.last_result
    assert res is not None and res.T_world_obj is not None, res
    assert res.score_after > res.score_before
    assert abs(res.score_before - before) < 1e-9
    assert w.refiner.current_scores()[BOX] > before
    T_ref = w.model.pose(BOX)
    assert translation_error_m(T_ref, gt) < 0.003 < translation_error_m(T_bad, gt)
    assert rotation_error_deg(T_ref, gt) < 1.0
    assert "→" in w.status_line.notice_text
    assert w.undo_stack.count() == 1  # one step
    w.undo_stack.undo()
    assert np.array_equal(w.model.pose(BOX), T_bad)  # the exact previous matrix
    w.undo_stack.redo()
    assert np.array_equal(w.model.pose(BOX), T_ref)
    assert dialogs.calls == []


def test_refine_against_fused_cloud(qtbot, make_window, scene_copy, dialogs):
    """ICP against recon/cloud.ply (here fused from the scene's own depth frames)."""
    import open3d as o3d

    scene = scene_copy()
    sc = Scene(scene)
    pts = [sc.camera.depth_to_points(sc.depth(t))[0] for t in (0, 5, 9)]
    world = np.concatenate([p @ sc.trajectory[t][:3, :3].T + sc.trajectory[t][:3, 3]
                            for p, t in zip(pts, (0, 5, 9), strict=True)])
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(world)).voxel_down_sample(0.003)
    sc.paths.cloud.parent.mkdir(parents=True, exist_ok=True)
    o3d.io.write_point_cloud(str(sc.paths.cloud), pcd)
    gt = AnnotationDocument.read(scene / "annotations.json").object(BOX).T_world_obj
    T_bad = _offset(gt, (0.006, 0.004, -0.004), deg=3.0)
    w = make_window()
    assert w.open_scene(scene)
    w.model.set_pose(BOX, T_bad)
    w.select(BOX)
    res = w.refiner.refine_and_wait("cloud")
    assert res is not None and res.T_world_obj is not None, res
    assert res.score_after > res.score_before
    assert translation_error_m(w.model.pose(BOX), gt) < translation_error_m(T_bad, gt) / 2


def test_refine_without_cloud_says_why(qtbot, make_window, scene_copy, dialogs):
    w = make_window()
    assert w.open_scene(scene_copy())
    w.select(BOX)
    T0 = w.model.pose(BOX)
    assert w.refiner.refine_and_wait("cloud") is None
    assert "cloud.ply: file not found" in w.status_line.notice_text
    assert np.array_equal(w.model.pose(BOX), T0) and w.undo_stack.count() == 0


def test_preview_flags_frames_of_an_annotation_off_by_2cm(qtbot, make_window, scene_copy,
                                                          dialogs):
    scene = scene_copy()
    sc = Scene(scene)
    # push the box 2 cm along the viewing ray of frame 0 (the depth sees that)
    gt = AnnotationDocument.read(scene / "annotations.json").object(BOX).T_world_obj
    ray = gt[:3, 3] - sc.trajectory[0][:3, 3]
    _write_pose(scene, BOX, _offset(gt, 0.02 * ray / np.linalg.norm(ray)))
    w = make_window()
    assert w.open_scene(scene)
    wait_render(qtbot, w)
    assert dialogs.calls == []
    qtbot.keyClick(w.view, Qt.Key_V)  # preview on: no labels.h5, so computed on the fly
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=60000)
    pv = w.previewer.result
    assert pv.source == "computed"
    flagged = pv.flagged_frames()
    assert len(flagged) >= len(pv.frame_ids) // 2, flagged
    assert w.timeline.flagged == flagged
    k = pv.ids.index(BOX)
    assert pv.flagged[:, k].any() and not np.delete(pv.flagged, k, axis=1).any()
    # flagged colour in a flagged frame, ok colour on the others
    w.set_frame(0)
    t = w.previewer.jump_flagged(+1) if 0 not in flagged else 0
    assert t in flagged and w.current_frame == t
    objs = {o.obj_id: o.color_rgb for o in w.overlay_objects()}
    assert objs[BOX] == (255, 40, 40)
    assert all(c == (40, 220, 90) for i, c in objs.items()
               if i != BOX and np.isfinite(pv.object_state(t)[i][0]))
    # each frame's own state (the multi-view frames are coloured by their frame)
    for f in pv.frame_ids:
        score, flag = pv.object_state(f)[BOX]
        if np.isfinite(score):
            want = (255, 40, 40) if flag else (40, 220, 90)
            assert {o.obj_id: o.color_rgb for o in w.overlay_objects(f)}[BOX] == want
    wait_render(qtbot, w)
    # "N" walks the flagged frames forward
    start = w.current_frame
    qtbot.keyClick(w.view, Qt.Key_N)
    later = [f for f in flagged if f > start]
    assert w.current_frame == (later[0] if later else start)


def test_preview_ground_truth_has_no_flags_and_reads_fresh_labels(qtbot, make_window,
                                                                  scene_copy, dialogs):
    scene = scene_copy()
    pv = compute_preview(Scene(scene), _posed(scene))
    assert pv is not None and pv.flagged_frames() == []
    propagate_run(PropagateConfig(scene=scene))
    w = make_window()
    assert w.open_scene(scene)
    w.previewer.toggle(True)
    qtbot.waitUntil(lambda: w.previewer.result is not None, timeout=60000)
    assert w.previewer.result.source == "labels.h5"  # matches the document: read, not recomputed
    assert w.previewer.result.flagged_frames() == []
    # an edit makes labels.h5 stale: the preview is recomputed on the fly
    w.select(BOX)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_PageUp, Qt.ShiftModifier)  # 1 cm away from the camera
    qtbot.waitUntil(lambda: w.previewer.result is not None and w.previewer.idle(), timeout=60000)
    assert w.previewer.result.source == "computed"
    w.previewer.toggle(False)
    assert w.timeline.flagged == []


def _posed(scene):
    from labeller.annotate.document import DocumentModel

    return DocumentModel.open(scene).posed_objects()


def test_suggest_keyframes_spread_and_multiview(qtbot, make_window, scene_copy, dialogs):
    scene = scene_copy()
    sug = suggest_keyframes(Scene(scene), 4)
    assert 3 <= len(sug) <= 6 and len(set(sug)) == len(sug) and 0 in sug
    assert max(np.diff(sug)) < 9  # spread, not bunched at one end
    w = make_window()
    assert w.open_scene(scene)
    w.multiview.toggle(True)
    frames = w.multiview.frames
    assert 2 <= len(frames) <= 4 and w.current_frame not in frames
    qtbot.waitUntil(w.multiview.idle, timeout=20000)
    qtbot.waitUntil(lambda: all(v.shown_gen > 0 for v in w.multiview.views), timeout=20000)
    for v in w.multiview.views:
        assert v._inst is not None and BOX in np.unique(v._inst), v.frame
    # an edit in another view moves the same world-frame pose (seen by every view)
    v = w.multiview.views[0]
    w.select(BOX)
    T0 = w.model.pose(BOX)
    v.setFocus()
    qtbot.keyClick(v, Qt.Key_Right, Qt.ShiftModifier)
    T1 = w.model.pose(BOX)
    T_wc = w.model.T_world_cam(v.frame)
    d_cam = T_wc[:3, :3].T @ (T1[:3, 3] - T0[:3, 3])
    assert np.allclose(d_cam, [0.01, 0, 0], atol=1e-9)
    qtbot.waitUntil(w.multiview.idle, timeout=20000)
    w.multiview.set_views([2, 4])
    assert w.multiview.frames == [2, 4] and len(w.multiview.services) == 2
