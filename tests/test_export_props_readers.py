"""PROPS exports read by the DeepRob course's own loaders (../shared/readers/deeprob,
unmodified; torchvision and the course's `rob599` helpers stand in through
tests/readers_deeprob.py): `PROPSClassificationDataset` and the P1 starter code's
`progress_objects` + `preprocess_progress_objects` on a PROPS export pointed at its
md5.json, and `PROPSPoseDataset` on a PROPS-Pose export (two mugs in one image).

Scenes come from the real stages (synth with ground-truth annotations, then propagate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, ConfigError
from labeller.export import ExportConfig, ExportWarning, run
from labeller.formats.labels import Labels
from labeller.formats.props import MD5_FILE, PROPS_FOLDER, load_class_pickle, read_md5_list
from labeller.formats.props_pose import PROPS_POSE_K
from tests import readers_deeprob
from tests.helpers import SHARED_DATA

YCB = SHARED_DATA / "ycb_models"
TRAIN, TEST = 4, 2


def make_scene(dest: Path, seed: int, classes: list[str], frames: int, width: int = 320,
               height: int = 240) -> Path:
    from labeller.propagate import PropagateConfig
    from labeller.propagate import run as propagate
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    synth(SynthConfig(dest, frames=frames, seed=seed, with_annotations=True, width=width,
                      height=height, classes=classes))
    propagate(PropagateConfig(scene=dest, workers=1))
    return dest


def export(fmt: str, out: Path, scenes, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress_bars", False)
    return run(ExportConfig(format=fmt, out=out, scenes=list(scenes), **kw))


@pytest.fixture(scope="session")
def ten_class_scenes(tmp_path_factory) -> list[Path]:
    """Two 320x240 scenes of 6 frames, each with one object of every PROPS class."""
    root = tmp_path_factory.mktemp("ten_class")
    return [make_scene(root / f"all_{k}", seed, list(PROPS_CLASS_NAMES), frames=6)
            for k, seed in ((0, 42), (1, 47))]


@pytest.fixture(scope="session")
def course_pose_scenes(tmp_path_factory) -> list[Path]:
    """Two 640x480 scenes through the camera the course loaders hard-code, each with two
    mugs in view (and a few other classes)."""
    import labeller.synth.world as synth_mod  # SynthWorld looks make_camera up there

    fx, fy, cx, cy = PROPS_POSE_K

    def course_camera(width: int = 640, height: int = 480) -> CameraIntrinsics:
        return CameraIntrinsics(width, height, fx, fy, cx, cy, 1000.0)

    root = tmp_path_factory.mktemp("course_pose")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth_mod, "make_camera", course_camera)
        return [
            make_scene(root / "pose_0", 50, ["mug", "mug", "cracker_box", "tomato_soup_can"],
                       frames=3, width=640, height=480),
            make_scene(root / "pose_1", 51, ["sugar_box", "mug", "mug", "large_marker"],
                       frames=3, width=640, height=480)]


@pytest.fixture(scope="module")
def props_export(ten_class_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("props_readers") / "props"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # all ten classes: nothing to warn
        export("props", out, ten_class_scenes, train_per_class=TRAIN, test_per_class=TEST,
               min_visib=0.1, min_size=4, test_scenes=["all_1"], cache=False)
    return out


def published_refused(cls, root: Path, **kw) -> None:
    """With the published md5 list the course loader refuses an export (other files)."""
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        cls(root=str(root), **kw)


# --- PROPS classification: md5.json ------------------------------------------------------
def test_md5_json_lists_every_file_of_the_dataset_folder(props_export):
    entries = read_md5_list(props_export / MD5_FILE)
    folder = props_export / PROPS_FOLDER
    assert not (folder / MD5_FILE).exists()  # the loader opens every file there as a pickle
    names = [n for n, _ in entries]
    assert names[0] == "meta.pkl" and sorted(names) == sorted(os.listdir(folder))
    for name, md5 in entries:
        assert md5 == hashlib.md5((folder / name).read_bytes(), usedforsecurity=False).hexdigest()
    man = json.loads((props_export / "manifest.json").read_text())
    assert MD5_FILE in man["files"] and man["layout"]["md5"] == MD5_FILE


def test_course_classification_loader_reads_the_export(props_export, monkeypatch):
    readers_deeprob.install(monkeypatch)
    cls = readers_deeprob.load("PROPSClassificationDataset").PROPSClassificationDataset
    published_refused(cls, props_export, train=True)
    monkeypatch.setattr(cls, "object_list", read_md5_list(props_export / MD5_FILE))
    man = json.loads((props_export / "manifest.json").read_text())
    for train, per_class, split in ((True, TRAIN, "train"), (False, TEST, "test")):
        ds = cls(root=str(props_export), train=train)
        assert len(ds) == 10 * per_class
        assert np.bincount(np.asarray(ds.targets), minlength=10).tolist() == [per_class] * 10
        # the same crops as our pickles of that split
        ours = [load_class_pickle(props_export / PROPS_FOLDER / f"{n}.pkl")[0]
                for n, p in man["pickles"].items() if p["split"] == split]
        mine = np.concatenate(ours)
        key = lambda a: sorted(x.tobytes() for x in a)  # noqa: E731
        assert key(ds.data) == key(mine)
        img, target = ds[0]
        assert img.size == (32, 32) and 0 <= target < 10


def test_p1_progress_objects_and_preprocessing_read_the_export(props_export, monkeypatch):
    readers_deeprob.install(monkeypatch)
    import rob599  # the stand-in package holding the real ProgressObjectsDataset

    data = readers_deeprob.load("P1_rob599/data")
    monkeypatch.chdir(props_export)  # the starter code reads ./Progress-Objects-Sample
    published_refused(rob599.ProgressObjectsDataset, Path("."), train=True)
    monkeypatch.setattr(rob599.ProgressObjectsDataset, "object_list",
                        read_md5_list(props_export / MD5_FILE))
    x_train, y_train, x_test, y_test = data.progress_objects()
    assert tuple(x_train.shape) == (10 * TRAIN, 3, 32, 32) and len(y_test) == 10 * TEST
    assert float(x_train.max()) <= 1.0 and sorted(set(y_train.tolist())) == list(range(10))
    d = data.preprocess_progress_objects(cuda=False, show_examples=True, bias_trick=True)
    n_train = int(10 * TRAIN * 0.8)
    assert tuple(d["X_train"].shape) == (n_train, 3073)
    assert tuple(d["X_val"].shape) == (10 * TRAIN - n_train, 3073)
    assert tuple(d["X_test"].shape) == (10 * TEST, 3073)


@pytest.fixture(scope="module")
def three_class_scenes(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("three_class")
    classes = ["cracker_box", "mug", "gelatin_box"]
    return [make_scene(root / f"few_{k}", seed, classes, frames=4) for k, seed in ((0, 60), (1, 61))]


def test_missing_class_is_refused_unless_allow_short(three_class_scenes, tmp_path, capsys,
                                                     monkeypatch):
    out = tmp_path / "short"
    args = ["export", "--format", "props", "--out", str(out), *map(str, three_class_scenes),
            "--train-per-class", "2", "--test-per-class", "1", "--min-visib", "0.05",
            "--min-size", "4", "--test-scenes", "few_1", "--workers", "1", "--quiet"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "labeller export: error: SCENE: no crops of master_chef_can (train, test), " in err
    assert "the course notebooks need all ten PROPS classes" in err and "--allow-short" in err
    assert not out.exists()
    with pytest.raises(BadInput, match="no crops of master_chef_can"):
        export("props", out, three_class_scenes, train_per_class=2, test_per_class=1,
               min_visib=0.05, min_size=4, test_scenes=["few_1"])
    with pytest.warns(ExportWarning, match="NOT USABLE AS IS IN THE COURSE NOTEBOOKS: no crops "
                                           "of master_chef_can"):
        s = export("props", out, three_class_scenes, train_per_class=2, test_per_class=1,
                   min_visib=0.05, min_size=4, test_scenes=["few_1"], allow_short=True)
    assert any("NOT USABLE" in w for w in s.warnings)
    man = json.loads((out / "manifest.json").read_text())
    assert {"class": "large_marker", "split": "train"} in man["missing_classes"]
    assert len(man["missing_classes"]) == 7 * 2
    # why: the course's example grid draws 12 crops of every class and fails without one
    readers_deeprob.install(monkeypatch)
    import rob599

    data = readers_deeprob.load("P1_rob599/data")
    monkeypatch.chdir(out)
    monkeypatch.setattr(rob599.ProgressObjectsDataset, "object_list", read_md5_list(out / MD5_FILE))
    with pytest.raises(ValueError, match="empty range"):
        data.preprocess_progress_objects(cuda=False, show_examples=True)


# --- PROPS-Pose: the course loader, two mugs in one image --------------------------------
def pose_items(root: Path, split: str, monkeypatch) -> list[tuple[int, dict]]:
    """(image id, data_dict) of every image, through the real PROPSPoseDataset."""
    readers_deeprob.install(monkeypatch)
    cls = readers_deeprob.load("PROPSPoseDataset").PROPSPoseDataset
    ds = cls(root=str(root), split=split)
    out = []
    for i in range(len(ds)):
        im = int(Path(ds.all_lst[i][0]).stem)
        d = ds[i]
        out.append((im, {k: d[k] for k in ("label", "objs_id", "RTs", "bbx")}))
    return sorted(out, key=lambda t: t[0])


def frame_of(root: Path, split: str, im: int, scenes: list[Path]) -> tuple[Path, int]:
    man = json.loads((root / "manifest.json").read_text())
    name, t = man["image_sources"][split][str(im)]
    return next(s for s in scenes if s.name == name), int(t)


@pytest.fixture(scope="module")
def pose_export(course_pose_scenes, tmp_path_factory) -> Path:
    if not YCB.is_dir():
        pytest.skip(f"YCB models not found at {YCB} (the course loader opens all ten)")
    out = tmp_path_factory.mktemp("pose_readers") / "pose"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # the repeated mugs (tested below)
        export("props-pose", out, course_pose_scenes, models_dir=YCB, test_scenes=["pose_1"])
    return out


def test_repeated_class_warns_per_image_and_in_the_summary(course_pose_scenes, tmp_path, caplog):
    if not YCB.is_dir():
        pytest.skip(f"YCB models not found at {YCB}")
    with caplog.at_level(logging.WARNING, logger="labeller.export.props_pose"):
        with pytest.warns(ExportWarning, match=r"6 image\(s\) show two or more visible objects "
                                               r"of one class; .*mug in 6 image\(s\), "):
            s = export("props-pose", tmp_path / "pp", course_pose_scenes, models_dir=YCB,
                       test_scenes=["pose_1"])
    lines = [r.getMessage() for r in caplog.records if "keeps one mask per class" in r.getMessage()]
    assert len(lines) == 6 and lines[0].startswith("train image 0 (pose_0 frame 0): mug: ")
    assert "--one-instance-per-class" in s.format()
    man = json.loads((tmp_path / "pp" / "manifest.json").read_text())
    assert man["repeated_class_images"]["train"] == {str(i): ["mug"] for i in range(3)}
    assert man["counts"]["repeated_classes"]["mug"]["images"] == 6


def test_course_pose_loader_loses_exactly_the_pixels_the_warning_counts(pose_export,
                                                                        course_pose_scenes,
                                                                        monkeypatch):
    man = json.loads((pose_export / "manifest.json").read_text())
    mug = PROPS_CLASS_NAMES.index("mug") + 1  # the loader's label channel
    lost = visible = 0
    for split in ("train", "val"):
        for im, d in pose_items(pose_export, split, monkeypatch):
            scene, t = frame_of(pose_export, split, im, course_pose_scenes)
            with Labels.open(scene / "labels" / "labels.h5") as lab:
                mv = lab.mask_visib(t)
                mug_ids = [o.id for o in lab.objects if o.class_name == "mug"]
            ours = np.isin(mv, mug_ids)
            assert d["label"][mug].sum() < ours.sum()  # one mug only
            lost += int((ours & ~d["label"][mug]).sum())
            visible += int(ours.sum())
            assert (d["label"][0] == ~d["label"][1:].any(axis=0)).all()
    agg = man["counts"]["repeated_classes"]["mug"]
    assert (agg["lost_px"], agg["visible_px"]) == (lost, visible)


@pytest.fixture(scope="module")
def one_per_class_export(course_pose_scenes, tmp_path_factory) -> Path:
    if not YCB.is_dir():
        pytest.skip(f"YCB models not found at {YCB} (the course loader opens all ten)")
    out = tmp_path_factory.mktemp("pose_one") / "pose"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # nothing repeated any more
        export("props-pose", out, course_pose_scenes, models_dir=YCB, test_scenes=["pose_1"],
               one_instance_per_class=True)
    return out


def test_one_instance_per_class_keeps_the_most_visible_and_the_loader_agrees(
        one_per_class_export, course_pose_scenes, monkeypatch):
    root = one_per_class_export
    man = json.loads((root / "manifest.json").read_text())
    assert man["counts"]["dropped_instances"] == 6 and man["counts"]["repeated_classes"] == {}
    for split in ("train", "val"):
        gt = json.loads((root / "PROPS-Pose-Dataset" / split / f"{split}_gt.json").read_text())
        for im, d in pose_items(root, split, monkeypatch):
            scene, t = frame_of(root, split, im, course_pose_scenes)
            with Labels.open(scene / "labels" / "labels.h5") as lab:
                mv = lab.mask_visib(t)
                objs = lab.objects
                r = lab.row(t)
                px = lab.arrays["px_count_visib"][r]
                T = lab.arrays["T_cam_obj"][r]
            ids = [g["obj_id"] for g in gt[str(im)]]
            assert len(ids) == len(set(ids))
            mugs = [k for k, o in enumerate(objs) if o.class_name == "mug"]
            best = max(mugs, key=lambda k: px[k])
            label = PROPS_CLASS_NAMES.index("mug") + 1
            assert (d["label"][label] == (mv == objs[best].id)).all()
            slot = list(d["objs_id"]).index(label)
            np.testing.assert_allclose(d["RTs"][slot], T[best][:3], atol=1e-6)
            assert BY_NAME["mug"].ycbv_id in ids


def test_one_instance_per_class_is_props_pose_only(ten_class_scenes, tmp_path, capsys):
    with pytest.raises(ConfigError, match="applies to --format props-pose only"):
        export("coco", tmp_path / "o", ten_class_scenes, one_instance_per_class=True)
    rc = cli_main(["export", "--format", "bop", "--out", str(tmp_path / "o"),
                   str(ten_class_scenes[0]), "--one-instance-per-class", "--quiet"])
    assert rc == 2
    assert ("labeller export: error: --one-instance-per-class: applies to --format props-pose "
            "only, not bop") in capsys.readouterr().err
