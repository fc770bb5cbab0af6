"""Camera tracking: accuracy on synthetic and real scenes, failure handling, resume, guard.

Scenes are small (40 frames at 320x240) so each tracking run takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.fileio import sha256_file
from labeller.core.poses import inv_pose, make_pose
from labeller.evaluate.depth_agreement import DepthViews, refuted_steps
from labeller.evaluate.trajectory import ate, longest_gap, rpe, tracked_fraction, umeyama_alignment
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from labeller.track import TrackConfig, read_report, run
from labeller.track.frames import FrameSource
from labeller.track.tracker import Tracker
from tests.helpers import SHARED_DATA, snapshot

N = 40
SYNTH_ATE_M = 0.005  # ATE bound on the synthetic scenes (the tracker reaches well under 1 mm)


@pytest.fixture(scope="session")
def synth40(tmp_path_factory) -> Path:
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    out = tmp_path_factory.mktemp("synth") / "a"
    synth(SynthConfig(out, frames=N, seed=1, width=320, height=240))
    return out


@pytest.fixture(scope="session")
def synth_other(tmp_path_factory) -> Path:
    """Ten frames of a different synthetic room (another seed): the 'wrong' stream."""
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    out = tmp_path_factory.mktemp("synth") / "b"
    synth(SynthConfig(out, frames=10, seed=2, width=320, height=240))
    return out


def _copy(scene: Path, dest: Path) -> Path:
    """Copy a scene without its tracking outputs (gt/ stays)."""
    def ignore(d: str, names: list[str]) -> list[str]:
        return ["recon", "trajectory.txt"] if Path(d) == scene else []

    shutil.copytree(scene, dest, ignore=ignore)
    return dest


def _track(scene: Path, **kw) -> object:
    return run(TrackConfig(scene, progress_bar=False, **kw))


@pytest.fixture(scope="module")
def tracked(synth40, tmp_path_factory):
    """The synthetic scene tracked through the command line."""
    scene = _copy(synth40, tmp_path_factory.mktemp("trk") / "scene")
    rc = cli(["track", str(scene)])
    return scene, rc


def test_track_synthetic_accuracy_and_outputs(tracked, capsys):
    scene, rc = tracked
    assert rc == 0
    s = Scene(scene)
    traj, gt = s.trajectory, s.gt_trajectory()
    assert traj.frame_ids == list(range(N))
    np.testing.assert_allclose(traj[0], np.eye(4), atol=1e-9)  # world = first tracked frame
    err = ate(traj, gt)
    assert err.rmse_m < SYNTH_ATE_M, err
    assert rpe(traj, gt).trans_rmse_m < 0.002
    rep = read_report(scene)
    assert rep["n_tracked"] == N and rep["failed"] == [] and rep["longest_gap"] == 0
    assert 0.5 < rep["fitness"]["mean"] <= 1.0
    assert rep["trajectory_sha256"] == sha256_file(scene / "trajectory.txt")
    assert rep["keyframes"][0] == 0 and len(rep["keyframes"]) >= N // 10
    assert not (scene / "recon/track_checkpoint.npz").exists()


def test_track_writes_a_coloured_cloud_on_the_surfaces(tracked):
    import open3d as o3d

    scene, _ = tracked
    pcd = o3d.io.read_point_cloud(str(scene / "recon/cloud.ply"))
    assert len(pcd.points) > 5000 and pcd.has_colors()
    cols = np.asarray(pcd.colors)
    assert cols.max() <= 1.0 and cols.std() > 0.02  # real colours, not one flat value
    # Fused points lie on the scene: project into frame 0 and compare with its depth.
    s = Scene(scene)
    pts = np.asarray(pcd.points)
    uv = s.camera.project(pts)
    z = pts[:, 2]
    u, v = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
    ok = (z > 0) & (u >= 0) & (u < s.camera.width) & (v >= 0) & (v < s.camera.height)
    d = s.depth(0)[v[ok], u[ok]]
    vis = d > 0
    near = np.abs(d[vis] - z[ok][vis]) < 0.02
    assert near.mean() > 0.5  # most visible fused points sit on frame 0's surface


def test_track_prints_summary(synth40, tmp_path, capsys):
    scene = _copy(synth40, tmp_path / "s")
    for t in range(15, N):  # keep it short
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    assert cli(["track", str(scene), "--no-cloud"]) == 0
    out = capsys.readouterr().out
    assert "tracked 15 / 15 frames, longest gap 0 frame(s), mean fitness 0." in out


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged(synth40, tmp_path_factory):
    """Frame 10 all-zero depth, frame 20 a duplicate of 19, frame 30's depth file missing."""
    scene = _copy(synth40, tmp_path_factory.mktemp("dmg") / "scene")
    d = cv2.imread(str(scene / "depth/000010.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(scene / "depth/000010.png"), np.zeros_like(d))
    for sub in ("rgb", "depth"):
        shutil.copy(scene / f"{sub}/000019.png", scene / f"{sub}/000020.png")
    (scene / "depth/000030.png").unlink()
    res = _track(scene)
    return scene, res


def test_all_zero_depth_frame_is_flagged_and_tracking_continues(damaged, synth40):
    scene, res = damaged
    assert 10 not in res.trajectory
    assert res.failed[10].startswith("too little depth (0.0% of pixels valid")
    assert all(t in res.trajectory for t in range(11, 20))
    gt = Scene(synth40).gt_trajectory()
    assert ate(res.trajectory, gt).rmse_m < SYNTH_ATE_M


def test_duplicated_frame_gets_the_pose_of_the_frame_it_repeats(damaged):
    scene, res = damaged
    assert 20 not in res.failed and res.n_duplicates == 1
    np.testing.assert_array_equal(res.trajectory[20], res.trajectory[19])
    rep = read_report(scene)
    assert rep["duplicates"] == [{"frame": 20, "of": 19,
                                  "what": "duplicate of frame 19 (identical colour and depth)"}]
    assert rep["frames"][20]["status"] == "duplicate" and rep["frames"][20]["duplicate_of"] == 19
    assert 19 in res.trajectory and 21 in res.trajectory


def test_stale_colour_frame_is_posed_by_its_depth(synth40, tmp_path):
    """Frame 25's colour repeats frame 24's (the colour stream stalled) while its depth is
    new: its pose comes from its depth, not from the stale colour."""
    scene = tmp_path / "s"
    shutil.copytree(synth40, scene)
    shutil.copy(scene / "rgb/000024.png", scene / "rgb/000025.png")
    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False))
    gt = Scene(scene).gt_trajectory()
    note = read_report(scene)["frames"][25]["note"]
    assert note.startswith("colour repeats frame 24 (the colour stream stalled)")
    assert "posed after the stream by its depth alone" in note
    # Aligned on the other frames, frame 25 sits where its depth says (GT), within 2 mm.
    aligned = {t: res.trajectory[t] for t in res.trajectory.frame_ids}
    T = gt[24] @ inv_pose(aligned[24])
    err = np.linalg.norm((T @ aligned[25])[:3, 3] - gt[25][:3, 3])
    step = np.linalg.norm(gt[25][:3, 3] - gt[24][:3, 3])
    assert err < min(0.002, 0.5 * step), (err, step)
    assert refuted_steps(DepthViews(Scene(scene)), res.trajectory) == []


