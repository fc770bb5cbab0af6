"""Importers for BOP scenes, ProgressLabeller projects and ROS bags, from a synthetic scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.poses import (
    axis_angle_to_matrix,
    inv_pose,
    make_pose,
    matrix_to_quat_wxyz,
)
from labeller.formats.scene import Scene
from tests.helpers import SHARED_DATA, snapshot

T_EXT = make_pose(axis_angle_to_matrix([0.2, 1.0, 0.3], 0.7), [1.0, -2.0, 0.5])
T0 = 1700000000.25


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from labeller.synth import SynthConfig, run

    out = tmp_path_factory.mktemp("fmt") / "synth"
    run(SynthConfig(out, frames=6, seed=3, width=160, height=120,
                    classes=["master_chef_can", "mug"], n_objects=2))
    return out


def _gt(synth: Path):
    s = Scene(synth)
    from labeller.formats.annotations import AnnotationDocument

    return s, s.gt_trajectory(), AnnotationDocument.read(s.paths.gt_annotations)


# --- BOP -------------------------------------------------------------------------------------


def _write_bop(synth: Path, root: Path, bop_depth_scale: float = 0.1, ids=None) -> Path:
    """A BOP scene from the synthetic one: poses in mm in another world (T_EXT), depth in
    0.1 mm units, image ids starting at 10 (not 0)."""
    scene, gt, doc = _gt(synth)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    cams, gts = {}, {}
    K = scene.camera.K
    for t in range(scene.n_frames):
        i = 10 + t
        shutil.copy(scene.rgb_file(t), root / "rgb" / f"{i:06d}.png")
        units = np.round(scene.depth(t) * 1000.0 / bop_depth_scale).astype(np.uint16)
        cv2.imwrite(str(root / "depth" / f"{i:06d}.png"), units)
        T_w2c = inv_pose(T_EXT @ gt[t])
        cams[str(i)] = {"cam_K": K.reshape(-1).tolist(), "depth_scale": bop_depth_scale,
                        "cam_R_w2c": T_w2c[:3, :3].reshape(-1).tolist(),
                        "cam_t_w2c": (T_w2c[:3, 3] * 1000).tolist()}
        if t >= 1:  # frame 0 has no gt: objects come from frame 1
            entries = []
            for k, o in enumerate(doc.objects):
                T_c_o = inv_pose(gt[t]) @ o.T_world_obj
                from labeller.core.classes import BY_NAME

                oid = ids[k] if ids else BY_NAME[o.class_name].ycbv_id
                entries.append({"obj_id": oid, "cam_R_m2c": T_c_o[:3, :3].reshape(-1).tolist(),
                                "cam_t_m2c": (T_c_o[:3, 3] * 1000).tolist()})
            gts[str(i)] = entries
    (root / "scene_camera.json").write_text(json.dumps(cams))
    (root / "scene_gt.json").write_text(json.dumps(gts))
    return root


@pytest.fixture
def bop_models(tmp_path) -> Path:
    src = SHARED_DATA / "bop_models/obj_000001_HEAD.ply"
    if not src.is_file():
        pytest.skip(f"real data not found at {src}")
    d = tmp_path / "bop_models"
    d.mkdir()
    shutil.copy(src, d / "obj_000001.ply")  # master_chef_can's YCB-V id; mm like BOP
    shutil.copy(src, d / "obj_000014.ply")  # the mug's id (any mm mesh will do here)
    return d


def test_bop_round_trip_poses_depth_and_models(synth, tmp_path, bop_models, capsys):
    src = _write_bop(synth, tmp_path / "bop" / "000001")
    dest = tmp_path / "scene"
    assert cli(["import", "bop", str(src), str(dest), "--models", str(bop_models)]) == 0
    orig, scene, gt, doc = Scene(synth), Scene(dest), *_gt(synth)[1:]
    assert scene.n_frames == 6
    assert scene.camera.depth_scale == pytest.approx(10000.0)  # 1000 / 0.1 mm per unit
    np.testing.assert_allclose(scene.depth(3), orig.depth(3), atol=1e-4)
    assert scene.rgb(2).tobytes() == orig.rgb(2).tobytes()
    traj = scene.trajectory
    for t in range(6):
        np.testing.assert_allclose(traj[t], gt.reanchored()[t], atol=1e-6)
    assert scene.gt_trajectory().frame_ids == traj.frame_ids
    ann = scene.annotations()
    assert ann.trajectory_sha256 == scene.trajectory_sha256()
    assert [o.class_name for o in ann.objects] == [o.class_name for o in doc.objects]
    for a, b in zip(ann.objects, doc.objects, strict=True):
        np.testing.assert_allclose(a.T_world_obj, b.T_world_obj, atol=1e-6)
    # The mm model became metres.
    from labeller.formats.models import load_model

    can = next(o for o in ann.objects if o.class_name == "master_chef_can")
    assert can.model == "models/master_chef_can.ply"
    import open3d as o3d

    mm = np.asarray(o3d.io.read_triangle_mesh(str(bop_models / "obj_000001.ply")).vertices)
    m = load_model(dest / can.model)
    np.testing.assert_allclose(m.extent_m, (mm.max(0) - mm.min(0)) / 1000.0, rtol=1e-5)
    assert 0.05 < m.extent_m.max() < 0.2


def test_bop_non_ycbv_ids_without_models_go_to_gt(synth, tmp_path, capsys):
    from labeller.core.classes import PROPS_CLASS_NAMES
    from labeller.formats.annotations import AnnotationDocument

    # One object outside the PROPS classes (77) beside the mug (YCB-V 14): the mug keeps
    # its PROPS name, the other becomes obj_000077.
    src = _write_bop(synth, tmp_path / "bop", ids=[77, 14])
    dest = tmp_path / "scene"
    assert cli(["import", "bop", str(src), str(dest)]) == 0
    assert "objects went to gt/annotations.json only" in capsys.readouterr().err
    assert not (dest / "annotations.json").exists()
    ann = AnnotationDocument.read(dest / "gt/annotations.json")
    assert [o.class_name for o in ann.objects] == ["obj_000077", "mug"]
    assert ann.classes == list(PROPS_CLASS_NAMES) + ["obj_000077"]
    assert ann.objects[0].model == "models/obj_000077.ply"
    assert ann.objects[1].model == "025_mug/textured.obj"


def test_bop_model_missing_from_models_dir_is_refused(synth, tmp_path, bop_models, capsys):
    src = _write_bop(synth, tmp_path / "bop")
    (bop_models / "obj_000014.ply").unlink()
    dest = tmp_path / "out" / "scene"
    dest.parent.mkdir()
    assert cli(["import", "bop", str(src), str(dest), "--models", str(bop_models)]) == 2
    assert "obj_000014.ply: missing: scene_gt.json has obj_id 14" in capsys.readouterr().err
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_bop_missing_scene_camera_entry_is_refused(synth, tmp_path, capsys):
    src = _write_bop(synth, tmp_path / "bop")
    cams = json.loads((src / "scene_camera.json").read_text())
    del cams["13"]
    (src / "scene_camera.json").write_text(json.dumps(cams))
    dest = tmp_path / "out" / "scene"
    dest.parent.mkdir()
    assert cli(["import", "bop", str(src), str(dest)]) == 2
    assert "scene_camera.json: no entry for image 13 (rgb/000013.png)" in capsys.readouterr().err
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_bop_without_scene_camera_json_is_refused(synth, tmp_path, capsys):
    src = _write_bop(synth, tmp_path / "bop")
    (src / "scene_camera.json").unlink()
    assert cli(["import", "bop", str(src), str(tmp_path / "scene")]) == 2
    assert "scene_camera.json: missing" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


def test_bop_unreadable_depth_midway_leaves_nothing(synth, tmp_path, capsys):
    src = _write_bop(synth, tmp_path / "bop")
    (src / "depth/000014.png").write_bytes(b"not a png")
    dest = tmp_path / "out" / "scene"
    dest.parent.mkdir()
    assert cli(["import", "bop", str(src), str(dest)]) == 2
    assert "000014.png: unreadable image" in capsys.readouterr().err
    assert not dest.exists() and _leftovers(dest.parent) == []


# --- ProgressLabeller ------------------------------------------------------------------------


PL_SCALE = 2.5  # the reconstruction is 2.5 times smaller than the metric world
PL_RECON = make_pose(axis_angle_to_matrix([1.0, 0.0, 0.5], 1.2), [0.3, 0.2, -0.4])


def _write_progresslabeller(synth: Path, root: Path, skip_pose: int | None = None) -> Path:
    """A ProgressLabeller project following its offline loader's conventions: world-to-camera
    campose in reconstruction units, T_world_cam = recon_trans @ inv(P with t * scale)."""
    scene, gt, doc = _gt(synth)
    (root / "data/rgb").mkdir(parents=True)
    (root / "data/depth").mkdir()
    (root / "recon").mkdir()
    lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"]
    for t in range(scene.n_frames):
        name = f"frame_{t * 3:04d}.png"
        shutil.copy(scene.rgb_file(t), root / "data/rgb" / name)
        d = np.round(scene.depth(t) * 4000.0).astype(np.uint16)  # 0.25 mm units
        cv2.imwrite(str(root / "data/depth" / name), d)
        if t == skip_pose:
            continue
        T_pl_cam = T_EXT @ gt[t]
        P = inv_pose(inv_pose(PL_RECON) @ T_pl_cam)  # world-to-camera, metric
        P[:3, 3] /= PL_SCALE  # reconstruction units
        q = matrix_to_quat_wxyz(P[:3, :3])
        lines.append(f"{t + 1} " + " ".join(f"{v:.12f}" for v in (*q, *P[:3, 3]))
                     + f" 1 {name}")
    (root / "recon/campose.txt").write_text("\n".join(lines) + "\n")
    recon_str = "".join(",".join(f"{v:.15f}" for v in row) + ";" for row in PL_RECON)
    K = scene.camera.K
    cfg = {"projectname": "t", "environment": {"modelsrc": "model", "datasrc": "data",
                                               "reconstructionsrc": "recon"},
           "camera": {"resolution": [scene.camera.width, scene.camera.height],
                      "intrinsic": K.tolist(), "inverse_pose": True, "lens": 30.0},
           "reconstruction": {"scale": PL_SCALE, "recon_trans": recon_str},
           "data": {"sample_rate": 1.0, "depth_scale": 0.00025}}
    (root / "configuration.json").write_text(json.dumps(cfg, indent=2))
    ylines = []
    counts: dict[str, int] = {}
    for o in doc.objects:
        counts[o.class_name] = counts.get(o.class_name, 0) + 1
        T = T_EXT @ o.T_world_obj
        q = matrix_to_quat_wxyz(T[:3, :3])
        seq = "".join(f"{'  - - ' if j in (0, 3) else '    - '}{float(v)!r}\n"
                      for j, v in enumerate((*T[:3, 3], *q)))
        ylines.append(f"{o.class_name}.instance{counts[o.class_name]:03d}:\n  pose:\n{seq}"
                      "  type: normal\n")
    (root / "recon/label_pose.yaml").write_text("".join(ylines))
    for cls in counts:  # ProgressLabeller keeps model/<name>/<name>.ply (metres)
        shutil.copytree(synth / "models" / cls, root / "model" / cls)
    return root


def test_progresslabeller_round_trip(synth, tmp_path, capsys):
    src = _write_progresslabeller(synth, tmp_path / "pl")
    dest = tmp_path / "scene"
    assert cli(["import", "progresslabeller", str(src), str(dest)]) == 0
    orig, scene, gt, doc = Scene(synth), Scene(dest), *_gt(synth)[1:]
    assert scene.n_frames == 6 and scene.camera.depth_scale == pytest.approx(4000.0)
    np.testing.assert_allclose(scene.camera.K, orig.camera.K)
    np.testing.assert_allclose(scene.depth(4), orig.depth(4), atol=1e-3)
    traj, ref = scene.trajectory, gt.reanchored()
    assert traj.frame_ids == list(range(6))
    for t in range(6):
        np.testing.assert_allclose(traj[t], ref[t], atol=1e-6)
    ann = scene.annotations()
    assert ann.trajectory_sha256 == scene.trajectory_sha256()
    assert [o.class_name for o in ann.objects] == [o.class_name for o in doc.objects]
    for a, b in zip(ann.objects, doc.objects, strict=True):
        np.testing.assert_allclose(a.T_world_obj, b.T_world_obj, atol=1e-6)


def test_progresslabeller_flow_style_yaml_and_untracked_frame(synth, tmp_path):
    src = _write_progresslabeller(synth, tmp_path / "pl", skip_pose=0)
    (src / "recon/label_pose.yaml").write_text(
        "mug.instance001: {pose: [[0.1, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0]], type: normal}\n")
    dest = tmp_path / "scene"
    assert cli(["import", "progresslabeller", str(src), str(dest)]) == 0
    scene, gt = Scene(dest), _gt(synth)[1]
    assert scene.trajectory.frame_ids == [1, 2, 3, 4, 5]  # re-anchored to frame 1
    ref = {t: inv_pose(gt[1]) @ gt[t] for t in range(1, 6)}
    for t in ref:
        np.testing.assert_allclose(scene.trajectory[t], ref[t], atol=1e-6)
    (o,) = scene.annotations().objects
    assert o.class_name == "mug" and o.model == "models/mug/mug.ply"
    assert (dest / o.model).is_file()


def test_progresslabeller_without_models_keeps_objects_as_gt(synth, tmp_path, capsys):
    from labeller.formats.annotations import AnnotationDocument

    src = _write_progresslabeller(synth, tmp_path / "pl")
    shutil.rmtree(src / "model")
    dest = tmp_path / "scene"
    assert cli(["import", "progresslabeller", str(src), str(dest)]) == 0
    assert "objects went to gt/annotations.json only" in capsys.readouterr().err
    assert not (dest / "annotations.json").exists()
    doc = AnnotationDocument.read(dest / "gt/annotations.json")
    assert [o.model for o in doc.objects] == ["002_master_chef_can/textured.obj",
                                              "025_mug/textured.obj"]
    assert doc.trajectory_sha256 == Scene(dest).trajectory_sha256()


def test_progresslabeller_campose_bad_quaternion_is_refused(synth, tmp_path, capsys):
    src = _write_progresslabeller(synth, tmp_path / "pl")
    lines = (src / "recon/campose.txt").read_text().splitlines()
    parts = lines[3].split()
    parts[1:5] = ["0.5", "0.5", "0.0", "0.0"]
    lines[3] = " ".join(parts)
    (src / "recon/campose.txt").write_text("\n".join(lines) + "\n")
    dest = tmp_path / "out" / "scene"
    dest.parent.mkdir()
    assert cli(["import", "progresslabeller", str(src), str(dest)]) == 2
    assert "campose.txt:4: bad quaternion (norm 0.7071, expected 1)" in capsys.readouterr().err
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_progresslabeller_missing_config_key_is_refused(synth, tmp_path, capsys):
    src = _write_progresslabeller(synth, tmp_path / "pl")
    cfg = json.loads((src / "configuration.json").read_text())
    del cfg["reconstruction"]["recon_trans"]
    (src / "configuration.json").write_text(json.dumps(cfg))
    assert cli(["import", "progresslabeller", str(src), str(tmp_path / "scene")]) == 2
    assert "configuration.json: no 'reconstruction.recon_trans'" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


# --- ROS bags --------------------------------------------------------------------------------


RGB_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/color/camera_info"


def _typestore(ros1: bool):
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)


def _header(ts, ros1: bool, stamp: float, frame_id: str):
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    sec = int(stamp)
    t = Time(sec=sec, nanosec=int(round((stamp - sec) * 1e9)))
    return Header(seq=0, stamp=t, frame_id=frame_id) if ros1 else Header(stamp=t,
                                                                          frame_id=frame_id)


def _image(ts, ros1, stamp, frame_id, arr: np.ndarray, enc: str):
    Image = ts.types["sensor_msgs/msg/Image"]
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return Image(header=_header(ts, ros1, stamp, frame_id), height=h, width=w, encoding=enc,
                 is_bigendian=0, step=data.size // h, data=data)


def _info(ts, ros1, stamp, cam, D):
    CameraInfo = ts.types["sensor_msgs/msg/CameraInfo"]
    RegionOfInterest = ts.types["sensor_msgs/msg/RegionOfInterest"]
    roi = RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    K = cam.K.reshape(-1).astype(np.float64)
    P = np.hstack([cam.K, np.zeros((3, 1))]).reshape(-1)
    kw = dict(header=_header(ts, ros1, stamp, "color"), height=cam.height, width=cam.width,
              distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi)
    if ros1:
        return CameraInfo(D=np.asarray(D, float), K=K, R=np.eye(3).reshape(-1), P=P, **kw)
    return CameraInfo(d=np.asarray(D, float), k=K, r=np.eye(3).reshape(-1), p=P, **kw)


def _write_bag(synth: Path, path: Path, ros1: bool, *, D=(0, 0, 0, 0, 0), depth=True,
               info=True, depth_offset=0.004, depth_frame="color", depth_topic=DEPTH_TOPIC,
               bgr=False, extra_depth_topic=None, n=None, depth_img=None,
               float_depth=False) -> Path:
    """A RealSense-like bag from the synthetic scene: rgb8 colour, 16UC1 aligned depth (mm),
    camera_info; depth stamped `depth_offset` s after colour."""
    scene = Scene(synth)
    n = scene.n_frames if n is None else n
    ts = _typestore(ros1)
    if ros1:
        from rosbags.rosbag1 import Writer

        writer = Writer(path)
    else:
        from rosbags.rosbag2 import Writer

        writer = Writer(path, version=8)
    ser = ts.serialize_ros1 if ros1 else ts.serialize_cdr
    with writer:
        img_t = "sensor_msgs/msg/Image"
        c_rgb = writer.add_connection(RGB_TOPIC, img_t, typestore=ts)
        c_d = writer.add_connection(depth_topic, img_t, typestore=ts) if depth else None
        c_d2 = (writer.add_connection(extra_depth_topic, img_t, typestore=ts)
                if extra_depth_topic else None)
        c_i = (writer.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=ts)
               if info else None)
        for t in range(n):
            s = T0 + t / 15.0
            rgb = scene.rgb(t)
            msg = _image(ts, ros1, s, "color", rgb[:, :, ::-1] if bgr else rgb,
                         "bgr8" if bgr else "rgb8")
            writer.write(c_rgb, int(s * 1e9), ser(msg, img_t))
            d = scene.depth_raw(t) if depth_img is None else depth_img  # mm
            if float_depth:  # 32FC1 metres, NaN for no measurement
                d = np.where(d > 0, d.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
            for c in (c_d, c_d2):
                if c is not None:
                    sd = s + depth_offset
                    enc = "32FC1" if float_depth else "16UC1"
                    writer.write(c, int(sd * 1e9),
                                 ser(_image(ts, ros1, sd, depth_frame, d, enc), img_t))
            if c_i is not None:
                writer.write(c_i, int(s * 1e9), ser(_info(ts, ros1, s, scene.camera, D),
                                                    "sensor_msgs/msg/CameraInfo"))
    return path


@pytest.mark.parametrize("ros1", [True, False], ids=["ros1", "ros2"])
def test_rosbag_round_trip(synth, tmp_path, ros1, capsys):
    bag = _write_bag(synth, tmp_path / ("rec.bag" if ros1 else "rec2"), ros1, bgr=not ros1)
    dest = tmp_path / "scene"
    assert cli(["import", "rosbag", str(bag), str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"colour {RGB_TOPIC}, depth {DEPTH_TOPIC}, camera_info {INFO_TOPIC}" in out
    orig, scene = Scene(synth), Scene(dest)
    assert scene.n_frames == orig.n_frames
    np.testing.assert_allclose(scene.camera.K, orig.camera.K)
    assert scene.camera.depth_scale == 1000.0
    for t in (0, 5):
        assert scene.rgb(t).tobytes() == orig.rgb(t).tobytes()
        np.testing.assert_array_equal(scene.depth_raw(t), orig.depth_raw(t))
    ts = scene.timestamps()
    np.testing.assert_allclose([ts[t] for t in range(6)], [T0 + t / 15.0 for t in range(6)],
                               atol=1e-6)


def test_rosbag_ros2_float_depth_in_metres(synth, tmp_path):
    bag = _write_bag(synth, tmp_path / "rec2", False, float_depth=True)
    dest = tmp_path / "scene"
    assert cli(["import", "rosbag", str(bag), str(dest)]) == 0
    orig, scene = Scene(synth), Scene(dest)
    # NaN (no measurement) -> 0; metres -> mm, the same PNG values as the source.
    np.testing.assert_array_equal(scene.depth_raw(3), orig.depth_raw(3))


def test_rosbag_distortion_undistorts_both_images(synth, tmp_path, capsys):
    D = (0.12, -0.05, 0.001, 0.0, 0.0)
    bag = _write_bag(synth, tmp_path / "rec.bag", True, D=D)
    dest = tmp_path / "scene"
    assert cli(["import", "rosbag", str(bag), str(dest)]) == 0
    assert "undistorted colour and depth" in capsys.readouterr().out
    orig, scene = Scene(synth), Scene(dest)
    K = orig.camera.K
    want = cv2.undistort(orig.rgb(2), K, np.asarray(D))
    got = scene.rgb(2)
    assert np.abs(got.astype(int) - orig.rgb(2).astype(int)).mean() > 2  # it did change
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.0
    # Depth moved like colour: a smooth depth ramp, where nearest-neighbour (the importer)
    # and bilinear (cv2.undistort) sampling agree to a few mm.
    v, u = np.mgrid[0:120, 0:160]
    ramp = (500 + 4 * u + 6 * v).astype(np.uint16)
    bag2 = _write_bag(synth, tmp_path / "ramp.bag", True, D=D, depth_img=ramp)
    assert cli(["import", "rosbag", str(bag2), str(tmp_path / "s2")]) == 0
    d_got = Scene(tmp_path / "s2").depth_raw(2).astype(int)
    d_want = cv2.undistort(ramp, K, np.asarray(D)).astype(int)
    # Away from the image border (where cv2.undistort blends in the black outside).
    valid = cv2.erode(((d_want > 0) & (d_got > 0)).astype(np.uint8), np.ones((5, 5))) > 0
    assert valid.mean() > 0.8
    assert np.abs(d_got - d_want)[valid].max() <= 6
    assert np.abs(d_got - ramp)[valid].max() > 15  # it did move (by up to ~4 px here)


def test_rosbag_flags_pick_among_several_depth_topics(synth, tmp_path, capsys):
    bag = _write_bag(synth, tmp_path / "rec.bag", True, depth_topic="/cam/depth_a",
                     extra_depth_topic="/cam/depth_b")
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "s1")]) == 2
    err = capsys.readouterr().err
    assert "several depth image (16UC1/32FC1 or compressedDepth) topics (/cam/depth_a, /cam/depth_b); name one " \
           "with --depth-topic" in err
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "s2"),
                "--depth-topic", "/cam/depth_b"]) == 0
    assert Scene(tmp_path / "s2").n_frames == 6


def test_rosbag_empty_bag_is_refused(tmp_path, capsys):
    from rosbags.rosbag1 import Writer

    bag = tmp_path / "empty.bag"
    with Writer(bag):
        pass
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "scene")]) == 2
    assert "empty.bag: the bag is empty (no messages)" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


def test_rosbag_without_depth_is_refused(synth, tmp_path, capsys):
    bag = _write_bag(synth, tmp_path / "rec", False, depth=False)
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "scene")]) == 2
    assert "rec: no depth image (16UC1/32FC1 or compressedDepth) topic in the bag" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


def test_rosbag_without_camera_info_is_refused(synth, tmp_path, capsys):
    bag = _write_bag(synth, tmp_path / "rec.bag", True, info=False)
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "scene")]) == 2
    assert "no camera_info topic (sensor_msgs/CameraInfo) in the bag" in capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


def test_rosbag_unsynchronised_topics_are_refused(synth, tmp_path, capsys):
    bag = _write_bag(synth, tmp_path / "rec.bag", True, depth_offset=0.033)
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "scene")]) == 2
    assert "are not synchronised: no colour message has a depth message within 20 ms" in \
        capsys.readouterr().err
    assert not (tmp_path / "scene").exists() and _leftovers(tmp_path) == []


def test_rosbag_depth_not_aligned_to_colour_is_refused(synth, tmp_path, capsys):
    bag = _write_bag(synth, tmp_path / "rec.bag", True, depth_topic="/camera/depth/image_raw",
                     depth_frame="depth_optical", D=(0.1, 0, 0, 0, 0))
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "scene")]) == 2
    assert "depth topic /camera/depth/image_raw is not aligned to colour" in \
        capsys.readouterr().err
    assert not (tmp_path / "scene").exists()


def test_registry_lists_new_formats():
    from labeller.importers import FORMATS

    assert {"bop", "rosbag", "progresslabeller"} <= set(FORMATS)


def test_import_existing_scene_untouched(synth, tmp_path, capsys):
    src = _write_bop(synth, tmp_path / "bop")
    dest = tmp_path / "scene"
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    before = snapshot(dest)
    assert cli(["import", "bop", str(src), str(dest)]) == 2
    assert snapshot(dest) == before


def test_rosbag_not_a_bag_and_unknown_topic_are_refused(synth, tmp_path, capsys):
    junk = tmp_path / "junk.bag"
    junk.write_bytes(b"#ROSBAG V1.0\nnot really")
    assert cli(["import", "rosbag", str(junk), str(tmp_path / "s1")]) == 2
    assert "junk.bag: not a readable ROS1/ROS2 bag" in capsys.readouterr().err
    bag = _write_bag(synth, tmp_path / "rec.bag", True, n=2)
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "s2"), "--rgb-topic", "/nope"]) == 2
    assert "--rgb-topic /nope: no such topic (topics: " in capsys.readouterr().err
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()
