"""Propagation (`labeller propagate`): exact poses, BOP masks and counts, the depth-check
score and flags, ICP refinement, batched == per-frame, resume, bad input, real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.classes import BY_NAME
from labeller.core.errors import BadInput, Cancelled
from labeller.core.fileio import read_image, sha256_file
from labeller.core.poses import inv_pose, make_pose, quat_wxyz_to_matrix, translation_error_m
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation, perturbed
from labeller.formats.labels import OBJECT_FIELDS, Labels
from labeller.formats.models import load_model
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from labeller.geometry.depth_check import ray_length_factor
from labeller.geometry.render import ObjectRenderer, mask_bbox
from labeller.propagate import (
    FrameLabeller,
    PropagateConfig,
    partial_path,
    prepare,
    run,
    scene_lock,
)
from tests.helpers import POSECNN, SHARED_DATA, posecnn_frame_scene, snapshot

FRAMES = 16


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def synth_scene(tmp_path_factory) -> Path:
    """A 16-frame 320x240 synthetic scene, six objects, gt trajectory + annotations on top."""
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth_run

    out = tmp_path_factory.mktemp("prop") / "scene"
    synth_run(SynthConfig(out=out, frames=FRAMES, seed=3, width=320, height=240,
                          with_annotations=True))
    return out


@pytest.fixture(scope="session")
def labelled(synth_scene, tmp_path_factory) -> Path:
    """The synthetic scene propagated once in this process (workers=1)."""
    scene = copy_scene(synth_scene, tmp_path_factory.mktemp("prop1") / "scene")
    run(PropagateConfig(scene=scene, workers=1))
    return scene


def copy_scene(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("labels"))
    return dst


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a labels file, masks included, for exact comparisons."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def assert_same_labels(a: Path, b: Path) -> None:
    da, db = read_all(a), read_all(b)
    assert sorted(da) == sorted(db)
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


# --- correctness on the synthetic scene ----------------------------------------------------

def test_propagated_poses_equal_ground_truth(labelled):
    scene = Scene(labelled)
    gt_traj = scene.gt_trajectory()
    gt_doc = AnnotationDocument.read(scene.paths.gt_annotations)
    with Labels.open(scene.paths.labels) as L:
        assert list(L.frame_ids) == list(range(FRAMES))
        assert [o.id for o in L.objects] == [o.id for o in gt_doc.objects]
        for r, t in enumerate(L.frame_ids):
            for i, o in enumerate(gt_doc.objects):
                T_gt = inv_pose(gt_traj[int(t)]) @ o.T_world_obj
                np.testing.assert_allclose(L.arrays["T_cam_obj"][r, i], T_gt, atol=1e-6)
        assert not L.arrays["refined"].any() and np.isnan(L.arrays["T_cam_obj_refined"]).all()


def test_visible_masks_match_ground_truth_masks(labelled):
    """IoU >= 0.98 against the noise-free gt masks for every object with visib_fract >= 0.1.

    The visible mask is computed against the *noisy* sensor depth (sigma ~1.5 mm at 0.8 m,
    edge holes): noise flips a pixel only if it exceeds delta = 15 mm (never, at 10 sigma),
    holes count as visible (bop19), so only occluders nearer than 15 mm could differ.
    """
    scene = Scene(labelled)
    ious = []
    with Labels.open(scene.paths.labels) as L:
        for t in L.frame_ids:
            f = L.frame(int(t))
            gt = read_image(scene.paths.gt_mask(int(t)))
            for o in f.objects:
                if o.visib_fract < 0.1:
                    continue
                a, b = f.mask_visib == o.id, gt == o.id
                ious.append((a & b).sum() / (a | b).sum())
    assert len(ious) >= 3 * FRAMES
    assert min(ious) >= 0.98, sorted(ious)[:5]


def test_bop_definitions_against_full_frame_casts(labelled):
    """Counts, boxes and masks equal a straightforward full-frame computation (bop_toolkit
    calc_gt_info with bop19 visibility, plus occlusion by the other annotated objects:
    px_count_all and bbox_obj over the whole silhouette on a 3x canvas, bbox_obj
    [-1, -1, -1, -1] when nothing is visible), so ROI/footprint casting and compositing
    the alone casts lose nothing."""
    scene = Scene(labelled)
    cam = scene.camera
    prep = prepare(PropagateConfig(scene=labelled))
    models = [load_model(p) for _, p, _ in prep.job.objects]
    ren = ObjectRenderer([(i, m, T) for (i, _, T), m in zip(prep.job.objects, models, strict=True)])
    factor = ray_length_factor(cam)
    n_cut = 0
    with Labels.open(scene.paths.labels) as L:
        for t in (0, FRAMES // 2, FRAMES - 1):
            f = L.frame(t)
            Twc = scene.trajectory[t]
            combined = ren.render(cam, Twc)
            d_sensor = scene.depth(t) * factor
            expect_visib = np.zeros_like(f.mask_visib)
            for i, o in enumerate(f.objects):
                alone = ren.render(cam, Twc, only=o.id)
                d_model = alone.depth * factor
                full = d_model > 0
                canvas = ren.render(cam, Twc, roi=(-cam.width, -cam.height, 3 * cam.width,
                                                   3 * cam.height), only=o.id).depth > 0
                front = combined.inst == o.id
                visib = full & front & ((d_model - d_sensor <= 0.015) | (d_sensor == 0))
                expect_visib[visib] = o.id
                np.testing.assert_array_equal(f.mask_full(i), full)
                assert o.px_count_all == canvas.sum() >= full.sum()
                assert o.px_count_valid == (full & (d_sensor > 0)).sum()
                assert o.px_count_visib == visib.sum()
                assert o.visib_fract == pytest.approx(visib.sum() / max(canvas.sum(), 1),
                                                      abs=1e-6)
                x, y, w, h = mask_bbox(canvas)
                expect_box = [x - cam.width, y - cam.height, w, h] if visib.any() else [-1] * 4
                assert o.bbox_obj == expect_box
                assert o.bbox_visib == mask_bbox(visib)
                n_cut += int(canvas.sum() > full.sum())
            np.testing.assert_array_equal(f.mask_visib, expect_visib)
    assert n_cut >= 1  # the scene has objects cut by the image border


def test_mask_bbox_is_the_toolkit_box():
    """w = x_max - x_min (bop_toolkit misc.calc_2d_bbox), not + 1."""
    m = np.zeros((6, 8), bool)
    m[2, 3] = True
    assert mask_bbox(m) == [3, 2, 0, 0]
    m[4, 6] = True
    assert mask_bbox(m) == [3, 2, 3, 2]
    assert mask_bbox(np.zeros((3, 3), bool)) == [-1, -1, -1, -1]


def test_batched_workers_equal_per_frame(labelled, synth_scene, tmp_path):
    """Two worker processes over 3-frame chunks write exactly what one process frame by
    frame wrote, and one frame labelled directly gives the same record."""
    scene = copy_scene(synth_scene, tmp_path / "scene")
    s = run(PropagateConfig(scene=scene, workers=2, chunk_frames=3, min_frames_per_worker=1))
    assert s.workers == 2 and s.computed_frames == FRAMES
    assert_same_labels(Scene(labelled).paths.labels, Scene(scene).paths.labels)
    prep = prepare(PropagateConfig(scene=scene))
    rec = FrameLabeller(prep.job).label(5, 5, prep.T_world_cam[5])
    with Labels.open(Scene(scene).paths.labels) as L:
        for name in OBJECT_FIELDS:
            if name != "flagged":
                np.testing.assert_array_equal(rec.arrays[name], L.arrays[name][5], err_msg=name)


def test_icp_batched_equals_per_frame_and_corrects_noise(synth_scene, tmp_path):
    """--refine icp on annotations off by 1.5 cm / 3 deg: the corrections are stored beside
    the propagated poses, bring most objects to within 5 mm of the truth, and two workers
    give exactly the single-process result."""
    gt = AnnotationDocument.read(synth_scene / "gt" / "annotations.json")
    a = copy_scene(synth_scene, tmp_path / "a")
    doc = perturbed(gt, 0.015, 3.0, seed=1)
    doc.trajectory_sha256 = sha256_file(a / "trajectory.txt")
    doc.write(a / "annotations.json")
    b = copy_scene(a, tmp_path / "b")
    frames = 6  # a shorter trajectory keeps this test quick
    for s in (a, b):
        traj = Trajectory.read(s / "trajectory.txt")
        Trajectory({t: traj[t] for t in range(frames)}).write(s / "trajectory.txt")
        d = AnnotationDocument.read(s / "annotations.json")
        d.trajectory_sha256 = sha256_file(s / "trajectory.txt")
        d.write(s / "annotations.json")
    run(PropagateConfig(scene=a, refine="icp", workers=1))
    run(PropagateConfig(scene=b, refine="icp", workers=2, chunk_frames=2, min_frames_per_worker=1))
    assert_same_labels(a / "labels" / "labels.h5", b / "labels" / "labels.h5")
    gt_traj = Trajectory.read(synth_scene / "gt" / "trajectory.txt")
    with Labels.open(a / "labels" / "labels.h5") as L:
        A = L.arrays
        assert L.refine == "icp"
        n_ref = n_good = 0
        for r, t in enumerate(L.frame_ids):
            for i, o in enumerate(gt.objects):
                T_gt = inv_pose(gt_traj[int(t)]) @ o.T_world_obj
                # the propagated pose is kept as it was; the correction sits beside it
                assert translation_error_m(A["T_cam_obj"][r, i], T_gt) == pytest.approx(0.015, abs=1e-6)
                if A["refined"][r, i]:
                    n_ref += 1
                    n_good += translation_error_m(A["T_cam_obj_refined"][r, i], T_gt) < 0.005
                    assert A["score_refined"][r, i] > A["score"][r, i]
                    assert A["refine_moved_m"][r, i] <= 0.02 and A["refine_turned_deg"][r, i] <= 5
                else:
                    assert np.isnan(A["T_cam_obj_refined"][r, i]).all()
        assert n_ref >= 0.5 * frames * len(gt.objects)
        assert n_good >= 0.9 * n_ref


def test_perturbed_annotations_drop_score_and_flag_frames(labelled, synth_scene, tmp_path):
    """Every object moved by 2 cm (random direction) and turned by 2 deg."""
    scene = copy_scene(synth_scene, tmp_path / "scene")
    doc = perturbed(AnnotationDocument.read(scene / "annotations.json"), 0.02, 2.0, seed=1)
    doc.write(scene / "annotations.json")
    s = run(PropagateConfig(scene=scene))
    with Labels.open(Scene(labelled).paths.labels) as L0, Labels.open(scene / "labels" / "labels.h5") as L1:
        vis = L0.arrays["visib_fract"] >= 0.2
        s0, s1 = L0.arrays["score"], L1.arrays["score"]
        assert np.nanmin(s0[vis]) > 0.9  # right poses: consistent
        assert not L0.arrays["flagged"].any()
        for i in range(len(L0.objects)):
            v = vis[:, i]
            if v.any():
                assert np.nanmean(s1[v, i]) < np.nanmean(s0[v, i]) - 0.1, L0.objects[i].class_name
        assert np.nanmean(s1[vis]) < 0.7
        assert L1.arrays["flagged"][vis].mean() > 0.5
        assert L1.arrays["flagged"].any(1).all()  # every frame is flagged
    assert s.flagged_frames == list(range(FRAMES))
    overlays = sorted((scene / "labels" / "flagged").glob("*.png"))
    assert 0 < len(overlays) == len(s.overlays) <= 12
    img = read_image(overlays[0])
    assert img.shape[1] == 320 and img.shape[0] > 240 and img.dtype == np.uint8


def test_model_behind_the_surface_is_flagged(labelled, synth_scene, tmp_path):
    """Pushed 2 cm away from the camera along its viewing ray, an object's pixels look
    occluded to the bop19 rule (visib_fract collapses), yet the score catches it."""
    scene = copy_scene(synth_scene, tmp_path / "scene")
    doc = AnnotationDocument.read(scene / "annotations.json")
    for o in doc.objects:  # world = camera 0
        t = o.T_world_obj[:3, 3]
        o.T_world_obj[:3, 3] = t + 0.02 * t / np.linalg.norm(t)
    doc.write(scene / "annotations.json")
    run(PropagateConfig(scene=scene, max_overlays=0))
    with Labels.open(Scene(labelled).paths.labels) as L0, Labels.open(scene / "labels" / "labels.h5") as L1:
        ok = L0.arrays["visib_fract"][0] >= 0.5
        assert ok.sum() >= 3
        assert (L1.arrays["visib_fract"][0, ok] < 0.5).all()  # bop19 calls them occluded
        assert (L1.arrays["score"][0, ok] < 0.3).all()
        assert L1.arrays["flagged"][0, ok].all()


def test_untracked_frames_are_skipped_with_reason(synth_scene, tmp_path):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    traj = Trajectory.read(scene / "trajectory.txt")
    Trajectory({t: T for t, T in traj.poses.items() if t not in (3, 4, 9)}).write(scene / "trajectory.txt")
    doc = AnnotationDocument.read(scene / "annotations.json")
    doc.trajectory_sha256 = sha256_file(scene / "trajectory.txt")
    doc.write(scene / "annotations.json")
    s = run(PropagateConfig(scene=scene, max_overlays=0))
    assert s.n_labelled == FRAMES - 3 and [t for t, _ in s.skipped] == [3, 4, 9]
    assert "skipped 3 frame(s): 3, 4, 9: no camera pose" in s.format()
    with Labels.open(scene / "labels" / "labels.h5") as L:
        assert 3 not in L.frame_ids and L.skipped[4].startswith("no camera pose")
        with pytest.raises(BadInput, match="frame 9 has no labels: no camera pose"):
            L.frame(9)


# --- nothing lost: interruption and resume -----------------------------------------------

class Stop(Exception):
    pass


def test_interrupted_run_keeps_old_labels_and_resumes(labelled, synth_scene, tmp_path):
    scene = copy_scene(labelled, tmp_path / "scene")
    shutil.copytree(labelled / "labels", scene / "labels")
    before = snapshot(scene / "labels")
    doc = perturbed(AnnotationDocument.read(scene / "annotations.json"), 0.02, 2.0, seed=2)
    doc.write(scene / "annotations.json")  # new inputs: the old labels no longer apply

    def stop_after_two_chunks(done, total):
        if done >= 8:
            raise Stop

    with pytest.raises(Stop):
        run(PropagateConfig(scene=scene, chunk_frames=4), progress=stop_after_two_chunks)
    after = snapshot(scene / "labels")
    partial = partial_path(scene / "labels" / "labels.h5")
    assert {k: v for k, v in after.items() if k != partial.name} == before  # old labels intact
    with Labels.open(partial, allow_incomplete=True) as P:
        assert not P.complete and P.arrays is not None
    with pytest.raises(BadInput, match="complete: the run that wrote this file did not finish"):
        Labels.open(partial)

    seen = []
    s = run(PropagateConfig(scene=scene, chunk_frames=4), progress=lambda d, t: seen.append(d))
    assert s.resumed_frames == 8 and s.computed_frames == FRAMES - 8 and seen[0] == 8
    assert not partial.exists()
    clean = copy_scene(scene, tmp_path / "clean")
    run(PropagateConfig(scene=clean, chunk_frames=4))
    assert_same_labels(scene / "labels" / "labels.h5", clean / "labels" / "labels.h5")

    # A rerun with the same inputs reuses everything; with other inputs it starts afresh.
    assert run(PropagateConfig(scene=scene)).computed_frames == 0
    with pytest.raises(Cancelled):  # returning False cancels too (the GUI's way)
        run(PropagateConfig(scene=scene, chunk_frames=4, restart=True), progress=lambda d, t: d < 8)
    assert partial.exists()
    perturbed(doc, 0.01, 0.0, seed=3).write(scene / "annotations.json")
    s = run(PropagateConfig(scene=scene, chunk_frames=4, max_overlays=0))
    assert s.resumed_frames == 0 and s.computed_frames == FRAMES


# --- bad input -------------------------------------------------------------------------------

def _cli_error(capsys, argv) -> str:
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith(f"labeller {argv[0]}: error: ")
    return err


def test_bad_input_missing_trajectory(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    (scene / "trajectory.txt").unlink()
    err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'trajectory.txt'}: missing" in err


def test_bad_input_unknown_class(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    d = json.loads((scene / "annotations.json").read_text())
    d["objects"][1]["class"] = "teapot"
    (scene / "annotations.json").write_text(json.dumps(d))
    err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'annotations.json'}: objects[1].class: unknown class 'teapot'" in err


def test_bad_input_missing_model_file(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    d = json.loads((scene / "annotations.json").read_text())
    d["objects"][2]["model"] = "models/nowhere/nothing.ply"
    (scene / "annotations.json").write_text(json.dumps(d))
    err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'annotations.json'}: objects[2].model: model file not found" in err
    assert "nothing.ply" in err


def test_bad_input_newer_annotations_version(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    d = json.loads((scene / "annotations.json").read_text())
    d["version"] = 7
    (scene / "annotations.json").write_text(json.dumps(d))
    err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'annotations.json'}: version: 7 is newer than this labeller reads" in err


def test_bad_input_retracked_trajectory(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    traj = Trajectory.read(scene / "trajectory.txt")
    T = {t: P.copy() for t, P in traj.poses.items()}
    T[5][0, 3] += 0.01
    Trajectory(T).write(scene / "trajectory.txt")
    err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'annotations.json'}: trajectory_sha256: " in err
    assert "does not match trajectory.txt" in err


def test_bad_input_settings(synth_scene, capsys):
    err = _cli_error(capsys, ["propagate", str(synth_scene), "--workers", "0"])
    assert "--workers: must be an integer >= 1, got 0" in err
    err = _cli_error(capsys, ["propagate", str(synth_scene), "--flag-score", "2"])
    assert "--flag-score: must be in [0, 1]" in err


def test_second_run_on_the_same_scene_is_refused(synth_scene, tmp_path, capsys):
    scene = copy_scene(synth_scene, tmp_path / "scene")
    with scene_lock(scene / "labels"):  # as a running `labeller propagate` holds it
        err = _cli_error(capsys, ["propagate", str(scene)])
    assert f"{scene / 'labels'}: another `labeller propagate` is running on this scene" in err
    assert not (scene / "labels" / "labels.h5.partial").exists()


def test_cli_propagate_and_labels_print(labelled, tmp_path, capsys):
    scene = copy_scene(labelled, tmp_path / "scene")
    assert cli_main(["propagate", str(scene), "--workers", "2", "--no-progress", "--restart"]) == 0
    out = capsys.readouterr().out
    assert f"labelled {FRAMES} of {FRAMES} frames, 6 object(s)" in out and "skipped 0 frames" in out
    assert "computed by 1 worker(s)" in out  # 16 frames are not worth a second process
    assert cli_main(["labels", str(scene)]) == 0
    out = capsys.readouterr().out
    assert f"{FRAMES} labelled of {FRAMES} frames" in out and "flagged frames (0): none" in out
    assert cli_main(["labels", str(scene), "--frame", "2"]) == 0
    out = capsys.readouterr().out
    assert "frame 2 of" in out and "bbox_obj [" in out and "mask_visib pixels: #" in out


# --- real data: ../shared/data/rgbd/posecnn_ycb ---------------------------------------------

YCB = SHARED_DATA / "ycb_models"


def posecnn_scene(root: Path, frame: str, which: str = "refined") -> Path:
    """A one-frame scene from a PoseCNN demo frame (camera = world), objects of the ten
    PROPS classes at `poses_refined` (or the unrefined network output)."""
    d = json.loads((POSECNN / "posecnn_results_named.json").read_text())
    posecnn_frame_scene(root, frame)
    objs = []
    for o in d["frames"][frame]:
        name = o["ycb_name"].partition("_")[2]
        if name not in BY_NAME:
            continue
        q, t = (o["q_wxyz"], o["t_m"]) if which == "refined" else (o["q_wxyz_unrefined"], o["t_m_unrefined"])
        objs.append(ObjectAnnotation(len(objs) + 1, name, f"{o['ycb_name']}/textured.obj",
                                     make_pose(quat_wxyz_to_matrix(q), t)))
    AnnotationDocument(objs).write(root / "annotations.json")
    return root


@pytest.fixture
def posecnn(shared_data):
    if not POSECNN.is_dir() or not YCB.is_dir():
        pytest.skip(f"{POSECNN} or {YCB} not found")
    return POSECNN


def _frame0(scene: Path, **kw):
    run(PropagateConfig(scene=scene, models_dir=YCB, restart=True, max_overlays=0, **kw))
    with Labels.open(scene / "labels" / "labels.h5") as L:
        return L.frame(0)


@pytest.mark.parametrize("frame", ["000000", "000001", "000003"])
def test_real_score_high_at_refined_and_falls_when_moved(posecnn, tmp_path, frame):
    scene = posecnn_scene(tmp_path / "s", frame)
    f0 = _frame0(scene)
    for o in f0.objects:
        assert o.score >= 0.75 and o.visib_fract > 0.5 and not o.flagged, (o.class_name, o.score)
    doc = AnnotationDocument.read(scene / "annotations.json")
    for how in ("behind", "in front", "sideways"):
        moved = doc.copy()
        for o in moved.objects:
            t = o.T_world_obj[:3, 3]
            ray = t / np.linalg.norm(t)
            side = np.cross(ray, [0.0, 1.0, 0.0])
            d = {"behind": ray, "in front": -ray, "sideways": side / np.linalg.norm(side)}[how]
            o.T_world_obj[:3, 3] = t + 0.02 * d
        moved.write(scene / "annotations.json")
        f1 = _frame0(scene)
        for a, b in zip(f0.objects, f1.objects, strict=True):
            if how == "sideways":
                # depth barely changes when a face slides within its own plane: only the
                # silhouette band disagrees, so the drop is smaller (see docs/propagate.md)
                assert b.score < a.score - 0.05, (how, a.class_name, a.score, b.score)
            else:
                assert b.score < a.score - 0.25 and b.flagged, (how, a.class_name, a.score, b.score)


def test_real_icp_from_unrefined_moves_towards_refined(posecnn, tmp_path):
    """PoseCNN's unrefined poses are off by 1-17 cm (mostly in depth), far more than an
    annotation error, so the bounds are widened to 10 cm / 20 deg for this check."""
    closer = total = 0
    for frame in ("000000", "000001", "000002", "000003"):
        ref = AnnotationDocument.read(posecnn_scene(tmp_path / f"r{frame}", frame) / "annotations.json")
        scene = posecnn_scene(tmp_path / f"u{frame}", frame, which="unrefined")
        f = _frame0(scene, refine="icp", icp_max_trans_m=0.10, icp_max_rot_deg=20.0)
        for o, r in zip(f.objects, ref.objects, strict=True):
            total += 1
            e0 = translation_error_m(o.T_cam_obj, r.T_world_obj)
            if o.refined:
                e1 = translation_error_m(o.T_cam_obj_refined, r.T_world_obj)
                assert o.score_refined > o.score
                closer += e1 < e0
    assert total == 10
    assert closer >= 7, closer
