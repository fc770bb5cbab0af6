"""`labeller baseline` end to end: report files, checkpoint, --predict, real images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labeller.baseline import BaselineConfig, format_table, run
from labeller.baseline.report import load_checkpoint, predict_with_checkpoint
from labeller.cli.main import main as cli_main
from labeller.core.classes import PROPS_CLASS_NAMES
from tests.baseline.conftest import make_props

# ../shared/data beside the repository
PROPS_SAMPLES = (Path(__file__).resolve().parents[3] / "shared" / "data" / "props_samples"
                 / "props_samples_32x32.npz")

FAST = dict(device="cpu", progress=False, search_budget=3, search_iters=60, num_iters=150, batch_size=50)


def _check_model_entry(r, C=10):
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert 0.0 <= r[key] <= 1.0
    assert list(r["per_class_accuracy"]) == list(PROPS_CLASS_NAMES)
    conf = np.array(r["confusion"])
    assert conf.shape == (C, C)
    # rows are true classes: the diagonal over the row sums is the per-class accuracy
    for i, name in enumerate(PROPS_CLASS_NAMES):
        assert r["per_class_accuracy"][name] == pytest.approx(conf[i, i] / conf[i].sum())
    assert r["test_accuracy"] == pytest.approx(np.trace(conf) / conf.sum())
    assert r["hyperparameters"]


def test_run_writes_the_report(small_props, tmp_path):
    out = tmp_path / "rep"
    report = run(BaselineConfig(data_dir=small_props, model="all", out=out, **FAST))
    on_disk = json.loads((out / "report.json").read_text())
    assert set(on_disk) == {"knn", "svm", "softmax", "config"}
    assert on_disk == json.loads(json.dumps(report))
    for name in ("knn", "svm", "softmax"):
        _check_model_entry(report[name])
        assert (out / f"confusion_{name}.png").stat().st_size > 1000
    assert report["knn"]["hyperparameters"]["k"] in (1, 3, 5, 8, 10, 12, 15, 20, 50)
    assert set(report["knn"]["cross_validation"]["accuracy_by_k"]) <= {"1", "3", "5", "8", "10", "12", "15", "20", "50"}
    for name in ("svm", "softmax"):
        hp = report[name]["hyperparameters"]
        assert hp["optimizer"] == "sgd" and hp["lr"] > 0 and hp["reg"] >= 0
        assert len(report[name]["search"]["trials"]) == 3
        assert (out / f"loss_{name}.png").is_file() and not (out / f"optimizers_{name}.png").exists()
        # the synthetic classes are easy: every model learns them
        assert report[name]["test_accuracy"] >= 0.8
    assert report["knn"]["test_accuracy"] >= 0.8
    cfg = report["config"]
    assert cfg["dataset"]["train"] == 96 and cfg["dataset"]["val"] == 24 and cfg["dataset"]["test"] == 40
    table = format_table(report)
    assert table.splitlines()[1].split()[:4] == ["model", "train", "val", "test"]
    assert [ln.split()[0] for ln in table.splitlines()[2:5]] == ["knn", "svm", "softmax"]

    # the checkpoint is a weights-only torch file that reproduces the model's predictions
    ck = load_checkpoint(out / "softmax.pt")
    assert ck["class_names"] == list(PROPS_CLASS_NAMES) and ck["W"].shape == (3073, 10)
    assert np.allclose(ck["mean"].numpy(), cfg["preprocessing"]["mean_rgb"])
    torch.load(out / "softmax.pt", weights_only=True)  # loads without unpickling any class
    from labeller.baseline.data import load_props

    ds = load_props(small_props)
    pred, _ = predict_with_checkpoint(ck, ds.test_images)
    assert (pred == ds.test_labels).mean() == pytest.approx(report["softmax"]["test_accuracy"])


def test_compare_optimizers(small_props, tmp_path):
    out = tmp_path / "rep"
    fast = {**FAST, "num_iters": 40}
    report = run(BaselineConfig(data_dir=small_props, model="softmax", out=out, compare_optimizers=True,
                                lr=0.01, reg=1e-4, **fast))
    opts = report["softmax"]["optimizers"]
    assert set(opts) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs"}
    assert all(o["final_loss"] < np.log(10) for o in opts.values())  # each one learned something
    # L-BFGS: full batch, as many iterations as the minibatch runs make passes (40 x 50 / 96
    # = 20.8 -> 21), each reading the whole training set at least once
    assert opts["lbfgs"]["full_batch"] and opts["lbfgs"]["iterations"] == 21 and opts["lbfgs"]["passes"] >= 21
    assert opts["sgd"]["passes"] == pytest.approx(40 * 50 / 96)
    assert (out / "optimizers_softmax.png").stat().st_size > 1000
    assert report["softmax"]["files"]["optimizers"] == "optimizers_softmax.png"


def test_cli_default_out_and_predict(small_props, capsys, tmp_path):
    sample = small_props / "Progress-Objects-Sample"
    rc = cli_main(["baseline", str(sample), "--model", "svm", "--device", "cpu", "--no-progress",
                   "--lr", "0.01", "--reg", "1e-4", "--num-iters", "100", "--batch-size", "50"])
    out = capsys.readouterr().out
    assert rc == 0
    rep = small_props / "baseline"  # beside Progress-Objects-Sample, never inside it
    assert (rep / "report.json").is_file() and (rep / "svm.pt").is_file()
    assert sorted(p.name for p in sample.iterdir() if not p.name.endswith(".pkl")) == []
    assert "svm" in out and "lr=1.00e-02" in out and "search" not in json.loads((rep / "report.json").read_text())["svm"]

    from labeller.core.fileio import write_image

    img = np.zeros((64, 48, 3), np.uint8)
    img[:] = (200, 40, 40)
    write_image(tmp_path / "crop.png", img)
    rc = cli_main(["baseline", "--predict", str(rep / "svm.pt"), str(tmp_path / "crop.png"), str(small_props),
                   "--device", "cpu", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert res[0]["class"] in PROPS_CLASS_NAMES and res[0]["path"].endswith("crop.png")
    report = json.loads((rep / "report.json").read_text())
    assert res[1]["accuracy"] == pytest.approx(report["svm"]["test_accuracy"]) and res[1]["n"] == 40


def test_num_train_num_test_subsets(small_props, tmp_path):
    report = run(BaselineConfig(data_dir=small_props, model="knn", out=tmp_path / "r", num_train=50, num_test=20,
                                k=3, **FAST))
    ds = report["config"]["dataset"]
    assert (ds["train"], ds["val"], ds["test"]) == (40, 10, 20)
    assert ds["train_per_class"] == [4] * 10 and ds["test_per_class"] == [2] * 10
    assert report["knn"]["hyperparameters"] == {"k": 3} and "cross_validation" not in report["knn"]


def test_real_props_crops(tmp_path):
    """110 real PROPS crops (11 per class): 8 per class in scene 1 (train), 3 in scene 2
    (test). Raw-pixel 1-NN leave-one-out on them is about 0.48; chance is 0.10."""
    if not PROPS_SAMPLES.is_file():
        pytest.skip(f"real PROPS crops not found at {PROPS_SAMPLES}")
    from labeller.baseline.data import write_props

    d = np.load(PROPS_SAMPLES)
    X, y = d["data"], d["labels"]
    assert list(d["class_names"]) == list(PROPS_CLASS_NAMES)
    scenes, test = {}, []
    for c, name in enumerate(PROPS_CLASS_NAMES):
        idx = np.flatnonzero(y == c)
        scenes[f"{name}_1"] = (X[idx[:8]], y[idx[:8]])
        scenes[f"{name}_2"] = (X[idx[8:]], y[idx[8:]])
        test.append(f"{name}_2")
    write_props(tmp_path / "real", scenes, test)
    report = run(BaselineConfig(data_dir=tmp_path / "real", model="all", out=tmp_path / "rep", device="cpu",
                                progress=False, search_budget=4, search_iters=200, num_iters=500))
    accs = {m: report[m]["test_accuracy"] for m in ("knn", "svm", "softmax")}
    print(format_table(report))
    # 30 test images: chance would score 3 of them; every model must clearly beat that
    for m, acc in accs.items():
        assert acc >= 0.35, (m, accs)


@pytest.mark.parametrize("precision", ["float64", "float32", "int8", "bfloat16"])
def test_every_knn_precision_gives_the_same_report(small_props, tmp_path, precision):
    from labeller.baseline.knn_int8 import int8_available

    if precision == "int8" and not int8_available():
        pytest.skip("no exact int8 GEMM here")
    a = run(BaselineConfig(data_dir=small_props, model="knn", out=tmp_path / "a", **FAST))["knn"]
    b = run(BaselineConfig(data_dir=small_props, model="knn", out=tmp_path / "b", knn_precision=precision,
                           **FAST))["knn"]
    assert a["precision_reason"].startswith("auto: 8-bit pixels; fastest exact path in a timed probe")
    assert (b["precision"], b["precision_reason"]) == (precision, "given by --knn-precision")
    for key in ("hyperparameters", "train_accuracy", "val_accuracy", "test_accuracy", "confusion", "cross_validation"):
        assert a[key] == b[key], key


def test_scenes_group_the_folds_and_the_validation_split(tmp_path):
    """Three training scenes per class: CV folds and the validation split hold out whole
    pickles, and the report says so."""
    from labeller.baseline.data import load_props
    from labeller.baseline.preprocess import preprocess

    root = make_props(tmp_path / "props", train_per_class=18, test_per_class=3, scenes_per_class=4)
    pp = preprocess(load_props(root), val_fraction=0.3, seed=1)
    assert pp.validation_split == "grouped by scene (whole class pickles held out per class)"
    assert pp.group_train is not None
    ds = load_props(root)
    val_sources = set()
    for img in pp.raw_val:  # every validation image's pickle is absent from the training split
        val_sources.add(int(ds.train_source[np.flatnonzero((ds.train_images == img).all((1, 2, 3)))[0]]))
    assert not val_sources & set(pp.group_train.tolist())
    assert np.bincount(pp.y_val.numpy(), minlength=10).tolist() == [6] * 10  # one 6-image pickle per class
    report = run(BaselineConfig(data_dir=root, model="knn", out=tmp_path / "r", folds=2, **FAST))
    cv = report["knn"]["cross_validation"]
    assert cv["grouping"].startswith("grouped by scene: 20 scenes in 2 folds")
    assert report["config"]["dataset"]["validation_split"] == pp.validation_split
    last = format_table(report).splitlines()[-1]  # the table says which arithmetic and folds
    assert last == f"(kNN distances: {report['knn']['precision']}; CV folds: grouped by scene)"
    # one training pickle per class: per-image splits, and the reason is given
    small = run(BaselineConfig(data_dir=make_props(tmp_path / "p1"), model="knn", out=tmp_path / "r1", **FAST))
    assert small["knn"]["cross_validation"]["grouping"].startswith("random folds (10 class(es) have a single")
    assert small["config"]["dataset"]["validation_split"].startswith("per image, stratified (every class")


def test_lbfgs_as_the_optimizer(small_props, tmp_path):
    report = run(BaselineConfig(data_dir=small_props, model="softmax", out=tmp_path / "r", optimizer="lbfgs",
                                **{**FAST, "search_budget": 2, "search_iters": 10, "num_iters": 20}))
    sm = report["softmax"]
    assert sm["hyperparameters"]["optimizer"] == "lbfgs" and 0.1 <= sm["hyperparameters"]["lr"] <= 1.0
    assert sm["test_accuracy"] >= 0.8 and sm["final_loss"] < 0.5 * sm["initial_loss"]
