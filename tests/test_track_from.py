"""`labeller track SCENE --from FILE --format tum|orbslam3|campose|log`: external trajectories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.fileio import sha256_file
from labeller.core.poses import inv_pose, matrix_to_quat_wxyz
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation
from labeller.formats.scene import Scene
from labeller.formats.trajectory import TimedTrajectory, Trajectory
from labeller.track.external import guess_format
from tests.helpers import snapshot, write_tiny_scene

N = 12
FRAME_DT = 0.005  # frame stamps 5 ms after the trajectory's: within the 20 ms window


@pytest.fixture
def gt_timed(shared_data) -> TimedTrajectory:
    return TimedTrajectory.read_tum(shared_data / "trajectories/groundtruth.txt")


def _scene_with_stamps(root: Path, stamps) -> Path:
    write_tiny_scene(root, n=len(stamps))
    (root / "timestamps.txt").write_text(
        "# frame_id seconds\n" + "".join(f"{t} {s:.6f}\n" for t, s in enumerate(stamps)))
    return root


def _assert_traj(got: Trajectory, want: dict[int, np.ndarray], atol=1e-6) -> None:
    """`got` equals `want` re-anchored to its first frame."""
    ref = Trajectory(want).reanchored()
    assert got.frame_ids == ref.frame_ids
    np.testing.assert_allclose(got[got.frame_ids[0]], np.eye(4), atol=1e-9)
    for t in ref.frame_ids:
        np.testing.assert_allclose(got[t], ref[t], atol=atol)


def test_tum_write_then_from_round_trip(gt_timed, tmp_path, capsys):
    stamps = gt_timed.stamps[:N] + FRAME_DT
    scene = _scene_with_stamps(tmp_path / "scene", stamps)
    # Round trip: write the real trajectory back out as TUM, read it with --from.
    tum = tmp_path / "traj.txt"
    TimedTrajectory(gt_timed.stamps[:N], gt_timed.poses[:N]).write_tum(tum)
    assert cli(["track", str(scene), "--from", str(tum), "--format", "tum"]) == 0
    assert f"imported {N} of {N} frames' poses" in capsys.readouterr().out
    _assert_traj(Scene(scene).trajectory, {t: gt_timed.poses[t] for t in range(N)})


def test_tum_from_shared_file_directly(gt_timed, shared_data, tmp_path):
    stamps = gt_timed.stamps[5:5 + N] - FRAME_DT
    scene = _scene_with_stamps(tmp_path / "scene", stamps)
    assert cli(["track", str(scene), "--from",
                str(shared_data / "trajectories/groundtruth.txt")]) == 0
    _assert_traj(Scene(scene).trajectory, {t: gt_timed.poses[5 + t] for t in range(N)}, 1e-6)


def test_orbslam3_keyframes_in_ns_leave_other_frames_untracked(gt_timed, tmp_path):
    stamps = gt_timed.stamps[:N]
    scene = _scene_with_stamps(tmp_path / "scene", stamps)
    keys = [1, 4, 5, 9]  # frame 0 has no keyframe: the world becomes frame 1
    lines = []
    for t in keys:
        T = gt_timed.poses[t]
        q = matrix_to_quat_wxyz(T[:3, :3])
        lines.append(f"{int(round(stamps[t] * 1e9))} " + " ".join(
            f"{v:.9f}" for v in (*T[:3, 3], q[1], q[2], q[3], q[0])))
    f = tmp_path / "KeyFrameTrajectory.txt"
    f.write_text("\n".join(lines) + "\n")
    assert guess_format(f) == "orbslam3"
    assert cli(["track", str(scene), "--from", str(f)]) == 0
    traj = Scene(scene).trajectory
    assert traj.frame_ids == keys
    _assert_traj(traj, {t: gt_timed.poses[t] for t in keys})


def _poses(n: int) -> dict[int, np.ndarray]:
    from labeller.core.poses import axis_angle_to_matrix, make_pose

    return {t: make_pose(axis_angle_to_matrix([0.3, 1.0, -0.2], 0.1 * t + 0.5),
                         [0.1 * t, -0.05 * t, 1.0 + 0.02 * t]) for t in range(n)}


def _write_campose(f: Path, poses: dict[int, np.ndarray], convention: str,
                   units_per_m: float = 1.0) -> Path:
    """campose.txt lines for `poses` (T_world_cam, metres), stored as `convention`
    ('w2c': T_cam_world like COLMAP; 'c2w': T_world_cam) in units of 1/units_per_m m."""
    lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"]
    for k, (t, T_world_cam) in enumerate(sorted(poses.items())):
        P = inv_pose(T_world_cam) if convention == "w2c" else T_world_cam.copy()
        q = matrix_to_quat_wxyz(P[:3, :3])
        lines.append(f"{k + 1} " + " ".join(f"{v:.10f}" for v in (*q, *P[:3, 3] * units_per_m))
                     + f" 1 {t:06d}.png")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("\n".join(lines) + "\n")
    return f


def _pl_config(project: Path, inverse_pose: bool | None, scale: float | None) -> None:
    cfg: dict = {"camera": {}, "reconstruction": {}}
    if inverse_pose is not None:
        cfg["camera"]["inverse_pose"] = inverse_pose
    if scale is not None:
        cfg["reconstruction"]["scale"] = scale
    (project / "configuration.json").write_text(json.dumps(cfg))


def test_campose_round_trip(tmp_path):
    scene = write_tiny_scene(tmp_path / "scene", n=5)
    poses = _poses(5)
    keep = {t: poses[t] for t in (0, 1, 3, 4)}  # frame 2 has no pose
    f = _write_campose(tmp_path / "campose.txt", keep, "w2c")
    assert cli(["track", str(scene), "--from", str(f), "--convention", "w2c",
                "--scale", "1"]) == 0
    _assert_traj(Scene(scene).trajectory, keep)


@pytest.mark.parametrize("inverse_pose", [False, True], ids=["c2w", "w2c"])
def test_campose_follows_progresslabeller_configuration(tmp_path, inverse_pose, capsys):
    # A ProgressLabeller project: configuration.json at the top, recon/campose.txt below,
    # translations in reconstruction units of 1/scale... i.e. metres = units * scale.
    scene = write_tiny_scene(tmp_path / "scene", n=5)
    poses = _poses(5)
    scale = 0.25  # ProgressLabeller: metres per reconstruction unit
    project = tmp_path / "project"
    f = _write_campose(project / "recon" / "campose.txt", poses,
                       "w2c" if inverse_pose else "c2w", units_per_m=1 / scale)
    _pl_config(project, inverse_pose, scale)
    assert cli(["track", str(scene), "--from", str(f)]) == 0
    out = capsys.readouterr().out
    assert ("world-to-camera (inverted)" if inverse_pose else "camera-to-world") in out
    assert "translations x 0.25; from " in out and "configuration.json" in out
    _assert_traj(Scene(scene).trajectory, poses)


def test_campose_without_configuration_asks_instead_of_guessing(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=5)
    poses = _poses(5)
    f = _write_campose(tmp_path / "a" / "b" / "c" / "campose.txt", poses, "c2w")
    assert cli(["track", str(scene), "--from", str(f)]) == 2
    err = capsys.readouterr().err
    assert "campose.txt: does not say whether its poses are camera-to-world" in err
    assert "give --convention c2w|w2c and --scale S" in err
    assert not (scene / "trajectory.txt").exists()
    assert cli(["track", str(scene), "--from", str(f), "--convention", "c2w"]) == 2
    assert "give --scale S (--scale 1 for metric poses)" in capsys.readouterr().err
    # The wrong guess (the old behaviour: always w2c) is not what the right flags give.
    assert cli(["track", str(scene), "--from", str(f), "--convention", "c2w",
                "--scale", "1"]) == 0
    _assert_traj(Scene(scene).trajectory, poses)


def test_campose_flags_override_configuration_and_bad_configs(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=4)
    poses = _poses(4)
    project = tmp_path / "project"
    f = _write_campose(project / "recon" / "campose.txt", poses, "c2w")
    _pl_config(project, True, 1.0)  # says w2c: wrong for this file
    assert cli(["track", str(scene), "--from", str(f), "--convention", "c2w"]) == 0
    assert "--convention/--scale, overriding" in capsys.readouterr().out
    _assert_traj(Scene(scene).trajectory, poses)
    _pl_config(project, None, 1.0)
    assert cli(["track", str(scene), "--from", str(f), "--force"]) == 2
    assert "configuration.json: no 'camera.inverse_pose'" in capsys.readouterr().err
    _pl_config(project, True, -2.0)
    assert cli(["track", str(scene), "--from", str(f), "--force"]) == 2
    assert "'reconstruction.scale' must be a number > 0" in capsys.readouterr().err
    assert cli(["track", str(scene), "--from", str(f), "--force", "--scale", "0"]) == 2
    assert "--scale: must be a number > 0" in capsys.readouterr().err


def test_convention_applies_only_to_campose(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=2)
    log = tmp_path / "traj.log"
    log.write_text("".join(f"{t} {t} {t + 1}\n" + "".join(
        " ".join(f"{v:.12f}" for v in row) + "\n" for row in np.eye(4)) for t in range(2)))
    assert cli(["track", str(scene), "--from", str(log), "--convention", "w2c"]) == 2
    assert "--convention: applies only to --format campose" in capsys.readouterr().err
    assert cli(["track", str(scene), "--scale", "2"]) == 2
    assert "--scale: applies only with --from FILE" in capsys.readouterr().err


def test_open3d_log_round_trip(tmp_path):
    scene = write_tiny_scene(tmp_path / "scene", n=4)
    poses = _poses(4)
    text = ""
    for t in range(1, 4):
        text += f"{t} {t} {t + 1}\n" + "".join(
            " ".join(f"{v:.12f}" for v in row) + "\n" for row in poses[t])
    f = tmp_path / "traj.log"
    f.write_text(text)
    assert cli(["track", str(scene), "--from", str(f)]) == 0
    traj = Scene(scene).trajectory
    assert traj.frame_ids == [1, 2, 3]
    _assert_traj(traj, {t: poses[t] for t in (1, 2, 3)})


# --- bad input -------------------------------------------------------------------------------


def test_timestamps_matching_no_frame_are_refused(gt_timed, tmp_path, capsys):
    scene = _scene_with_stamps(tmp_path / "scene", gt_timed.stamps[:3] + 100.0)
    before = snapshot(scene)
    tum = tmp_path / "traj.txt"
    TimedTrajectory(gt_timed.stamps[:N], gt_timed.poses[:N]).write_tum(tum)
    assert cli(["track", str(scene), "--from", str(tum)]) == 2
    err = capsys.readouterr().err
    assert "traj.txt: its timestamps match no frame within 20 ms" in err
    assert snapshot(scene) == before


def test_tum_without_timestamps_txt_is_refused(gt_timed, tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene")
    tum = tmp_path / "traj.txt"
    TimedTrajectory(gt_timed.stamps[:N], gt_timed.poses[:N]).write_tum(tum)
    assert cli(["track", str(scene), "--from", str(tum)]) == 2
    assert "timestamps.txt: missing: a tum trajectory is given by time" in capsys.readouterr().err
    assert not (scene / "trajectory.txt").exists()


def test_campose_bad_quaternion_is_refused(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=2)
    f = tmp_path / "campose.txt"
    f.write_text("1 1 0 0 0 0 0 0 1 000000.png\n2 0.5 0.5 0 0 0.1 0 0 1 000001.png\n")
    assert cli(["track", str(scene), "--from", str(f), "--format", "campose"]) == 2
    assert "campose.txt:2: bad quaternion (norm 0.7071, expected 1)" in capsys.readouterr().err
    assert not (scene / "trajectory.txt").exists()


def test_malformed_log_is_refused(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=2)
    f = tmp_path / "t.log"
    f.write_text("0 0 1\n1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    assert cli(["track", str(scene), "--from", str(f)]) == 2
    assert "t.log: expected entries of 5 lines" in capsys.readouterr().err


def test_from_respects_the_annotations_guard(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=4)
    poses = _poses(4)
    log = tmp_path / "traj.log"
    log.write_text("".join(f"{t} {t} {t + 1}\n" + "".join(
        " ".join(f"{v:.12f}" for v in row) + "\n" for row in poses[t]) for t in range(4)))
    assert cli(["track", str(scene), "--from", str(log)]) == 0
    doc = AnnotationDocument([ObjectAnnotation(1, "mug", "m.ply", np.eye(4))],
                             trajectory_sha256=sha256_file(scene / "trajectory.txt"))
    doc.write(scene / "annotations.json")
    before = snapshot(scene)
    assert cli(["track", str(scene), "--from", str(log)]) == 2
    assert "its trajectory_sha256 matches the current trajectory.txt" in capsys.readouterr().err
    assert snapshot(scene) == before
    assert cli(["track", str(scene), "--from", str(log), "--force"]) == 0
    assert "refers to the trajectory being replaced (--force)" in capsys.readouterr().err


def test_format_without_from_is_refused(tmp_path, capsys):
    scene = write_tiny_scene(tmp_path / "scene", n=2)
    assert cli(["track", str(scene), "--format", "tum"]) == 2
    assert "--format: applies only with --from FILE" in capsys.readouterr().err


def test_from_with_evaluate_holds_the_imported_trajectory_against_the_depth(tmp_path, capsys):
    """`--from FILE --evaluate GT`: evo's figures and the depth check for an external
    trajectory; one whose translations are 10x too long has every step refuted."""
    from labeller.core.poses import make_pose
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    scene = tmp_path / "scene"
    synth(SynthConfig(scene, frames=20, seed=1, width=320, height=240))
    stamps = np.arange(20) / 30.0
    (scene / "timestamps.txt").write_text(
        "# frame_id seconds\n" + "".join(f"{t} {s:.6f}\n" for t, s in enumerate(stamps)))
    gt = Scene(scene).gt_trajectory()
    gt_path = scene / "gt/trajectory.txt"
    for factor, refuted in ((1.0, 0), (10.0, 19)):
        tum = tmp_path / f"traj_{factor:g}.txt"
        TimedTrajectory(stamps, np.stack([make_pose(gt[t][:3, :3], factor * gt[t][:3, 3])
                                          for t in range(20)])).write_tum(tum)
        assert cli(["track", str(scene), "--from", str(tum), "--format", "tum", "--force",
                    "--evaluate", str(gt_path)]) == 0
        out = capsys.readouterr().out
        assert "evo over 20 frames: ATE RMSE" in out
        assert f"steps of the trajectory the depth refutes: {refuted}" in out
        assert "steps of the reference the depth refutes: 0" in out
