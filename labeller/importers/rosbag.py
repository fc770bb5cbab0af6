"""Import a ROS bag (`labeller import rosbag SRC SCENE [--rgb-topic T --depth-topic T ...]`).

SRC is a ROS1 ``.bag`` file or a ROS2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap``),
read with the pure-Python ``rosbags`` package (no ROS installation). It needs three topics,
as a RealSense recording with ``align_depth`` has them:

- colour: ``sensor_msgs/Image`` with encoding ``rgb8``/``bgr8``/``rgba8``/``bgra8``;
- depth aligned to colour: ``sensor_msgs/Image`` ``16UC1``/``mono16`` (millimetres) or
  ``32FC1`` (metres, stored as millimetres);
- ``sensor_msgs/CameraInfo`` of the colour camera (K, D).

Topics are chosen automatically when there is one candidate of each kind (for depth, a
single topic with "aligned" in its name wins; for camera_info, the one beside the colour
topic); otherwise ``--rgb-topic/--depth-topic/--info-topic`` name them. Each colour
message is paired with the depth message nearest by header stamp at most 20 ms away
(each used once); frames are numbered by colour stamp and ``timestamps.txt`` keeps the
colour header stamps. When the camera_info's distortion D is non-zero (``plumb_bob`` /
``rational_polynomial``), both images are undistorted with OpenCV to the same K (colour
bilinear, depth nearest-neighbour); depth that is not aligned to colour (another size or
frame_id, no "aligned" in its topic name) is refused, since the scene needs registered
depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, FormatError
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.importers.tum import associate
from labeller.importers.writer import ImportResult, scene_writer

MAX_PAIR_DT_S = 0.020  # colour and depth more than 20 ms apart are not one frame
IMAGE_TYPES = ("sensor_msgs/msg/Image",)
INFO_TYPES = ("sensor_msgs/msg/CameraInfo",)
COLOUR_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
DEPTH_UNITS_PER_M = 1000.0  # depth is stored in millimetres, as RealSense publishes it
SUPPORTED_DISTORTION = ("plumb_bob", "rational_polynomial", "")


@dataclass
class _Topic:
    name: str
    msgtype: str
    count: int
    connections: list


def _stamp(msg) -> float:
    s = msg.header.stamp
    return float(s.sec) + float(s.nanosec) * 1e-9


def _open(src: Path):
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


def image_to_array(msg, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB for colour encodings, (H, W) uint16 mm for depth encodings."""
    enc = msg.encoding
    h, w = int(msg.height), int(msg.width)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data,
                         dtype=np.uint8)
    if enc in COLOUR_ENCODINGS:
        c = COLOUR_ENCODINGS[enc]
        img = data.reshape(h, int(msg.step))[:, : w * c].reshape(h, w, c)[:, :, :3]
        return np.ascontiguousarray(img[:, :, ::-1] if enc.startswith("bgr") else img)
    if enc in ("16UC1", "mono16"):
        dt = np.dtype(">u2" if msg.is_bigendian else "<u2")
        return data.reshape(h, int(msg.step))[:, : w * 2].copy().view(dt).reshape(h, w) \
            .astype(np.uint16)
    if enc == "32FC1":
        dt_f4 = np.dtype(">f4" if msg.is_bigendian else "<f4")
        m = data.reshape(h, int(msg.step))[:, : w * 4].copy().view(dt_f4).reshape(h, w)
        mm = np.where(np.isfinite(m) & (m > 0), np.round(m * DEPTH_UNITS_PER_M), 0)
        return np.clip(mm, 0, 65535).astype(np.uint16)
    raise FormatError(where, f"unsupported image encoding '{enc}'")


def _first_msg(reader, topic: _Topic):
    for conn, _, raw in reader.messages(connections=topic.connections):
        return reader.deserialize(raw, conn.msgtype)
    return None


def _pick(cands: list[_Topic], kind: str, flag: str, src: Path, prefer=None) -> _Topic:
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


def _named(topics: dict[str, _Topic], name: str, flag: str, src: Path) -> _Topic:
    if name not in topics:
        raise BadInput(src, f"{flag} {name}: no such topic (topics: {', '.join(sorted(topics))})")
    return topics[name]