def test_missing_depth_frame_is_flagged_and_named(damaged):
    scene, res = damaged
    assert 30 not in res.trajectory
    assert res.failed[30] == f"{scene / 'depth/000030.png'}: missing depth frame 30"
    assert all(t in res.trajectory for t in range(31, N))


def test_failures_are_reported_in_tracking_json_and_left_out_of_trajectory(damaged):
    scene, res = damaged
    rep = read_report(scene)
    assert [f["frame"] for f in rep["failed"]] == [10, 30]
    assert rep["n_tracked"] == N - 2 and rep["longest_gap"] == 1
    ids = Trajectory.read(scene / "trajectory.txt").frame_ids
    assert 10 not in ids and 30 not in ids and 20 in ids and len(ids) == N - 2


def test_spliced_stream_jump_is_flagged_then_relocalised(synth40, synth_other, tmp_path):
    """Frames 0-14 of room A, 15-24 from room B (a jump to another place), 25-39 = A's 15-29."""
    scene = _copy(synth40, tmp_path / "spliced")
    for k in range(10):
        for sub in ("rgb", "depth"):
            shutil.copy(synth_other / f"{sub}/{k:06d}.png", scene / f"{sub}/{15 + k:06d}.png")
    for k in range(15):
        for sub in ("rgb", "depth"):
            shutil.copy(synth40 / f"{sub}/{15 + k:06d}.png", scene / f"{sub}/{25 + k:06d}.png")
    res = _track(scene, write_cloud=False)
    assert all(t not in res.trajectory for t in range(15, 25))  # no pose in the other room
    assert "inlier ratio" in res.failed[15] or "overlap" in res.failed[15] \
        or "implausible" in res.failed[15]
    back = [t for t in range(25, N) if t in res.trajectory]
    assert len(back) >= 12  # relocalised against room A's keyframes
    gt_a = Scene(synth40).gt_trajectory()
    remapped = Trajectory({t: res.trajectory[t] for t in range(15) if t in res.trajectory}
                          | {t - 10: res.trajectory[t] for t in back})
    assert ate(remapped, gt_a).rmse_m < SYNTH_ATE_M


