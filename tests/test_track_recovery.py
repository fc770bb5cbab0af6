"""Tracking over hard streams: a covered camera, a splice, a lost stretch posed backwards,
colour shifted against depth, the real 400-frame 7-Scenes clip (duplicates, loop closure,
ATE), and evo's figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.evaluate.evo_metrics import evo_figures
from labeller.evaluate.trajectory import ate, rpe
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from labeller.track import TrackConfig, read_report, run
from tests.helpers import SHARED_DATA

SYNTH_ATE_M = 0.005


def _synth(tmp_path_factory, name: str, frames: int, seed: int) -> Path:
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    out = tmp_path_factory.mktemp("synth") / name
    synth(SynthConfig(out, frames=frames, seed=seed, width=320, height=240))
    return out


@pytest.fixture(scope="module")
def room_a(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory, "a", 40, 1)


@pytest.fixture(scope="module")
def room_b(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory, "b", 20, 2)


def _compose(dest: Path, parts: list[tuple[Path | None, int]]) -> None:
    """A scene from (source scene or None for a covered frame, source frame) per frame."""
    (dest / "rgb").mkdir(parents=True)
    (dest / "depth").mkdir()
    first = next(p for p, _ in parts if p is not None)
    shutil.copy(first / "camera.json", dest / "camera.json")
    cam = Scene(first).camera
    for t, (src, k) in enumerate(parts):
        if src is None:  # lens covered: black colour, no depth
            cv2.imwrite(str(dest / f"rgb/{t:06d}.png"), np.zeros((cam.height, cam.width, 3),
                                                                  np.uint8))
            cv2.imwrite(str(dest / f"depth/{t:06d}.png"), np.zeros((cam.height, cam.width),
                                                                   np.uint16))
            continue
        for sub in ("rgb", "depth"):
            shutil.copy(src / f"{sub}/{k:06d}.png", dest / f"{sub}/{t:06d}.png")


def _copy_frames(src: Path, dest: Path) -> None:
    """Copy a scene without its tracking outputs (gt/ stays)."""
    shutil.copytree(src, dest, ignore=lambda d, names: ["recon", "trajectory.txt"]
                    if Path(d) == src else [])


def test_covered_camera_then_back_to_a_seen_place_relocalises(room_a, tmp_path):
    """Room A's frames 0-39, 30 covered frames, then A's frames 0-14 again: the camera is
    back where the recording started (12 cm and 15 degrees from where it was covered)."""
    parts = [(room_a, k) for k in range(40)] + [(None, 0)] * 30 + \
        [(room_a, k) for k in range(15)]
    scene = tmp_path / "covered"
    _compose(scene, parts)
    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False))
    for t in range(40, 70):
        assert res.failed[t].startswith("too little depth (0.0% of pixels valid")
    assert [t for t in range(70, 85) if t in res.trajectory] == list(range(70, 85))
    gt = Scene(room_a).gt_trajectory()
    first = Trajectory({t: res.trajectory[t] for t in range(40)})
    again = Trajectory({t - 70: res.trajectory[t] for t in range(70, 85)})
    assert ate(first, gt).rmse_m < SYNTH_ATE_M
    # The second visit lands where the first one was: same world, no re-alignment.
    for k in range(15):
        assert np.linalg.norm(again[k][:3, 3] - first[k][:3, 3]) < 0.005
    rep = read_report(scene)
    relocs = [e for e in rep["pose_graph"]["verified_edges"] if e["kind"] == "reloc"]
    assert relocs and relocs[0]["frame"] >= 70 and relocs[0]["matched_frame"] < 15, relocs


def test_splice_of_two_unrelated_recordings_closes_no_false_loop(room_a, room_b, tmp_path):
    """Room A's frames 0-19, then room B's 0-19: B must not be posed in A's world."""
    parts = [(room_a, k) for k in range(20)] + [(room_b, k) for k in range(20)]
    scene = tmp_path / "splice"
    _compose(scene, parts)
    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False))
    assert all(t in res.trajectory for t in range(20))
    assert all(t not in res.trajectory for t in range(20, 40))
    assert all(res.failed[t] for t in range(20, 40))
    rep = read_report(scene)
    edges = rep["pose_graph"]["verified_edges"]
    # Every verified loop / relocalisation edge joins two frames of the same recording.
    assert all((e["frame"] < 20) == (e["matched_frame"] < 20) for e in edges), edges
    assert rep["pose_graph"]["relocalisations"] == 0


