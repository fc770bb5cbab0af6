"""`labeller init`: estimates fused into annotations.json, registration, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import make_pose, quat_wxyz_to_matrix
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.bop_results import PoseEstimate, format_bop_results, write_bop_results
from labeller.formats.suggestions import SuggestionFile
from labeller.formats.trajectory import Trajectory
from labeller.init_poses import InitConfig, run
from labeller.init_poses.simulate import simulate_estimates
from labeller.init_poses.symmetry import class_symmetry, pairwise_distance_deg
from tests.helpers import POSECNN, SHARED_DATA, posecnn_frame_scene, snapshot

FRAMES = 40
CLASSES = ["mug", "mug", "tomato_soup_can", "cracker_box", "mustard_bottle"]


@pytest.fixture(scope="session")
def scene_gt(tmp_path_factory) -> Path:
    """A 40-frame 320x240 synthetic scene with two mugs; trajectory.txt = ground truth."""
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth_run

    out = tmp_path_factory.mktemp("init") / "scene"
    synth_run(SynthConfig(out=out, frames=FRAMES, seed=5, width=320, height=240, classes=CLASSES,
                          with_annotations=True))
    (out / "annotations.json").unlink()
    return out


@pytest.fixture
def scene(scene_gt, tmp_path) -> Path:
    return Path(shutil.copytree(scene_gt, tmp_path / "scene"))


def _gt(scene: Path) -> AnnotationDocument:
    return AnnotationDocument.read(scene / "gt" / "annotations.json")


def _estimates(scene: Path, seed: int = 0) -> list[PoseEstimate]:
    traj = Trajectory.read(scene / "gt" / "trajectory.txt")
    return simulate_estimates(_gt(scene), traj, CameraIntrinsics.read(scene / "camera.json"), seed=seed)


def _errors(found: ObjectAnnotation, gt: AnnotationDocument) -> tuple[float, float]:
    """(mm, degrees modulo symmetry) to the nearest true object of its class."""
    best = min((o for o in gt.objects if o.class_name == found.class_name),
               key=lambda o: np.linalg.norm(o.T_world_obj[:3, 3] - found.T_world_obj[:3, 3]))
    dr = pairwise_distance_deg(found.T_world_obj[None, :3, :3], best.T_world_obj[None, :3, :3],
                               class_symmetry(found.class_name))[0, 0]
    return 1000 * float(np.linalg.norm(best.T_world_obj[:3, 3] - found.T_world_obj[:3, 3])), float(dr)


def test_fused_estimates_land_near_the_truth(scene, capsys):
    write_bop_results(scene / "est.csv", _estimates(scene))
    assert cli_main(["init", str(scene), "--estimates", str(scene / "est.csv"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "object" in out and "spread mm" in out and "added" in out
    doc = AnnotationDocument.read(scene / "annotations.json")
    assert sorted(o.class_name for o in doc.objects) == sorted(CLASSES)  # both mugs
    assert doc.trajectory_sha256 is not None
    for o in doc.objects:
        mm, deg = _errors(o, _gt(scene))
        assert mm < 8 and deg < 4, (o.class_name, mm, deg)
    # provenance beside it: source, inliers and spread
    sf = SuggestionFile.read(scene / "suggestions.json")
    assert {s.status for s in sf.suggestions} == {"placed"}
    assert all(s.source == "estimates" and s.frames_used >= 3 and s.spread_mm > 5 for s in sf.suggestions)
    assert sorted(s.object_id for s in sf.suggestions) == sorted(o.id for o in doc.objects)


def test_existing_objects_are_kept_unless_replace(scene):
    gt = _gt(scene)
    mine = gt.copy()
    mine.objects = [o for o in mine.objects if o.class_name == "cracker_box"]
    moved = mine.objects[0]
    moved.T_world_obj[:3, 3] += [0.02, 0, 0]
    moved.keyframes = [3]
    mine.write(scene / "annotations.json")
    write_bop_results(scene / "est.csv", _estimates(scene))
    s = run(InitConfig(scene=scene, estimates=scene / "est.csv"))
    doc = AnnotationDocument.read(scene / "annotations.json")
    box = [o for o in doc.objects if o.class_name == "cracker_box"]
    assert len(box) == 1 and np.allclose(box[0].T_world_obj, moved.T_world_obj) and box[0].keyframes == [3]
    assert any(r.action == "kept existing" and r.class_name == "cracker_box" for r in s.rows)
    assert len(doc.objects) == len(CLASSES)
    run(InitConfig(scene=scene, estimates=scene / "est.csv", replace=True))
    doc = AnnotationDocument.read(scene / "annotations.json")
    (box,) = [o for o in doc.objects if o.class_name == "cracker_box"]
    assert box.id == moved.id and _errors(box, gt)[0] < 8


def test_suggest_writes_suggestions_only(scene):
    write_bop_results(scene / "est.csv", _estimates(scene))
    run(InitConfig(scene=scene, estimates=scene / "est.csv", as_suggestions=True))
    assert not (scene / "annotations.json").exists()
    sf = SuggestionFile.read(scene / "suggestions.json")
    assert len(sf.suggestions) == len(CLASSES) and {s.status for s in sf.suggestions} == {"pending"}


def test_untracked_frames_are_not_used(scene):
    traj = Trajectory.read(scene / "trajectory.txt")
    kept = {t: T for t, T in traj.poses.items() if t >= 10}
    Trajectory(kept).write(scene / "trajectory.txt")
    write_bop_results(scene / "est.csv", _estimates(scene))
    s = run(InitConfig(scene=scene, estimates=scene / "est.csv"))
    assert s.untracked > 0 and "without a camera pose" in s.format()


def test_progress_cancel_writes_nothing(scene):
    from labeller.core.errors import Cancelled

    write_bop_results(scene / "est.csv", _estimates(scene))
    before = snapshot(scene)
    with pytest.raises(Cancelled):
        run(InitConfig(scene=scene, estimates=scene / "est.csv"), progress=lambda d, t: d < 5)
    assert snapshot(scene) == before


# --- bad input: one line naming the file and the row, nothing written -------------------

def _bad_csv(scene: Path, mutate) -> Path:
    est = _estimates(scene)
    lines = format_bop_results(est).splitlines()
    lines = mutate(lines)
    p = scene / "bad.csv"
    p.write_text("\n".join(lines) + ("\n" if lines else ""))
    return p


def _cols(line: str, i: int, value: str) -> str:
    c = line.split(",")
    c[i] = value
    return ",".join(c)


@pytest.mark.parametrize("case, mutate, message", [
    ("unknown obj_id", lambda L: [L[0], _cols(L[1], 2, "77"), *L[2:]], "line 2: unknown obj_id 77"),
    ("frame outside", lambda L: [*L[:3], _cols(L[3], 1, "4000"), *L[4:]],
     "line 4: frame (im_id) 4000 is outside the scene (frames 0..39)"),
    ("non-orthonormal R", lambda L: [L[0], L[1], _cols(L[2], 4, "1.3 0 0 0 1 0 0 0 1"), *L[3:]],
     "line 3: R is not a rotation matrix"),
    ("t in metres", lambda L: [L[0]] + [_cols(x, 5, " ".join(str(float(v) / 1000) for v in x.split(",")[5].split()))
                                        for x in L[1:]],
     "line 2: estimates lie about 1000x ("),
    ("empty", lambda L: [], "holds no estimates (empty file)"),
])
def test_bad_csv(scene, capsys, case, mutate, message):
    p = _bad_csv(scene, mutate)
    before = snapshot(scene)
    assert cli_main(["init", str(scene), "--estimates", str(p), "--no-progress"]) == 2, case
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"labeller init: error: {p}: ") and message in err, err
    assert len(err.splitlines()) == 1
    assert snapshot(scene) == before


def test_mat_without_poses_refined(scene, capsys):
    import scipy.io

    p = scene / "000003-color.png.mat"
    scipy.io.savemat(p, {"poses": np.zeros((2, 7)), "rois": np.zeros((2, 7))})
    before = snapshot(scene)
    assert cli_main(["init", str(scene), "--estimates", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller init: error: {p}: no 'poses_refined' array (PoseCNN results; "
                   "the file holds poses, rois)")
    assert snapshot(scene) == before


def test_obj_map_and_bad_settings(scene, capsys):
    est = [PoseEstimate(e.frame_id, 500 + e.obj_id, e.score, e.T_cam_obj) for e in _estimates(scene)]
    write_bop_results(scene / "est.csv", est)
    assert cli_main(["init", str(scene), "--estimates", str(scene / "est.csv"), "--no-progress"]) == 2
    assert "unknown obj_id 5" in capsys.readouterr().err
    from labeller.core.classes import BY_NAME

    (scene / "map.json").write_text(json.dumps({str(500 + BY_NAME[c].ycbv_id): c for c in set(CLASSES)}))
    assert cli_main(["init", str(scene), "--estimates", str(scene / "est.csv"), "--obj-map",
                     str(scene / "map.json"), "--no-progress"]) == 0
    assert len(AnnotationDocument.read(scene / "annotations.json").objects) == len(CLASSES)
    assert cli_main(["init", str(scene)]) == 2
    assert "labeller init: error: --estimates: give --estimates FILE, --register, or both" in capsys.readouterr().err
    assert cli_main(["init", str(scene), "--register", "--inlier", "2"]) == 2
    assert "--inlier: must be in (0, 1) metres" in capsys.readouterr().err


def test_register_without_cloud_says_so(scene, capsys):
    assert cli_main(["init", str(scene), "--register", "--classes", "mug", "--no-progress"]) == 2
    assert "recon/cloud.ply: missing: run `labeller track` first" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cracker_box", "mug"])
def test_register_on_a_clean_cloud_finds_the_pose(scene_gt, name):
    """FPFH + RANSAC + point-to-plane ICP recover a posed model from a cloud of its surface
    on a table plane. The shape decides only up to the model's own geometric symmetry, so
    the check is ADD-S, and a box (the same shape turned half a turn) must carry the
    "orientation ambiguous" mark."""
    from labeller.core.poses import adds_error, axis_angle_to_matrix, transform_points
    from labeller.formats.models import load_model
    from labeller.init_poses.registration import register_models

    m = load_model(scene_gt / "models" / name / f"{name}.ply")
    T = make_pose(axis_angle_to_matrix([0.3, 1, 0.2], 2.0), [0.1, 0.05, 0.9])
    rng = np.random.default_rng(0)
    pts = transform_points(T, m.sample_points(20000, seed=3))
    plane = np.c_[rng.uniform(-0.5, 0.5, (40000, 2)), np.full(40000, 1.2)]
    (h,) = register_models(np.concatenate([pts + rng.normal(0, 0.001, pts.shape), plane]),
                           [(name, m)], 0.005)
    assert h is not None
    assert adds_error(m.sample_points(2000), h.T_world_obj, T) < 0.005
    assert h.fitness_cluster > 0.8
    if name == "cracker_box":
        assert h.flip_ambiguous


def test_register_on_the_tracked_cloud_reports_every_miss(scene):
    """On the cloud `labeller track` fuses, every class asked for is either suggested
    where it is (ADD-S under 1 cm) or named in the misses with a reason; none is
    suggested somewhere wrong."""
    from labeller.core.poses import adds_error
    from labeller.formats.models import load_model
    from labeller.track import TrackConfig
    from labeller.track import run as track_run

    track_run(TrackConfig(scene=scene, force=True))
    asked = ("mustard_bottle", "cracker_box")
    s = run(InitConfig(scene=scene, register=True, classes=asked))
    sf = SuggestionFile.read(scene / "suggestions.json")
    found = {x.class_name: x for x in sf.suggestions}
    missed = {c for c, _ in sf.not_found}
    assert set(found) | missed == set(asked) and not set(found) & missed, s.format()
    assert all(why for _, why in sf.not_found)
    for name, sug in found.items():
        (true,) = [o for o in _gt(scene).objects if o.class_name == name]
        m = load_model(scene / sug.model)
        assert sug.source == "register" and sug.status == "pending" and sug.depth_score >= 0.9
        assert adds_error(m.sample_points(1000), sug.T_world_obj, true.T_world_obj) < 0.01, name


# --- real data: PoseCNN's results on its demo frames ------------------------------------

YCB = SHARED_DATA / "ycb_models"


def test_real_posecnn_frame_imported(tmp_path, capsys):
    """One PoseCNN demo frame as a one-frame scene (camera = world): its .mat results fuse
    to exactly its poses (one estimate each), classes without a model are skipped."""
    if not POSECNN.is_dir() or not YCB.is_dir():
        pytest.skip(f"{POSECNN} or {YCB} not found")
    root = posecnn_frame_scene(tmp_path / "s", "000001")
    mat = root / "000000-color.png.mat"  # frame 0 of this scene
    shutil.copyfile(POSECNN / "posecnn_results" / "000001-color.png.mat", mat)
    assert cli_main(["init", str(root), "--estimates", str(mat), "--models", str(YCB),
                     "--min-frames", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skipped (no model): bleach_cleanser (1)" in out
    named = json.loads((POSECNN / "posecnn_results_named.json").read_text())["frames"]["000001"]
    doc = AnnotationDocument.read(root / "annotations.json")
    assert sorted(o.class_name for o in doc.objects) == sorted(
        ["gelatin_box", "potted_meat_can", "mug", "tomato_soup_can"])
    for o in doc.objects:
        (ref,) = [n for n in named if n["ycb_name"].endswith("_" + o.class_name)]
        T = make_pose(quat_wxyz_to_matrix(ref["q_wxyz"]), ref["t_m"])
        np.testing.assert_allclose(o.T_world_obj, T, atol=1e-5)
        assert o.model.endswith("textured.obj")
    rows = {r.class_name: r for r in run(InitConfig(scene=root, estimates=mat, models_dir=YCB, min_frames=1,
                                                   replace=True)).rows}
    # rendered at PoseCNN's refined poses the meshes match the real depth well
    assert all(r.depth_score > 0.5 for r in rows.values()), rows


def test_demo_starts_from_simulated_estimates(scene):
    """The demo's annotation step: seeded simulated estimates in a BOP CSV, fused by init."""
    from labeller.cli.demo import ESTIMATES_FILE, annotate_from_estimates

    table = annotate_from_estimates(scene, seed=4)
    assert "estimates" in table and "added" in table
    first = (scene / ESTIMATES_FILE).read_text()
    assert first.startswith("scene_id,im_id,obj_id,score,R,t,time\n")
    doc = AnnotationDocument.read(scene / "annotations.json")
    assert sorted(o.class_name for o in doc.objects) == sorted(CLASSES)
    assert all(_errors(o, _gt(scene))[0] < 10 for o in doc.objects)
    annotate_from_estimates(scene, seed=4)
    assert (scene / ESTIMATES_FILE).read_text() == first  # seeded: the same estimates
