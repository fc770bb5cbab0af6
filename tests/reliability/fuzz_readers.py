"""A fixed-seed, table-driven fuzz of the readers: models (PLY), PROPS pickles, labels.h5,
PNG/JPEG images and annotations.json.

    python -m tests.reliability.fuzz_readers [--seed 0] [--out results.jsonl]

Each case is a file (built here from a valid one) with an expectation: ``error`` (it is
invalid: a clean BadInput must come out) or ``any`` (a random mutation: a clean error or a
successful load). Each case prints ``start NAME`` before it is read and a JSON result
after, so a crash (a signal) names the case that caused it. Outcomes: ``clean`` (BadInput
naming the file), ``ok`` (loaded), ``internal`` (any other exception: a bug),
``undetected`` (a ``detect`` case loaded but read differently from the valid file).
"""

from __future__ import annotations

import argparse
import json
import pickle
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import BadInput


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # "error": must be refused; "any": a clean error or a load; "detect": a clean error,
    # or a load that reads exactly what the valid file reads (damage in unused bytes)
    expect: str
    suffix: str  # ".ply", ".pkl", ".h5", ".png", ".jpg" or ".json"


# ------------------------------------------------------------------ PLY cases
def _binary_ply() -> tuple[bytes, int, int, int]:
    """A valid binary model (the procedural mug): bytes, header length, vertex and face
    counts. Rows: vertex 15 bytes (3 float32, 3 uint8), face 13 bytes (uint8 3, 3 int32)."""
    from labeller.synth.procedural import class_mesh, ply_bytes

    m = class_mesh("mug")
    data = ply_bytes(m.vertices, m.triangles, m.vertex_colors())
    return data, data.index(b"end_header\n") + 11, len(m.vertices), len(m.triangles)


def _ascii_ply() -> bytes:
    v = [(0, 0, 0), (0.05, 0, 0), (0, 0.05, 0), (0, 0, 0.05)]
    f = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    head = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
            "property float z\nelement face 4\nproperty list uchar int vertex_indices\nend_header\n")
    body = "".join(f"{x} {y} {z}\n" for x, y, z in v) + "".join(f"3 {a} {b} {c}\n" for a, b, c in f)
    return (head + body).encode()


