"""Import a ROS bag (`labeller import rosbag SRC SCENE [--rgb-topic T --depth-topic T ...]`).

SRC is a ROS1 ``.bag`` file or a ROS2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap``),
read with the pure-Python ``rosbags`` package (no ROS installation). It needs:

- colour: ``sensor_msgs/Image`` (``rgb8``/``bgr8``/``rgba8``/``bgra8``) or
  ``sensor_msgs/CompressedImage`` (image_transport ``compressed``: JPEG or PNG);
- depth: ``sensor_msgs/Image`` ``16UC1``/``mono16`` (millimetres) or ``32FC1`` (metres,
  stored as millimetres), or ``CompressedImage`` ``compressedDepth`` (12-byte header + PNG;
  see `labeller.importers.ros_images`);
- ``sensor_msgs/CameraInfo`` of the colour camera (K, D).

Topics are found by message type, and chosen automatically when there is one candidate of
each kind (for depth, a single topic with "aligned" in its name wins; for camera_info, the
one beside the colour topic); otherwise ``--rgb-topic/--depth-topic/--info-topic`` name
them. Each colour message is paired with the depth message nearest by header stamp at most
20 ms away (each used once); frames are numbered by colour stamp and ``timestamps.txt``
keeps the colour header stamps. JPEG colour is kept byte-identical (``rgb/*.jpg``); other
colour is written as PNG. When the colour camera_info's distortion D is non-zero
(``plumb_bob`` / ``rational_polynomial``), both images are undistorted with OpenCV to the
same K (colour bilinear, depth nearest-neighbour).

Depth that is not aligned to colour (another size or frame_id, no "aligned" in its topic
name), as ``realsense2_camera`` publishes it without ``align_depth``, is registered into
the colour camera (`labeller.geometry.depth_registration`) with the depth topic's own
camera_info and the transform between the two optical frames from ``/tf_static`` (or
``/tf``); ``register=False`` (``--no-register``) keeps depth as it is when the sizes agree.
Without a known transform such depth is refused. A RealSense SDK recording
(``/device_0/sensor_*`` topics) is read by `labeller.importers.realsense`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, FormatError
from labeller.core.poses import inv_pose, quat_xyzw_to_matrix
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.importers import ros_images
from labeller.importers.ros_images import DEPTH_UNITS_PER_M, IMAGE_TYPES
from labeller.importers.tum import associate
from labeller.importers.writer import ImportResult, scene_writer

MAX_PAIR_DT_S = 0.020  # colour and depth more than 20 ms apart are not one frame
INFO_TYPES = ("sensor_msgs/msg/CameraInfo",)
TF_TYPES = ("tf2_msgs/msg/TFMessage",)
SUPPORTED_DISTORTION = ("plumb_bob", "rational_polynomial", "brown conrady", "")
# image_transport appends the transport's name to the image topic.
TRANSPORT_SUFFIX_RE = re.compile(r"/(compressed|compressedDepth|theora|zstd)$")
REALSENSE_SDK_TOPIC_RE = re.compile(r"^/device_\d+/sensor_\d+/")


@dataclass
class Topic:
    name: str
    msgtype: str
    count: int
    connections: list


@dataclass(frozen=True)
class DepthCamera:
    """The depth stream's own camera, when it is not the colour camera.

    K: (3, 3) pixels; D: distortion (OpenCV order; zeros when none); size (width, height);
    T_colour_depth: (4, 4) depth camera in the colour camera's frame, metres, or None when
    unknown (then depth can only be kept as it is)."""

    K: np.ndarray
    D: np.ndarray
    size: tuple[int, int]
    T_colour_depth: np.ndarray | None
    source: str  # where T_colour_depth came from, for the summary


def stamp_s(msg: Any) -> float:
    s = msg.header.stamp
    return float(s.sec) + float(s.nanosec) * 1e-9


def open_bag(src: Path) -> Any:
    """An open rosbags AnyReader; BadInput naming the bag when it cannot be read."""
    try:
        from rosbags.highlevel import AnyReader
    except ImportError:
        raise BadInput(src, "reading ROS bags needs the 'rosbags' package "
                            "(pip install rosbags)") from None
    if not src.exists():
        raise BadInput(src, "not found (expected a ROS1 .bag file or a ROS2 bag folder)")
    reader = AnyReader([src])
    try:
        reader.open()
    except Exception as exc:  # rosbags raises its own ReaderError types per format
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(src, f"not a readable ROS1/ROS2 bag ({first})") from None
    return reader


def list_topics(reader: Any) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    for c in reader.connections:
        topic = topics.setdefault(c.topic, Topic(c.topic, c.msgtype, 0, []))
        topic.count += c.msgcount
        topic.connections.append(c)
    return topics


def iter_messages(reader: Any, topic: Topic, src: Path) -> Iterator[tuple[int, Any]]:
    """(index, deserialised message) of one topic in bag order.

    A message the bag reader cannot read or deserialise (a damaged chunk, flipped bits)
    is a FormatError naming the bag, topic and message index."""
    k = -1
    try:
        for k, (conn, _, raw) in enumerate(reader.messages(connections=topic.connections)):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:  # the deserialiser's own checks (lengths, types)
                raise FormatError(f"{src}: {topic.name} message {k}",
                                  f"cannot be deserialised ({_first_line(exc)}); the bag is "
                                  "damaged") from None
            yield k, msg
    except FormatError:
        raise
    except Exception as exc:  # the bag reader's checks: chunk/record headers, CRCs
        raise FormatError(f"{src}: {topic.name} after message {k}",
                          f"cannot be read ({_first_line(exc)}); the bag is damaged") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def first_message(reader: Any, topic: Topic, src: Path) -> Any:
    for _, msg in iter_messages(reader, topic, src):
        return msg
    return None


def pick(cands: list[Topic], kind: str, flag: str, src: Path, prefer=None) -> Topic:
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise BadInput(src, f"no {kind} topic in the bag")
    if prefer is not None:
        best = [c for c in cands if prefer(c)]
        if len(best) == 1:
            return best[0]
    names = ", ".join(c.name for c in cands)
    raise BadInput(src, f"several {kind} topics ({names}); name one with {flag}")


def named(topics: dict[str, Topic], name: str, flag: str, src: Path) -> Topic:
    if name not in topics:
        raise BadInput(src, f"{flag} {name}: no such topic (topics: {', '.join(sorted(topics))})")
    return topics[name]


def camera_ns(topic: str) -> str:
    """The camera's namespace of an image topic: '/camera/color' for
    '/camera/color/image_raw' and '/camera/color/image_raw/compressed'."""
    base = TRANSPORT_SUFFIX_RE.sub("", topic.rstrip("/"))
    return base.rsplit("/", 1)[0]


def info_arrays(info: Any) -> tuple[np.ndarray, np.ndarray, str, tuple[int, int]]:
    """(K (3, 3), D, distortion model, (width, height)) of a CameraInfo (ROS1 or ROS2)."""
    K = np.asarray(info.K if hasattr(info, "K") else info.k, dtype=np.float64)
    D = np.asarray(info.D if hasattr(info, "D") else info.d, dtype=np.float64)
    return K.reshape(3, 3), D.reshape(-1), str(info.distortion_model), (int(info.width),
                                                                        int(info.height))


def check_distortion(D: np.ndarray, model: str, where: str) -> bool:
    """True when D is non-zero (the image needs undistorting); BadInput for a model
    OpenCV's undistortion does not implement."""
    distorted = bool(np.any(np.abs(D) > 0))
    if distorted and model.lower() not in SUPPORTED_DISTORTION:
        raise BadInput(where, f"distortion model '{model}' with non-zero coefficients is not "
                              "supported (plumb_bob, rational_polynomial, Brown Conrady)")
    return distorted


