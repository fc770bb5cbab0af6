"""`labeller export --format props`: the PROPS classification crops.

Scenes come from the real stages: `labeller.synth` (ground-truth annotations) then
`labeller.propagate`; small (16 frames, 320x240, four classes) so the suite stays quick.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, Cancelled, FormatError
from labeller.core.fileio import sha256_file
from labeller.export import ExportConfig, ExportWarning, run
from labeller.export.crops import crop_resize, crop_squares
from labeller.export.props import ShortfallError
from labeller.export.props_crop_cache import CACHE_NAME
from labeller.export.sampling import default_n_test, pick_evenly, spread_quota
from labeller.formats.props import PROPS_FOLDER as PROPS_DIR
from labeller.formats.props import dumps_compat
from tests.helpers import flag_labels, snapshot

SCENE_CLASSES = ["cracker_box", "tomato_soup_can", "mug", "gelatin_box"]
N_FRAMES = 16
TRAIN, TEST = 8, 4


def make_labelled_scene(dest: Path, seed: int, frames: int = N_FRAMES, classes=None,
                        width: int = 320, height: int = 240) -> Path:
    """synth (with annotations) then propagate: a scene with SCENE/labels/labels.h5."""
    from labeller.propagate import PropagateConfig
    from labeller.propagate import run as propagate
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    synth(SynthConfig(dest, frames=frames, seed=seed, with_annotations=True, width=width,
                      height=height, classes=list(classes or SCENE_CLASSES)))
    propagate(PropagateConfig(scene=dest))
    return dest


@pytest.fixture(scope="session")
def labelled_scenes(tmp_path_factory) -> list[Path]:
    """Three labelled synthetic scenes (scene_a, scene_b, scene_c). Do not modify them:
    copy one (`copy_scene`) to change it."""
    root = tmp_path_factory.mktemp("export_scenes")
    return [make_labelled_scene(root / f"scene_{c}", seed) for c, seed in zip("abc", (11, 12, 13), strict=True)]


def copy_scene(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(CACHE_NAME))
    return dest


def export(out: Path, scenes, **kw):
    # four classes of ten: the course notebooks would refuse it, these tests need no more
    kw.setdefault("allow_short", True)
    kw.setdefault("train_per_class", TRAIN)
    kw.setdefault("test_per_class", TEST)
    kw.setdefault("workers", 1)
    kw.setdefault("progress_bars", False)
    return run(ExportConfig(format="props", out=out, scenes=list(scenes), **kw))


@pytest.fixture(scope="module")
def dataset(labelled_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("props") / "props"
    export(out, labelled_scenes, test_scenes=["scene_b"], cache=False)
    return out


# --- what the course's loader does ------------------------------------------------------
class PlainDataOnly(pickle.Unpickler):
    """Refuses every global but what an ndarray needs: only dicts, lists, numbers, strings
    and numpy arrays can come out."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
               ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def load_restricted(path: Path):
    with open(path, "rb") as f:
        return PlainDataOnly(f, encoding="latin1").load()


def course_loader(root: Path, train: bool) -> tuple[np.ndarray, list[int]]:
    """ProgressObjectsDataset's logic: every file but meta.pkl in the folder is a pickle;
    those named in meta['test_split'] are the test set, the union of the others train."""
    base = os.path.join(root, "Progress-Objects-Sample")
    with open(os.path.join(base, "meta.pkl"), "rb") as fp:
        meta = pickle.load(fp, encoding="latin1")
    holdout = set(meta["test_split"])
    instances = {os.path.splitext(fl)[0] for fl in os.listdir(base) if fl != "meta.pkl"}
    instances = instances - holdout if train else instances & holdout
    data, targets = [], []
    for inst in instances:
        with open(os.path.join(base, inst + ".pkl"), "rb") as fp:
            entry = pickle.load(fp, encoding="latin1")
            data.append(entry["data"])
            targets.extend(entry["labels"])
    return np.vstack(data), targets


def check_plain(obj) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, str)
            check_plain(v)
    elif isinstance(obj, list):
        for v in obj:
            check_plain(v)
    else:
        assert type(obj) in (int, str, np.ndarray), type(obj)