def ply_cases(rng: np.random.Generator) -> Iterator[Case]:
    data, hl, nv, nf = _binary_ply()
    vrow, frow = 15, 13
    faces_at = hl + nv * vrow

    def edit(name: str, f: Callable[[bytearray], None], expect: str = "error") -> Case:
        b = bytearray(data)
        f(b)
        return Case(f"ply/{name}", bytes(b), expect, ".ply")

    def header(old: bytes, new: bytes) -> Callable[[bytearray], None]:
        def f(b: bytearray) -> None:
            b[:] = bytes(b).replace(old, new, 1)
        return f

    def put(fmt: str, at: int, value) -> Callable[[bytearray], None]:
        return lambda b: struct.pack_into(fmt, b, at, value)

    yield edit("valid", lambda b: None, "any")
    for claim in (nv + 1, nv * 10, 10**9, 2**31):
        yield edit(f"vertex-count-{claim}", header(b"element vertex %d" % nv, b"element vertex %d" % claim))
    for claim in (nf + 1, nf * 10, 10**9):
        yield edit(f"face-count-{claim}", header(b"element face %d" % nf, b"element face %d" % claim))
    for idx in (nv, nv + 5, -1, 2**31 - 1, -(2**31)):
        yield edit(f"face-index-{idx}", put("<i", faces_at + 1, idx))
        yield edit(f"face-index-{idx}-mid", put("<i", faces_at + frow * (nf // 2) + 5, idx))
    for sides in (0, 1, 2, 4, 200, 255):
        yield edit(f"face-sides-{sides}", put("<B", faces_at, sides))
        yield edit(f"face-sides-{sides}-last", put("<B", faces_at + frow * (nf - 1), sides))
    for value in (float("nan"), float("inf"), -float("inf")):
        yield edit(f"vertex-{value}", put("<f", hl + vrow * 7 + 4, value))

    def all_at_one_point(b: bytearray) -> None:
        for k in range(nv):
            struct.pack_into("<fff", b, hl + vrow * k, 0.01, 0.02, 0.03)

    def collinear(b: bytearray) -> None:
        for k in range(nv):
            struct.pack_into("<fff", b, hl + vrow * k, 0.001 * k / nv, 0.0, 0.0)

    def millimetres(b: bytearray) -> None:
        for k in range(nv):
            x, y, z = struct.unpack_from("<fff", b, hl + vrow * k)
            struct.pack_into("<fff", b, hl + vrow * k, x * 1000, y * 1000, z * 1000)

    yield edit("all-vertices-at-one-point", all_at_one_point)
    yield edit("collinear-vertices", collinear)
    yield edit("millimetres", millimetres)
    for cut in sorted(rng.choice(len(data) - hl - 1, 12, replace=False) + hl):
        yield edit(f"truncated-at-{cut}", lambda b, c=int(cut): b.__delitem__(slice(c, None)))
    yield edit("truncated-in-header", lambda b: b.__delitem__(slice(hl - 20, None)))
    yield edit("empty", lambda b: b.__delitem__(slice(None)))
    yield edit("no-end-header", header(b"end_header", b"end_heder"))
    yield edit("format-unknown", header(b"binary_little_endian", b"binary_middle_endian"))
    yield edit("format-missing", header(b"format binary_little_endian 1.0\n", b""))
    yield edit("property-type-unknown", header(b"property float x", b"property float128 x"))
    yield edit("list-count-float", header(b"list uchar int", b"list float int"))
    yield edit("element-count-negative", header(b"element vertex %d" % nv, b"element vertex -5"))
    yield edit("element-count-text", header(b"element vertex %d" % nv, b"element vertex many"))
    yield edit("property-before-element", header(b"element vertex %d\n" % nv, b""))
    yield edit("big-endian-claimed", header(b"binary_little_endian", b"binary_big_endian"), "any")
    # random damage anywhere in the body: any clean outcome (PLY carries no checksum)
    for k in range(200):
        def flip(b: bytearray, k=k) -> None:
            r = np.random.default_rng([k, 1])
            for at in r.integers(hl, len(b), int(r.integers(1, 9))):
                b[at] = int(r.integers(0, 256))
        yield edit(f"random-body-{k}", flip, "any")
    for k in range(40):
        def flip_head(b: bytearray, k=k) -> None:
            r = np.random.default_rng([k, 2])
            b[int(r.integers(0, hl))] = int(r.integers(32, 127))
        yield edit(f"random-header-{k}", flip_head, "any")
    text = _ascii_ply()
    yield Case("ply/ascii-valid", text, "any", ".ply")
    yield Case("ply/ascii-face-index", text.replace(b"3 1 2 3\n", b"3 1 2 9\n"), "error", ".ply")
    yield Case("ply/ascii-face-sides", text.replace(b"3 1 2 3\n", b"7 1 2 3\n"), "error", ".ply")
    yield Case("ply/ascii-not-a-number", text.replace(b"3 1 2 3\n", b"3 1 x 3\n"), "error", ".ply")
    yield Case("ply/ascii-missing-rows", text.replace(b"3 0 2 3\n3 1 2 3\n", b""), "error", ".ply")
    yield Case("ply/ascii-claims", text.replace(b"element vertex 4", b"element vertex 999999999"), "error", ".ply")
    for k in range(40):
        r = np.random.default_rng([k, 3])
        b = bytearray(text)
        at = int(r.integers(text.index(b"end_header") + 11, len(text)))
        b[at] = int(r.choice(list(b"0123456789 -\n.x")))
        yield Case(f"ply/ascii-random-{k}", bytes(b), "any", ".ply")


# ------------------------------------------------------------------ pickle cases
_RECON = b"cnumpy.core.multiarray\n_reconstruct\n"
_NDARRAY = b"cnumpy\nndarray\n"
_DTYPE = b"cnumpy\ndtype\n"


def _u(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _b(raw: bytes) -> bytes:
    return (b"C" + bytes([len(raw)]) + raw) if len(raw) < 256 else (b"B" + struct.pack("<I", len(raw)) + raw)


def _dtype(code: str, state: bytes | None = None) -> bytes:
    """Opcodes pushing numpy.dtype(code) with BUILD `state` (default: a plain type's)."""
    if state is None:
        state = b"(K\x03" + _u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    return _DTYPE + _u(code) + b"\x89\x88\x87R" + state + b"b"


def _array(shape: bytes, dtype: bytes, data: bytes, fortran: bytes = b"\x89") -> bytes:
    """Opcodes pushing _reconstruct(ndarray, (0,), b'b') BUILT with (1, shape, dtype, fortran, data)."""
    return _RECON + _NDARRAY + b"K\x00\x85" + _b(b"b") + b"\x87R" + b"(K\x01" + shape + dtype + fortran + data + b"tb"


def _class_pickle(data_ops: bytes, labels: bytes = b"]K\x00a") -> bytes:
    """{"data": <data_ops>, "labels": [0]} (protocol 2)."""
    return b"\x80\x02}(" + _u("data") + data_ops + _u("labels") + labels + b"u."


def _forged_object_array(setitem: bool) -> bytes:
    flags0 = b"(K\x03" + _u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    ops = _array(b"K\x01\x85", _dtype("O8", flags0), _b(struct.pack("<Q", 0x4141414141414141)))
    return ops + (b"K\x00K\x07s" if setitem else b"")


_CODE_GLOBALS = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("subprocess", "Popen"), ("subprocess", "check_output"), ("shutil", "rmtree"),
    ("pickle", "loads"), ("numpy", "load"), ("numpy", "fromfile"), ("numpy", "memmap"),
    ("numpy", "frombuffer"), ("numpy", "array"), ("numpy.core.multiarray", "fromstring"),
    ("numpy.ctypeslib", "as_array"), ("ctypes", "CDLL"), ("ctypes", "cast"),
    ("copyreg", "_reconstructor"), ("functools", "partial"), ("operator", "attrgetter"),
    ("operator", "methodcaller"), ("_codecs", "decode"), ("io", "FileIO"), ("torch", "load"),
    ("runpy", "run_path"),
]


def pickle_cases(rng: np.random.Generator, canary: Path) -> Iterator[Case]:
    from labeller.formats.props import class_pickle_bytes, meta_bytes

    def case(name: str, data: bytes, expect: str = "error") -> Case:
        return Case(f"pkl/{name}", data, expect, ".pkl")

    good = class_pickle_bytes(rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8), [1, 2])
    yield case("valid-class", good, "any")
    yield case("valid-meta", meta_bytes(["mug_1"]), "any")
    for proto in (2, 4, 5):
        yield case(f"valid-protocol-{proto}", pickle.dumps(
            {"data": np.zeros((1, 32, 32, 3), np.uint8), "labels": [0]}, protocol=proto), "any")
    # the forged object array (dtype O8 claiming no references, raw bytes as pointers)
    yield case("forged-object-array-setitem", b"\x80\x02" + _forged_object_array(True) + b".")
    yield case("forged-object-array", b"\x80\x02" + _forged_object_array(False) + b".")
    yield case("forged-object-array-class", _class_pickle(_forged_object_array(True)))
    yield case("forged-object-array-meta", b"\x80\x02}(" + _u("test_split") + _forged_object_array(True) + b"u.")
    fields = (b"(K\x03" + _u("|") + b"N(" + _u("a") + b"t}" + _u("a") + _dtype("O8") + b"K\x00\x86sK\x08K\x01K?t")
    yield case("dtype-with-object-field", _class_pickle(_array(b"K\x01\x85", _dtype("V8", fields), _b(b"A" * 8))))
    sub = b"(K\x03" + _u("|") + _dtype("u1") + b"K\x04\x85\x86NNK\x04K\x01K\x00t"
    yield case("dtype-with-subarray", _class_pickle(_array(b"K\x01\x85", _dtype("V4", sub), _b(b"AAAA"))))
    yield case("dtype-void", _class_pickle(_array(b"K\x01\x85", _dtype("V8"), _b(b"A" * 8))))
    yield case("dtype-datetime", _class_pickle(_array(b"K\x01\x85", _dtype("M8"), _b(b"A" * 8))))
    yield case("dtype-state-garbage", _class_pickle(_array(b"K\x01\x85", _dtype("u1", b"K\x07"), _b(b"A"))))
    yield case("dtype-code-not-text", _class_pickle(_DTYPE + b"K\x05\x89\x88\x87R"))
    yield case("dtype-built-twice", _class_pickle(_dtype("u1") + b"(K\x03" + _u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"))
    yield case("object-array-list", pickle.dumps({"data": np.array([{"a": 1}], dtype=object), "labels": [0]}, 2))
    yield case("array-shape-huge", _class_pickle(_array(b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85", _dtype("u1"), _b(b"AAA"))))
    yield case("array-shape-negative", _class_pickle(_array(b"J\xff\xff\xff\xff\x85", _dtype("u1"), _b(b""))))
    yield case("array-shape-text", _class_pickle(_array(_u("abc"), _dtype("u1"), _b(b"abc"))))
    yield case("array-data-short", _class_pickle(_array(b"K\x03\x85", _dtype("u1"), _b(b"AB"))))
    yield case("array-data-long", _class_pickle(_array(b"K\x03\x85", _dtype("u1"), _b(b"ABCD"))))
    yield case("array-data-not-bytes", _class_pickle(_array(b"K\x01\x85", _dtype("u1"), b"K\x05")))
    yield case("array-built-twice", _class_pickle(_array(b"K\x01\x85", _dtype("u1"), _b(b"A")) + b"(K\x01K\x01\x85" + _dtype("u1") + b"\x89" + _b(b"B") + b"tb"))
    yield case("array-never-built", _class_pickle(_RECON + _NDARRAY + b"K\x00\x85" + _b(b"b") + b"\x87R"))
    yield case("array-append", _class_pickle(_array(b"K\x01\x85", _dtype("u1"), _b(b"A")) + b"K\x01a"))
    yield case("reconstruct-not-ndarray", _class_pickle(_RECON + _DTYPE + b"K\x00\x85" + _b(b"b") + b"\x87R"))
    yield case("ndarray-called", _class_pickle(_NDARRAY + b"K\x01\x85" + _dtype("u1") + _b(b"A") + b"\x87R"))
    yield case("scalar-object", _class_pickle(b"cnumpy.core.multiarray\nscalar\n" + _dtype("O8") + _b(b"A" * 8) + b"\x86R"))
    yield case("scalar-wrong-size", _class_pickle(b"cnumpy.core.multiarray\nscalar\n" + _dtype("f8") + _b(b"abc") + b"\x86R"))
    yield case("frombuffer-int", _class_pickle(b"cnumpy.core.numeric\n_frombuffer\n(K\x05" + _dtype("u1") + b"K\x01\x85" + _u("C") + b"tR"))
    yield case("out-of-band-buffer", b"\x80\x05\x97.")
    yield case("codecs-encode-rot13", _class_pickle(b"c_codecs\nencode\n" + _u("abc") + _u("rot13") + b"\x86R"))
    yield case("nested-deep", b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".")
    yield case("self-referencing-list", b"\x80\x02]q\x00h\x00a.")
    yield case("set", pickle.dumps({"data": {1, 2}, "labels": [0]}, 4))
    for module, name in _CODE_GLOBALS:  # code execution: refused before anything is called
        arg = _u(f"touch {canary}") if name == "system" else _u(str(canary))
        yield case(f"global-{module}.{name}",
                   _class_pickle(f"c{module}\n{name}\n".encode() + arg + b"\x85R"))
    for k in range(150):
        r = np.random.default_rng([k, 4])
        b = bytearray(good)
        for at in r.integers(2, len(b), int(r.integers(1, 6))):
            b[at] = int(r.integers(0, 256))
        yield case(f"random-bytes-{k}", bytes(b), "any")
    for k in range(40):
        r = np.random.default_rng([k, 5])
        yield case(f"random-truncation-{k}", good[: int(r.integers(0, len(good)))], "any")
    for k in range(40):  # an opcode spliced in
        r = np.random.default_rng([k, 6])
        at = int(r.integers(2, len(good)))
        op = bytes([int(r.choice(list(b"()]}abcehijlmnopqrstuCBRKMJX\x85\x86\x87\x88\x89\x94")))])
        yield case(f"random-opcode-{k}", good[:at] + op + good[at:], "any")


# ------------------------------------------------------------------ labels.h5 cases
def _labels_bytes(root: Path) -> bytes:
    """A valid, finished labels.h5 (3 labelled frames, 2 objects, 12x16 masks)."""
    from tests.test_labels import write_file

    path = root / "valid-labels.h5"
    write_file(path)
    return path.read_bytes()


def _h5_edit(data: bytes, root: Path, edit: Callable[[Any], None]) -> bytes:
    """`data` (a labels.h5) changed through HDF5 itself: its checksums stay valid, so
    only the reader's value checks can refuse it."""
    import h5py

    path = root / "edit.h5"
    path.write_bytes(data)
    with h5py.File(path, "r+") as f:
        edit(f)
    out = path.read_bytes()
    path.unlink()
    return out


def _set(name: str, value: Any, where: Any = ...) -> Callable[[Any], None]:
    def edit(f: Any) -> None:
        v = f[name][()]
        v[where] = value
        f[name][...] = v
    return edit


def _replace(name: str, data: Any) -> Callable[[Any], None]:
    def edit(f: Any) -> None:
        del f[name]
        f.create_dataset(name, data=data)
    return edit


def _attr(name: str, value: Any) -> Callable[[Any], None]:
    def edit(f: Any) -> None:
        f.attrs[name] = value
    return edit


def labels_cases(rng: np.random.Generator, root: Path) -> Iterator[Case]:
    import h5py

    data = _labels_bytes(root)

    def case(name: str, b: bytes, expect: str) -> Case:
        return Case(f"h5/{name}", b, expect, ".h5")

    def edited(name: str, edit: Callable[[Any], None]) -> Case:
        return case(name, _h5_edit(data, root, edit), "error")

    yield case("valid", data, "any")
    inf, nan = float("inf"), float("nan")
    yield edited("visib-fract-all-inf", _set("frames/visib_fract", inf))
    yield edited("visib-fract-nan", _set("frames/visib_fract", nan, (0, 1)))
    yield edited("visib-fract-above-1", _set("frames/visib_fract", 1.5, (2, 0)))
    yield edited("score-fract-negative", _set("frames/score_fract", -0.1, (1, 1)))
    yield edited("score-inf", _set("frames/score", inf, (0, 0)))
    yield edited("score-above-1", _set("frames/score", 7.0, (0, 0)))
    yield edited("median-dz-negative", _set("frames/median_abs_dz_m", -1.0, (0, 0)))
    yield edited("pose-nan", _set("frames/T_cam_obj", nan, (1, 0, 0, 3)))
    yield edited("pose-inf", _set("frames/T_cam_obj", inf))
    yield edited("camera-pose-inf", _set("frames/T_world_cam", -inf, (2, 1, 1)))
    yield edited("object-pose-nan", _set("objects/T_world_obj", nan, (0, 0, 0)))
    yield edited("count-negative", _set("frames/px_count_visib", -4, (0, 0)))
    yield edited("count-all-negative", _set("frames/px_count_all", -2**31))
    yield edited("box-below-minus-1", _set("frames/bbox_visib", -7, (1, 1, 2)))
    yield edited("frame-id-out-of-range", _set("frames/frame_id", 99, 2))
    yield edited("frame-id-negative", _set("frames/frame_id", -1, 0))
    yield edited("frame-ids-repeated", _set("frames/frame_id", 1, 2))
    yield edited("object-id-zero", _set("objects/id", 0, 0))
    yield edited("object-ids-repeated", _set("objects/id", 3, 1))
    yield edited("object-id-above-uint16", _set("objects/id", 70000, 1))
    yield edited("shape-visib-fract", _replace("frames/visib_fract", np.zeros((3, 5), "f4")))
    yield edited("shape-poses", _replace("frames/T_cam_obj", np.zeros((3, 2, 3, 4))))
    yield edited("shape-camera-poses", _replace("frames/T_world_cam", np.zeros((2, 4, 4))))
    yield edited("shape-frame-ids", _replace("frames/frame_id", np.arange(5, dtype="i4")))
    yield edited("shape-object-poses", _replace("objects/T_world_obj", np.zeros((1, 4, 4))))
    yield edited("shape-mask-visib", _replace("frames/mask_visib", np.zeros((3, 5, 5), "u2")))
    yield edited("shape-skipped", _replace("skipped/frame_id", np.arange(7, dtype="i4")))
    yield edited("class-changed", _replace("objects/class", np.array([b"mug", b"bowl"], "S4")))
    yield edited("missing-frame-ids", lambda f: f.__delitem__("frames/frame_id"))
    yield edited("missing-poses", lambda f: f.__delitem__("frames/T_world_cam"))
    yield edited("missing-skipped", lambda f: f.__delitem__("skipped"))
    yield edited("format-other", _attr("format", "something-else"))
    yield edited("version-newer", _attr("version", 99))
    yield edited("version-zero", _attr("version", 0))
    yield edited("version-text", _attr("version", "three"))
    yield edited("incomplete", _attr("complete", False))
    yield edited("classes-not-json", _attr("classes", "[mug"))
    yield edited("width-text", _attr("width", "wide"))
    yield edited("missing-attribute", lambda f: f.attrs.__delitem__("refine"))
    # damage to the bytes on disk: refused (checksums) or, where it hits unused bytes,
    # read back unchanged; never silently different
    for off in range(0, len(data), 256):
        b = bytearray(data)
        b[off:off + 256] = bytes(len(b[off:off + 256]))
        yield case(f"zeroed-256-at-{off}", bytes(b), "detect")
    for k in range(60):
        r = np.random.default_rng([k, 7])
        b = bytearray(data)
        for at in r.integers(0, len(b), int(r.integers(1, 6))):
            b[at] ^= 1 << int(r.integers(0, 8))
        yield case(f"bit-flips-{k}", bytes(b), "detect")
    for cut in sorted(rng.choice(len(data) - 1, 12, replace=False)):
        yield case(f"truncated-at-{cut}", data[:int(cut)], "error")
    assert h5py  # imported here: the fuzz of the other readers does not need HDF5


def read_labels(path: Path) -> bytes:
    """Everything a labels.h5 reader gives (arrays, masks, objects, skipped), hashed."""
    import hashlib

    from labeller.formats.labels import Labels

    h = hashlib.sha256()
    with Labels.open(path) as lab:
        for name in sorted(lab.arrays):
            h.update(np.ascontiguousarray(lab.arrays[name]).tobytes())
        h.update(lab.frame_ids.tobytes() + np.ascontiguousarray(lab.T_world_cam).tobytes())
        h.update(repr([(o.id, o.class_name, o.model, o.T_world_obj.tolist())
                       for o in lab.objects]).encode())
        h.update(repr(sorted(lab.skipped.items())).encode() + repr(sorted(lab.attrs.items())).encode())
        for t in lab.frame_ids:
            h.update(lab.mask_visib(int(t)).tobytes())
            for i in range(len(lab.objects)):
                h.update(lab.mask_full(int(t), i).tobytes())
    return h.digest()


# ------------------------------------------------------------------ image cases
def image_cases(rng: np.random.Generator) -> Iterator[Case]:
    import cv2

    colour = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    depth = rng.integers(0, 5000, (24, 32), dtype=np.uint16)
    for kind, img in (("rgb", colour), ("depth", depth)):
        png = cv2.imencode(".png", img)[1].tobytes()
        yield Case(f"png/{kind}-valid", png, "any", ".png")
        for k in range(40):
            r = np.random.default_rng([k, 8, len(kind)])
            b = bytearray(png)
            for at in r.integers(8, len(b), int(r.integers(1, 5))):
                b[at] ^= 1 << int(r.integers(0, 8))
            yield Case(f"png/{kind}-bit-flips-{k}", bytes(b), "detect", ".png")
        for k in range(10):
            r = np.random.default_rng([k, 9, len(kind)])
            at = int(r.integers(8, len(png) - 16))
            b = bytearray(png)
            b[at:at + 16] = bytes(16)
            yield Case(f"png/{kind}-zeroed-16-at-{at}", bytes(b), "detect", ".png")
        for cut in sorted(rng.choice(len(png) - 1, 10, replace=False)):
            yield Case(f"png/{kind}-truncated-at-{cut}", png[:int(cut)], "error", ".png")
        yield Case(f"png/{kind}-signature", b"\x00" + png[1:], "error", ".png")
    jpg = cv2.imencode(".jpg", colour)[1].tobytes()
    yield Case("jpg/valid", jpg, "any", ".jpg")
    for cut in sorted(rng.choice(len(jpg) - 2, 10, replace=False)):
        yield Case(f"jpg/truncated-at-{cut}", jpg[:int(cut)], "error", ".jpg")
    for k in range(20):  # JPEG has no checksum: a changed image may decode
        r = np.random.default_rng([k, 10])
        b = bytearray(jpg)
        for at in r.integers(2, len(b) - 2, int(r.integers(1, 4))):
            b[at] = int(r.integers(0, 256))
        yield Case(f"jpg/random-bytes-{k}", bytes(b), "any", ".jpg")


def read_image_digest(path: Path) -> bytes:
    from labeller.core.fileio import read_image

    return read_image(path).tobytes()


# ------------------------------------------------------------------ annotations.json cases
def annotation_cases(rng: np.random.Generator) -> Iterator[Case]:
    eye = np.eye(4).tolist()
    turned = [[0.0, -1.0, 0.0, 0.1], [1.0, 0.0, 0.0, 0.2], [0.0, 0.0, 1.0, 0.3], [0, 0, 0, 1]]
    good = {"format": "labeller-annotations", "version": 1, "classes": ["mug", "sugar_box"],
            "objects": [{"id": 1, "class": "mug", "model": "models/mug.ply", "T_world_obj": eye,
                         "keyframes": [0, 4]},
                        {"id": 2, "class": "sugar_box", "model": "models/sugar.ply",
                         "T_world_obj": turned}]}
    text = json.dumps(good, indent=2).encode()

    def case(name: str, b: bytes, expect: str = "error") -> Case:
        return Case(f"json/{name}", b, expect, ".json")

    def changed(name: str, edit: Callable[[dict], None]) -> Case:
        d = json.loads(text)
        edit(d)
        return case(name, json.dumps(d).encode())

    def obj(i: int, key: str, value: Any) -> Callable[[dict], None]:
        return lambda d: d["objects"][i].__setitem__(key, value)

    yield case("valid", text, "any")
    yield changed("pose-nan", obj(0, "T_world_obj", [[float("nan")] * 4] * 4))
    yield changed("pose-inf", obj(1, "T_world_obj", [[0, 0, 0, float("inf")]] * 4))
    yield changed("pose-not-rigid", obj(0, "T_world_obj", (2 * np.eye(4)).tolist()))
    yield changed("pose-3x3", obj(0, "T_world_obj", np.eye(3).tolist()))
    yield changed("pose-ragged", obj(0, "T_world_obj", [[1, 0, 0, 0], [0, 1, 0]]))
    yield changed("pose-text", obj(0, "T_world_obj", "identity"))
    yield changed("id-zero", obj(0, "id", 0))
    yield changed("id-text", obj(0, "id", "1"))
    yield changed("id-true", obj(0, "id", True))
    yield changed("id-huge", obj(0, "id", 10**30))
    yield changed("id-repeated", obj(1, "id", 1))
    yield changed("class-unknown", obj(0, "class", "bowl"))
    yield changed("model-empty", obj(0, "model", ""))
    yield changed("keyframes-negative", obj(0, "keyframes", [-1]))
    yield changed("keyframes-float", obj(0, "keyframes", [1.5]))
    yield changed("object-key-unknown", obj(0, "colour", "red"))
    yield changed("object-missing-model", lambda d: d["objects"][0].pop("model"))
    yield changed("objects-not-list", lambda d: d.__setitem__("objects", {"a": 1}))
    yield changed("object-not-dict", lambda d: d["objects"].__setitem__(0, [1, 2]))
    yield changed("classes-repeated", lambda d: d.__setitem__("classes", ["mug", "mug"]))
    yield changed("classes-not-text", lambda d: d.__setitem__("classes", [1, 2]))
    yield changed("version-newer", lambda d: d.__setitem__("version", 2))
    yield changed("version-text", lambda d: d.__setitem__("version", "1"))
    yield changed("format-other", lambda d: d.__setitem__("format", "x"))
    yield changed("trajectory-sha-short", lambda d: d.__setitem__("trajectory_sha256", "ab"))
    yield changed("top-key-unknown", lambda d: d.__setitem__("extra", 1))
    yield case("top-list", b"[1, 2, 3]")
    yield case("empty", b"")
    yield case("not-utf8", b"\xff\xfe" + text)
    yield case("nested-deep", b"[" * 100000 + b"]" * 100000)
    for cut in sorted(rng.choice(len(text) - 2, 15, replace=False)):
        yield case(f"truncated-at-{cut}", text[:int(cut)])
    for k in range(60):
        r = np.random.default_rng([k, 11])
        b = bytearray(text)
        for at in r.integers(0, len(b), int(r.integers(1, 4))):
            b[at] = int(r.choice(list(b'0123456789-.eE{}[]",:tfn ')))
        yield case(f"random-bytes-{k}", bytes(b), "any")


# ------------------------------------------------------------------ running
def _valid_digest(valid: dict[str, bytes | None], name: str) -> bytes | None:
    """What the valid file of case `name`'s family read as ("png/rgb-..." -> "png/rgb")."""
    head = name.split("/")[0]
    for family in sorted(valid, key=len, reverse=True):
        if "/" in family and name.startswith(family + "-"):
            return valid[family]
    return valid.get(head)


def read_case(path: Path) -> bytes | None:
    """Read the case file as its reader does; the digest of what was read where a reader
    claims to detect damage (labels.h5, PNG), else None."""
    from labeller.formats.models import load_model
    from labeller.formats.props import load_class_pickle, load_pickle

    if path.suffix == ".h5":
        return read_labels(path)
    if path.suffix in (".png", ".jpg"):
        return read_image_digest(path)
    if path.suffix == ".json":
        from labeller.formats.annotations import AnnotationDocument

        AnnotationDocument.read(path)
        return None
    if path.suffix == ".ply":
        load_model(path)
    elif path.name.startswith("meta"):
        load_pickle(path)
    else:
        obj = load_pickle(path)
        if isinstance(obj, dict) and "data" in obj:
            load_class_pickle(path)
    return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        canary = root / "pwned"
        cases = (list(ply_cases(rng)) + list(pickle_cases(rng, canary))
                 + list(labels_cases(rng, root)) + list(image_cases(rng))
                 + list(annotation_cases(rng)))
        valid: dict[str, bytes | None] = {}  # a format's valid file, as read
        for i, c in enumerate(cases):
            path = root / f"{i:04d}{'-meta' if 'meta' in c.name else ''}{c.suffix}"
            path.write_bytes(c.data)
            print(f"start {c.name}", flush=True)
            family = c.name.rsplit("-valid", 1)[0] if c.name.endswith("-valid") or \
                c.name.endswith("/valid") else None
            try:
                digest = read_case(path)
                outcome, message = "ok", ""
                if family is not None:
                    valid[c.name.split("/")[0]] = digest
                    valid[family] = digest
                elif c.expect == "detect" and digest != _valid_digest(valid, c.name):
                    outcome = "undetected"  # read back different, without an error
            except BadInput as exc:
                outcome, message = "clean", str(exc)
                if str(path) not in message:
                    outcome = "internal"  # a clean error must name the file
            except Exception as exc:  # noqa: BLE001 - that is what is counted
                outcome, message = "internal", f"{type(exc).__name__}: {exc}"
            print(json.dumps({"case": c.name, "expect": c.expect, "outcome": outcome,
                              "message": message[:300]}), flush=True)
        print(json.dumps({"canary": canary.exists()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
