"""Point 0 of the reliability suite: a kill at any step of replacing an output folder.

Each writer of a folder (`export --format props|bop`, `synth`, `import`) is run with
--overwrite over an earlier output and stopped just before its k-th rename or removal in
the folder holding DIR (`crash_runner`: an audit hook that `os._exit`s, as SQLite's crash
tests do), for k = 1, 2, ... until a run gets through. After every kill DIR holds the old
or the new folder (after `recover_dir`, what the next run does first, in the fallback
without an atomic exchange), and the next run completes, leaves DIR equal to a clean
run's result and no temporary or moved-aside folder beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import labeller.core.fileio as fileio
from labeller.cli.main import main as cli
from labeller.core.fileio import recover_dir
from tests.helpers import snapshot
from tests.reliability.crash_runner import KILLED
from tests.reliability.helpers import leftovers, mini_7scenes, run_python

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

MAX_STEPS = 40


def crash_sweep(tmp_path: Path, monkeypatch, old_cmd, new_cmd, mode: str,
                strays: set[str] | None = None) -> int:
    """Kill `new_cmd` (which replaces OUT = tmp_path/w/out written by `old_cmd`) before
    each of its steps in turn; check every outcome; return how many kills there were.
    Commands are lists with the placeholder "OUT". Names left beside OUT after a rerun
    are an error, or collected in `strays` when that is given."""
    watch = tmp_path / "w"
    out = watch / "out"
    old_argv = [str(out) if a == "OUT" else a for a in old_cmd]
    new_argv = [str(out) if a == "OUT" else a for a in new_cmd]
    watch.mkdir()
    assert cli(old_argv) == 0
    pristine = tmp_path / "old"
    shutil.copytree(out, pristine, symlinks=True)
    old = snapshot(out)
    assert cli(new_argv) == 0
    new = snapshot(out)
    assert new != old, "the new command must write something else, or a kill could hide"
    kills = 0
    for k in range(1, MAX_STEPS + 1):
        shutil.rmtree(watch)
        watch.mkdir()
        shutil.copytree(pristine, out, symlinks=True)
        proc = run_python(["-m", "tests.reliability.crash_runner", str(k), str(watch), mode,
                           *new_argv])
        if proc.returncode == 0:
            break
        assert proc.returncode == KILLED, proc.stderr
        kills += 1
        if mode == "exchange":  # one atomic step: DIR is never missing
            assert snapshot(out) in (old, new), f"step {k}: DIR is neither"
        recover_dir(out)
        assert snapshot(out) in (old, new), f"step {k}: DIR is neither after recovery"
        monkeypatch.setattr(fileio, "_swept", set())  # a new run is a new process
        assert cli(new_argv) == 0, f"step {k}: the next run failed"
        assert snapshot(out) == new, f"step {k}: the next run's result differs"
        left = leftovers(watch, "out")
        if strays is None:
            assert left == [], f"step {k}: left behind"
        else:
            strays.update(left)
    else:
        pytest.fail(f"still killed after {MAX_STEPS} steps")
    print(f"crash points: {new_cmd[0]} ({mode}): {kills} kills, DIR old or new after each, "
          "every rerun complete")
    return kills


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_synth_overwrite_survives_a_kill_at_every_step(tmp_path, monkeypatch, mode):
    base = ["synth", "OUT", "--frames", "2", "--width", "64", "--height", "48"]
    kills = crash_sweep(tmp_path, monkeypatch, [*base, "--seed", "1"],
                        [*base, "--seed", "2", "--overwrite"], mode)
    # exchange, remove the old tree (rmtree, rmdir); or two renames and the removal
    assert kills == (3 if mode == "exchange" else 4)


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_import_overwrite_survives_a_kill_at_every_step(tmp_path, monkeypatch, mode):
    src_old = mini_7scenes(tmp_path / "src2", 2)
    src_new = mini_7scenes(tmp_path / "src3", 3)
    strays: set[str] = set()
    kills = crash_sweep(tmp_path, monkeypatch, ["import", "7scenes", str(src_old), "OUT"],
                        ["import", "7scenes", str(src_new), "OUT", "--overwrite"], mode, strays)
    assert kills >= 3
    # `import` stages the scene in a folder of its own (fileio.temp_dir_beside) before
    # atomic_dir: the rerun removes what a killed run left there.
    assert not strays, strays


@pytest.fixture(scope="module")
def labelled_scene(tmp_path_factory) -> Path:
    from tests.test_export_props import make_labelled_scene

    root = tmp_path_factory.mktemp("crash_scene")
    return make_labelled_scene(root / "scene_a", 11, frames=6, width=160, height=120)


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_export_props_overwrite_survives_a_kill_at_every_step(tmp_path, monkeypatch, mode,
                                                               labelled_scene):
    base = ["export", str(labelled_scene), "--format", "props", "--out", "OUT", "--allow-short",
            "--test-per-class", "1", "--workers", "1", "--no-cache", "--quiet"]
    kills = crash_sweep(tmp_path, monkeypatch, [*base, "--train-per-class", "2"],
                        [*base, "--train-per-class", "3", "--overwrite"], mode)
    assert kills >= 3


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_export_bop_overwrite_survives_a_kill_at_every_step(tmp_path, monkeypatch, mode,
                                                             labelled_scene):
    # The second export declares the shape symmetries: models_info.json differs.
    base = ["export", str(labelled_scene), "--format", "bop", "--out", "OUT", "--workers", "1",
            "--quiet"]
    kills = crash_sweep(tmp_path, monkeypatch, base,
                        [*base, "--geometric-symmetries", "--overwrite"], mode)
    assert kills >= 3