def _parent(topic: str) -> str:
    return topic.rstrip("/").rsplit("/", 1)[0]


def _info_arrays(info) -> tuple[np.ndarray, np.ndarray, str]:
    K = np.asarray(getattr(info, "K", None) if hasattr(info, "K") else info.k, dtype=np.float64)
    D = np.asarray(getattr(info, "D", None) if hasattr(info, "D") else info.d, dtype=np.float64)
    return K.reshape(3, 3), D.reshape(-1), str(info.distortion_model)


def import_rosbag(src: str | Path, dest: str | Path, *, link: bool = False,
                  overwrite: bool = False, rgb_topic: str | None = None,
                  depth_topic: str | None = None, info_topic: str | None = None,
                  progress: ProgressFn | None = None) -> ImportResult:
    """Convert a ROS1/ROS2 bag into a scene at `dest` (see the module doc).

    `link` does not apply (frames are decoded from messages) and is ignored.
    """
    import cv2

    src, dest = Path(src), Path(dest)
    reader = _open(src)
    try:
        topics: dict[str, _Topic] = {}
        for c in reader.connections:
            topic = topics.setdefault(c.topic, _Topic(c.topic, c.msgtype, 0, []))
            topic.count += c.msgcount
            topic.connections.append(c)
        if not topics or sum(t.count for t in topics.values()) == 0:
            raise BadInput(src, "the bag is empty (no messages)")
        images = [t for t in topics.values() if t.msgtype in IMAGE_TYPES and t.count > 0]
        infos = [t for t in topics.values() if t.msgtype in INFO_TYPES and t.count > 0]
        colour_c, depth_c = [], []
        first: dict[str, Any] = {}
        for topic in images:
            m = _first_msg(reader, topic)
            first[topic.name] = m
            if m.encoding in COLOUR_ENCODINGS:
                colour_c.append(topic)
            elif m.encoding in DEPTH_ENCODINGS:
                depth_c.append(topic)
        colour = (_named(topics, rgb_topic, "--rgb-topic", src) if rgb_topic else
                  _pick(colour_c, "colour image (rgb8/bgr8)", "--rgb-topic", src))
        depth = (_named(topics, depth_topic, "--depth-topic", src) if depth_topic else
                 _pick(depth_c, "depth image (16UC1/32FC1)", "--depth-topic", src,
                       prefer=lambda c: "aligned" in c.name))
        if info_topic:
            info_t = _named(topics, info_topic, "--info-topic", src)
        elif not infos:
            raise BadInput(src, "no camera_info topic (sensor_msgs/CameraInfo) in the bag: the "
                                "camera intrinsics are unknown")
        else:
            info_t = _pick(infos, "camera_info", "--info-topic", src,
                           prefer=lambda c: _parent(c.name) == _parent(colour.name))
        for topic, kind in ((colour, "colour"), (depth, "depth")):
            if topic.msgtype not in IMAGE_TYPES:
                raise BadInput(src, f"{kind} topic {topic.name} is {topic.msgtype}, "
                                    "not sensor_msgs/Image")
        if info_t.msgtype not in INFO_TYPES:
            raise BadInput(src, f"camera_info topic {info_t.name} is {info_t.msgtype}")
        c0 = first.get(colour.name) or _first_msg(reader, colour)
        d0 = first.get(depth.name) or _first_msg(reader, depth)
        if c0.encoding not in COLOUR_ENCODINGS:
            raise FormatError(f"{src}: {colour.name}", f"encoding '{c0.encoding}' is not a colour "
                                                       "encoding (rgb8, bgr8, rgba8, bgra8)")
        if d0.encoding not in DEPTH_ENCODINGS:
            raise FormatError(f"{src}: {depth.name}", f"encoding '{d0.encoding}' is not a depth "
                                                      "encoding (16UC1, mono16, 32FC1)")
        K, D, model = _info_arrays(_first_msg(reader, info_t))
        size = (int(c0.width), int(c0.height))
        aligned = ((int(d0.width), int(d0.height)) == size
                   and ("aligned" in depth.name or d0.header.frame_id == c0.header.frame_id))
        if not aligned:
            raise BadInput(src, f"depth topic {depth.name} is not aligned to colour "
                                f"{colour.name} ({d0.width}x{d0.height} in frame "
                                f"'{d0.header.frame_id}' vs {c0.width}x{c0.height} in "
                                f"'{c0.header.frame_id}'); record with align_depth enabled or "
                                "name the aligned topic with --depth-topic")
        distorted = bool(np.any(np.abs(D) > 0))
        if distorted and model not in SUPPORTED_DISTORTION:
            raise BadInput(src, f"{info_t.name}: distortion model '{model}' is not supported "
                                "(plumb_bob, rational_polynomial)")
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise FormatError(f"{src}: {info_t.name}", "K has no focal length (all zero?)")

        # Pass 1: header stamps, for pairing.
        def stamps_of(t: _Topic) -> np.ndarray:
            out = []
            for conn, _, raw in reader.messages(connections=t.connections):
                out.append(_stamp(reader.deserialize(raw, conn.msgtype)))
            return np.asarray(out, dtype=np.float64)

        c_st, d_st = stamps_of(colour), stamps_of(depth)
        pairs = associate(c_st, d_st, MAX_PAIR_DT_S)
        if not pairs:
            raise BadInput(src, f"{colour.name} and {depth.name} are not synchronised: no colour "
                                f"message has a depth message within {MAX_PAIR_DT_S * 1000:.0f} "
                                f"ms (colour {c_st.min():.3f}..{c_st.max():.3f} s, depth "
                                f"{d_st.min():.3f}..{d_st.max():.3f} s)")
        warnings = []
        if len(pairs) < len(c_st):
            warnings.append(f"{src}: {len(c_st) - len(pairs)} of {len(c_st)} colour messages "
                            f"have no depth message within {MAX_PAIR_DT_S * 1000:.0f} ms; "
                            "left out")
        c_frame = {i: t for t, (i, _) in enumerate(pairs)}
        d_frame = {j: t for t, (_, j) in enumerate(pairs)}
        maps = None
        if distorted:
            maps = cv2.initUndistortRectifyMap(K, D, None, K, size, cv2.CV_32FC1)

        with scene_writer(dest, overwrite=overwrite, link=False) as w, \
                bar(2 * len(pairs), "import rosbag", "image") as images_bar:
            done = 0
            for t_top, frames, is_depth in ((colour, c_frame, False), (depth, d_frame, True)):
                for k, (conn, _, raw) in enumerate(reader.messages(connections=t_top.connections)):
                    t = frames.get(k)
                    if t is None:
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    where = f"{src}: {t_top.name} message {k}"
                    img = image_to_array(msg, where)
                    if (img.shape[1], img.shape[0]) != size:
                        raise FormatError(where, f"size {img.shape[1]}x{img.shape[0]} differs "
                                                 f"from the first colour image's {size[0]}x"
                                                 f"{size[1]}")
                    if maps is not None:
                        interp = cv2.INTER_NEAREST if is_depth else cv2.INTER_LINEAR
                        img = cv2.remap(img, maps[0], maps[1], interp,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    if is_depth:
                        w.write_depth(t, img)
                    else:
                        from labeller.core.fileio import write_image

                        write_image(w.paths.rgb_path(t, ".png"), img, atomic=False)
                    done += 1
                    images_bar.update(1)
                    check_progress(progress, done, 2 * len(pairs),
                                   f"{dest}: import cancelled; nothing written")
            images_bar.close()
            w.write_camera(CameraIntrinsics(size[0], size[1], float(K[0, 0]), float(K[1, 1]),
                                            float(K[0, 2]), float(K[1, 2]), DEPTH_UNITS_PER_M))
            w.write_timestamps({t: float(c_st[i]) for t, (i, _) in enumerate(pairs)})
            notes = [f"topics: colour {colour.name}, depth {depth.name}, camera_info "
                     f"{info_t.name}",
                     f"colour ({c0.encoding}) written as PNG; depth ({d0.encoding}) as mm PNG",
                     ("undistorted colour and depth (D = " + " ".join(f"{v:.4g}" for v in D)
                      + ")") if distorted else "no lens distortion in camera_info"]
            result = ImportResult(dest, len(pairs), has_timestamps=True,
                                  n_rewritten=w.n_rewritten, warnings=warnings + w.warnings,
                                  notes=notes)
    finally:
        reader.close()
    return result
