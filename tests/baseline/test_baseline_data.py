"""PROPS reading, the restricted unpickler, preprocessing, and every bad-input case."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from labeller.baseline.data import (
    RestrictedUnpickler,
    find_props_root,
    load_pickle,
    load_props,
)
from labeller.baseline.preprocess import preprocess, stratified_subset
from labeller.cli.main import main as cli_main
from labeller.core.errors import BadInput, FormatError


def _pkl(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cli_error(capsys, argv) -> str:
    """Run `labeller baseline ...`; assert exit code 2 and a one-line error; return it."""
    rc = cli_main(["baseline", *map(str, argv), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("labeller baseline: error: ")
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------ reading
def test_reads_what_the_course_loader_reads(small_props):
    root = small_props / "Progress-Objects-Sample"
    ds = load_props(small_props)
    assert ds.root == root and find_props_root(root) == root
    assert ds.train_images.shape == (120, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (40, 32, 32, 3)
    assert np.bincount(ds.train_labels).tolist() == [12] * 10
    # the course's logic: plain pickle.load(encoding="latin1") of every non-test pickle
    meta = pickle.load(open(root / "meta.pkl", "rb"), encoding="latin1")
    data, labels = [], []
    for f in sorted(os.listdir(root)):
        if f == "meta.pkl" or f[:-4] in meta["test_split"]:
            continue
        entry = pickle.load(open(root / f, "rb"), encoding="latin1")
        data.append(entry["data"])
        labels.extend(entry["labels"])
    assert np.array_equal(np.vstack(data).reshape(-1, 32, 32, 3), ds.train_images)
    assert labels == ds.train_labels.tolist()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_numpy_pickles(tmp_path, protocol):
    obj = {"data": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "labels": [1, 2],
           "x": np.int64(3), "y": (1.5, "s", None), "z": np.float32(2.0)}
    _pkl(tmp_path / "a.pkl", obj, protocol)
    back = load_pickle(tmp_path / "a.pkl")
    assert np.array_equal(back["data"], obj["data"]) and back["labels"] == [1, 2]
    assert back["x"] == 3 and back["z"] == 2.0


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_restricted_unpickler_refuses_code(tmp_path):
    target = tmp_path / "pwned"
    _pkl(tmp_path / "evil.pkl", {"data": _Evil(str(target)), "labels": []})
    with pytest.raises(FormatError, match=r"evil\.pkl: refused: global '(posix|os|nt)\.makedirs' is not allowed"):
        load_pickle(tmp_path / "evil.pkl")
    assert not target.exists()  # never called
    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(open(tmp_path / "evil.pkl", "rb")).load()


def test_stratified_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 7)
    a = stratified_subset(labels, 30, np.random.default_rng(1))
    b = stratified_subset(labels, 30, np.random.default_rng(1))
    assert np.array_equal(a, b) and len(np.unique(a)) == 30
    assert np.bincount(labels[a], minlength=10).tolist() == [3] * 10


def test_preprocess_as_the_course_does(small_props):
    ds = load_props(small_props)
    pp = preprocess(ds, num_train=100, num_test=20, val_fraction=0.2, seed=3)
    assert pp.X_train.shape == (80, 3072) and pp.X_val.shape == (20, 3072) and pp.X_test.shape == (20, 3072)
    assert pp.X_train.dtype == torch.float32
    assert torch.bincount(pp.y_val, minlength=10).tolist() == [2] * 10
    # the mean is the per-channel mean of the training split, in [0, 1] units
    want = pp.raw_train.reshape(-1, 3).mean(0) / 255.0
    assert np.allclose(pp.mean, want, atol=1e-6)
    # channel-first flattening: feature c*1024 + y*32 + x is pixel (y, x) channel c
    img = pp.raw_test[0].astype(np.float64) / 255.0
    x = pp.X_test[0].double().numpy()
    for c, yy, xx in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert x[c * 1024 + yy * 32 + xx] == pytest.approx(img[yy, xx, c] - pp.mean[c], abs=1e-6)
    assert abs(float(pp.X_train.view(-1, 3, 1024).mean((0, 2)).abs().max())) < 1e-5  # zero mean per channel
    # no image is in both the training and the validation split
    tr = {a.tobytes() for a in pp.raw_train}
    assert not any(a.tobytes() in tr for a in pp.raw_val)


# ---------------------------------------------------------------------- bad input
def test_directory_without_meta(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="empty: no meta.pkl here or in Progress-Objects-Sample/"):
        load_props(tmp_path / "empty")
    err = _cli_error(capsys, [tmp_path / "empty"])
    assert f"{tmp_path / 'empty'}: no meta.pkl" in err
    err = _cli_error(capsys, [tmp_path / "missing"])
    assert "missing: directory not found" in err


def test_pickle_with_disallowed_types(small_props, capsys):
    bad = small_props / "Progress-Objects-Sample" / "mug_1.pkl"
    _pkl(bad, {"data": _Evil(str(small_props / "pwned")), "labels": [8]})
    err = _cli_error(capsys, [small_props])
    assert "mug_1.pkl: refused: global" in err and "only dicts, lists, numpy arrays and scalars" in err
    assert not (small_props / "pwned").exists()
    # an object-dtype array passes the unpickler (numpy builds it) but not the type check
    _pkl(bad, {"data": np.array([{"a": 1}], dtype=object), "labels": [8]})
    err = _cli_error(capsys, [small_props])
    assert "mug_1.pkl: the pickle['data'] is a numpy array of dtype object" in err
    # a set is not allowed either (protocol 4 builds it with an opcode, no global)
    _pkl(bad, {"data": {1, 2}, "labels": [8]}, protocol=4)
    err = _cli_error(capsys, [small_props])
    assert "mug_1.pkl: the pickle['data'] is a builtins.set" in err


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((3, 32, 32), np.uint8), r"'data' has shape \(3, 32, 32\) \(expected \(n, 32, 32, 3\)\)"),
        (np.zeros((3, 64, 64, 3), np.uint8), r"'data' has shape \(3, 64, 64, 3\)"),
        (np.zeros((3, 32, 32, 3), np.float32), r"'data' has dtype float32 \(expected uint8\)"),
        ([[0] * 3072] * 3, r"'data' is a list \(expected a numpy array\)"),
    ],
)
def test_data_of_wrong_shape_or_dtype(small_props, capsys, data, message):
    bad = small_props / "Progress-Objects-Sample" / "sugar_box_1.pkl"
    _pkl(bad, {"data": data, "labels": [2, 2, 2]})
    with pytest.raises(FormatError, match="sugar_box_1.pkl: " + message):
        load_props(small_props)
    err = _cli_error(capsys, [small_props])
    assert "sugar_box_1.pkl: 'data'" in err


@pytest.mark.parametrize(
    "labels, message",
    [
        ([2, 10, 2], r"label 10 at index 1 is out of range 0\.\.9"),
        ([2, 2, -1], r"label -1 at index 2 is out of range 0\.\.9"),
        ([2, 2], r"'labels' has 2 entries but 'data' has 3 images"),
        ([2, 2.5, 2], r"'labels' holds 2\.5 of type float \(expected int\)"),
    ],
)
def test_labels_out_of_range_or_malformed(small_props, capsys, labels, message):
    bad = small_props / "Progress-Objects-Sample" / "sugar_box_1.pkl"
    _pkl(bad, {"data": np.zeros((3, 32, 32, 3), np.uint8), "labels": labels})
    with pytest.raises(FormatError, match="sugar_box_1.pkl: " + message):
        load_props(small_props)
    err = _cli_error(capsys, [small_props])
    assert "sugar_box_1.pkl: " in err


def test_class_with_no_training_images(small_props, capsys):
    root = small_props / "Progress-Objects-Sample"
    (root / "gelatin_box_1.pkl").unlink()
    with pytest.raises(BadInput, match=r"no training images for class 'gelatin_box' \(label 6\)"):
        load_props(small_props)
    err = _cli_error(capsys, [small_props])
    assert f"{root}: no training images for class 'gelatin_box' (label 6)" in err


def test_test_split_naming_missing_files(small_props, capsys):
    root = small_props / "Progress-Objects-Sample"
    _pkl(root / "meta.pkl", {"test_split": ["mug_2", "mug_9"]})
    with pytest.raises(FormatError, match=r"meta.pkl: test_split names 'mug_9' but .*mug_9\.pkl does not exist"):
        load_props(root)
    err = _cli_error(capsys, [root])
    assert "meta.pkl: test_split names 'mug_9'" in err
    _pkl(root / "meta.pkl", {"split": []})
    err = _cli_error(capsys, [root])
    assert "meta.pkl: expected a dict with a 'test_split' list" in err


def test_empty_test_split(small_props, capsys):
    _pkl(small_props / "Progress-Objects-Sample" / "meta.pkl", {"test_split": []})
    err = _cli_error(capsys, [small_props])
    assert "meta.pkl: test_split selects no images" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_device_cuda_without_gpu(small_props, capsys):
    rc = cli_main(["baseline", str(small_props), "--device", "cuda", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("labeller baseline: error: --device: 'cuda' asked for but no CUDA GPU is available")


def test_bad_arguments(small_props, capsys):
    err = _cli_error(capsys, [small_props, "--num-train", "5000"])
    assert "--num-train: asks for 5000 images but" in err and "has 120 training images" in err
    err = _cli_error(capsys, [small_props, "--model", "resnet"])
    assert "--model: 'resnet'" in err
    err = _cli_error(capsys, [small_props, "--out", small_props / "Progress-Objects-Sample" / "rep"])
    assert "--out: " in err and "the course loader reads every file there" in err
    err = _cli_error(capsys, [small_props, "--k-choices", "1,x"])
    assert "--k-choices: '1,x'" in err
    err = _cli_error(capsys, [small_props, small_props])
    assert "DIR: give exactly one dataset folder" in err
    err = _cli_error(capsys, ["--predict", small_props / "nope.pt", small_props])
    assert "nope.pt: checkpoint not found" in err


def test_bad_knn_precision(small_props, capsys, monkeypatch):
    import labeller.baseline.precision as precision

    # a precision this torch cannot run exactly: refused before any work, in one line
    monkeypatch.setattr(precision, "int8_available", lambda device="cpu": False)
    err = _cli_error(capsys, [small_props, "--model", "knn", "--knn-precision", "int8"])
    assert err.endswith("--knn-precision: int8: this torch has no exact int8 GEMM on cpu "
                        "(torch._int_mm failed its self-test); use auto or float32")
    with pytest.raises(SystemExit) as e:  # not a precision at all: argparse's one-line usage error
        cli_main(["baseline", str(small_props), "--knn-precision", "int4"])
    assert e.value.code == 2
    assert "argument --knn-precision: invalid choice: 'int4'" in capsys.readouterr().err