def static_transforms(reader: Any, topics: dict[str, Topic], src: Path
                      ) -> dict[tuple[str, str], np.ndarray]:
    """(parent, child) -> T_parent_child from every TFMessage topic (first value of each)."""
    edges: dict[tuple[str, str], np.ndarray] = {}
    for t in topics.values():
        if t.msgtype not in TF_TYPES:
            continue
        for _, msg in iter_messages(reader, t, src):
            for tr in msg.transforms:
                key = (str(tr.header.frame_id).lstrip("/"), str(tr.child_frame_id).lstrip("/"))
                if key in edges:
                    continue
                q, p = tr.transform.rotation, tr.transform.translation
                T = np.eye(4)
                T[:3, :3] = quat_xyzw_to_matrix([q.x, q.y, q.z, q.w])
                T[:3, 3] = [p.x, p.y, p.z]
                edges[key] = T
    return edges


def transform_between(edges: dict[tuple[str, str], np.ndarray], target: str,
                      source: str) -> np.ndarray | None:
    """T_target_source through the tf tree, or None when the frames are not connected."""
    target, source = target.lstrip("/"), source.lstrip("/")
    parent_of = {child: (parent, T) for (parent, child), T in edges.items()}

    def to_root(frame: str) -> dict[str, np.ndarray]:
        """frame f -> T_f_frame for every ancestor f (and frame itself)."""
        out = {frame: np.eye(4)}
        T = np.eye(4)
        seen = {frame}
        while frame in parent_of:
            parent, T_parent_child = parent_of[frame]
            T = T_parent_child @ T
            if parent in seen:  # a loop in the tree: stop
                break
            seen.add(parent)
            out[parent] = T
            frame = parent
        return out

    up_source, up_target = to_root(source), to_root(target)
    common = next((f for f in up_source if f in up_target), None)
    if common is None:
        return None
    return inv_pose(up_target[common]) @ up_source[common]


