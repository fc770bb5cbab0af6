"""Importers: 7-Scenes (real clip) and TUM RGB-D (a fixture built from a synthetic scene)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.camera import CameraIntrinsics
from labeller.core.poses import axis_angle_to_matrix, inv_pose, make_pose, matrix_to_quat_xyzw
from labeller.formats.scene import Scene
from labeller.formats.trajectory import TimedTrajectory, Trajectory
from labeller.importers import FORMATS, import_scene
from labeller.importers.tum import associate, interpolate_poses
from tests.helpers import snapshot

SEVEN = "rgbd/sevenscenes_kitchen"


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.endswith(".tmp")]


# --- 7-Scenes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory) -> tuple[Path, Path]:
    from tests.helpers import SHARED_DATA

    src = SHARED_DATA / SEVEN
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    dest = tmp_path_factory.mktemp("imp") / "kitchen"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 0
    return src, dest


@pytest.fixture(scope="module")
def kitchen_unregistered(kitchen, tmp_path_factory) -> tuple[Path, Path]:
    src, _ = kitchen
    dest = tmp_path_factory.mktemp("imp") / "kitchen_unregistered"
    assert cli(["import", "7scenes", str(src), str(dest), "--no-register"]) == 0
    return src, dest


def _relative_source_pose(src: Path, t: int, T_colour_depth: np.ndarray) -> np.ndarray:
    """inv(T_world_cam(0)) @ T_world_cam(t) of the camera `T_colour_depth` away from the
    depth camera KinectFusion tracked."""
    P0, Pt = (np.loadtxt(src / f"frames/frame-{i:06d}.pose.txt") @ inv_pose(T_colour_depth)
              for i in (0, t))
    return np.linalg.inv(P0) @ Pt


def test_7scenes_real_clip_layout_and_poses(kitchen, capsys):
    from labeller.importers.sevenscenes import KINECT_V1_T_COLOUR_DEPTH

    src, dest = kitchen
    scene = Scene(dest)
    assert scene.n_frames == 60
    # 7-Scenes gives only the depth camera's K: the scene is the Kinect v1 colour camera's.
    assert scene.camera == CameraIntrinsics(640, 480, 525.0, 525.0, 319.5, 239.5, 1000.0)
    # Colour frames are copied byte-identical and renumbered in sorted order.
    src_jpg = src / "frames/frame-000007.color.jpg"
    assert (dest / "rgb/000007.jpg").read_bytes() == src_jpg.read_bytes()
    gt = scene.gt_trajectory()
    assert gt is not None and gt.frame_ids == list(range(60))
    np.testing.assert_allclose(gt[0], np.eye(4), atol=1e-9)
    # Re-anchored, and moved from KinectFusion's depth camera to the colour camera.
    want = _relative_source_pose(src, 59, KINECT_V1_T_COLOUR_DEPTH)
    np.testing.assert_allclose(gt[59], want, atol=5e-4)  # KinectFusion R off by ~1e-4
    # The 2.5 cm lever arm moves the colour camera 1.9 mm further than the depth camera.
    assert np.abs(_relative_source_pose(src, 59, np.eye(4)) - want).max() > 1.5e-3
    assert not scene.paths.timestamps.exists()
    assert cli(["info", str(dest)]) == 0
    assert ("depth registered into the colour camera at import (the Kinect v1 default "
            "calibration)") in capsys.readouterr().out


def test_7scenes_no_register_keeps_the_depth_camera(kitchen_unregistered, capsys):
    src, dest = kitchen_unregistered
    scene = Scene(dest)
    assert scene.camera == CameraIntrinsics(640, 480, 585.0, 585.0, 320.0, 240.0, 1000.0)
    gt = scene.gt_trajectory()
    assert gt is not None
    np.testing.assert_allclose(gt[30], _relative_source_pose(src, 30, np.eye(4)), atol=1e-3)
    assert cli(["info", str(dest)]) == 0
    assert "not registered (--no-register)" in capsys.readouterr().out


def test_7scenes_depth_65535_becomes_zero(kitchen, kitchen_unregistered):
    src, dest = kitchen_unregistered
    for t in range(60):
        raw = cv2.imread(str(src / f"frames/frame-{t:06d}.depth.png"), cv2.IMREAD_UNCHANGED)
        if (raw == 65535).any():
            out = Scene(dest).depth_raw(t)
            assert not (out == 65535).any()
            assert (out[raw == 65535] == 0).all()
            np.testing.assert_array_equal(out[raw != 65535], raw[raw != 65535])
            # Registered, no "no measurement" becomes a far point: nothing lies beyond
            # the farthest measurement (plus the 2.5 cm between the cameras).
            registered = Scene(kitchen[1]).depth_raw(t)
            assert 0 < registered.max() <= raw[raw != 65535].max() + 25
            return
    pytest.fail("the clip has no 65535 depth pixel: the test cannot check the conversion")


def _mini_7scenes(root: Path, n: int = 3, poses: bool = True, intrinsics: bool = True) -> Path:
    """A small 7-Scenes folder (copies of the real clip's first frames) in seq-01/."""
    from tests.helpers import SHARED_DATA

    src = SHARED_DATA / SEVEN
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    seq = root / "seq-01"
    seq.mkdir(parents=True)
    for t in range(n):
        for kind in ("color.jpg", "depth.png") + (("pose.txt",) if poses else ()):
            shutil.copy(src / f"frames/frame-{t:06d}.{kind}", seq / f"frame-{t:06d}.{kind}")
    if intrinsics:
        shutil.copy(src / "camera-intrinsics.txt", root / "camera-intrinsics.txt")
    return root


def test_7scenes_without_poses_imports_frames_and_says_so(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src", poses=False)
    dest = tmp_path / "scene"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 0
    err = capsys.readouterr().err
    assert "no usable frame-XXXXXX.pose.txt files; imported without ground truth" in err
    assert Scene(dest).n_frames == 3
    assert not (dest / "gt/trajectory.txt").exists()


def test_7scenes_missing_depth_is_refused_and_nothing_written(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src")
    (src / "seq-01/frame-000001.depth.png").unlink()
    dest = tmp_path / "scene"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 2
    err = capsys.readouterr().err
    assert "frame-000001.depth.png: missing depth frame for frame-000001.color.jpg" in err
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_7scenes_malformed_pose_names_the_file(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src")
    (src / "seq-01/frame-000002.pose.txt").write_text("1 0 0\n0 1 0\n")
    dest = tmp_path / "scene"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 2
    err = capsys.readouterr().err
    assert "frame-000002.pose.txt: expected a 4x4 matrix" in err
    assert not dest.exists()


def test_7scenes_default_intrinsics_and_hard_links(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src", intrinsics=False)
    dest = tmp_path / "scene"
    assert cli(["import", "7scenes", str(src / "seq-01"), str(dest), "--link"]) == 0
    err = capsys.readouterr().err
    assert "no camera-intrinsics.txt" in err and "585 585 320 240" in err
    a = (src / "seq-01/frame-000000.color.jpg").stat()
    b = (dest / "rgb/000000.jpg").stat()
    assert (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def test_7scenes_layout_from_another_camera_is_not_given_kinect_defaults(tmp_path, capsys):
    # Another rig's K in camera-intrinsics.txt, or --intrinsics: that K for both images,
    # depth as it is (the Kinect v1 calibration is only right for the 7-Scenes camera).
    src = _mini_7scenes(tmp_path / "src", n=2)
    np.savetxt(src / "camera-intrinsics.txt", [[600.0, 0, 321], [0, 600.0, 241], [0, 0, 1]])
    for args, K in (([], (600.0, 600.0, 321.0, 241.0)),
                    (["--intrinsics", "585", "585", "320", "240"], (585.0, 585.0, 320.0, 240.0))):
        dest = tmp_path / f"scene{len(args)}"
        assert cli(["import", "7scenes", str(src), str(dest), *args]) == 0
        assert "depth not registered: 7-Scenes colour and depth come from two cameras" in \
            capsys.readouterr().out
        assert Scene(dest).camera == CameraIntrinsics(640, 480, *K, 1000.0)
        raw = cv2.imread(str(src / "seq-01/frame-000001.depth.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(Scene(dest).depth_raw(1), np.where(raw == 65535, 0, raw))


def test_import_never_overwrites_an_existing_scene(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src")
    dest = tmp_path / "scene"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    before = snapshot(dest)
    assert cli(["import", "7scenes", str(src), str(dest)]) == 2
    assert "already exists (pass --overwrite to replace it)" in capsys.readouterr().err
    assert snapshot(dest) == before


def test_importer_failing_midway_leaves_no_half_written_scene(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src", n=3)
    # The last frame's colour image is truncated: found only while copying frames.
    jpg = src / "seq-01/frame-000002.color.jpg"
    jpg.write_bytes(jpg.read_bytes()[:100])
    dest = tmp_path / "out" / "scene"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 2
    assert "frame-000002.color.jpg: damaged image (JPEG file cut short" in capsys.readouterr().err
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_format_registry_and_unknown_option():
    assert {"7scenes", "tum"} <= set(FORMATS)
    with pytest.raises(Exception, match="unknown import format 'nope'"):
        import_scene("nope", ".", "x")
    with pytest.raises(Exception, match="option 'bogus' does not apply to format 'tum'"):
        import_scene("tum", ".", "x", bogus=1)


# --- TUM ----------------------------------------------------------------------------------


T0 = 1305031102.175304
DEPTH_DT = 0.011  # depth stamped 11 ms after colour: within the 20 ms pairing window


@pytest.fixture(scope="module")
def synth_small(tmp_path_factory) -> Path:
    from labeller.synth import SynthConfig, run

    out = tmp_path_factory.mktemp("tumsrc") / "synth"
    run(SynthConfig(out, frames=8, seed=3, width=160, height=120))
    return out


def _write_tum(src_scene: Path, root: Path, T_ext: np.ndarray) -> tuple[Path, list[float]]:
    """A TUM folder from a synthetic scene: depth x5 (mm -> 1/5000 m), lists, ground truth.

    Ground truth is expressed in another world (T_ext @ T_world_cam), given only at the
    even frames' times, so odd frames need interpolation. One extra colour frame at the
    end has no depth frame near it.
    """
    scene = Scene(src_scene)
    gt = scene.gt_trajectory()
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    stamps = [T0 + t / 30.0 for t in range(scene.n_frames)]
    rgb_lines, depth_lines, gt_lines = ["# color images"], ["# depth maps"], ["# ground truth"]
    for t, s in enumerate(stamps):
        shutil.copy(scene.rgb_file(t), root / "rgb" / f"{s:.6f}.png")
        d = scene.depth_raw(t).astype(np.uint32) * 5  # mm -> TUM's 1/5000 m
        cv2.imwrite(str(root / "depth" / f"{s + DEPTH_DT:.6f}.png"), d.astype(np.uint16))
        rgb_lines.append(f"{s:.6f} rgb/{s:.6f}.png")
        depth_lines.append(f"{s + DEPTH_DT:.6f} depth/{s + DEPTH_DT:.6f}.png")
        if t % 2 == 0:
            T = T_ext @ gt[t]
            q = matrix_to_quat_xyzw(T[:3, :3])
            gt_lines.append(f"{s:.6f} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q)))
    extra = stamps[-1] + 0.5
    shutil.copy(scene.rgb_file(0), root / "rgb" / f"{extra:.6f}.png")
    rgb_lines.append(f"{extra:.6f} rgb/{extra:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return root, stamps


def test_tum_import_depth_scale_timestamps_and_ground_truth(synth_small, tmp_path, capsys):
    T_ext = make_pose(axis_angle_to_matrix([0.2, 1.0, 0.3], 0.7), [1.0, -2.0, 0.5])
    src, stamps = _write_tum(synth_small, tmp_path / "rgbd_dataset_freiburg1_xyz", T_ext)
    dest = tmp_path / "scene"
    assert cli(["import", "tum", str(src), str(dest)]) == 0
    out = capsys.readouterr()
    assert "1 of 9 colour frames have no depth frame within 20 ms" in out.err
    orig, scene = Scene(synth_small), Scene(dest)
    assert scene.n_frames == orig.n_frames == 8
    assert scene.camera.depth_scale == 5000.0
    assert (scene.camera.fx, scene.camera.cy) == (517.3, 255.3)  # freiburg1, from the name
    for t in (0, 5):
        # Same metres as the source scene: the importer read the 1/5000 m PNGs right.
        np.testing.assert_allclose(scene.depth(t), orig.depth(t), atol=1e-6)
        assert scene.rgb(t).tobytes() == orig.rgb(t).tobytes()
    ts = scene.timestamps()
    assert ts is not None and sorted(ts) == list(range(8))
    np.testing.assert_allclose([ts[t] for t in range(8)], stamps, atol=2e-6)
    gt_in, gt_out = orig.gt_trajectory(), scene.gt_trajectory()
    assert gt_out is not None and gt_out.frame_ids == list(range(7))  # frame 7: after the gt ends
    np.testing.assert_allclose(gt_out[0], np.eye(4), atol=1e-8)
    ref = gt_in.reanchored()
    for t in (2, 4, 6):  # gt samples: exact
        np.testing.assert_allclose(gt_out[t], ref[t], atol=1e-6)
    for t in (1, 3, 5):  # interpolated halfway: close to the true pose of a smooth path
        assert np.linalg.norm(gt_out[t][:3, 3] - ref[t][:3, 3]) < 1e-3


def test_tum_lists_naming_missing_files_are_refused(synth_small, tmp_path, capsys):
    src, _ = _write_tum(synth_small, tmp_path / "seq", np.eye(4))
    victim = sorted((src / "depth").iterdir())[3]
    victim.unlink()
    dest = tmp_path / "scene"
    assert cli(["import", "tum", str(src), str(dest)]) == 2
    err = capsys.readouterr().err
    assert f"depth.txt:5: names depth/{victim.name}, which does not exist" in err
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_tum_malformed_list_line(synth_small, tmp_path, capsys):
    src, _ = _write_tum(synth_small, tmp_path / "seq", np.eye(4))
    lines = (src / "rgb.txt").read_text().splitlines()
    lines[2] = "abc rgb/x.png"
    (src / "rgb.txt").write_text("\n".join(lines) + "\n")
    assert cli(["import", "tum", str(src), str(tmp_path / "scene")]) == 2
    assert "rgb.txt:3: timestamp 'abc' is not a number" in capsys.readouterr().err


def test_tum_folder_without_lists(tmp_path, capsys):
    (tmp_path / "seq").mkdir()
    assert cli(["import", "tum", str(tmp_path / "seq"), str(tmp_path / "scene")]) == 2
    assert "rgb.txt: missing (a TUM RGB-D sequence folder has rgb.txt and depth.txt)" in \
        capsys.readouterr().err


def test_tum_association_pairs_closest_first_within_20ms():
    rgb = np.array([0.0, 0.033, 0.066, 0.5])
    depth = np.array([0.030, 0.040, 0.070, 0.9])
    # 0.033 takes 0.030 (3 ms), 0.066 takes 0.070; 0.0 has nothing left within 20 ms.
    assert associate(rgb, depth) == [(1, 0), (2, 2)]


def test_tum_interpolation_is_linear_and_slerp():
    T_a = np.eye(4)
    T_b = make_pose(axis_angle_to_matrix([0, 0, 1], np.radians(40)), [0.2, 0.0, 0.0])
    gt = TimedTrajectory(np.array([0.0, 0.05]), np.stack([T_a, T_b]))
    out = interpolate_poses(gt, np.array([0.025, 0.06, -1.0]))
    assert sorted(out) == [0]
    np.testing.assert_allclose(out[0][:3, 3], [0.1, 0, 0], atol=1e-12)
    half = make_pose(axis_angle_to_matrix([0, 0, 1], np.radians(20)), [0.1, 0, 0])
    np.testing.assert_allclose(out[0], half, atol=1e-9)
    assert np.allclose(inv_pose(out[0]) @ out[0], np.eye(4))


def test_import_refuses_to_write_into_its_source(tmp_path, capsys):
    src = _mini_7scenes(tmp_path / "src")
    assert cli(["import", "7scenes", str(src), str(src), "--overwrite"]) == 2
    assert "would replace the source folder" in capsys.readouterr().err
    assert (src / "seq-01/frame-000000.color.jpg").is_file()


def test_imported_trajectory_reads_back(kitchen):
    _, dest = kitchen
    traj = Trajectory.read(dest / "gt/trajectory.txt", 60)
    assert len(traj) == 60
    assert os.path.getsize(dest / "camera.json") > 0