def test_frames_lost_before_a_relocalisation_are_posed_backwards(room_a, room_b, tmp_path):
    """Room A's 0-39, 16 frames of room B, then A's 0-9 again. After 10 lost frames
    relocalisation is tried every third frame only, so A's first frames back are lost at
    first; once one relocalises, those before it are posed backwards from it."""
    parts = [(room_a, k) for k in range(40)] + [(room_b, k) for k in range(16)] + \
        [(room_a, k) for k in range(10)]
    scene = tmp_path / "back"
    _compose(scene, parts)
    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False))
    assert all(t not in res.trajectory for t in range(40, 56))  # room B: no pose
    assert [t for t in range(56, 66) if t in res.trajectory] == list(range(56, 66))
    notes = {f["frame"]: f.get("note") or "" for f in read_report(scene)["frames"]}
    backwards = [t for t in range(56, 66) if notes[t].startswith("posed after the stream, "
                                                                 "backwards from frame")]
    assert backwards and backwards[0] == 56, notes
    for k in range(10):  # the second visit lands on the first one
        assert np.linalg.norm(res.trajectory[56 + k][:3, 3] - res.trajectory[k][:3, 3]) < 0.005


def test_colour_shifted_one_frame_against_depth_is_warned(tmp_path_factory, tmp_path, capsys):
    """Colour of frame t+1 stored with the depth of frame t: a clear warning, not silence."""
    src = _synth(tmp_path_factory, "shift", 40, 3)
    scene = tmp_path / "shifted"
    shutil.copytree(src, scene)
    for t in range(39):
        shutil.copy(src / f"rgb/{t + 1:06d}.png", scene / f"rgb/{t:06d}.png")
    assert cli(["track", str(scene), "--no-cloud"]) == 0
    err = capsys.readouterr().err
    assert "labeller track: warning:" in err and "colour and depth look shifted in time" in err
    rep = read_report(scene)
    assert rep["consistency"]["warning"].startswith("colour and depth look shifted in time: "
                                                    "the colour leads the depth by one frame")
    # The untouched recording raises no such warning.
    clean = tmp_path / "clean"
    shutil.copytree(src, clean)
    assert cli(["track", str(clean), "--no-cloud"]) == 0
    assert "shifted in time" not in capsys.readouterr().err
    assert read_report(clean)["consistency"]["warning"] is None


def _votes(scene: Path, lag: int = 0) -> dict:
    """The consistency verdict of a scene's frames, its colour moved by `lag` frames
    (lag 1: the colour of frame t+1 stored with the depth of frame t)."""
    from labeller.track.consistency import StreamConsistency
    from labeller.track.frames import FrameSource
    from labeller.track.pyramid import PreparedFrame

    src = FrameSource(scene)
    c = StreamConsistency()
    for t in range(max(0, -lag), src.n_frames - max(0, lag)):
        _, depth = src.read(t)
        rgb, _ = src.read(t + lag)
        c.add(PreparedFrame(t, rgb, depth, src.camera, 3.0))
    return c.verdict()


def test_colour_lagging_by_a_frame_is_warned_too(tmp_path_factory):
    src = _synth(tmp_path_factory, "lag", 40, 3)
    v = _votes(src, lag=-1)
    assert v["warning"] is not None and "the colour lags the depth by one frame" in v["warning"]
    assert _votes(src, lag=1)["warning"].startswith("colour and depth look shifted in time: "
                                                    "the colour leads")
    assert _votes(src)["warning"] is None


def test_slow_camera_raises_no_false_timing_warning(tmp_path_factory):
    """A synchronised scene whose camera moves under 2 pixels a frame: comparing only lags
    -1..+1 it read as "colour leads" 81 to 16; frames that hardly move now do not vote."""
    v = _votes(_synth(tmp_path_factory, "slow", 120, 4))
    assert v["warning"] is None, v


def test_evaluate_prints_evo_figures_that_agree_with_our_own(room_a, tmp_path, capsys):
    scene = tmp_path / "s"
    _copy_frames(room_a, scene)
    for t in range(15, 40):
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    gt_path = scene / "gt/trajectory.txt"
    assert cli(["track", str(scene), "--no-cloud", "--evaluate", str(gt_path)]) == 0
    out = capsys.readouterr().out
    assert "evo over 15 frames: ATE RMSE " in out and "RPE per frame" in out
    est, gt = Trajectory.read(scene / "trajectory.txt"), Trajectory.read(gt_path)
    ev, own = evo_figures(est, gt), ate(est, gt)
    assert ev.ate_rmse_m == pytest.approx(own.rmse_m, rel=1e-6, abs=1e-9)
    assert ev.ate_max_m == pytest.approx(own.max_m, rel=1e-6, abs=1e-9)
    assert ev.rpe_trans_rmse_m == pytest.approx(rpe(est, gt).trans_rmse_m, rel=1e-6, abs=1e-9)
    assert f"ATE RMSE {own.rmse_m * 1000:.2f} mm" in out