# --- layout and loading ---------------------------------------------------------------------
def test_layout_pickles_alone_in_their_folder(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == [
        PROPS_DIR, "contact_sheet.png", "crops.h5", "manifest.json", "md5.json"]
    files = sorted(p.name for p in (dataset / PROPS_DIR).iterdir())
    assert "meta.pkl" in files
    for name in files:
        assert name.endswith(".pkl")
        stem = name[:-4]
        if stem != "meta":
            cls, _, k = stem.rpartition("_")
            assert cls in SCENE_CLASSES and int(k) >= 1


def test_every_file_loads_as_plain_data(dataset):
    n = 0
    for p in sorted((dataset / PROPS_DIR).iterdir()):
        obj = load_restricted(p)  # a custom class or any other global raises
        check_plain(obj)
        plain = pickle.load(open(p, "rb"), encoding="latin1")
        assert type(plain) is dict
        if p.name == "meta.pkl":
            assert list(plain) == ["test_split"] and isinstance(plain["test_split"], list)
            continue
        n += 1
        assert set(plain) == {"data", "labels"}
        assert plain["data"].dtype == np.uint8 and plain["data"].shape[1:] == (32, 32, 3)
        assert len(plain["labels"]) == len(plain["data"])
        assert all(type(v) is int for v in plain["labels"])
    assert n == 3 * len(SCENE_CLASSES)


def test_pickles_load_with_numpy1_names():
    """NumPy 1.x has no numpy._core: arrays must be pickled under numpy.core names."""
    raw = dumps_compat({"data": np.zeros((2, 32, 32, 3), np.uint8), "labels": [1, 2]})
    globals_ = [arg for op, arg, _ in pickletools.genops(raw) if "GLOBAL" in op.name]
    assert "numpy.core.multiarray _reconstruct" in globals_
    assert not any("_core" in g for g in globals_)
    back = pickle.loads(raw, encoding="latin1")
    assert back["labels"] == [1, 2] and back["data"].shape == (2, 32, 32, 3)


def test_props_codec_round_trip(tmp_path):
    """What the exporter writes (class pickle, meta.pkl) the restricted reader reads back."""
    from labeller.formats.props import (
        class_pickle_bytes,
        load_class_pickle,
        load_pickle,
        meta_bytes,
    )

    data = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "mug_1.pkl").write_bytes(class_pickle_bytes(data, [8, 8, 8]))
    (tmp_path / "meta.pkl").write_bytes(meta_bytes(["mug_1"]))
    images, labels = load_class_pickle(tmp_path / "mug_1.pkl")
    assert np.array_equal(images, data) and labels.tolist() == [8, 8, 8]
    assert load_pickle(tmp_path / "meta.pkl") == {"test_split": ["mug_1"]}


def test_course_loader_gets_requested_counts_in_props_label_order(dataset):
    x_train, y_train = course_loader(dataset, train=True)
    x_test, y_test = course_loader(dataset, train=False)
    want = sorted(PROPS_CLASS_NAMES.index(c) for c in SCENE_CLASSES)
    for y, n in ((y_train, TRAIN), (y_test, TEST)):
        labels, counts = np.unique(y, return_counts=True)
        assert labels.tolist() == want
        assert counts.tolist() == [n] * len(SCENE_CLASSES)
    assert x_train.shape == (TRAIN * 4, 32, 32, 3) and x_test.shape == (TEST * 4, 32, 32, 3)
    # each pickle's labels are its class's PROPS label
    for p in (dataset / PROPS_DIR).glob("*_*.pkl"):
        cls = p.stem.rpartition("_")[0]
        d = pickle.load(open(p, "rb"), encoding="latin1")
        assert set(d["labels"]) <= {PROPS_CLASS_NAMES.index(cls)}


