"""Trajectories held against the recorded depth: refuted steps and long-baseline agreement
(`labeller.evaluate.depth_agreement`).

Synthetic 40-frame scenes (320x240) plus the real 400-frame 7-Scenes clip, whose
ground truth (KinectFusion's estimate) has one step its own depth contradicts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.poses import axis_angle_to_matrix, inv_pose, make_pose
from labeller.evaluate import depth_agreement as da
from labeller.evaluate.trajectory import ate
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from tests.helpers import SHARED_DATA


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth_run

    out = tmp_path_factory.mktemp("agree") / "scene"
    synth_run(SynthConfig(out, frames=40, seed=1, width=320, height=240))
    return out


def _jumped(traj: Trajectory, at: int, T_jump: np.ndarray) -> Trajectory:
    """`traj` with every pose from frame `at` on moved by T_jump (in the world)."""
    return Trajectory({t: (T_jump @ traj[t] if t >= at else traj[t]) for t in traj.frame_ids})


def test_true_trajectory_has_no_refuted_step(synth):
    scene = Scene(synth)
    assert da.refuted_steps(da.DepthViews(scene), scene.gt_trajectory()) == []


def test_a_jump_the_images_do_not_show_is_refuted_and_repaired(synth):
    scene = Scene(synth)
    gt = scene.gt_trajectory()
    # 3 cm sideways in the camera frame of frame 20: a step the depth does not show.
    bad = _jumped(gt, 20, gt[19] @ make_pose(np.eye(3), [0.03, 0.0, 0.0]) @ inv_pose(gt[19]))
    steps = da.refuted_steps(da.DepthViews(scene), bad)
    assert [(s.previous, s.frame) for s in steps] == [(19, 20)]
    s = steps[0]
    assert s.agreement_icp - s.agreement >= da.REFUTE_MARGIN
    assert s.disagreement_m == pytest.approx(0.03, abs=0.004)
    assert "frame 19 -> 20: a step of" in s.describe()
    # Replacing the step by ICP's gives back the true path (to a millimetre).
    assert ate(da.with_steps_replaced(bad, steps), gt).rmse_m < 0.001
    assert ate(bad, gt).rmse_m > 0.01


def test_drift_lowers_the_long_baseline_agreement(synth, monkeypatch):
    # The 40-frame scene revisits no place 60 frames later: judge pairs 15 frames apart.
    monkeypatch.setattr(da, "PAIR_MIN_GAP", 15)
    monkeypatch.setattr(da, "PAIR_EVERY", 5)
    scene = Scene(synth)
    gt = scene.gt_trajectory()
    # 1 degree of yaw drift per 10 frames, accumulated.
    drifted = Trajectory({t: gt[0] @ make_pose(axis_angle_to_matrix([0, 1, 0], np.radians(
        0.1 * t)), [0, 0, 0]) @ inv_pose(gt[0]) @ gt[t] for t in gt.frame_ids})
    rep = da.check_against_depth(scene, drifted, gt)
    assert len(rep.pairs) >= 3
    assert rep.reference_agreement is not None
    assert (rep.agreement < rep.reference_agreement).all(), (rep.agreement,
                                                              rep.reference_agreement)
    assert rep.reference_refuted == [] and rep.reference_ate_floor_m == 0.0
    text = "\n".join(rep.summary())
    assert f"the trajectory agrees better on 0 of {len(rep.pairs)}" in text


def test_no_revisit_says_so(synth):
    scene = Scene(synth)
    rep = da.check_against_depth(scene, scene.gt_trajectory())
    assert rep.pairs == [] and rep.refuted == []
    assert rep.summary()[0].startswith("no long-baseline pairs (no view seen again >= 60")


def test_track_evaluate_prints_the_depth_check(synth, tmp_path, capsys):
    scene = tmp_path / "s"
    shutil.copytree(synth, scene)
    assert cli(["track", str(scene), "--no-cloud", "--evaluate",
                str(scene / "gt/trajectory.txt")]) == 0
    out = capsys.readouterr().out
    assert "evo over 40 frames: ATE RMSE" in out
    assert "steps of the trajectory the depth refutes: 0" in out
    assert "steps of the reference the depth refutes: 0" in out


def test_real_clip_ground_truth_has_one_step_its_depth_contradicts(tmp_path):
    """7-Scenes' KinectFusion poses jump 36 mm between frames 121 and 122; the depth of the
    two frames shows ~9 mm of motion (tracker-independent: ICP from the ground truth's own
    step)."""
    src = SHARED_DATA / "rgbd/sevenscenes_kitchen_0_399"
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    scene = tmp_path / "kitchen"
    assert cli(["import", "7scenes", str(src), str(scene)]) == 0
    s = Scene(scene)
    gt = s.gt_trajectory()
    steps = da.refuted_steps(da.DepthViews(s), gt)
    assert [(x.previous, x.frame) for x in steps] == [(121, 122)]
    assert steps[0].step_m > 0.03 and steps[0].depth_step_m < 0.015
    assert 0.005 < ate(gt, da.with_steps_replaced(gt, steps)).rmse_m < 0.015


def test_evaluate_skips_frames_without_readable_depth(synth, tmp_path, capsys):
    """Tracking goes on past a missing or broken depth frame; so does the depth check."""
    scene = tmp_path / "s"
    shutil.copytree(synth, scene)
    (scene / "depth/000030.png").unlink()
    (scene / "depth/000020.png").write_bytes(b"not a png")
    assert cli(["track", str(scene), "--no-cloud", "--evaluate",
                str(scene / "gt/trajectory.txt")]) == 0
    out = capsys.readouterr().out
    assert "steps of the trajectory the depth refutes: 0" in out
    assert "steps of the reference the depth refutes: 0" in out
