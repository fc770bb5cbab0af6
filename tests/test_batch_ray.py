"""`labeller batch --executor ray`: a local Ray with 2 CPUs (the `ray` extra; `make setup`
installs it). Same datasets as the local executor and as the stage commands by hand, and
a task whose worker dies is run again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labeller.batch import BatchConfig, run
from labeller.batch.runner import DIE_ONCE_ENV
from labeller.cli.main import main as cli_main
from tests.batch_scenes import (
    EXPORT_ARGS,
    EXPORT_ONLY_PLAN,
    SCENE_NAMES,
    batch_root,
    labels_content,
    make_scenes,
    reset,
    rows,
    tree_hashes,
)

pytest.importorskip("ray", reason="ray is not installed (pip install 'labeller[ray]'; "
                                  "make setup installs it)")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_scenes(tmp_path_factory.mktemp("batch_ray_pristine"))


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    return batch_root(pristine, tmp_path / "batch")


def batch(plan: Path, executor: str):
    return run(BatchConfig(plan, executor=executor, cpus=2, progress_bar=False))


def test_local_ray_and_by_hand_make_byte_identical_exports(root):
    plan = root / "plan.toml"
    first = batch(plan, "local")
    assert first.all_ok, first.format()
    by_local = tree_hashes(root / "out")
    labels_local = {n: labels_content(root / "scenes" / n) for n in SCENE_NAMES}

    # Ray over the labelled scenes (propagate finds them up to date): the same bytes.
    shutil.rmtree(root / "out")
    second = batch(plan, "ray")
    assert second.executor == "ray" and second.all_ok, second.format()
    assert rows(second)["export 1/props"][0] == "done"
    assert tree_hashes(root / "out") == by_local

    # By hand: `labeller export` with the plan's options, scenes in the plan's order.
    shutil.rmtree(root / "out")
    scenes = [str((root / "scenes" / n).resolve()) for n in SCENE_NAMES]
    assert cli_main(["export", *EXPORT_ARGS, "--out", str((root / "out" / "props").resolve()),
                     *scenes]) == 0
    assert tree_hashes(root / "out") == by_local

    # Ray from scratch: the same labels, to the byte (labels.h5 records no creation
    # times), so the same export, manifest (with the labels' sha256) included.
    labels_bytes = {n: (root / "scenes" / n / "labels" / "labels.h5").read_bytes()
                    for n in SCENE_NAMES}
    reset(root)
    third = batch(plan, "ray")
    assert third.all_ok and {s for s, _, _ in rows(third).values()} == {"done"}
    assert {n: labels_content(root / "scenes" / n) for n in SCENE_NAMES} == labels_local
    assert {n: (root / "scenes" / n / "labels" / "labels.h5").read_bytes()
            for n in SCENE_NAMES} == labels_bytes
    assert tree_hashes(root / "out") == by_local


def test_ray_task_whose_worker_dies_is_run_again_with_the_same_result(root, monkeypatch):
    assert batch(root / "plan.toml", "local").all_ok
    reference = tree_hashes(root / "out")
    shutil.rmtree(root / "out")
    (root / "export.toml").write_text(EXPORT_ONLY_PLAN)
    marker = root / "died"
    monkeypatch.setenv(DIE_ONCE_ENV, str(marker))
    report = batch(root / "export.toml", "ray")
    assert marker.is_file()  # the Ray worker did die (os._exit in the task)
    assert report.all_ok, report.format()
    assert rows(report)["export 1/props"][:2] == ("done", 1)
    assert tree_hashes(root / "out") == reference
