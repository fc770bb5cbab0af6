"""Points 1 (partly), 4 and 5 of the reliability suite, at `labeller.core.fileio`.

A full, read-only or forbidden disk: a one-line error naming the path (and the free space
when full), exit 2, the previous output unchanged. A write that came out short is never
renamed into place. Temporaries of dead runs are removed by the next writer; saves keep
the file's mode and write through a symbolic link.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labeller.core.fileio as fileio
from labeller.cli.main import main as cli
from labeller.core.errors import BadInput
from labeller.core.fileio import (
    atomic_dir,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    dead_run_temps,
    disk_error_message,
    recover_dir,
)
from tests.helpers import ROOT, snapshot
from tests.reliability.helpers import leftovers, mini_7scenes

pytestmark = pytest.mark.reliability

SYNTH_SMALL = ["--frames", "2", "--width", "64", "--height", "48"]


# ------------------------------------------------------------------ full and read-only disks
def _failing_writer(code: int):
    def write(f, data):
        raise OSError(code, os.strerror(code))

    return write


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, r"no space left on the device \(\d+(\.\d)? (bytes|KB|MB|GB) free there\); "
                   r"free some space and rerun"),
    (errno.EROFS, "the file system is read-only; write somewhere else"),
    (errno.EACCES, "permission denied"),
])
def test_disk_errors_in_synth_are_one_line_naming_the_folder(tmp_path, monkeypatch, capsys,
                                                             code, says):
    out = tmp_path / "out"
    monkeypatch.setattr(fileio, "_write_file", _failing_writer(code))
    assert cli(["synth", str(out), *SYNTH_SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    # the file in OUT it was writing, not its temporary twin
    assert re.fullmatch(f"labeller synth: error: {out}/camera.json: {says}", err), err
    assert not out.exists() and leftovers(tmp_path, "out") == []


def test_disk_full_keeps_the_previous_file(tmp_path, monkeypatch, capsys):
    dest = tmp_path / "camera.json"
    dest.write_text("old\n")
    monkeypatch.setattr(fileio, "_write_file", _failing_writer(errno.ENOSPC))
    with pytest.raises(OSError) as info:
        atomic_write_text(dest, "new\n")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(dest)
    assert dest.read_text() == "old\n" and leftovers(tmp_path, "camera.json") == []


def test_a_short_write_is_never_renamed_into_place(tmp_path, monkeypatch):
    """A writer that stops half-way without an error (as RPly did on a full disk)."""
    dest = tmp_path / "labels.json"
    dest.write_text("old\n")

    def half(f, data):
        f.write(data[: len(data) // 2])

    monkeypatch.setattr(fileio, "_write_file", half)
    with pytest.raises(OSError, match=r"only 4 of 9 bytes were written") as info:
        atomic_write_bytes(dest, b"new data\n")
    assert info.value.errno == errno.ENOSPC
    assert disk_error_message(info.value).startswith(f"{dest}: no space left on the device")
    assert dest.read_text() == "old\n" and leftovers(tmp_path, "labels.json") == []
    # a library writing through atomic_path: a file under min_size is refused the same way
    with pytest.raises(OSError, match="only 0 of 10 bytes"):
        with atomic_path(dest, min_size=10):
            pass
    assert dest.read_text() == "old\n" and leftovers(tmp_path, "labels.json") == []


def test_disk_error_message_reads_hdf5s_errno():
    exc = OSError("Unable to synchronously create file (unable to open file: name = "
                  "'/data/scene/labels/labels.h5', errno = 28, error message = 'No space left "
                  "on device', flags = 13, o_flags = 242)")
    msg = disk_error_message(exc)
    assert msg is not None and msg.startswith("/data/scene/labels/labels.h5: no space left")
    assert disk_error_message(OSError("something else")) is None
    assert disk_error_message(ValueError("x")) is None
    ro = disk_error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"))
    assert ro == "/mnt/ro/out: the file system is read-only; write somewhere else"


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _labeller(args: list[str], limit: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labeller", *args], cwd=ROOT, text=True,
                          capture_output=True, preexec_fn=_limit_file_size(limit))


@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsize") / "scene"
    assert cli(["synth", str(out), *SYNTH_SMALL, "--width", "160", "--height", "120",
                "--with-annotations"]) == 0
    return out


@pytest.fixture(scope="module")
def labelled_scene(tmp_path_factory) -> Path:
    from tests.test_export_props import make_labelled_scene

    root = tmp_path_factory.mktemp("fsize_labelled")
    return make_labelled_scene(root / "scene", 11, frames=6, width=160, height=120)


def _export(scene: Path, out: Path, fmt: str) -> list[str]:
    extra = ["--allow-short", "--no-cache", "--train-per-class", "2", "--test-per-class", "1"] \
        if fmt == "props" else []
    return ["export", str(scene), "--format", fmt, "--out", str(out), "--workers", "1",
            "--quiet", *extra]


def _real_limit_cases(tmp_path: Path, synth_scene: Path, labelled: Path):
    """(name, argv, the folder that must stay as it was or absent) for writers whose files
    exceed a 4 KB file-size limit (propagate's and export props': below)."""
    src = mini_7scenes(tmp_path / "seven", 2)
    return [
        ("synth", ["synth", str(tmp_path / "s"), *SYNTH_SMALL, "--width", "160", "--height", "120"],
         tmp_path / "s"),
        ("import", ["import", "7scenes", str(src), str(tmp_path / "i")], tmp_path / "i"),
        *[(f"export {fmt}", _export(labelled, tmp_path / fmt, fmt), tmp_path / fmt)
          for fmt in ("props-pose", "bop", "coco", "props-detection")],
    ]


def test_a_real_file_size_limit_gives_a_clean_error_for_every_writer(tmp_path, synth_scene,
                                                                     labelled_scene):
    """Not injected: the kernel refuses the writes (RLIMIT_FSIZE, EFBIG) of Python, OpenCV,
    shutil, Open3D and json alike."""
    results = []
    for name, argv, guarded in _real_limit_cases(tmp_path, synth_scene, labelled_scene):
        before = snapshot(guarded) if guarded.exists() else None
        proc = _labeller(argv, limit=4096)
        err = proc.stderr.strip().splitlines()
        results.append((name, proc.returncode, err[-1] if err else ""))
        assert proc.returncode == 2, (name, proc.stderr)
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        assert f"labeller {argv[0]}: error: " in err[-1] and "file too large" in err[-1], err
        assert (snapshot(guarded) if guarded.exists() else None) == before, name
    assert [r[0] for r in results] == ["synth", "import", "export props-pose", "export bop",
                                       "export coco", "export props-detection"]


def _one_clean_line(proc: subprocess.CompletedProcess, stage: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal" not in err, err
    assert err.startswith(f"labeller {stage}: error: "), err
    return err


def test_a_real_file_size_limit_in_export_props(tmp_path, labelled_scene):
    """HDF5 (the crop cache) is asked for room before it writes: no SIGSEGV."""
    proc = _labeller(_export(labelled_scene, tmp_path / "props", "props"), limit=4096)
    err = _one_clean_line(proc, "export")
    assert "crops_cache.h5: file too large" in err, err
    assert not (tmp_path / "props").exists() and leftovers(tmp_path, "") == []


def test_a_real_file_size_limit_in_propagate(synth_scene):
    """labels.h5 under a file-size limit: refused before HDF5 (or the lock) writes anything."""
    before = snapshot(synth_scene)
    proc = _labeller(["propagate", str(synth_scene), "--no-progress"], limit=4096)
    err = _one_clean_line(proc, "propagate")
    assert err == (f"labeller propagate: error: {synth_scene}/labels/labels.h5.partial: file "
                   "too large (a file-size limit or the file system's); write somewhere else")
    assert snapshot(synth_scene) == before


def test_propagate_resumes_after_a_full_disk(tmp_path, monkeypatch):
    """The disk fills on the second batch: a clean disk error, and the next run (space
    freed) resumes from the frames written before, ending with the labels of a clean run."""
    import labeller.formats.labels.writer as writer_mod
    from labeller.formats.labels import Labels
    from labeller.propagate import PropagateConfig
    from labeller.propagate import run as propagate

    scene = tmp_path / "scene"
    assert cli(["synth", str(scene), *SYNTH_SMALL, "--frames", "6", "--with-annotations"]) == 0
    clean = tmp_path / "clean"
    shutil.copytree(scene, clean)
    propagate(PropagateConfig(scene=clean))
    real_check = writer_mod.check_room
    calls = []

    def full_on_second_batch(path, add_bytes, size_now=None):
        calls.append(path)  # 1: the file's header, 2: the first batch, 3: the second
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_check(path, add_bytes, size_now)

    monkeypatch.setattr(writer_mod, "check_room", full_on_second_batch)
    cfg = PropagateConfig(scene=scene, chunk_frames=2)
    with pytest.raises(OSError) as info:
        propagate(cfg)
    msg = disk_error_message(info.value)
    assert msg is not None and msg.startswith(f"{scene}/labels/labels.h5.partial: no space left")
    assert not (scene / "labels" / "labels.h5").exists()
    monkeypatch.setattr(writer_mod, "check_room", real_check)
    summary = propagate(cfg)
    assert (summary.resumed_frames, summary.computed_frames) == (2, 4)
    with Labels.open(scene / "labels" / "labels.h5") as a, \
            Labels.open(clean / "labels" / "labels.h5") as b:
        for name in ("T_cam_obj", "bbox_visib", "px_count_visib", "visib_fract", "flagged"):
            assert np.array_equal(a.arrays[name], b.arrays[name], equal_nan=True), name
        for t in a.frame_ids:
            assert np.array_equal(a.mask_visib(t), b.mask_visib(t))


# ------------------------------------------------------------------ temporaries of dead runs
def _die_inside(code: str) -> None:
    """Run `code` in a fresh interpreter that ends with os._exit(9) inside it."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert proc.returncode == 9


