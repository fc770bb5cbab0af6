"""Points 3 and 3a of the reliability suite, and the readers' fuzz.

The fuzz (`fuzz_readers`: over a thousand PLY models, PROPS pickles, labels.h5 files,
PNG/JPEG images and annotations.json documents, fixed seed) runs in a child process so that a crash is seen as one: every case must end in a clean error
naming the file or a successful load, never another exception or a signal, and every
invalid case (forged counts, out-of-range faces, degenerate models, forged arrays, code
execution) must be refused.
"""

from __future__ import annotations

import collections
import json
import struct
from pathlib import Path

import pytest

from labeller.core.errors import FormatError, ModelError
from labeller.formats.models import load_model
from labeller.formats.props import class_pickle_bytes, load_class_pickle, load_pickle, meta_bytes
from tests.reliability.fuzz_readers import _binary_ply, _class_pickle, _forged_object_array
from tests.reliability.helpers import run_python

pytestmark = pytest.mark.reliability


def _outcomes(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"case"')]




def test_fuzz_of_the_readers():
    """Models, pickles, labels.h5, PNG/JPEG and annotations.json: no crash, no internal
    error, every invalid file refused, no damage read back as different data."""
    proc = run_python(["-m", "tests.reliability.fuzz_readers", "--seed", "0"])
    started = [line[6:] for line in proc.stdout.splitlines() if line.startswith("start ")]
    assert proc.returncode == 0, f"crashed ({proc.returncode}) on {started[-1] if started else '?'}: {proc.stderr[-2000:]}"
    rows = _outcomes(proc.stdout)
    assert len(rows) == len(started) >= 1000
    counts = collections.Counter((r["expect"], r["outcome"]) for r in rows)
    internal = [r for r in rows if r["outcome"] == "internal"]
    accepted = [r for r in rows if r["expect"] == "error" and r["outcome"] != "clean"]
    undetected = [r for r in rows if r["outcome"] == "undetected"]
    assert internal == [], internal[:3]
    assert accepted == [], accepted[:3]
    assert undetected == [], undetected[:3]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"canary": False}  # nothing ran
    assert counts[("error", "clean")] >= 240
    families = collections.Counter(r["case"].split("/")[0] for r in rows)
    assert all(families[k] >= 50 for k in ("ply", "pkl", "h5", "png", "json")), families
    # damaged labels.h5 and PNG bytes: refused, or (unused bytes) read back unchanged
    detect = collections.Counter((r["case"][:3], r["outcome"]) for r in rows if r["expect"] == "detect")
    assert detect[("h5/", "clean")] >= 100 and detect[("png", "clean")] >= 90, detect
    print(f"fuzz: {len(rows)} cases, {dict(counts)}")


# ------------------------------------------------------------------ models (point 3)
def _mug(tmp_path: Path, edit=None) -> Path:
    data, hl, nv, nf = _binary_ply()
    b = bytearray(data)
    if edit is not None:
        edit(b, hl, nv)
    path = tmp_path / "mug.ply"
    path.write_bytes(bytes(b))
    return path


def test_out_of_range_face_index_is_refused_before_rendering(tmp_path):
    path = _mug(tmp_path, lambda b, hl, nv: struct.pack_into("<i", b, hl + nv * 15 + 1, nv + 3))
    with pytest.raises(ModelError, match=rf"mug\.ply: face index {943 + 3} is out of range \(the model has 943 vertices\)"):
        load_model(path)


def test_a_face_row_that_would_crash_open3d_is_refused(tmp_path):
    """A face claiming 255 corners made Open3D's PLY reader segfault (checked in the fuzz
    in a child process; here that it is refused before Open3D sees it)."""
    path = _mug(tmp_path, lambda b, hl, nv: b.__setitem__(hl + nv * 15, 255))
    with pytest.raises(ModelError, match=r"mug\.ply: face index -?\d+ is out of range"):
        load_model(path)


def test_header_claiming_a_billion_vertices_is_refused_at_once(tmp_path):
    path = _mug(tmp_path, lambda b, hl, nv: b.__setitem__(
        slice(None), bytes(b).replace(b"element vertex 943", b"element vertex 1000000000")))
    with pytest.raises(ModelError, match=r"mug\.ply: PLY header claims 1000000000 vertex, 1280 face, "
                                         r"at least 15000016640 bytes, but only 30785 bytes follow it"):
        load_model(path)


def test_degenerate_models_are_refused(tmp_path):
    def one_point(b, hl, nv):
        for k in range(nv):
            struct.pack_into("<fff", b, hl + 15 * k, 0.1, 0.1, 0.1)

    with pytest.raises(ModelError, match=r"mug\.ply: all vertices are at one point \(a degenerate model\)"):
        load_model(_mug(tmp_path, one_point))


