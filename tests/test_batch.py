"""`labeller batch` with the local executor: plan checks, a corrupt scene, cancel + rerun,
a worker killed once. The Ray executor's tests are in test_batch_ray.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labeller.batch import BatchConfig, load_plan, run
from labeller.batch.runner import DIE_ONCE_ENV
from labeller.cli.main import main as cli_main
from labeller.core.errors import BadInput
from tests.batch_scenes import (
    EXPORT_ONLY_PLAN,
    PLAN,
    batch_root,
    make_scenes,
    rows,
    temp_files,
    tree_hashes,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_scenes(tmp_path_factory.mktemp("batch_pristine"))


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    return batch_root(pristine, tmp_path / "batch")


def local(plan: Path, **kw) -> BatchConfig:
    kw.setdefault("cpus", 2)
    return BatchConfig(plan, executor="local", progress_bar=False, **kw)


# --- plan validation -----------------------------------------------------------------------
BAD_PLANS = [
    (PLAN.replace("overlays = 0", "overlay = 0"),
     "[propagate] overlay: unknown option (known: delta, flag-score, flag-visib"),
    (PLAN.replace("overlays = 0", "overlays = 'many'"),
     "[propagate] overlays: must be an integer, got 'many'"),
    (PLAN.replace("overlays = 0", "refine = 'gicp'"),
     "[propagate] refine: must be one of none, icp, got 'gicp'"),
    (PLAN.replace("overlays = 0", "delta = 2.0"),
     "[propagate] delta: must be in (0, 1) metres, got 2.0"),
    (PLAN.replace("overlays = 0", "restart = 1"),
     "[propagate] restart: must be true or false, got 1"),
    (PLAN.replace("train-per-class = 4", "train-per-class = -1"),
     "[export 1] train-per-class: must be an integer >= 0, got -1"),
    (PLAN.replace("train-per-class = 4", "train-per-clas = 4"),
     "[export 1] train-per-clas: unknown option"),
    (PLAN.replace('out = "out/props"\n', ""), "[export 1]: needs `out`"),
    (PLAN.replace('stages = ["propagate"]', 'stages = ["propagate", "label"]'),
     "stages: unknown stage 'label' (known: track, init, propagate)"),
    (PLAN.replace('stages = ["propagate"]', "stages = []"),
     "[propagate]: options for a stage not in `stages`"),
    (PLAN.replace('"scenes/*"', '"nowhere/*"'), "scenes: 'nowhere/*' matches no folder"),
    (PLAN.replace('"scenes/*"', '"scenes/a", "scenes/zz"'), "scenes: 'scenes/zz': no such folder"),
    (PLAN + "[tracking]\nvoxel = 0.01\n", "tracking: unknown key"),
    (PLAN.replace("[propagate]", "[track]\nvoxel = 0.5\n[propagate]").replace(
        'stages = ["propagate"]', 'stages = ["track", "propagate"]'),
     "[track] voxel: must be between 0.0005 and 0.2 m, got 0.5"),
    ("scenes = [", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_PLANS, ids=[m.split(":")[0] for _, m in BAD_PLANS])
def test_plan_errors_name_the_file_section_and_option(root, text, message):
    plan = root / "plan.toml"
    plan.write_text(text)
    with pytest.raises(BadInput) as err:
        load_plan(plan)
    assert str(err.value).startswith(str(plan))
    assert message in str(err.value)


def test_plan_options_are_the_stage_flags(root):
    """Names as the stage CLIs spell them; paths relative to the plan file; an inverted
    flag (`no-cache`, `--no-cache` on the command line) sets its field False."""
    plan = load_plan(root / "plan.toml")
    assert [p.name for p in plan.scenes] == ["a", "b", "c"]
    assert plan.stages == ("propagate",)
    cfg = plan.export_config(plan.exports[0])
    assert cfg.out == root.resolve() / "out" / "props"
    assert cfg.cache is False and cfg.allow_short is True and cfg.test_scenes == ("b",)
    assert cfg.scenes == plan.scenes
    assert plan.stage_config("propagate", plan.scenes[0]).max_overlays == 0


def test_bad_plan_on_the_command_line_is_one_line_exit_2(root, capsys):
    (root / "plan.toml").write_text(PLAN.replace("overlays = 0", "overlay = 0"))
    assert cli_main(["batch", str(root / "plan.toml"), "--executor", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"labeller batch: error: {root / 'plan.toml'} [propagate] overlay: "
                          "unknown option")
    assert len(err.splitlines()) == 1


def test_bad_batch_option_names_the_flag(root, capsys):
    assert cli_main(["batch", str(root / "plan.toml"), "--retries", "-1"]) == 2
    assert "labeller batch: error: --retries: must be an integer from 0 to 10" \
        in capsys.readouterr().err


# --- the tests ---------------------------------------------------------------------
def test_corrupt_camera_fails_once_by_name_and_the_others_finish(root, capsys):
    camera = root / "scenes" / "b" / "camera.json"
    camera.write_text('{"width": 320, "height": ')
    rc = cli_main(["batch", str(root / "plan.toml"), "--executor", "local", "--cpus", "2",
                   "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 2
    table = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert table["a"].split()[2] == "done" and table["c"].split()[2] == "done"
    assert table["b"].split()[2] == "failed" and str(camera.resolve()) in table["b"]
    assert "retried" not in table["b"]  # a bad input is never run again
    assert "not run  needs b/propagate (failed)" in out  # the export would lack scene b
    assert [line for line in err.splitlines() if "error" in line] == \
        [next(line for line in err.splitlines() if line.startswith("labeller batch: error: b "))]
    assert (root / "scenes" / "a" / "labels" / "labels.h5").is_file()
    assert (root / "scenes" / "c" / "labels" / "labels.h5").is_file()
    assert not (root / "out").exists()


def test_cancel_halfway_then_rerun_touches_nothing_finished(root):
    def cancel_after_first(done: int, total: int) -> bool:
        return done < 1

    first = run(local(root / "plan.toml"), progress=cancel_after_first)
    assert first.cancelled
    state = rows(first)
    assert state["export 1/props"][0] == "not run"
    finished = [k.split("/")[0] for k, (s, _, _) in state.items() if s == "done"]
    assert finished, state
    assert temp_files(root) == []
    assert not (root / "out").exists()
    labels = {n: root / "scenes" / n / "labels" / "labels.h5" for n in finished}
    before = {n: (p.stat().st_mtime_ns, tree_hashes(p.parent)) for n, p in labels.items()}

    second = run(local(root / "plan.toml"))
    assert second.all_ok and not second.cancelled
    state = rows(second)
    for n in finished:
        assert state[f"{n}/propagate"][0] == "reused"
        assert (labels[n].stat().st_mtime_ns, tree_hashes(labels[n].parent)) == before[n]
    assert state["export 1/props"][0] == "done"
    assert temp_files(root) == []
    assert list(root.rglob("*.partial")) == []  # what the cancelled stages kept, resumed
    assert [p for p in root.iterdir() if ".cancel-" in p.name] == []
    manifest = json.loads((root / "out" / "props" / "manifest.json").read_text())
    assert [Path(s["scene"]).name for s in manifest["sources"]] == ["a", "b", "c"]


def test_worker_killed_once_is_retried_with_the_same_result(root, monkeypatch):
    assert run(local(root / "plan.toml")).all_ok
    reference = tree_hashes(root / "out")
    shutil.rmtree(root / "out")
    # The export alone over the labelled scenes: its worker dies as it starts.
    (root / "export.toml").write_text(EXPORT_ONLY_PLAN)
    marker = root / "died"
    monkeypatch.setenv(DIE_ONCE_ENV, str(marker))
    report = run(local(root / "export.toml"))
    assert marker.is_file()  # a worker did die
    assert report.all_ok, report.format()
    assert rows(report)["export 1/props"][:2] == ("done", 1)
    assert "done, retried 1" in report.format()
    assert tree_hashes(root / "out") == reference


def test_importing_batch_does_not_import_ray():
    """Ray is an optional extra: the package and the command load it only to run on it."""
    import subprocess
    import sys

    code = ("import sys, labeller.batch.runner, labeller.batch.executors, labeller.cli.main;"
            "from labeller.batch import run, BatchConfig;"
            "sys.exit(1 if 'ray' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