def test_implausible_jump_rule(synth40):
    tr = Tracker(TrackConfig(synth40), FrameSource(synth40))
    tr.prev_t, tr.T_world_prev = 5, np.eye(4)
    assert tr._jump(6, make_pose(np.eye(3), [0.02, 0, 0])) is None
    why = tr._jump(6, make_pose(np.eye(3), [1.0, 0, 0]))
    assert why is not None and why.startswith("implausible jump of 1.000 m since frame 5")


def test_scene_without_camera_json_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["track", str(tmp_path / "empty")]) == 2
    assert "camera.json: file not found" in capsys.readouterr().err


# --- resume, cancel, guard --------------------------------------------------------------------


def test_cancel_then_rerun_resumes_and_matches_an_uninterrupted_run(synth40, tracked, tmp_path):
    scene = _copy(synth40, tmp_path / "s")
    calls = []

    def stop_at_12(done, total):
        calls.append((done, total))
        return done < 12

    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False), progress=stop_at_12)
    assert res.cancelled and calls[-1] == (12, N)
    assert (scene / "recon/track_checkpoint.npz").is_file()
    assert not (scene / "trajectory.txt").exists()  # nothing but the checkpoint written
    res2 = _track(scene, write_cloud=False)
    assert res2.resumed_from == 12 and not res2.cancelled
    full = Scene(tracked[0]).trajectory
    assert res2.trajectory.frame_ids == full.frame_ids
    for t in full.frame_ids:
        # Open3D's multi-threaded reductions sum in varying order: two uninterrupted runs
        # already differ by up to ~3e-5 here.
        np.testing.assert_allclose(res2.trajectory[t], full[t], atol=2e-4)
    assert read_report(scene)["keyframes"] == read_report(tracked[0])["keyframes"]
    assert not (scene / "recon/track_checkpoint.npz").exists()


def test_track_refuses_to_replace_a_trajectory_annotations_refer_to(tracked, tmp_path, capsys):
    scene = tmp_path / "s"
    shutil.copytree(tracked[0], scene)
    for t in range(12, N):  # a short scene: the --force run below stays quick
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    traj = Trajectory.read(scene / "trajectory.txt")
    Trajectory({t: traj[t] for t in range(12)}).write(scene / "trajectory.txt")
    doc = AnnotationDocument.read(scene / "gt/annotations.json")
    doc.trajectory_sha256 = sha256_file(scene / "trajectory.txt")
    doc.write(scene / "annotations.json")
    before = snapshot(scene)
    assert cli(["track", str(scene)]) == 2
    err = capsys.readouterr().err
    assert "annotations.json: its trajectory_sha256 matches the current trajectory.txt" in err
    assert "Pass --force" in err
    assert snapshot(scene) == before  # nothing overwritten
    assert cli(["track", str(scene), "--force", "--no-cloud"]) == 0
    assert json.loads((scene / "recon/tracking.json").read_text())["note"].endswith("need checking")
    # Annotations that refer to another trajectory do not block tracking.
    doc.trajectory_sha256 = "0" * 64
    doc.write(scene / "annotations.json")
    assert cli(["track", str(scene), "--no-cloud"]) == 0


def test_odometry_only_mode_runs_frame_to_frame(synth40, tmp_path):
    scene = _copy(synth40, tmp_path / "s")
    for t in range(15, N):
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    res = _track(scene, mode="odometry", write_cloud=False)
    assert res.n_tracked == 15 and res.n_keyframes == 15  # each frame against the one before
    assert ate(res.trajectory, Scene(synth40).gt_trajectory()).rmse_m < SYNTH_ATE_M