def test_evaluate_against_a_foreign_trajectory_is_a_clear_error(room_a, tmp_path, capsys):
    scene = tmp_path / "s"
    _copy_frames(room_a, scene)
    for t in range(8, 40):
        (scene / f"rgb/{t:06d}.png").unlink()
        (scene / f"depth/{t:06d}.png").unlink()
    other = tmp_path / "other.txt"
    Trajectory({100 + t: np.eye(4) for t in range(5)}).write(other)
    assert cli(["track", str(scene), "--no-cloud", "--evaluate", str(other)]) == 2
    assert "other.txt: the trajectories share 0 frame(s); need at least 3" \
        in capsys.readouterr().err


# --- the real 400-frame clip ------------------------------------------------------------------

# Before loop closure, duplicate handling and relocalisation the tracker gave 34.3 mm with
# 29 frames unposed on this clip; with them 32-33 mm with every frame posed; since the
# importer registers 7-Scenes depth into the Kinect v1 colour camera (its own K, 2.5 cm
# beside the depth camera) 28.9 mm (runs differ by ~1 mm: Open3D's threaded sums change
# which loop candidates pass; docs/tracking.md). The bound leaves 2 mm for that.
REAL_400_ATE_M = 0.031


@pytest.mark.slow
def test_real_400_frame_clip_every_frame_posed_and_ate_below_the_old_tracker(tmp_path):
    src = SHARED_DATA / "rgbd/sevenscenes_kitchen_0_399"
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    scene = tmp_path / "kitchen"
    assert cli(["import", "7scenes", str(src), str(scene)]) == 0
    res = run(TrackConfig(scene, progress_bar=False, write_cloud=False))
    gt = Trajectory.read(scene / "gt/trajectory.txt")
    assert res.n_tracked == 400 and res.failed == {}
    rep = read_report(scene)
    # The 29 frames whose colour and depth repeat the previous frame byte for byte get its
    # pose; those whose depth alone repeats (10) too.
    full = [d for d in rep["duplicates"] if "identical colour and depth" in d["what"]]
    assert len(full) == 29
    for d in rep["duplicates"]:
        np.testing.assert_array_equal(res.trajectory[d["frame"]], res.trajectory[d["of"]])
    # Long loops (the end of the path sees the start again) are verified and kept.
    long_loops = [e for e in rep["pose_graph"]["verified_edges"]
                  if e["kind"] == "loop" and e["frame"] - e["matched_frame"] > 150]
    # Appearance (ORB + PnP) closes them; with an accurate path, proximity finds some too.
    assert any(e["kept"] and e["evidence"] == "orb+pnp" for e in long_loops), long_loops
    a = ate(res.trajectory, gt)
    assert a.rmse_m < REAL_400_ATE_M, a
    # The frames whose colour stalled (9 here) are posed by their depth: no step into or
    # out of one is refuted by the depth (before, 312 -> 313 was: 2 mm tracked where the
    # depth shows 9 mm). The ground truth's 121 -> 122 is: tests/test_depth_agreement.py.
    # Other steps may be: 161 -> 162 sits at the margin (a gain of 0.09-0.10).
    from labeller.evaluate.depth_agreement import DepthViews, refuted_steps
    from labeller.formats.scene import Scene

    stale = [f["frame"] for f in rep["frames"]
             if (f.get("note") or "").startswith("colour repeats frame")]
    assert len(stale) == 9 and all("posed after the stream by its depth alone" in
                                   rep["frames"][t]["note"] for t in stale)
    refuted = refuted_steps(DepthViews(Scene(scene)), res.trajectory)
    near_stale = set(stale) | {t + 1 for t in stale}
    assert not [r for r in refuted if r.frame in near_stale], [r.describe() for r in refuted]
    assert len(refuted) <= 2, [r.describe() for r in refuted]
    assert evo_figures(res.trajectory, gt).ate_rmse_m == pytest.approx(a.rmse_m, rel=1e-6)