def test_temporaries_of_dead_runs_are_removed_by_the_next_save(tmp_path):
    dest = tmp_path / "annotations.json"
    dest.write_text("{}\n")
    code = ("import os; from labeller.core.fileio import atomic_path\n"
            f"with atomic_path({str(dest)!r}) as tmp:\n"
            "    tmp.write_text('half'); os._exit(9)\n")
    for _ in range(5):  # a GUI killed while saving, five times: each removes its predecessor's
        _die_inside(code)
    stale = dead_run_temps(tmp_path, "annotations")
    assert len(stale) == 1 and stale[0].name.endswith(".tmp.json")
    assert leftovers(tmp_path, "annotations.json") == [stale[0].name]
    # what is not provably dead stays: a live process's, another host's, an old-style name
    live = tmp_path / f".annotations.{fileio._host_tag()}-p{os.getppid()}.abcdefgh.tmp.json"
    other_host = tmp_path / f".annotations.otherhost-p{2**22 + 1}.abcdefgh.tmp.json"
    unowned = tmp_path / ".annotations.abcdefgh.tmp.json"
    for p in (live, other_host, unowned):
        p.write_text("x")
    atomic_write_text(dest, '{"saved": 1}\n')
    assert dest.read_text() == '{"saved": 1}\n'
    assert sorted(leftovers(tmp_path, "annotations.json")) == sorted(
        p.name for p in (live, other_host, unowned))


