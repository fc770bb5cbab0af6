"""Decoding ROS image messages: ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage``.

`CompressedImage` comes from image_transport's plugins, as ``realsense2_camera`` recordings
keep them:

- ``compressed`` (colour): ``format`` like ``"rgb8; jpeg compressed bgr8"`` (ROS1/ROS2), or
  bare ``"jpeg"``/``"png"``; ``data`` is one JPEG/PNG file, colour stored in BGR order
  unless the format says ``compressed rgb8``.
- ``compressedDepth`` (depth): ``format`` like ``"16UC1; compressedDepth png"`` (ROS2) or
  ``"16UC1; compressedDepth"`` (ROS1); ``data`` is a 12-byte header (int32 codec, float32
  depthQuantA, float32 depthQuantB) then a 16-bit PNG. For ``16UC1`` the PNG holds the
  depth values as they were (mm); for ``32FC1`` it holds quantised inverse depth,
  ``metres = depthQuantA / (value - depthQuantB)`` (0 = no measurement).
  The ``rvl`` codec (``"16UC1; compressedDepth rvl"``) is refused with a message: its
  variable-length nibble code has no vectorised decoder here.

Decoded images are (H, W, 3) uint8 RGB for colour and (H, W) uint16 millimetres for depth.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from labeller.core.errors import FormatError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
COLOUR_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
DEPTH_UNITS_PER_M = 1000.0  # depth is stored in millimetres, as RealSense publishes it
# compressed_depth_image_transport's ConfigHeader: int32 format, float32 depthParam[2].
COMPRESSED_DEPTH_HEADER = struct.Struct("<iff")


def _bytes(data: Any) -> bytes:
    return data.tobytes() if isinstance(data, np.ndarray) else bytes(data)


def kind_of(msgtype: str, msg: Any) -> str | None:
    """'colour', 'depth' or None (neither) for a first message of a topic."""
    if msgtype == IMAGE_TYPE:
        if msg.encoding in COLOUR_ENCODINGS:
            return "colour"
        return "depth" if msg.encoding in DEPTH_ENCODINGS else None
    if msgtype == COMPRESSED_TYPE:
        fmt = str(msg.format)
        if "compresseddepth" in fmt.lower():
            return "depth"
        original = fmt.split(";")[0].strip() if ";" in fmt else ""
        if original in DEPTH_ENCODINGS:
            return "depth"
        return "colour"  # jpeg / png colour, with or without the "enc; " prefix
    return None


def describe(msgtype: str, msg: Any) -> str:
    """How the topic is encoded, for messages: 'rgb8', 'jpeg (CompressedImage)', ..."""
    if msgtype == IMAGE_TYPE:
        return str(msg.encoding)
    return f"CompressedImage '{msg.format}'"


def decode(msgtype: str, msg: Any, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB for colour, (H, W) uint16 mm for depth; FormatError naming
    `where` for an encoding that is not supported or data that does not decode."""
    if msgtype == COMPRESSED_TYPE:
        return _decode_compressed(msg, where)
    return _decode_raw(msg, where)


def _decode_raw(msg: Any, where: str) -> np.ndarray:
    enc = msg.encoding
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(_bytes(msg.data), dtype=np.uint8)
    if data.size < h * step:
        raise FormatError(where, f"{enc} image {w}x{h} needs {h * step} bytes, message has "
                                 f"{data.size}")
    data = data[: h * step]
    if enc in COLOUR_ENCODINGS:
        c = COLOUR_ENCODINGS[enc]
        img = data.reshape(h, step)[:, : w * c].reshape(h, w, c)[:, :, :3]
        return np.ascontiguousarray(img[:, :, ::-1] if enc.startswith("bgr") else img)
    if enc in ("16UC1", "mono16"):
        dt = np.dtype(">u2" if msg.is_bigendian else "<u2")
        return data.reshape(h, step)[:, : w * 2].copy().view(dt).reshape(h, w) \
            .astype(np.uint16)
    if enc == "32FC1":
        dt_f4 = np.dtype(">f4" if msg.is_bigendian else "<f4")
        m = data.reshape(h, step)[:, : w * 4].copy().view(dt_f4).reshape(h, w)
        return metres_to_mm(m)
    raise FormatError(where, f"unsupported image encoding '{enc}'")


def metres_to_mm(m: np.ndarray) -> np.ndarray:
    """float metres (NaN/inf/<= 0 = none) -> uint16 mm."""
    mm = np.where(np.isfinite(m) & (m > 0), np.round(m * DEPTH_UNITS_PER_M), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _imdecode(buf: bytes, where: str, what: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED) if buf else None
    if img is None:
        raise FormatError(where, f"{what} data does not decode ({len(buf)} bytes; corrupt "
                                 "or truncated message)")
    return img


def _decode_compressed(msg: Any, where: str) -> np.ndarray:
    fmt = str(msg.format)
    low = fmt.lower()
    buf = _bytes(msg.data)
    if "compresseddepth" in low:
        if "rvl" in low:
            raise FormatError(where, f"compressedDepth codec 'rvl' ('{fmt}') is not supported; "
                                     "record depth with the png codec "
                                     "(compressed_depth_image_transport format: png) or raw")
        if len(buf) <= COMPRESSED_DEPTH_HEADER.size:
            raise FormatError(where, f"compressedDepth message of {len(buf)} bytes has no "
                                     "image after its 12-byte header")
        _codec, quant_a, quant_b = COMPRESSED_DEPTH_HEADER.unpack_from(buf)
        img = _imdecode(buf[COMPRESSED_DEPTH_HEADER.size:], where, "compressedDepth PNG")
        if img.dtype != np.uint16 or img.ndim != 2:
            raise FormatError(where, f"compressedDepth PNG is {img.dtype} with "
                                     f"{1 if img.ndim == 2 else img.shape[2]} channel(s), "
                                     "expected 16-bit single-channel")
        original = fmt.split(";")[0].strip()
        if original == "32FC1":
            inv = img.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                m = np.where(img > 0, quant_a / (inv - quant_b), np.nan)
            return metres_to_mm(m)
        return img
    img = _imdecode(buf, where, "CompressedImage")
    if img.dtype == np.uint16 and img.ndim == 2:
        return img  # a 16-bit PNG published with the plain 'compressed' plugin
    if img.dtype != np.uint8:
        raise FormatError(where, f"CompressedImage '{fmt}' decodes to {img.dtype}, expected "
                                 "8-bit colour")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    img = img[:, :, :3]
    # cv2 decodes to the channel order that was encoded: BGR, unless the publisher says
    # it compressed rgb8 as it was.
    return np.ascontiguousarray(img if "compressed rgb8" in low else img[:, :, ::-1])


def jpeg_bytes(msgtype: str, msg: Any) -> bytes | None:
    """The JPEG file inside a colour CompressedImage (kept byte-identical), else None."""
    if msgtype != COMPRESSED_TYPE:
        return None
    low = str(msg.format).lower()
    if ("jpeg" in low or "jpg" in low) and "compressed rgb8" not in low:
        return _bytes(msg.data)
    return None
