"""ROS bags as realsense2_camera + image_transport record them (CompressedImage colour,
compressedDepth depth; ROS1, ROS2 sqlite3 and mcap), unaligned depth registered through
/tf_static, RealSense SDK .bag files, and damaged bags. Fixtures are written with the
`rosbags` writers from real 7-Scenes frames and a synthetic plane."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.poses import axis_angle_to_matrix, inv_pose, make_pose, matrix_to_quat_xyzw
from labeller.formats.scene import Scene
from labeller.geometry.depth_registration import register_depth
from tests.helpers import SHARED_DATA
from tests.test_depth_registration import (
    K_COLOUR,
    K_DEPTH,
    T_COLOUR_DEPTH,
    edge_errors_px,
    plane_depth_image,
)

FRAMES = SHARED_DATA / "rgbd/sevenscenes_kitchen/frames"
K_KITCHEN = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]])
T0 = 1700000000.5
# realsense2_camera's topics with image_transport's compressed transports.
COLOUR_TOPIC = "/camera/color/image_raw/compressed"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw/compressedDepth"
INFO_TOPIC = "/camera/color/camera_info"
RAW_DEPTH_TOPIC = "/camera/depth/image_rect_raw/compressedDepth"
DEPTH_INFO_TOPIC = "/camera/depth/camera_info"
COLOUR_FRAME, DEPTH_FRAME = "camera_color_optical_frame", "camera_depth_optical_frame"


@pytest.fixture(scope="module")
def kitchen() -> list[tuple[bytes, np.ndarray]]:
    """(JPEG file bytes, depth mm) of three real 7-Scenes frames."""
    if not FRAMES.is_dir():
        pytest.skip(f"real data not found at {FRAMES}")
    out = []
    for t in range(3):
        d = cv2.imread(str(FRAMES / f"frame-{t:06d}.depth.png"), cv2.IMREAD_UNCHANGED)
        out.append(((FRAMES / f"frame-{t:06d}.color.jpg").read_bytes(),
                    np.where(d == 65535, 0, d).astype(np.uint16)))
    return out


class BagWriter:
    """A rosbags writer for ROS1 .bag, ROS2 sqlite3 or ROS2 mcap, with message builders."""

    def __init__(self, path: Path, storage: str):
        from rosbags.typesys import Stores, get_typestore

        self.ros1 = storage == "ros1"
        self.ts = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_HUMBLE)
        if "tf2_msgs/msg/TFMessage" not in self.ts.types:  # ROS1 store: tf2_msgs from its .msg
            from rosbags.typesys import get_types_from_msg

            self.ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                                "tf2_msgs/msg/TFMessage"))
        if self.ros1:
            from rosbags.rosbag1 import Writer

            self.w = Writer(path)
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer

            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self.w = Writer(path, version=8, storage_plugin=plugin)
        self.conns: dict[str, object] = {}

    def __enter__(self):
        self.w.open()
        return self

    def __exit__(self, *exc):
        self.w.close()

    def header(self, stamp: float, frame_id: str):
        T = self.ts.types
        sec = int(stamp)
        t = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((stamp - sec) * 1e9)))
        H = T["std_msgs/msg/Header"]
        return H(seq=0, stamp=t, frame_id=frame_id) if self.ros1 else H(stamp=t,
                                                                        frame_id=frame_id)

    def write(self, topic: str, msgtype: str, msg, stamp: float) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.w.add_connection(topic, msgtype, typestore=self.ts)
        ser = self.ts.serialize_ros1 if self.ros1 else self.ts.serialize_cdr
        self.w.write(self.conns[topic], int(stamp * 1e9), ser(msg, msgtype))

    def compressed(self, topic, stamp, frame_id, data: bytes, fmt: str):
        msg = self.ts.types["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp, frame_id), format=fmt,
            data=np.frombuffer(data, np.uint8))
        self.write(topic, "sensor_msgs/msg/CompressedImage", msg, stamp)

    def compressed_depth(self, topic, stamp, frame_id, depth_mm: np.ndarray):
        # compressed_depth_image_transport: ConfigHeader (int32 format, 2 x float32), PNG.
        ok, png = cv2.imencode(".png", depth_mm)
        assert ok
        fmt = "16UC1; compressedDepth" if self.ros1 else "16UC1; compressedDepth png"
        self.compressed(topic, stamp, frame_id, struct.pack("<iff", 0, 0.0, 0.0) + png.tobytes(),
                        fmt)

    def image(self, topic, stamp, frame_id, arr: np.ndarray, enc: str):
        h = arr.shape[0]
        data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        msg = self.ts.types["sensor_msgs/msg/Image"](
            header=self.header(stamp, frame_id), height=h, width=arr.shape[1], encoding=enc,
            is_bigendian=0, step=data.size // h, data=data)
        self.write(topic, "sensor_msgs/msg/Image", msg, stamp)

    def info(self, topic, stamp, frame_id, K: np.ndarray, size, D=(0, 0, 0, 0, 0),
             model="plumb_bob"):
        T = self.ts.types
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
        P = np.hstack([K, np.zeros((3, 1))]).reshape(-1)
        kw = dict(header=self.header(stamp, frame_id), height=size[1], width=size[0],
                  distortion_model=model, binning_x=0, binning_y=0, roi=roi)
        arrays = dict(D=np.asarray(D, float), K=K.reshape(-1).astype(float),
                      R=np.eye(3).reshape(-1), P=P)
        if not self.ros1:
            arrays = {k.lower(): v for k, v in arrays.items()}
        self.write(topic, "sensor_msgs/msg/CameraInfo", T["sensor_msgs/msg/CameraInfo"](
            **arrays, **kw), stamp)

    def transform(self, T_parent_child: np.ndarray):
        T = self.ts.types
        q = matrix_to_quat_xyzw(T_parent_child[:3, :3])
        p = T_parent_child[:3, 3]
        return T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=p[0], y=p[1], z=p[2]),
            rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))

    def tf_static(self, stamp, edges: list[tuple[str, str, np.ndarray]]):
        T = self.ts.types
        trs = [T["geometry_msgs/msg/TransformStamped"](header=self.header(stamp, parent),
                                                       child_frame_id=child,
                                                       transform=self.transform(M))
               for parent, child, M in edges]
        self.write("/tf_static", "tf2_msgs/msg/TFMessage", T["tf2_msgs/msg/TFMessage"](
            transforms=trs), stamp)


def _bag_path(tmp_path: Path, storage: str) -> Path:
    return tmp_path / ("rec.bag" if storage == "ros1" else f"rec_{storage}")


def write_compressed_bag(path: Path, storage: str, frames, colour_codec: str = "jpeg") -> Path:
    """realsense2_camera with align_depth and compressed transports: JPEG (or PNG) colour,
    compressedDepth PNG depth aligned to colour, colour camera_info."""
    with BagWriter(path, storage) as b:
        for t, (jpg, depth) in enumerate(frames):
            s = T0 + t / 30.0
            if colour_codec == "jpeg":
                b.compressed(COLOUR_TOPIC, s, COLOUR_FRAME, jpg, "rgb8; jpeg compressed bgr8")
            else:
                bgr = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
                b.compressed(COLOUR_TOPIC, s, COLOUR_FRAME, cv2.imencode(".png", bgr)[1].tobytes(),
                             "rgb8; png compressed bgr8")
            b.compressed_depth(DEPTH_TOPIC, s + 0.003, COLOUR_FRAME, depth)
            b.info(INFO_TOPIC, s, COLOUR_FRAME, K_KITCHEN, (640, 480))
    return path


@pytest.mark.parametrize("storage,codec", [("ros1", "jpeg"), ("sqlite3", "png"),
                                           ("mcap", "jpeg")])
def test_compressed_bag_imports_frame_by_frame(kitchen, tmp_path, storage, codec, capsys):
    bag = write_compressed_bag(_bag_path(tmp_path, storage), storage, kitchen, codec)
    dest = tmp_path / "scene"
    assert cli(["import", "rosbag", str(bag), str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"colour {COLOUR_TOPIC}, depth {DEPTH_TOPIC}, camera_info {INFO_TOPIC}" in out
    scene = Scene(dest)
    assert scene.n_frames == 3 and scene.camera.depth_scale == 1000.0
    np.testing.assert_allclose(scene.camera.K, K_KITCHEN)
    for t, (jpg, depth) in enumerate(kitchen):
        want_rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR),
                                cv2.COLOR_BGR2RGB)
        if codec == "jpeg":  # the recorded JPEG as it is: no second lossy encoding
            assert scene.rgb_file(t).suffix == ".jpg"
            assert scene.rgb_file(t).read_bytes() == jpg
        else:  # PNG is lossless: the pixels exactly
            assert scene.rgb_file(t).suffix == ".png"
        np.testing.assert_array_equal(scene.rgb(t), want_rgb)
        np.testing.assert_array_equal(scene.depth_raw(t), depth)  # compressedDepth is lossless
    ts = scene.timestamps()
    np.testing.assert_allclose([ts[t] for t in range(3)], [T0 + t / 30 for t in range(3)],
                               atol=1e-6)
    assert json.loads((dest / "import.json").read_text())["depth"] == \
        "aligned to colour in the recording"


def test_compressed_depth_32fc1_and_rvl(tmp_path, capsys):
    from labeller.core.errors import FormatError
    from labeller.importers.ros_images import COMPRESSED_TYPE, decode

    class Msg:
        def __init__(self, fmt, data):
            self.format, self.data = fmt, data

    # 32FC1 compressedDepth: quantised inverse depth, metres = A / (value - B).
    quant_a, quant_b = 100.0, 100.0 / 10.0
    depth_m = np.array([[0.5, 1.0], [2.5, np.nan]], np.float32)  # A/d + B integer: exact
    inv = np.where(np.isfinite(depth_m), quant_a / depth_m + quant_b, 0)
    png = cv2.imencode(".png", np.round(inv).astype(np.uint16))[1].tobytes()
    got = decode(COMPRESSED_TYPE, Msg("32FC1; compressedDepth png",
                                      struct.pack("<iff", 0, quant_a, quant_b) + png), "m")
    np.testing.assert_array_equal(got, [[500, 1000], [2500, 0]])
    with pytest.raises(FormatError, match="compressedDepth codec 'rvl'.*is not supported"):
        decode(COMPRESSED_TYPE, Msg("16UC1; compressedDepth rvl", b"\0" * 40), "m")
    with pytest.raises(FormatError, match="has no image after its 12-byte header"):
        decode(COMPRESSED_TYPE, Msg("16UC1; compressedDepth png", b"\0" * 12), "m")


def _tf_chain() -> list[tuple[str, str, np.ndarray]]:
    """realsense2_camera's static tree: camera_link -> *_frame -> *_optical_frame, with
    T_colour_depth = T_COLOUR_DEPTH between the two optical frames."""
    link_optical = make_pose(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float), [0, 0, 0])
    T_link_colour_frame = make_pose(axis_angle_to_matrix([0, 0, 1], 0.01), [0.0, 0.015, 0.0])
    T_link_colour_opt = T_link_colour_frame @ link_optical
    T_link_depth_opt = T_link_colour_opt @ T_COLOUR_DEPTH
    T_link_depth_frame = T_link_depth_opt @ inv_pose(link_optical)
    return [("camera_link", "camera_color_frame", T_link_colour_frame),
            ("camera_color_frame", COLOUR_FRAME, link_optical),
            ("camera_link", "camera_depth_frame", T_link_depth_frame),
            ("camera_depth_frame", DEPTH_FRAME, link_optical)]


def write_unaligned_bag(path: Path, storage: str, n: int = 2, tf: bool = True) -> Path:
    """realsense2_camera without align_depth: raw colour 640x480, compressedDepth of the
    depth camera 320x240 (a tilted plane), both camera_infos, /tf_static."""
    plane = plane_depth_image()
    rng = np.random.default_rng(1)
    with BagWriter(path, storage) as b:
        if tf:
            b.tf_static(T0 - 1.0, _tf_chain())
        for t in range(n):
            s = T0 + t / 30.0
            b.image("/camera/color/image_raw", s, COLOUR_FRAME,
                    rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), "rgb8")
            b.info(INFO_TOPIC, s, COLOUR_FRAME, K_COLOUR, (640, 480))
            b.compressed_depth(RAW_DEPTH_TOPIC, s + 0.002, DEPTH_FRAME, plane)
            b.info(DEPTH_INFO_TOPIC, s + 0.002, DEPTH_FRAME, K_DEPTH, (320, 240))
    return path


@pytest.mark.parametrize("storage", ["ros1", "mcap"])
def test_unaligned_depth_is_registered_through_tf_static(tmp_path, storage, capsys):
    bag = write_unaligned_bag(_bag_path(tmp_path, storage), storage)
    dest = tmp_path / "scene"
    assert cli(["import", "rosbag", str(bag), str(dest)]) == 0
    out = capsys.readouterr().out
    assert "depth registered into the colour camera at import (320x240 depth -> 640x480; " \
           f"tf {COLOUR_FRAME} <- {DEPTH_FRAME}, depth camera_info {DEPTH_INFO_TOPIC})" in out
    scene = Scene(dest)
    want = register_depth(plane_depth_image(), K_DEPTH, K_COLOUR, (640, 480), T_COLOUR_DEPTH,
                          1000.0)
    for t in range(2):  # the tf chain composed to exactly T_COLOUR_DEPTH
        np.testing.assert_array_equal(scene.depth_raw(t), want)
    spill, missed = edge_errors_px(scene.depth_raw(0))
    assert spill < 0.6 and missed < K_COLOUR[0, 0] / K_DEPTH[0, 0]
    assert cli(["info", str(dest)]) == 0
    assert "import      rosbag from " in capsys.readouterr().out


def test_unaligned_depth_without_tf_or_with_no_register_is_refused(tmp_path, capsys):
    bag = write_unaligned_bag(tmp_path / "notf.bag", "ros1", n=1, tf=False)
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "s1")]) == 2
    err = capsys.readouterr().err
    assert f"depth topic {RAW_DEPTH_TOPIC} is not aligned to colour" in err
    assert "no /tf_static transform between the two frames to register it" in err
    bag2 = write_unaligned_bag(tmp_path / "tf.bag", "ros1", n=1)
    assert cli(["import", "rosbag", str(bag2), str(tmp_path / "s2"), "--no-register"]) == 2
    assert "--no-register keeps depth as it is, which needs the same size (import without" in \
        capsys.readouterr().err
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()


def _flip_inside(path: Path, marker: bytes, offset: int) -> None:
    data = bytearray(path.read_bytes())
    k = data.index(marker) + offset
    data[k] ^= 0x5A
    path.write_bytes(bytes(data))


def test_bit_flips_surface_as_clear_errors(kitchen, tmp_path, capsys):
    # A flipped byte inside a compressedDepth PNG: its CRC fails, named with the message.
    bag = write_compressed_bag(tmp_path / "flip.bag", "ros1", kitchen, "png")
    data = bytearray(bag.read_bytes())
    data[data.rfind(b"IDAT") + 200] ^= 0x5A  # the last PNG in the bag: frame 2's depth
    bag.write_bytes(bytes(data))
    assert cli(["import", "rosbag", str(bag), str(tmp_path / "s1")]) == 2
    err = capsys.readouterr().err
    assert f"{DEPTH_TOPIC} message 2: compressedDepth PNG data does not decode" in err
    assert "corrupt or truncated message" in err and "Traceback" not in err
    # A flipped byte in a ROS1 record header: the bag reader's own check refuses it.
    bag2 = write_compressed_bag(tmp_path / "hdr.bag", "ros1", kitchen[:1])
    _flip_inside(bag2, b"op=\x02", 3)  # the first chunk record's op code
    assert cli(["import", "rosbag", str(bag2), str(tmp_path / "s2")]) == 2
    err = capsys.readouterr().err
    assert "hdr.bag" in err and ("not a readable ROS1/ROS2 bag" in err or "the bag is damaged"
                                 in err)
    assert "Traceback" not in err
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()


# --- RealSense SDK recordings ------------------------------------------------------------

SDK_DEPTH = "/device_0/sensor_0/Depth_0"
SDK_COLOUR = "/device_0/sensor_1/Color_0"


def write_realsense_sdk_bag(path: Path, frames, depth_unit_m: float = 0.001,
                            extrinsics: bool = True, recorded_unit_m: float | None = None
                            ) -> tuple[Path, np.ndarray, np.ndarray]:
    """A bag in librealsense's layout (rs-record / realsense-viewer): per-stream image/data,
    info/camera_info, tf/0 (extrinsics to the reference stream, here the depth stream) and
    the depth sensor's 'Depth Units' option (`recorded_unit_m`, default the true unit).
    Depth is the real depth seen by a depth camera at half resolution, offset from the
    colour camera, in units of `depth_unit_m`."""
    K_d = np.array([[292.5, 0, 159.75], [0, 292.5, 119.75], [0, 0, 1]])
    T_c_d = make_pose(axis_angle_to_matrix([0.1, 1, 0], np.deg2rad(1.0)), [-0.015, 0.0, 0.0])
    T_ref_colour = inv_pose(T_c_d)  # the reference is the depth stream: T_ref_depth = I
    scale = 0.001 / depth_unit_m
    with BagWriter(path, "ros1") as b:
        Float32 = b.ts.types["std_msgs/msg/Float32"]
        b.write("/device_0/sensor_0/option/Depth Units/value", "std_msgs/msg/Float32",
                Float32(data=recorded_unit_m or depth_unit_m), T0 - 1)
        if extrinsics:
            b.write(f"{SDK_DEPTH}/tf/0", "geometry_msgs/msg/Transform", b.transform(np.eye(4)),
                    T0 - 1)
            b.write(f"{SDK_COLOUR}/tf/0", "geometry_msgs/msg/Transform",
                    b.transform(T_ref_colour), T0 - 1)
        b.info(f"{SDK_DEPTH}/info/camera_info", T0 - 1, "0", K_d, (320, 240),
               model="Brown Conrady")
        b.info(f"{SDK_COLOUR}/info/camera_info", T0 - 1, "0", K_KITCHEN, (640, 480),
               model="Inverse Brown Conrady")
        for t, (jpg, depth) in enumerate(frames):
            s = T0 + t / 30.0
            rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR),
                               cv2.COLOR_BGR2RGB)
            b.image(f"{SDK_COLOUR}/image/data", s, "0", rgb, "rgb8")
            d_cam = register_depth(depth, K_KITCHEN, K_d, (320, 240), inv_pose(T_c_d), 1000.0)
            b.image(f"{SDK_DEPTH}/image/data", s + 0.001, "0",
                    np.round(d_cam * scale).astype(np.uint16), "mono16")
    return path, K_d, T_c_d


@pytest.mark.parametrize("command", ["realsense", "rosbag"])
def test_realsense_sdk_bag_reads_units_intrinsics_extrinsics(kitchen, tmp_path, command, capsys):
    bag, K_d, T_c_d = write_realsense_sdk_bag(tmp_path / "rs.bag", kitchen, depth_unit_m=0.0001)
    dest = tmp_path / "scene"
    assert cli(["import", command, str(bag), str(dest)]) == 0
    out = capsys.readouterr().out
    assert "depth unit 0.0001 m (/device_0/sensor_0/option/Depth Units/value)" in out
    assert "depth registered into the colour camera at import (320x240 depth -> 640x480; " \
           f"extrinsics {SDK_DEPTH}/tf/0 and {SDK_COLOUR}/tf/0)" in out
    scene = Scene(dest)
    assert scene.camera.depth_scale == pytest.approx(10000.0)  # 1 / 0.0001 m
    np.testing.assert_allclose(scene.camera.K, K_KITCHEN)
    for t, (jpg, _depth) in enumerate(kitchen):
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(scene.rgb(t), rgb)  # raw rgb8 -> PNG: exact
    # Depth: exactly the registration of the recorded depth-camera frame with the
    # extrinsics inv(T_ref_colour) @ T_ref_depth = T_colour_depth, in the bag's units.
    _, d_units = kitchen[1]
    d_cam = register_depth(d_units, K_KITCHEN, K_d, (320, 240), inv_pose(T_c_d), 1000.0)
    want = register_depth(np.round(d_cam * 10.0).astype(np.uint16), K_d, K_KITCHEN, (640, 480),
                          T_c_d, 10000.0)
    np.testing.assert_array_equal(scene.depth_raw(1), want)
    assert np.median(scene.depth(1)[scene.depth(1) > 0]) == pytest.approx(
        np.median(d_units[d_units > 0]) / 1000, rel=0.05)


def test_realsense_no_register_needs_same_size_and_missing_extrinsics(kitchen, tmp_path,
                                                                       capsys):
    bag, _, _ = write_realsense_sdk_bag(tmp_path / "rs.bag", kitchen[:1])
    assert cli(["import", "realsense", str(bag), str(tmp_path / "s1"), "--no-register"]) == 2
    assert "--no-register keeps depth as it is, but depth is 320x240 and colour 640x480" in \
        capsys.readouterr().err
    bag2, _, _ = write_realsense_sdk_bag(tmp_path / "rs2.bag", kitchen[:1], extrinsics=False)
    assert cli(["import", "realsense", str(bag2), str(tmp_path / "s2")]) == 2
    assert "no stream extrinsics (/device_0/sensor_1/Color_0/tf/* and " in capsys.readouterr().err
    plain = write_compressed_bag(tmp_path / "plain.bag", "ros1", kitchen[:1])
    assert cli(["import", "realsense", str(plain), str(tmp_path / "s3")]) == 2
    assert "not a RealSense SDK recording" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("s1", "s2", "s3"))


def test_realsense_depth_units_off_by_1000_warn_and_strict_refuses(kitchen, tmp_path, capsys):
    # Depth in mm, but the recorded 'Depth Units' says 1 m: depth reads 1000x too far.
    bad, _, _ = write_realsense_sdk_bag(tmp_path / "bad.bag", kitchen[:2], recorded_unit_m=1.0)
    dest = tmp_path / "scene"
    assert cli(["import", "realsense", str(bad), str(dest), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{dest}: not written (--strict): {dest / 'camera.json'}: median depth" in err
    assert not dest.exists() and not list(tmp_path.glob(".scene*"))
    assert cli(["import", "realsense", str(bad), str(dest)]) == 0
    err = capsys.readouterr().err
    m = re.search(re.escape(f"warning: {dest / 'camera.json'}: median depth ") + r"(\d+) m is "
                  r"outside 0.1-10 m, so depth_scale 1 units/m is likely wrong; depth_scale 1000 "
                  r"would give (\d\.\d\d) m", err)
    assert m is not None, err
    source_mm = np.median([np.median(d[d > 0]) for _, d in kitchen[:2]])
    assert float(m.group(1)) == pytest.approx(source_mm, rel=0.03)  # the real ~1.9 m, in "m"
    assert float(m.group(2)) == pytest.approx(source_mm / 1000, rel=0.03)
    assert cli(["info", str(dest)]) == 0
    assert "depth_scale 1000 would give" in capsys.readouterr().err
    assert cli(["info", str(dest), "--strict"]) == 2
    good, _, _ = write_realsense_sdk_bag(tmp_path / "rs.bag", kitchen[:2])
    assert cli(["import", "realsense", str(good), str(tmp_path / "good"), "--strict"]) == 0


def test_frames_that_do_not_pair_warn_and_strict_refuses(kitchen, tmp_path, capsys):
    # Depth dropped for the last colour frame (a recording whose depth stream lagged).
    path = tmp_path / "drop.bag"
    with BagWriter(path, "ros1") as b:
        for t, (jpg, depth) in enumerate(kitchen):
            s = T0 + t / 30.0
            b.compressed(COLOUR_TOPIC, s, COLOUR_FRAME, jpg, "rgb8; jpeg compressed bgr8")
            b.info(INFO_TOPIC, s, COLOUR_FRAME, K_KITCHEN, (640, 480))
            if t < 2:
                b.compressed_depth(DEPTH_TOPIC, s + 0.002, COLOUR_FRAME, depth)
    assert cli(["import", "rosbag", str(path), str(tmp_path / "s1")]) == 0
    err = capsys.readouterr().err
    assert (f"warning: {path}: 1 of 3 colour messages ({COLOUR_TOPIC}) have no depth message "
            f"({DEPTH_TOPIC}, 2 messages) within 20 ms; left out (check that both streams "
            "were recorded at the same rate)") in err
    assert Scene(tmp_path / "s1").n_frames == 2
    assert cli(["import", "rosbag", str(path), str(tmp_path / "s2"), "--strict"]) == 2
    assert "not written (--strict): " in capsys.readouterr().err
    assert not (tmp_path / "s2").exists()


def test_no_register_keeps_same_size_depth_and_info_says_so(kitchen, tmp_path, capsys):
    path = tmp_path / "raw.bag"
    with BagWriter(path, "ros1") as b:
        for t, (jpg, depth) in enumerate(kitchen[:2]):
            s = T0 + t / 30.0
            b.compressed(COLOUR_TOPIC, s, COLOUR_FRAME, jpg, "rgb8; jpeg compressed bgr8")
            b.info(INFO_TOPIC, s, COLOUR_FRAME, K_KITCHEN, (640, 480))
            b.compressed_depth(RAW_DEPTH_TOPIC, s + 0.002, DEPTH_FRAME, depth)
    assert cli(["import", "rosbag", str(path), str(tmp_path / "s1")]) == 2
    assert "and no camera_info beside it to register it" in capsys.readouterr().err
    dest = tmp_path / "s2"
    assert cli(["import", "rosbag", str(path), str(dest), "--no-register"]) == 0
    np.testing.assert_array_equal(Scene(dest).depth_raw(1), kitchen[1][1])
    assert cli(["info", str(dest)]) == 0
    assert "depth not registered (--no-register): depth is in its own camera" in \
        capsys.readouterr().out
