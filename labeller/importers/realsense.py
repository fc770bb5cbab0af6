"""Import a RealSense SDK recording (`labeller import realsense FILE.bag SCENE`).

``realsense-viewer`` and ``rs-record`` write ROS1 bags in librealsense's own layout
(``ros_file_format.h``); they are read here with ``rosbags`` like any ROS1 bag, so no
librealsense is needed:

- ``/device_0/sensor_S/Color_0/image/data`` (``sensor_msgs/Image``, rgb8/bgr8...) and
  ``/device_0/sensor_S/Depth_0/image/data`` (``mono16``/``16UC1``, Z16 in depth units);
- ``.../<Stream>_0/info/camera_info`` (``sensor_msgs/CameraInfo``): each stream's K, D and
  size (distortion "Brown Conrady" = OpenCV's plumb_bob; non-zero "Inverse Brown Conrady"
  is refused);
- ``/device_0/sensor_S/option/Depth Units/value`` (``std_msgs/Float32``): metres per depth
  unit, so ``camera.json``'s depth_scale is ``1 / value`` (0.001 m, i.e. mm, when absent,
  with a warning);
- ``.../<Stream>_0/tf/R`` (``geometry_msgs/Transform``): the stream's extrinsics to the
  reference stream R of its group, T_ref_stream (librealsense's ``rs2_extrinsics`` "from
  the stream to the reference", p_ref = R p_stream + t), so
  ``T_colour_depth = inv(T_ref_colour) @ T_ref_depth``.

The SDK records the raw streams: depth is registered into the colour camera
(`labeller.geometry.depth_registration`) unless ``register=False`` (``--no-register``),
which keeps it as it is (then colour and depth must have the same size). Frames are paired
by header stamp within 20 ms, as for ROS bags. ``pyrealsense2`` is not needed (and not
used): the bag holds everything the scene needs, the same way on every platform.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import BadInput, FormatError
from labeller.core.poses import inv_pose, quat_xyzw_to_matrix
from labeller.core.progress import ProgressFn
from labeller.importers import ros_images
from labeller.importers.rosbag import (
    DepthCamera,
    Topic,
    check_distortion,
    first_message,
    info_arrays,
    list_topics,
    open_bag,
    write_rgbd_scene,
)
from labeller.importers.writer import ImportResult

STREAM_IMAGE_RE = re.compile(r"^/device_(\d+)/sensor_(\d+)/([A-Za-z]+)_(\d+)/image/data$")
DEPTH_UNITS_RE = re.compile(r"^/device_(\d+)/sensor_(\d+)/option/Depth[ _]Units/value$")
DEFAULT_DEPTH_UNIT_M = 0.001  # librealsense's default (D400): 1 mm per unit


def _stream_topics(topics: dict[str, Topic], stream: str, src: Path) -> Topic:
    found = [t for n, t in topics.items() if (m := STREAM_IMAGE_RE.match(n)) and
             m.group(3).lower() == stream.lower() and t.count > 0]
    if not found:
        names = sorted({m.group(3) for n in topics if (m := STREAM_IMAGE_RE.match(n))})
        raise BadInput(src, f"no {stream} stream in this RealSense recording (streams: "
                            f"{', '.join(names) or 'none'}); record colour and depth together")
    if len(found) > 1:
        raise BadInput(src, f"several {stream} streams ({', '.join(t.name for t in found)}); "
                            "this importer takes one")
    return found[0]


def _prefix(image_topic: str) -> str:
    return image_topic[: -len("/image/data")]


def _transform(msg: Any) -> np.ndarray:
    q, p = msg.rotation, msg.translation
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_matrix([q.x, q.y, q.z, q.w])
    T[:3, 3] = [p.x, p.y, p.z]
    return T


def _extrinsic_to_ref(reader: Any, topics: dict[str, Topic], image: Topic, src: Path
                      ) -> tuple[str, np.ndarray] | None:
    """(reference id, T_ref_stream) from the stream's tf topic, or None."""
    tf = [t for n, t in topics.items() if n.startswith(_prefix(image.name) + "/tf/")
          and t.count > 0]
    if not tf:
        return None
    msg = first_message(reader, tf[0], src)
    return tf[0].name.rsplit("/", 1)[-1], _transform(msg)


