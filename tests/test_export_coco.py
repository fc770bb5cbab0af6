# ruff: noqa: F811 - the session fixtures are imported from test_export_props_readers
"""`labeller export --format coco`, read by pycocotools (the COCO API): every
annotation's `annToMask` equals the labels' visible mask, boxes are its `toBbox`, areas
its pixel count, and COCOeval scores the ground truth against itself at AP 1.0.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import FormatError
from labeller.export import ExportWarning
from labeller.formats.coco import mask_bbox, mask_to_rle, read_instances, rle_to_mask
from labeller.formats.labels import Labels
from tests.test_export_props_readers import (  # noqa: F401
    course_pose_scenes,
    export,
    ten_class_scenes,
)

pycocotools = pytest.importorskip("pycocotools", reason="pycocotools (the dev extra) reads COCO")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

# pycocotools' decode predates NumPy 2's copy keyword; it warns, the result is right
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def coco_export(ten_class_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coco") / "coco"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)
        export("coco", out, ten_class_scenes, test_scenes=["all_1"])
    return out


def load_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        return COCO(str(path))


def test_pycocotools_masks_boxes_and_areas_equal_the_labels(coco_export, ten_class_scenes):
    man = json.loads((coco_export / "manifest.json").read_text())
    for split, scene in (("train", ten_class_scenes[0]), ("val", ten_class_scenes[1])):
        coco = load_coco(coco_export / "annotations" / f"instances_{split}.json")
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(PROPS_CLASS_NAMES)
        assert coco.getCatIds() == list(range(1, 11))
        assert sorted(coco.getImgIds()) == list(range(1, 7))
        n = 0
        with Labels.open(scene / "labels" / "labels.h5") as lab:
            cls_of = {o.id: o.class_name for o in lab.objects}
            for img in coco.loadImgs(coco.getImgIds()):
                name, t = man["image_sources"][split][str(img["id"])]
                assert name == scene.name and (img["width"], img["height"]) == (320, 240)
                assert ((coco_export / split / img["file_name"]).read_bytes()
                        == (scene / "rgb" / f"{t:06d}.png").read_bytes())
                mv = lab.mask_visib(t)
                anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
                assert len(anns) == len(set(np.unique(mv)) - {0})
                for a in anns:
                    m = coco.annToMask(a).astype(bool)
                    oid = next(i for i, c in cls_of.items() if c == PROPS_CLASS_NAMES[a["category_id"] - 1])
                    np.testing.assert_array_equal(m, mv == oid)
                    assert a["area"] == m.sum() == mask_utils.area(coco.annToRLE(a))
                    assert a["bbox"] == mask_utils.toBbox(coco.annToRLE(a)).tolist()
                    assert a["iscrowd"] == 0
                    n += 1
        assert n == man["counts"][split]["annotations"] > 0


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoeval_scores_the_ground_truth_at_ap_one(coco_export, iou_type):
    gt = load_coco(coco_export / "annotations" / "instances_train.json")
    dets = [{**a, "score": 1.0} for a in gt.loadAnns(gt.getAnnIds())]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_rle_codec_agrees_with_pycocotools():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        m = rng.random((h, w)) < rng.random()
        rle = mask_to_rle(m)
        np.testing.assert_array_equal(rle_to_mask(rle), m)
        ours = mask_utils.frPyObjects(rle, h, w)
        np.testing.assert_array_equal(mask_utils.decode(ours).astype(bool), m)
        theirs = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"]
        if m.any():
            assert mask_bbox(m) == mask_utils.toBbox(theirs).tolist()


def test_read_instances_names_bad_references(tmp_path):
    p = tmp_path / "i.json"
    p.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1}],
                             "annotations": [{"id": 5, "image_id": 2, "category_id": 1}]}))
    with pytest.raises(FormatError, match="annotation 5: image_id 2 is not an image"):
        read_instances(p)
    p.write_text(json.dumps({"images": [], "annotations": {}}))
    with pytest.raises(FormatError, match="'annotations' is missing or not a list"):
        read_instances(p)


def test_cli_writes_coco_and_names_its_files(ten_class_scenes, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["export", "--format", "coco", "--out", str(out), *map(str, ten_class_scenes),
                   "--test-scenes", "all_0", "--workers", "2", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "wrote coco dataset" in text
    assert "val:   6 images, " in text and str(out / "annotations" / "instances_val.json") in text
    d = read_instances(out / "annotations" / "instances_val.json")
    assert {im["file_name"] for im in d["images"]} == {p.name for p in (out / "val").iterdir()}