def test_split_by_whole_scenes(dataset, labelled_scenes):
    man = json.loads((dataset / "manifest.json").read_text())
    meta = pickle.load(open(dataset / PROPS_DIR / "meta.pkl", "rb"), encoding="latin1")
    scene_of = {name: info["scene"] for name, info in man["pickles"].items()}
    test_scenes = {scene_of[n] for n in meta["test_split"]}
    train_scenes = {scene_of[n] for n in scene_of if n not in meta["test_split"]}
    assert test_scenes == {"scene_b"} and train_scenes == {"scene_a", "scene_c"}
    # <k> numbers a class's scenes from 1 in command-line order
    for cls in SCENE_CLASSES:
        assert [scene_of[f"{cls}_{k}"] for k in (1, 2, 3)] == ["scene_a", "scene_b", "scene_c"]
    with h5py.File(dataset / "crops.h5", "r") as f:
        scene, split = f["scene"][()], f["split"][()].astype(str)
        for s in np.unique(scene):
            assert len(set(split[scene == s])) == 1  # a scene feeds one split only
        assert set(split[scene == 1]) == {"test"}


def test_default_split_holds_out_round_n_over_6(labelled_scenes, tmp_path):
    assert [default_n_test(n) for n in (1, 2, 3, 6, 9, 10, 12, 60)] == [0, 1, 1, 1, 2, 2, 2, 10]
    held = []
    for seed in (0, 1, 2, 3):
        s = export(tmp_path / f"o{seed}", labelled_scenes, seed=seed, cache=False)
        assert s.counts  # written
        man = json.loads((tmp_path / f"o{seed}" / "manifest.json").read_text())
        held.append(tuple(src["name"] for src in man["sources"] if src["split"] == "test"))
    assert all(len(h) == 1 for h in held)
    assert len(set(held)) > 1  # the seed chooses which