def import_rosbag(src: str | Path, dest: str | Path, *, link: bool = False,
                  overwrite: bool = False, rgb_topic: str | None = None,
                  depth_topic: str | None = None, info_topic: str | None = None,
                  register: bool = True,
                  progress: ProgressFn | None = None) -> ImportResult:
    """Convert a ROS1/ROS2 bag into a scene at `dest` (see the module doc).

    `link` does not apply (frames are decoded from messages) and is ignored.
    """
    src, dest = Path(src), Path(dest)
    reader = open_bag(src)
    try:
        topics = list_topics(reader)
        if not topics or sum(t.count for t in topics.values()) == 0:
            raise BadInput(src, "the bag is empty (no messages)")
        sdk_layout = (not (rgb_topic or depth_topic or info_topic)
                      and any(REALSENSE_SDK_TOPIC_RE.match(n) for n in topics))
        if not sdk_layout:
            result = _import_ros_layout(reader, topics, src, dest, overwrite, rgb_topic,
                                        depth_topic, info_topic, register, progress)
    finally:
        reader.close()
    if sdk_layout:
        from labeller.importers.realsense import import_realsense

        return import_realsense(src, dest, overwrite=overwrite, register=register,
                                progress=progress)
    return result


def _import_ros_layout(reader: Any, topics: dict[str, Topic], src: Path, dest: Path,
                       overwrite: bool, rgb_topic: str | None, depth_topic: str | None,
                       info_topic: str | None, register: bool,
                       progress: ProgressFn | None) -> ImportResult:
    """The import of a bag with realsense2_camera-style topics (see the module doc)."""
    images = [t for t in topics.values() if t.msgtype in IMAGE_TYPES and t.count > 0]
    infos = [t for t in topics.values() if t.msgtype in INFO_TYPES and t.count > 0]
    colour_c, depth_c = [], []
    first: dict[str, Any] = {}
    for topic in images:
        m = first_message(reader, topic, src)
        first[topic.name] = m
        kind = ros_images.kind_of(topic.msgtype, m)
        if kind == "colour":
            colour_c.append(topic)
        elif kind == "depth":
            depth_c.append(topic)
    colour = (named(topics, rgb_topic, "--rgb-topic", src) if rgb_topic else
              pick(colour_c, "colour image (rgb8/bgr8 or compressed)", "--rgb-topic", src))
    depth = (named(topics, depth_topic, "--depth-topic", src) if depth_topic else
             pick(depth_c, "depth image (16UC1/32FC1 or compressedDepth)", "--depth-topic",
                  src, prefer=lambda c: "aligned" in c.name))
    if info_topic:
        info_t = named(topics, info_topic, "--info-topic", src)
    elif not infos:
        raise BadInput(src, "no camera_info topic (sensor_msgs/CameraInfo) in the bag: the "
                            "camera intrinsics are unknown")
    else:
        info_t = pick(infos, "camera_info", "--info-topic", src,
                      prefer=lambda c: camera_ns(c.name) == camera_ns(colour.name))
    for topic, kind in ((colour, "colour"), (depth, "depth")):
        if topic.msgtype not in IMAGE_TYPES:
            raise BadInput(src, f"{kind} topic {topic.name} is {topic.msgtype}, "
                                "not sensor_msgs/Image or CompressedImage")
    if info_t.msgtype not in INFO_TYPES:
        raise BadInput(src, f"camera_info topic {info_t.name} is {info_t.msgtype}")
    c0 = first.get(colour.name) or first_message(reader, colour, src)
    d0 = first.get(depth.name) or first_message(reader, depth, src)
    if ros_images.kind_of(colour.msgtype, c0) != "colour":
        raise FormatError(f"{src}: {colour.name}",
                          f"{ros_images.describe(colour.msgtype, c0)} is not a colour "
                          "encoding (rgb8, bgr8, rgba8, bgra8, jpeg, png)")
    if ros_images.kind_of(depth.msgtype, d0) != "depth":
        raise FormatError(f"{src}: {depth.name}",
                          f"{ros_images.describe(depth.msgtype, d0)} is not a depth "
                          "encoding (16UC1, mono16, 32FC1, compressedDepth)")
    K, D, model, _ = info_arrays(first_message(reader, info_t, src))
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise FormatError(f"{src}: {info_t.name}", "K has no focal length (all zero?)")
    c_img = ros_images.decode(colour.msgtype, c0, f"{src}: {colour.name} message 0")
    d_img = ros_images.decode(depth.msgtype, d0, f"{src}: {depth.name} message 0")
    size = (c_img.shape[1], c_img.shape[0])
    d_size = (d_img.shape[1], d_img.shape[0])
    d_frame, c_frame = str(d0.header.frame_id), str(c0.header.frame_id)
    aligned = d_size == size and ("aligned" in depth.name or d_frame == c_frame)
    depth_cam = None
    if not aligned:
        what = (f"depth topic {depth.name} is not aligned to colour {colour.name} "
                f"({d_size[0]}x{d_size[1]} in frame '{d_frame}' vs {size[0]}x{size[1]} in "
                f"'{c_frame}')")
        if not register and d_size != size:
            raise BadInput(src, f"{what}; --no-register keeps depth as it is, which needs the "
                                "same size (import without --no-register to register it)")
        if register:
            depth_cam = _depth_camera(reader, topics, infos, depth, d_frame, c_frame, d_size,
                                      src)
            if depth_cam is None or depth_cam.T_colour_depth is None:
                lack = ("no camera_info beside it" if depth_cam is None else
                        "no /tf_static transform between the two frames")
                raise BadInput(src, f"{what}, and {lack} to register it; record with "
                                    "align_depth enabled or name the aligned topic with "
                                    "--depth-topic")
    notes = [f"topics: colour {colour.name}, depth {depth.name}, camera_info {info_t.name}"]
    return write_rgbd_scene(reader, src, dest, colour, depth, K, D, model, info_t.name,
                            depth_cam, DEPTH_UNITS_PER_M, notes, overwrite, progress,
                            "rosbag", unregistered=not aligned and not register)