def test_bad_config_is_a_clear_error(synth40, capsys):
    assert cli(["track", str(synth40), "--keyframe-every", "0"]) == 2
    assert "labeller track: error: --keyframe-every: must be an integer >= 1, got 0" \
        in capsys.readouterr().err
    assert cli(["track", str(synth40), "--voxel", "1"]) == 2
    assert "labeller track: error: --voxel: must be between 0.0005 and 0.2 m, got 1.0" \
        in capsys.readouterr().err


def test_bad_config_from_python_names_the_field(synth40):
    from labeller.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^TrackConfig\.mode: must be 'full' or 'odometry'"):
        run(TrackConfig(synth40, mode="slam", progress_bar=False))


# --- real data ------------------------------------------------------------------------------


def test_track_7scenes_clip_within_3cm(tmp_path):
    src = SHARED_DATA / "rgbd/sevenscenes_kitchen"
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    scene = tmp_path / "kitchen"
    assert cli(["import", "7scenes", str(src), str(scene)]) == 0
    n = 30  # the first half of the clip keeps the test short
    for t in range(n, 60):
        (scene / f"rgb/{t:06d}.jpg").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    res = _track(scene, write_cloud=False)
    gt = Trajectory({t: T for t, T in Trajectory.read(scene / "gt/trajectory.txt").poses.items()
                     if t < n})
    assert res.n_tracked == n
    assert ate(res.trajectory, gt).rmse_m < 0.03


# --- evaluation helpers -----------------------------------------------------------------------


def test_umeyama_recovers_a_rigid_motion():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(50, 3))
    from labeller.core.poses import axis_angle_to_matrix

    R = axis_angle_to_matrix([1, 2, 3], 0.8)
    Q = P @ R.T + [0.5, -1, 2]
    R_est, t_est, s = umeyama_alignment(P, Q)
    np.testing.assert_allclose(R_est, R, atol=1e-9)
    np.testing.assert_allclose(t_est, [0.5, -1, 2], atol=1e-9)
    assert s == 1.0


def test_ate_rpe_and_gaps():
    from labeller.core.poses import axis_angle_to_matrix

    gt = Trajectory({t: make_pose(np.eye(3), [0.01 * t, 0, 0]) for t in range(10)})
    # The estimate lives in another world frame and is 1 mm off at frame 5 only.
    T = make_pose(axis_angle_to_matrix([0, 0, 1], 1.0), [3, 2, 1])
    est = Trajectory({t: T @ gt[t] for t in range(10) if t != 7})
    est.poses[5] = T @ make_pose(np.eye(3), [0.05, 0.001, 0])
    a = ate(est, gt)
    assert a.n_frames == 9 and 0.0002 < a.rmse_m < 0.001 and a.max_m < 0.001
    r = rpe(est, gt)
    assert r.n_pairs == 7  # pairs (6, 7) and (7, 8) have no estimate
    assert abs(r.trans_rmse_m - np.sqrt(2 * 0.001**2 / 7)) < 1e-9
    assert tracked_fraction(est, 10) == 0.9 and longest_gap(est, 10) == 1


def test_world_is_the_first_tracked_frame_when_frame_0_fails(synth40, tmp_path):
    scene = _copy(synth40, tmp_path / "s")
    for t in range(8, N):
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    d = cv2.imread(str(scene / "depth/000000.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(scene / "depth/000000.png"), np.zeros_like(d))
    res = _track(scene, write_cloud=False)
    assert res.trajectory.frame_ids == list(range(1, 8))
    np.testing.assert_allclose(res.trajectory[1], np.eye(4), atol=1e-12)
    gt = Scene(synth40).gt_trajectory()
    gt1 = Trajectory({t: gt[t] for t in range(1, 8)}).reanchored()
    for t in range(1, 8):  # same world as the ground truth re-anchored at frame 1: no alignment
        assert np.linalg.norm(res.trajectory[t][:3, 3] - gt1[t][:3, 3]) < 0.002


def test_very_short_scene_still_writes_its_cloud(tmp_path):
    """8 frames fuse a single keyframe: the cloud must not come out empty (it did once:
    the TSDF weight threshold equalled the only integration's weight)."""
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth_run
    from labeller.track import TrackConfig
    from labeller.track import run as track_run

    scene = tmp_path / "short"
    synth_run(SynthConfig(scene, frames=8, seed=2, width=320, height=240))
    res = track_run(TrackConfig(scene=scene, progress_bar=False))
    assert res.n_tracked == 8
    assert res.cloud_points > 1000 and (scene / "recon" / "cloud.ply").is_file()