def test_deterministic_for_seed_and_independent_of_workers(labelled_scenes, tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    c = tmp_path / "c"
    export(a, labelled_scenes, seed=5, workers=1, cache=False)
    export(b, labelled_scenes, seed=5, workers=2, cache=False)
    export(c, labelled_scenes, seed=6, workers=1, cache=False, test_scenes=None)

    def pickles(d):
        return {p.name: p.read_bytes() for p in (d / PROPS_DIR).iterdir()}

    assert pickles(a) == pickles(b)
    with h5py.File(a / "crops.h5", "r") as fa, h5py.File(c / "crops.h5", "r") as fc:
        assert not np.array_equal(fa["chosen"][()], fc["chosen"][()])


def test_sampling_spreads_over_time_and_never_duplicates(dataset):
    with h5py.File(dataset / "crops.h5", "r") as f:
        chosen = f["chosen"][()]
        key = np.stack([f["scene"][()], f["frame_id"][()], f["object_id"][()]], 1)[chosen]
        frames = f["frame_id"][()][chosen]
        label = f["label"][()][chosen]
        scene = f["scene"][()][chosen]
    assert len(np.unique(key, axis=0)) == len(key)  # no candidate twice
    # 4 of 16 frames per class and train scene: every quarter of the recording, not frames 0-3
    for lab in np.unique(label):
        for s in (0, 2):
            fr = np.sort(frames[(label == lab) & (scene == s)])
            assert len(fr) == TRAIN // 2
            assert fr.max() - fr.min() >= N_FRAMES // 2
            assert np.all(np.diff(fr) >= 2)


def test_pick_evenly_and_spread_quota():
    assert pick_evenly(16, 4, 0.0).tolist() == [0, 4, 8, 12]
    assert pick_evenly(16, 4, 0.99).tolist() == [3, 7, 11, 15]
    assert pick_evenly(5, 9, 0.5).tolist() == [0, 1, 2, 3, 4]
    for n, k in ((100, 7), (7, 7), (1000, 999)):
        for off in (0.0, 0.5, 0.999):
            p = pick_evenly(n, k, off)
            assert len(set(p.tolist())) == k and p.min() >= 0 and p.max() < n
    assert spread_quota([10, 10, 10], 9) == [3, 3, 3]
    assert spread_quota([1, 10, 10], 9) == [1, 4, 4]
    assert spread_quota([2, 3], 10) == [2, 3]
    assert sum(spread_quota([5, 6, 7], 10)) == 10


def test_candidates_follow_the_filters(labelled_scenes, tmp_path):
    """visib_fract >= min_visib, larger visible side >= min_size, not flagged: exactly the
    object-frames that pass are candidates."""
    from labeller.formats.labels import Labels

    scene = copy_scene(labelled_scenes[0], tmp_path / "scene_a")
    other = copy_scene(labelled_scenes[1], tmp_path / "scene_b")
    flag_labels(scene / "labels" / "labels.h5", [(3, 0), (9, 2)])  # two labels flagged
    out = tmp_path / "out"
    with pytest.warns(ExportWarning, match="fewer crops than requested"):
        export(out, [scene, other], min_visib=0.9, min_size=55, allow_short=True,
               test_scenes=["scene_b"])
    with Labels.open(scene / "labels" / "labels.h5") as lab:
        A = lab.arrays
        bb = A["bbox_visib"]
        ok = (A["visib_fract"] >= 0.9) & (np.maximum(bb[..., 2], bb[..., 3]) >= 55) & ~A["flagged"]
        want = {(int(lab.frame_ids[r]), lab.objects[o].id) for r, o in zip(*np.nonzero(ok), strict=True)}
    assert not ok[3, 0] and not ok[9, 2]
    assert 0 < len(want) < ok.size  # the size filter does remove some
    with h5py.File(out / "crops.h5", "r") as f:
        s0 = f["scene"][()] == 0
        got = set(zip(f["frame_id"][()][s0].tolist(), f["object_id"][()][s0].tolist(), strict=True))
    assert got == want


def test_crop_is_a_padded_square_resized_with_area_interpolation(dataset, labelled_scenes):
    from labeller.core.fileio import read_image

    with h5py.File(dataset / "crops.h5", "r") as f:
        for j in (0, 17, len(f["crops"]) - 1):
            s, t = int(f["scene"][j]), int(f["frame_id"][j])
            x, y, w, h = f["bbox_visib"][j]
            img = read_image(labelled_scenes[s] / "rgb" / f"{t:06d}.png")
            side = int(np.floor(max(w, h) * 1.2 + 0.5))
            x0 = int(np.floor(x + w / 2 - side / 2 + 0.5))
            y0 = int(np.floor(y + h / 2 - side / 2 + 0.5))
            pad = side + 2
            big = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))  # black outside the image
            patch = big[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
            want = cv2.resize(patch, (32, 32), interpolation=cv2.INTER_AREA)
            assert np.array_equal(f["crops"][j], want)
            assert f["square"][j].tolist() == [x0, y0, side]


def test_crop_at_the_border_is_padded_black():
    img = np.full((40, 60, 3), 200, np.uint8)
    sq = crop_squares([[50, 0, 10, 10]])[0]  # box in the top-right corner
    assert sq.tolist() == [49, -1, 12]
    crop = crop_resize(img, tuple(sq), 12)
    assert np.all(crop[0] == 0) and np.all(crop[:, -1] == 0)   # outside: black
    assert np.all(crop[1:, :-1] == 200)                        # inside: the image


def test_contact_sheet_rows_are_classes(dataset):
    from labeller.core.fileio import read_image

    img = read_image(dataset / "contact_sheet.png")
    assert img.shape[0] == 4 + len(SCENE_CLASSES) * (96 + 4)
    # the crops area is not blank in any row
    for r in range(len(SCENE_CLASSES)):
        y = 4 + r * 100
        assert img[y:y + 96, 230:].std() > 10


def test_manifest_records_sources_options_counts_and_hashes(dataset, labelled_scenes):
    man = json.loads((dataset / "manifest.json").read_text())
    assert man["format"] == "labeller-export" and man["export_format"] == "props"
    assert [s["scene"] for s in man["sources"]] == [str(p) for p in labelled_scenes]
    assert man["options"]["train_per_class"] == TRAIN and man["options"]["seed"] == 0
    for cls in SCENE_CLASSES:
        assert man["counts"][cls]["train"]["chosen"] == TRAIN
        assert man["counts"][cls]["test"]["chosen"] == TEST
    files = [p for p in dataset.rglob("*") if p.is_file() and p.name != "manifest.json"]
    assert sorted(man["files"]) == sorted(p.relative_to(dataset).as_posix() for p in files)
    for p in files:
        assert man["files"][p.relative_to(dataset).as_posix()] == sha256_file(p)
    for s in man["sources"]:
        assert s["labels_sha256"] == sha256_file(Path(s["labels"]))
    # shareable like any normally written tree (temp files start private, 0600)
    umask = os.umask(0)
    os.umask(umask)
    for p in [*files, dataset / "manifest.json"]:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_summary_format_names_counts_and_contact_sheet(labelled_scenes, tmp_path, capsys):
    s = export(tmp_path / "o", labelled_scenes, cache=False, progress_bars=True, workers=2)
    err = capsys.readouterr().err
    assert "crops: 100%" in err and "scene_a" in err  # overall and per-scene bars
    text = s.format()
    assert str(tmp_path / "o" / "contact_sheet.png") in text
    assert "total" in text and str(TRAIN * 4) in text
    assert s.contact_sheet.is_file()


# --- too few candidates ---------------------------------------------------------------------
def test_shortfall_stops_and_prints_available_vs_requested(labelled_scenes, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli_main(["export", "--format", "props", "--out", str(out), *map(str, labelled_scenes),
                   "--train-per-class", "40", "--test-per-class", "4", "--workers", "1",
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "available" in err and "requested" in err
    assert "mug                train          32         40   short" in err
    assert "labeller export: error: --train-per-class/--test-per-class: too few" in err
    assert not out.exists()
    with pytest.raises(ShortfallError):
        export(out, labelled_scenes, train_per_class=40, allow_short=False)


def test_allow_short_writes_what_exists_without_duplicates(labelled_scenes, tmp_path):
    out = tmp_path / "out"
    with pytest.warns(ExportWarning, match="mug train 32/40"):
        export(out, labelled_scenes, train_per_class=40, test_per_class=20, allow_short=True,
               test_scenes=["scene_c"], cache=False)
    x, y = course_loader(out, train=True)
    assert len(y) == 4 * 32  # every candidate of the two train scenes, once
    assert len(np.unique(x.reshape(len(x), -1), axis=0)) == len(x)
    man = json.loads((out / "manifest.json").read_text())
    short = {(s["class"], s["split"]): (s["available"], s["requested"]) for s in man["shortfall"]}
    assert short[("mug", "train")] == (32, 40) and short[("mug", "test")] == (16, 20)
    assert man["warnings"]


# --- output safety ----------------------------------------------------------------------
def test_existing_output_is_never_touched_without_overwrite(labelled_scenes, dataset, capsys):
    before = snapshot(dataset)
    rc = cli_main(["export", "--format", "props", "--out", str(dataset),
                   *map(str, labelled_scenes), "--quiet"])
    assert rc == 2
    assert f"labeller export: error: {dataset}: already exists (pass --overwrite" in \
        capsys.readouterr().err
    assert snapshot(dataset) == before


def test_overwrite_replaces_only_an_earlier_export(labelled_scenes, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    rc = cli_main(["export", "--format", "props", "--out", str(precious), "--overwrite",
                   *map(str, labelled_scenes), "--quiet"])
    assert rc == 2
    assert "holds no labeller export" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "out"
    export(out, labelled_scenes, cache=False, seed=1)
    first = snapshot(out)
    export(out, labelled_scenes, cache=False, seed=2, overwrite=True)
    assert snapshot(out) != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_cancelled_export_leaves_nothing(labelled_scenes, tmp_path):
    out = tmp_path / "out"
    calls = []

    def progress(done, total):
        calls.append(done)
        return done < 20  # cancel part way

    with pytest.raises(Cancelled):
        run(ExportConfig(format="props", out=out, scenes=list(labelled_scenes),
                         train_per_class=TRAIN, test_per_class=TEST, workers=1, cache=False,
                         progress_bars=False, allow_short=True), progress=progress)
    assert calls and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_crop_cache_is_reused_when_up_to_date(labelled_scenes, tmp_path):
    scenes = [copy_scene(s, tmp_path / s.name) for s in labelled_scenes]
    export(tmp_path / "o1", scenes)
    caches = [s / "labels" / CACHE_NAME for s in scenes]
    assert all(c.is_file() for c in caches)
    stamp = [c.stat().st_mtime_ns for c in caches]
    export(tmp_path / "o2", scenes)
    man = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert all(s["crop_cache_reused"] for s in man["sources"])
    assert [c.stat().st_mtime_ns for c in caches] == stamp
    assert sha256_file(tmp_path / "o1" / "crops.h5") == sha256_file(tmp_path / "o2" / "crops.h5")
    # new labels (here: a flag changed) -> that scene's cache is rebuilt, not trusted
    flag_labels(scenes[0] / "labels" / "labels.h5", [(0, 0)])
    export(tmp_path / "o3", scenes)
    man = json.loads((tmp_path / "o3" / "manifest.json").read_text())
    assert [s["crop_cache_reused"] for s in man["sources"]] == [False, True, True]
    # a cache whose crops were tampered with but key kept is trusted by design; a cache
    # with another key (say, other crop settings) is not
    with h5py.File(caches[1], "r+") as f:
        f.attrs["key"] = "{}"
    export(tmp_path / "o4", scenes)
    man = json.loads((tmp_path / "o4" / "manifest.json").read_text())
    assert [s["crop_cache_reused"] for s in man["sources"]] == [True, False, True]


# --- bad input ------------------------------------------------------------------------------
def _cli(args, capsys) -> tuple[int, str]:
    rc = cli_main(["export", "--quiet", "--workers", "1", *args])
    return rc, capsys.readouterr().err


def test_scene_without_labels_is_named(tmp_path, capsys, labelled_scenes):
    bare = copy_scene(labelled_scenes[0], tmp_path / "bare")
    shutil.rmtree(bare / "labels")
    rc, err = _cli(["--format", "props", "--out", str(tmp_path / "o"), str(bare)], capsys)
    assert rc == 2
    assert f"{bare / 'labels' / 'labels.h5'}: file not found: run `labeller propagate" in err


def test_unfinished_labels_are_refused(tmp_path, capsys, labelled_scenes):
    s = copy_scene(labelled_scenes[0], tmp_path / "s")
    with h5py.File(s / "labels" / "labels.h5", "r+") as f:
        f.attrs["complete"] = False
    rc, err = _cli(["--format", "props", "--out", str(tmp_path / "o"), str(s)], capsys)
    assert rc == 2 and "labels.h5: complete: the run that wrote this file did not finish" in err
    with pytest.raises(FormatError):
        export(tmp_path / "o", [s])


def test_bad_options_are_named(labelled_scenes, tmp_path, capsys):
    scenes = list(map(str, labelled_scenes))
    o = str(tmp_path / "o")
    cases = [
        (["--test-scenes", "nope"], "--test-scenes: 'nope' is not one of the scenes given"),
        (["--test-scenes", "scene_a", "scene_b", "scene_c"], "--test-scenes: holds out every scene"),
        (["--min-visib", "1.5"], "--min-visib: must be in [0, 1], got 1.5"),
        (["--train-per-class", "-1"], "--train-per-class: must be an integer >= 0, got -1"),
        (["--workers", "0"], "--workers: must be an integer >= 1, got 0"),
        (["--models", str(tmp_path / "none")], "--models: "),
    ]
    for extra, msg in cases:
        rc, err = _cli(["--format", "props", "--out", o, *scenes, *extra], capsys)
        assert rc == 2, extra
        assert f"labeller export: error: {msg}" in err, (extra, err)
    rc, err = _cli(["--format", "props", "--out", o, scenes[0], scenes[0]], capsys)
    assert rc == 2 and "scene given twice" in err
    rc, err = _cli(["--format", "props", "--out", str(labelled_scenes[0] / "export"),
                    *scenes], capsys)
    assert rc == 2 and "output folder overlaps the scene" in err
    rc, err = _cli(["--format", "props", "--out", str(labelled_scenes[0].parent), "--overwrite",
                    *scenes], capsys)
    assert rc == 2 and "output folder overlaps the scene" in err  # would replace the scenes
    assert all(s.is_dir() for s in labelled_scenes)
    rc, err = _cli(["--format", "props", "--out", o, str(tmp_path / "missing")], capsys)
    assert rc == 2 and "missing: not a directory" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(BadInput):
        export(tmp_path / "o", labelled_scenes, min_size=-3)