def import_realsense(src: str | Path, dest: str | Path, *, link: bool = False,
                     overwrite: bool = False, register: bool = True,
                     progress: ProgressFn | None = None) -> ImportResult:
    """Convert a RealSense SDK .bag into a scene at `dest` (see the module doc).

    `link` does not apply (frames are decoded from messages) and is ignored.
    """
    src, dest = Path(src), Path(dest)
    reader = open_bag(src)
    try:
        topics = list_topics(reader)
        if not any(STREAM_IMAGE_RE.match(n) for n in topics):
            raise BadInput(src, "not a RealSense SDK recording (no /device_0/sensor_*/"
                                "<stream>/image/data topics); for a ROS recording use "
                                "`labeller import rosbag`")
        colour = _stream_topics(topics, "Color", src)
        depth = _stream_topics(topics, "Depth", src)
        warnings: list[str] = []
        infos = {}
        for t, kind in ((colour, "colour"), (depth, "depth")):
            name = _prefix(t.name) + "/info/camera_info"
            if name not in topics or topics[name].count == 0:
                raise BadInput(src, f"no {name}: the {kind} stream's intrinsics are unknown")
            infos[kind] = (name, info_arrays(first_message(reader, topics[name], src)))
        K_c, D_c, model_c, size_c = infos["colour"][1]
        K_d, D_d, model_d, size_d = infos["depth"][1]
        for K, name in ((K_c, infos["colour"][0]), (K_d, infos["depth"][0])):
            if not (K[0, 0] > 0 and K[1, 1] > 0):
                raise FormatError(f"{src}: {name}", "K has no focal length (all zero?)")
        d0 = first_message(reader, depth, src)
        if ros_images.kind_of(depth.msgtype, d0) != "depth":
            raise FormatError(f"{src}: {depth.name}", f"{ros_images.describe(depth.msgtype, d0)}"
                                                      " is not a depth encoding (mono16, 16UC1)")
        depth_sensor = STREAM_IMAGE_RE.match(depth.name)
        assert depth_sensor is not None
        units = [t for n, t in topics.items() if (m := DEPTH_UNITS_RE.match(n))
                 and m.group(1, 2) == depth_sensor.group(1, 2) and t.count > 0]
        if units:
            unit_m = float(first_message(reader, units[0], src).data)
            if not (np.isfinite(unit_m) and unit_m > 0):
                raise FormatError(f"{src}: {units[0].name}", f"depth unit {unit_m} m is not > 0")
            unit_source = units[0].name
        else:
            unit_m = DEFAULT_DEPTH_UNIT_M
            unit_source = "default"
            warnings.append(f"{src}: no 'Depth Units' option recorded for the depth sensor; "
                            f"assuming {unit_m:g} m per unit (check the depth with "
                            "`labeller info`)")
        depth_units_per_m = 1.0 / unit_m

        ext_c = _extrinsic_to_ref(reader, topics, colour, src)
        ext_d = _extrinsic_to_ref(reader, topics, depth, src)
        same_camera = (size_c == size_d and np.allclose(K_c, K_d)
                       and ext_c is not None and ext_d is not None
                       and np.allclose(ext_c[1], ext_d[1], atol=1e-9))
        depth_cam = None
        if register and not same_camera:
            if ext_c is None or ext_d is None or ext_c[0] != ext_d[0]:
                raise BadInput(src, f"no stream extrinsics ({_prefix(colour.name)}/tf/* and "
                                    f"{_prefix(depth.name)}/tf/* to one reference) to register "
                                    "depth into the colour camera; use --no-register to keep "
                                    "depth as it is")
            check_distortion(D_d, model_d, f"{src}: {infos['depth'][0]}")
            T_colour_depth = inv_pose(ext_c[1]) @ ext_d[1]
            depth_cam = DepthCamera(K_d, D_d, size_d, T_colour_depth,
                                    f"extrinsics {_prefix(depth.name)}/tf/{ext_d[0]} and "
                                    f"{_prefix(colour.name)}/tf/{ext_c[0]}")
        elif not register and size_c != size_d:
            raise BadInput(src, f"--no-register keeps depth as it is, but depth is "
                                f"{size_d[0]}x{size_d[1]} and colour {size_c[0]}x{size_c[1]}; "
                                "a scene needs one size (import without --no-register)")
        notes = [f"RealSense streams: colour {colour.name}, depth {depth.name}",
                 f"depth unit {unit_m:g} m ({unit_source})"]
        result = write_rgbd_scene(reader, src, dest, colour, depth, K_c, D_c, model_c,
                                  infos["colour"][0], depth_cam, depth_units_per_m, notes,
                                  overwrite, progress, "realsense",
                                  unregistered=not register and not same_camera)
        result.warnings = warnings + result.warnings
    finally:
        reader.close()
    return result