def _depth_camera(reader: Any, topics: dict[str, Topic], infos: list[Topic], depth: Topic,
                  d_frame: str, c_frame: str, d_size: tuple[int, int], src: Path
                  ) -> DepthCamera | None:
    """The depth topic's own camera (camera_info beside it) and the tf between the two
    optical frames; None without a depth camera_info."""
    beside = [t for t in infos if camera_ns(t.name) == camera_ns(depth.name)]
    if len(beside) != 1:
        return None
    K_d, D_d, model_d, _ = info_arrays(first_message(reader, beside[0], src))
    check_distortion(D_d, model_d, f"{src}: {beside[0].name}")
    T = transform_between(static_transforms(reader, topics, src), c_frame, d_frame)
    return DepthCamera(K_d, D_d, d_size, T,
                       f"tf {c_frame} <- {d_frame}, depth camera_info {beside[0].name}")


def pair_stamps(reader: Any, src: Path, colour: Topic, depth: Topic
                ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(colour header stamps, (colour index, depth index) pairs within MAX_PAIR_DT_S)."""
    c_st = np.asarray([stamp_s(m) for _, m in iter_messages(reader, colour, src)])
    d_st = np.asarray([stamp_s(m) for _, m in iter_messages(reader, depth, src)])
    pairs = associate(c_st, d_st, MAX_PAIR_DT_S)
    if not pairs:
        raise BadInput(src, f"{colour.name} and {depth.name} are not synchronised: no colour "
                            f"message has a depth message within {MAX_PAIR_DT_S * 1000:.0f} "
                            f"ms (colour {c_st.min():.3f}..{c_st.max():.3f} s, depth "
                            f"{d_st.min():.3f}..{d_st.max():.3f} s)")
    return c_st, pairs


def write_rgbd_scene(reader: Any, src: Path, dest: Path, colour: Topic, depth: Topic,
                     K: np.ndarray, D: np.ndarray, model: str, info_name: str,
                     depth_cam: DepthCamera | None, depth_units_per_m: float,
                     notes: list[str], overwrite: bool, progress: ProgressFn | None,
                     fmt: str, unregistered: bool = False) -> ImportResult:
    """Pair, decode, undistort, register (when `depth_cam`) and write the frames.

    Colour and depth are streamed topic by topic (two passes over the bag) so memory
    stays flat. Depth keeps its units (`depth_units_per_m` in camera.json)."""
    import cv2

    from labeller.core.fileio import write_image
    from labeller.geometry.depth_registration import register_depth

    distorted = check_distortion(D, model, f"{src}: {info_name}")
    c_st, pairs = pair_stamps(reader, src, colour, depth)
    warnings = []
    n_depth = depth.count
    if len(pairs) < len(c_st):
        warnings.append(f"{src}: {len(c_st) - len(pairs)} of {len(c_st)} colour messages "
                        f"({colour.name}) have no depth message ({depth.name}, {n_depth} "
                        f"messages) within {MAX_PAIR_DT_S * 1000:.0f} ms; left out (check that "
                        "both streams were recorded at the same rate)")
    c_of = {i: t for t, (i, _) in enumerate(pairs)}
    d_of = {j: t for t, (_, j) in enumerate(pairs)}
    size: tuple[int, int] | None = None
    maps = None
    d_maps = None
    if depth_cam is not None and np.any(np.abs(depth_cam.D) > 0):
        d_maps = cv2.initUndistortRectifyMap(depth_cam.K, depth_cam.D, None, depth_cam.K,
                                             depth_cam.size, cv2.CV_32FC1)
    n_jpeg = 0
    with scene_writer(dest, overwrite=overwrite, link=False) as w, \
            bar(2 * len(pairs), f"import {fmt}", "image") as images_bar:
        done = 0
        for t_top, frames, is_depth in ((colour, c_of, False), (depth, d_of, True)):
            for k, msg in iter_messages(reader, t_top, src):
                t = frames.get(k)
                if t is None:
                    continue
                where = f"{src}: {t_top.name} message {k}"
                img = ros_images.decode(t_top.msgtype, msg, where)
                wh = (img.shape[1], img.shape[0])
                if not is_depth:
                    if size is None:
                        size = wh
                        if distorted:
                            maps = cv2.initUndistortRectifyMap(K, D, None, K, size,
                                                               cv2.CV_32FC1)
                    if wh != size:
                        raise FormatError(where, f"size {wh[0]}x{wh[1]} differs from the "
                                                 f"first colour image's {size[0]}x{size[1]}")
                    jpeg = ros_images.jpeg_bytes(t_top.msgtype, msg)
                    if maps is not None:
                        img = cv2.remap(img, maps[0], maps[1], cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    if maps is None and jpeg is not None and img.ndim == 3:
                        # The recorded JPEG as it is: no second lossy encoding.
                        w.paths.rgb_path(t, ".jpg").write_bytes(jpeg)
                        n_jpeg += 1
                    else:
                        write_image(w.paths.rgb_path(t, ".png"), img, atomic=False)
                else:
                    assert size is not None
                    want = depth_cam.size if depth_cam is not None else size
                    if wh != want:
                        raise FormatError(where, f"depth size {wh[0]}x{wh[1]} differs from "
                                                 f"{'the depth camera' if depth_cam else 'colour'}"
                                                 f"'s {want[0]}x{want[1]}")
                    if d_maps is not None:
                        img = cv2.remap(img, d_maps[0], d_maps[1], cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    if depth_cam is not None:
                        assert depth_cam.T_colour_depth is not None
                        img = register_depth(img, depth_cam.K, K, size,
                                             depth_cam.T_colour_depth, depth_units_per_m)
                    elif maps is not None:
                        img = cv2.remap(img, maps[0], maps[1], cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    w.write_depth(t, img)
                done += 1
                images_bar.update(1)
                check_progress(progress, done, 2 * len(pairs),
                               f"{dest}: import cancelled; nothing written")
        images_bar.close()
        assert size is not None
        if len({p.suffix for p in w.paths.rgb_dir.iterdir()}) > 1:
            raise FormatError(f"{src}: {colour.name}", "mixes JPEG and other colour messages; "
                                                       "a scene has one colour format")
        w.write_camera(CameraIntrinsics(size[0], size[1], float(K[0, 0]), float(K[1, 1]),
                                        float(K[0, 2]), float(K[1, 2]), depth_units_per_m))
        w.write_timestamps({t: float(c_st[i]) for t, (i, _) in enumerate(pairs)})
        c_desc = "JPEG kept as recorded" if n_jpeg else "written as PNG"
        notes = notes + [
            f"colour ({colour.msgtype.rsplit('/', 1)[-1]}) {c_desc}; depth "
            f"({depth.msgtype.rsplit('/', 1)[-1]}) as uint16 PNG, {depth_units_per_m:g} "
            "units/m",
            ("undistorted colour and depth (D = " + " ".join(f"{v:.4g}" for v in D) + ")")
            if distorted else "no lens distortion in camera_info"]
        if depth_cam is not None:
            alignment = (f"registered into the colour camera at import ({depth_cam.size[0]}x"
                         f"{depth_cam.size[1]} depth -> {size[0]}x{size[1]}; {depth_cam.source})")
        elif unregistered:
            alignment = ("not registered (--no-register): depth is in its own camera, "
                         "not aligned to colour")
        else:
            alignment = "aligned to colour in the recording"
        notes.append(f"depth {alignment}")
        w.write_provenance(fmt, src, alignment)
        result = ImportResult(dest, len(pairs), has_timestamps=True,
                              n_rewritten=w.n_rewritten, warnings=warnings + w.warnings,
                              notes=notes)
    return result