def test_temporary_folders_of_dead_runs_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    code = ("import os; from labeller.core.fileio import atomic_dir\n"
            f"with atomic_dir({str(out)!r}) as tmp:\n"
            "    (tmp / 'a.txt').write_text('half'); os._exit(9)\n")
    for _ in range(3):  # each run removes the folder its dead predecessor left
        _die_inside(code)
    assert len(leftovers(tmp_path, "out")) == 1 and not out.exists()
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("whole")
    assert (out / "a.txt").read_text() == "whole" and leftovers(tmp_path, "out") == []


# ------------------------------------------------------------------ the fallback without exchange
def test_a_missing_folder_is_put_back_from_old(tmp_path, caplog):
    out = tmp_path / "out"
    old = tmp_path / ".out.old"
    old.mkdir()
    (old / "a.txt").write_text("previous")
    with caplog.at_level(logging.WARNING, logger="labeller"):
        with pytest.raises(BadInput, match="out: already exists"):
            with atomic_dir(out):
                pass
    assert (out / "a.txt").read_text() == "previous" and not old.exists()
    assert "put back the previous folder from .out.old" in caplog.text
    # killed while removing .out.old after the second rename: the new folder stays
    old.mkdir()
    (old / "a.txt").write_text("stale")
    assert recover_dir(out) is False
    assert (out / "a.txt").read_text() == "previous" and not old.exists()