def test_info_names_a_crafted_model(tmp_path, capsys):
    from labeller.cli.main import main as cli

    scene = tmp_path / "scene"
    assert cli(["synth", str(scene), "--frames", "2", "--width", "64", "--height", "48",
                "--with-annotations", "--classes", "mug"]) == 0
    model = scene / "models" / "mug" / "mug.ply"
    data = bytearray(model.read_bytes())
    hl = data.index(b"end_header\n") + 11
    nv = int(data[: hl].split(b"element vertex ")[1].split(b"\n")[0])
    struct.pack_into("<i", data, hl + nv * 15 + 1, nv + 1)
    model.write_bytes(bytes(data))
    capsys.readouterr()
    rc = cli(["info", str(scene)])
    out = capsys.readouterr()
    assert f"{model}: face index {nv + 1} is out of range" in out.out + out.err
    assert rc in (0, 2) and "internal error" not in out.err


# ------------------------------------------------------------------ pickles (point 3a)
def test_the_forged_array_crashes_numpy_s_own_unpickling():
    """The corpus is real: with numpy's own constructors the forged array + SETITEM kills
    the process (which is why `RestrictedUnpickler` never hands them out)."""
    code = ("import io, pickle\n"
            "from tests.reliability.fuzz_readers import _forged_object_array\n"
            "class P(pickle.Unpickler):\n"
            "    def find_class(self, m, n):\n"
            "        return super().find_class(m.replace('numpy.core.', 'numpy._core.'), n)\n"
            "P(io.BytesIO(b'\\x80\\x02' + _forged_object_array(True) + b'.')).load()\n")
    assert run_python(["-c", code]).returncode < 0  # a signal (SIGSEGV)


def test_forged_array_is_refused_in_class_pickles_and_meta(tmp_path):
    cls = tmp_path / "mug_1.pkl"
    cls.write_bytes(_class_pickle(_forged_object_array(True)))
    with pytest.raises(FormatError, match=r"mug_1\.pkl: refused: a numpy array is changed while "
                                          r"unpickling \(a forged pickle\)"):
        load_class_pickle(cls)
    meta = tmp_path / "meta.pkl"
    meta.write_bytes(b"\x80\x02}(X\x0a\x00\x00\x00test_split" + _forged_object_array(False) + b"u.")
    with pytest.raises(FormatError, match=r"meta\.pkl: the pickle\['test_split'\] is a numpy array "
                                          r"of dtype object \(objects are not allowed\)"):
        load_pickle(meta)


def test_baseline_refuses_the_forged_pickles_with_a_clean_exit(tmp_path):
    """Through the command, in a child process (it segfaulted before): class pickle and meta.pkl."""
    import numpy as np

    from labeller.core.classes import PROPS_CLASS_NAMES

    root = tmp_path / "Progress-Objects-Sample"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(PROPS_CLASS_NAMES):
        for k in (1, 2):
            (root / f"{name}_{k}.pkl").write_bytes(class_pickle_bytes(
                rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), [i] * 4))
    (root / "meta.pkl").write_bytes(meta_bytes([f"{n}_2" for n in PROPS_CLASS_NAMES]))
    (root / "mug_1.pkl").write_bytes(_class_pickle(_forged_object_array(True)))
    proc = run_python(["-m", "labeller", "baseline", str(tmp_path), "--device", "cpu", "--no-progress"])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"labeller baseline: error: {root / 'mug_1.pkl'}: refused: a numpy array is changed")
    (root / "mug_1.pkl").write_bytes(class_pickle_bytes(np.zeros((4, 32, 32, 3), np.uint8), [8] * 4))
    (root / "meta.pkl").write_bytes(b"\x80\x02}(X\x0a\x00\x00\x00test_split" + _forged_object_array(True) + b"u.")
    proc = run_python(["-m", "labeller", "baseline", str(tmp_path), "--device", "cpu", "--no-progress"])
    assert proc.returncode == 2, proc.stderr
    assert f"{root / 'meta.pkl'}: refused: a numpy array is changed" in proc.stderr


def test_annotations_nested_too_deep_are_a_format_error(tmp_path):
    """json's decoder recurses per level: 100,000 levels was a RecursionError (exit 1)."""
    from labeller.formats.annotations import AnnotationDocument

    path = tmp_path / "annotations.json"
    path.write_bytes(b"[" * 100000 + b"]" * 100000)
    with pytest.raises(FormatError) as info:
        AnnotationDocument.read(path)
    assert str(info.value) == f"{path}: not valid annotations: JSON nested too deeply"
