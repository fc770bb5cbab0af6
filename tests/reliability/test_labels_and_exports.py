"""Points 2 and 2b of the reliability suite: damaged labels.h5 and images are refused,
naming the file and the dataset; an export of labels older than the annotations is
refused; one export per output folder; pool workers die with their parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import read_image
from labeller.formats.labels import Labels
from tests.helpers import ROOT
from tests.reliability.helpers import leftovers
from tests.test_labels import write_file

pytestmark = pytest.mark.reliability


# ------------------------------------------------------------------ labels.h5 (point 2)
def _labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.h5"
    write_file(path)  # frames 0, 1, 3; objects 3 and 7
    return path


def _damage_chunk(path: Path, dataset: str, chunk: int = 0, at: int = 8, n: int = 8) -> None:
    """Change `n` bytes of a dataset's stored chunk on disk, as a bad sector would.
    (Not by inverting them: Fletcher32 sums 16-bit words modulo 65535, so it cannot tell
    0x0000 from 0xFFFF.)"""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
        offset, size = info.byte_offset, info.size
    assert at + n <= size
    with open(path, "r+b") as fh:
        fh.seek(offset + at)
        old = fh.read(n)
        fh.seek(offset + at)
        fh.write(bytes(b ^ 0x5A for b in old))


def test_damaged_bytes_in_a_dataset_fail_its_checksum(tmp_path):
    path = _labels(tmp_path)
    with h5py.File(path, "r") as f:
        assert f["frames/visib_fract"].fletcher32 and f["objects/class"].fletcher32
    _damage_chunk(path, "frames/T_cam_obj")
    with pytest.raises(FormatError, match=r"labels.h5: frames/T_cam_obj: damaged data \(.*filter"):
        Labels.open(path)


def test_a_damaged_mask_chunk_is_refused_when_read(tmp_path):
    path = _labels(tmp_path)
    _damage_chunk(path, "frames/mask_visib", chunk=1, at=4, n=4)
    with Labels.open(path) as lab:
        assert lab.mask_visib(0).shape == (12, 16)  # the other frames read as before
        with pytest.raises(FormatError, match=r"labels.h5: frames/mask_visib: frame 1: damaged data"):
            lab.mask_visib(1)


def _edited(tmp_path: Path, edit) -> Path:
    path = _labels(tmp_path)
    with h5py.File(path, "r+") as f:  # through HDF5: the checksums stay valid
        edit(f)
    return path


def _put(name: str, where, value):
    def edit(f):
        v = f[name][()]
        v[where] = value
        f[name][...] = v
    return edit


@pytest.mark.parametrize("edit, says", [
    (_put("frames/visib_fract", ..., np.inf), r"frames/visib_fract: values outside \[0, 1\]"),
    (_put("frames/visib_fract", (1, 0), 1.5), r"frames/visib_fract: values outside \[0, 1\]"),
    (_put("frames/score", (0, 1), -np.inf), r"frames/score: values outside \[0, 1\] \(NaN: not scored\)"),
    (_put("frames/T_cam_obj", (2, 1, 0, 3), np.nan), "frames/T_cam_obj: values that are not finite"),
    (_put("frames/T_world_cam", (0, 0, 0), np.inf), "frames/T_world_cam: values that are not finite"),
    (_put("frames/px_count_visib", (0, 0), -3), "frames/px_count_visib: negative pixel counts"),
    (_put("frames/bbox_visib", (0, 0, 0), -9), "frames/bbox_visib: boxes with values below -1"),
    (_put("frames/frame_id", 2, 5), r"frames/frame_id: frame ids must increase within 0..4"),
    (_put("objects/id", 1, 3), r"objects/id: instance ids must be distinct and in 1..65535"),
    (lambda f: (f.__delitem__("frames/visib_fract"),
                f.create_dataset("frames/visib_fract", data=np.zeros((3, 4), "f4"))),
     r"frames/visib_fract: shape \(3, 4\) does not match the file's other datasets \(3, 2\)"),
    (lambda f: f.__delitem__("frames/T_world_cam"), "frames/T_world_cam: missing dataset"),
    (lambda f: f.attrs.__setitem__("classes", "[mug"), r"damaged file \(Expecting"),
])
def test_values_out_of_range_are_refused_naming_the_dataset(tmp_path, edit, says):
    path = _edited(tmp_path, edit)
    with pytest.raises(FormatError, match=f"^{path}: {says}"):
        Labels.open(path)


def test_export_of_infinite_visibility_is_a_clean_error(tmp_path, labelled_scene, capsys):
    scene = tmp_path / "scene"
    shutil.copytree(labelled_scene, scene)
    with h5py.File(scene / "labels" / "labels.h5", "r+") as f:
        f["frames/visib_fract"][...] = np.inf
    assert cli(["export", str(scene), "--format", "bop", "--out", str(tmp_path / "out"),
                "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller export: error: {scene}/labels/labels.h5: frames/visib_fract: "
                   "values outside [0, 1]")
    assert not (tmp_path / "out").exists()


def test_a_version_2_file_stays_readable(tmp_path):
    """Written without checksums (variable-length strings, no filters), as version 2 did."""
    new = _labels(tmp_path)
    old = tmp_path / "old.h5"
    with h5py.File(new, "r") as src, h5py.File(old, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v.decode() if isinstance(v, bytes) else v
        dst.attrs["version"] = 2

        def copy(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                if data.dtype.kind == "S":
                    dst.create_dataset(name, data=[s.decode() for s in data],
                                       dtype=h5py.string_dtype())
                elif name.startswith("frames/mask"):
                    dst.create_dataset(name, data=data, chunks=obj.chunks, compression="gzip")
                else:
                    dst.create_dataset(name, data=data)
        src.visititems(copy)
    with Labels.open(old) as a, Labels.open(new) as b:
        assert int(a.attrs["version"]) == 2 and a.classes == b.classes
        assert [o.class_name for o in a.objects] == [o.class_name for o in b.objects]
        for t in b.frame_ids:
            assert np.array_equal(a.mask_visib(t), b.mask_visib(t))
        for name in b.arrays:
            assert np.array_equal(a.arrays[name], b.arrays[name], equal_nan=True), name


# ------------------------------------------------------------------ images (point 2)
def test_a_damaged_png_is_unreadable_naming_the_file(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    png = bytearray(cv2.imencode(".png", img)[1].tobytes())
    path = tmp_path / "000000.png"
    path.write_bytes(bytes(png))
    assert np.array_equal(read_image(path), img[:, :, ::-1])
    idat = png.index(b"IDAT")
    png[idat + 20] ^= 0x10  # one bit inside the compressed pixels
    path.write_bytes(bytes(png))
    with pytest.raises(BadInput, match=rf"^{path}: damaged image \(PNG chunk 'IDAT' fails its CRC check\)$"):
        read_image(path)
    path.write_bytes(cv2.imencode(".png", img)[1].tobytes()[:-30])
    with pytest.raises(BadInput, match=r"000000.png: damaged image \(PNG (file cut short|chunk runs past)"):
        read_image(path)
    jpg = tmp_path / "000000.jpg"
    jpg.write_bytes(cv2.imencode(".jpg", img)[1].tobytes()[:-100])
    with pytest.raises(BadInput, match=r"000000.jpg: damaged image \(JPEG file cut short"):
        read_image(jpg)


def test_export_props_refuses_a_damaged_frame(tmp_path, labelled_scene, capsys):
    scene = tmp_path / "scene"
    shutil.copytree(labelled_scene, scene)
    frame = scene / "rgb" / "000002.png"
    data = bytearray(frame.read_bytes())
    data[data.index(b"IDAT") + 40] ^= 0x01
    frame.write_bytes(bytes(data))
    assert cli(["export", str(scene), "--format", "props", "--out", str(tmp_path / "out"),
                "--allow-short", "--no-cache", "--train-per-class", "2", "--test-per-class", "1",
                "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller export: error: {frame}: damaged image (PNG chunk 'IDAT' fails "
                   "its CRC check)")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ stale exports and locks (2b)
@pytest.fixture(scope="module")
def labelled_scene(tmp_path_factory) -> Path:
    from tests.test_export_props import make_labelled_scene

    root = tmp_path_factory.mktemp("labels_exports")
    return make_labelled_scene(root / "scene", 11, frames=6, width=160, height=120)


def test_export_refuses_labels_of_earlier_annotations(tmp_path, labelled_scene, capsys):
    scene = tmp_path / "scene"
    shutil.copytree(labelled_scene, scene)
    ann = scene / "annotations.json"
    doc = json.loads(ann.read_text())
    doc["objects"][0]["T_world_obj"][0][3] += 0.01  # the user moved an object and saved
    ann.write_text(json.dumps(doc, indent=2))
    args = ["export", str(scene), "--format", "coco", "--out", str(tmp_path / "out"), "--quiet"]
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller export: error: {ann}: changed since `labeller propagate` wrote "
                   f"labels.h5; run `labeller propagate {scene}` again")
    assert not (tmp_path / "out").exists()
    assert cli(["propagate", str(scene), "--no-progress"]) == 0
    assert cli(args) == 0 and (tmp_path / "out" / "manifest.json").is_file()


def test_one_export_per_output_folder(tmp_path, labelled_scene, capsys):
    from labeller.export import output_lock

    out = tmp_path / "out"
    args = ["export", str(labelled_scene), "--format", "coco", "--out", str(out), "--quiet"]
    with output_lock(out):  # as a running export holds it
        assert cli(args) == 2
        assert capsys.readouterr().err.strip() == (
            f"labeller export: error: {out}: another `labeller export` is writing this "
            "folder; wait for it to finish")
        assert not out.exists()
    assert cli(args) == 0
    assert leftovers(tmp_path, "out") == []  # the lock file goes with its run


def test_a_lock_file_removed_by_its_holder_is_not_locked_twice(tmp_path):
    from labeller.core.locks import exclusive_lock

    lock = tmp_path / ".out.export.lock"
    with exclusive_lock(lock, "out", "busy", remove=True):
        with pytest.raises(BadInput, match="^out: busy$"):
            with exclusive_lock(lock, "out", "busy", remove=True):
                pass
    assert not lock.exists()
    with exclusive_lock(lock, "out", "busy", remove=True):
        assert lock.exists()


# ------------------------------------------------------------------ workers die with their parent
_POOL = """
import sys, threading, time
from labeller.core.pool import bounded_pool_map
def run():
    for _ in bounded_pool_map(time.sleep, [600, 600], 2):
        pass
if sys.argv[1] == "thread":  # started from a thread: only the parent-pid watch applies
    t = threading.Thread(target=run)
    t.start()
    t.join()
else:
    run()
"""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_pool_workers_die_when_their_parent_is_killed(started_from):
    proc = subprocess.Popen([sys.executable, "-c", _POOL, started_from], cwd=ROOT)
    try:
        workers: list[int] = []
        for _ in range(600):  # until both workers (spawned interpreters) are up
            workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
            if len(workers) == 2:
                break
            time.sleep(0.1)
        assert len(workers) == 2
        time.sleep(1.0)  # their initializers have run
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for _ in range(300):
            if not any(_alive(p) for p in workers):
                break
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), workers
    finally:
        if proc.poll() is None:
            proc.kill()