def test_fallback_replace_without_exchange(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    monkeypatch.setattr(fileio, "exchange_paths", lambda a, b: False)
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and leftovers(tmp_path, "out") == []


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    if not fileio.exchange_paths(a, b):
        pytest.skip("this file system cannot exchange (the fallback is tested above)")
    assert (b / "x").read_text() == "a" and (a / "y").read_text() == "b"
    with pytest.raises(FileNotFoundError):
        fileio.exchange_paths(a, tmp_path / "missing")


# ------------------------------------------------------------------ --overwrite replaces only ours
def test_overwrite_refuses_a_folder_the_tool_did_not_write(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    before = snapshot(thesis)
    assert cli(["synth", str(thesis), *SYNTH_SMALL, "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller synth: error: {thesis}: exists and is not a scene labeller synth "
                   "wrote (camera.json and gt/annotations.json); refusing to replace it even "
                   "with --overwrite")
    assert snapshot(thesis) == before
    with pytest.raises(BadInput, match="thesis: exists and is not a scene .camera.json and rgb/"):
        from labeller.importers.writer import scene_writer

        with scene_writer(thesis, overwrite=True):
            pass
    assert snapshot(thesis) == before and leftovers(tmp_path, "thesis") == []
    src = mini_7scenes(tmp_path.parent / f"{tmp_path.name}_src", 2)
    assert cli(["import", "7scenes", str(src), str(thesis), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"labeller import: error: {thesis}: exists and is not a scene (camera.json "
                   "and rgb/, or an import.json); refusing to replace it")
    assert snapshot(thesis) == before and leftovers(tmp_path, "thesis") == []


# ------------------------------------------------------------------ saves keep the file's nature
def test_save_keeps_mode_and_writes_through_a_symlink(tmp_path):
    from labeller.annotate.document import DocumentModel

    scene = tmp_path / "scene"
    assert cli(["synth", str(scene), *SYNTH_SMALL, "--with-annotations"]) == 0
    real = tmp_path / "elsewhere" / "annotations.json"
    real.parent.mkdir()
    os.replace(scene / "annotations.json", real)
    os.chmod(real, 0o640)
    (scene / "annotations.json").symlink_to(real)
    m = DocumentModel.open(scene)
    m.set_keyframes(m.object_ids[0], [0, 1])
    assert m.save() == scene / "annotations.json"
    assert (scene / "annotations.json").is_symlink()  # still a link
    assert os.readlink(scene / "annotations.json") == str(real)
    assert (real.stat().st_mode & 0o777) == 0o640  # the mode it had
    assert DocumentModel.open(scene).document().to_dict() == m.document().to_dict()
    assert leftovers(real.parent, "annotations.json") == []


def test_a_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640
