# ruff: noqa: F811 - the session fixtures are imported from test_export_props_readers
"""`labeller export --format props-detection`, read by the DeepRob course's own
`PROPSDetectionDataset` (../shared/readers/deeprob, unmodified; torchvision stands in
through tests/readers_deeprob.py), and compared with the labels' visible masks.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import FormatError
from labeller.export import ExportWarning
from labeller.formats.labels import Labels
from labeller.formats.props import MD5_FILE, read_md5_list
from labeller.formats.props_detection import (
    DATASET_DIR,
    image_record,
    read_split,
    split_json,
    xyxy_of_bbox,
)
from tests import readers_deeprob
from tests.test_export_props_readers import (  # noqa: F401
    course_pose_scenes,
    export,
    ten_class_scenes,
)


@pytest.fixture(scope="module")
def detection_export(course_pose_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("det") / "det"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # 640x480, PROPS classes only
        export("props-detection", out, course_pose_scenes, test_scenes=["pose_1"])
    return out


def expected_boxes(out: Path, split: str, name: str, scenes: list[Path]) -> list[tuple]:
    """(x1, y1, x2, y2, class index) of every visible object, from the labels' mask."""
    man = json.loads((out / "manifest.json").read_text())
    scene_name, t = man["image_sources"][split][name]
    scene = next(s for s in scenes if s.name == scene_name)
    rows = []
    with Labels.open(scene / "labels" / "labels.h5") as lab:
        mv = lab.mask_visib(t)
        for o in lab.objects:
            ys, xs = np.nonzero(mv == o.id)
            if len(xs):
                rows.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1,
                             PROPS_CLASS_NAMES.index(o.class_name)))
    return rows


def test_course_detection_loader_reads_the_boxes_of_the_masks(detection_export,
                                                              course_pose_scenes, monkeypatch):
    readers_deeprob.install(monkeypatch)
    cls = readers_deeprob.load("PROPSDetectionDataset").PROPSDetectionDataset
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        cls(root=str(detection_export), split="train")  # the published md5 list
    monkeypatch.setattr(cls, "object_list", read_md5_list(detection_export / MD5_FILE))
    size = 480  # shorter edge kept: the loader only centre-crops 80 px off each side
    for split in ("train", "val"):
        ds = cls(root=str(detection_export), split=split, image_size=size)
        assert len(ds) == 3
        for i in range(len(ds)):
            path, image, gt = ds[i]
            assert tuple(image.shape) == (3, size, size)
            want = expected_boxes(detection_export, split, Path(path).name, course_pose_scenes)
            assert len(want) == 4
            got = gt.numpy()
            for row, (x1, y1, x2, y2, c) in zip(got, want, strict=False):
                box = [max(x1 - 80, 0), y1, min(x2 - 80, size), y2]
                if box[0] > box[2]:  # cropped away: the loader marks it -1
                    np.testing.assert_array_equal(row, -1)
                    continue
                np.testing.assert_allclose(row, [*box, c], atol=1e-3)
            np.testing.assert_array_equal(got[len(want):], -1)  # padded to 10


def test_layout_split_by_whole_scenes_and_images_copied(detection_export, course_pose_scenes):
    root = detection_export / DATASET_DIR
    man = json.loads((detection_export / "manifest.json").read_text())
    for split, scene in (("train", "pose_0"), ("val", "pose_1")):
        recs = read_split(root / f"{split}.json")
        assert [p for p, _ in recs] == [f"PROPS-Detection/{split}/rgb/{i:06d}.png" for i in range(3)]
        assert {v[0] for v in man["image_sources"][split].values()} == {scene}
        src = next(s for s in course_pose_scenes if s.name == scene)
        for p, boxes in recs:
            name, t = man["image_sources"][split][Path(p).name]
            assert (root / p).read_bytes() == (src / "rgb" / f"{t:06d}.png").read_bytes()
            assert sorted(n for _, n in boxes) == sorted(
                ["mug", "mug", "cracker_box", "tomato_soup_can"] if split == "train"
                else ["sugar_box", "mug", "mug", "large_marker"])
    assert [n for n, _ in read_md5_list(detection_export / MD5_FILE)] == ["train.json", "val.json"]
    assert man["counts"]["train"] == {"images": 3, "boxes": 12}


def test_other_image_size_warns_and_one_scene_has_empty_val(ten_class_scenes, tmp_path):
    with pytest.warns(ExportWarning) as rec:
        s = export("props-detection", tmp_path / "d", ten_class_scenes[:1])
    msgs = [str(w.message) for w in rec]
    assert any("images of 320x240 are written as they are" in m for m in msgs)
    assert any("one scene only: val.json is empty" in m for m in msgs)
    assert read_split(tmp_path / "d" / DATASET_DIR / "val.json") == []
    assert s.counts["train"]["images"] == 6


def test_cli_writes_props_detection(course_pose_scenes, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["export", "--format", "props-detection", "--out", str(out),
                   *map(str, course_pose_scenes), "--test-scenes", "pose_1", "--workers", "2",
                   "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "wrote props-detection dataset" in text and "train: 3 images, 12 boxes" in text


def test_codec_round_trip_and_bad_split_files(tmp_path):
    assert xyxy_of_bbox([3, 4, 10, 20]) == [3.0, 4.0, 13.0, 24.0]
    recs = [image_record("PROPS-Detection/train/rgb/000000.png", [([1, 2, 3, 4], "mug")])]
    p = tmp_path / "train.json"
    p.write_text(split_json(recs))
    assert '"xyxy":[1.0,2.0,3.0,4.0]' in p.read_text()  # floats: the loader divides in place
    assert read_split(p) == [("PROPS-Detection/train/rgb/000000.png", [([1, 2, 3, 4], "mug")])]
    bad = {
        "[{}]": "entry 0: expected [image_path",
        '[["a.png", []]]': "entry 0 (a.png): 0 boxes (the loader needs 1 to 10)",
        '[["a.png", [{"xyxy": [1, 2, 3, 4], "name": "spoon"}]]]': "not a PROPS class",
        "{}": "expected a list of [image_path, boxes]",
        "[": "not valid JSON",
    }
    for text, msg in bad.items():
        p.write_text(text)
        with pytest.raises(FormatError, match=re.escape(msg)):
            read_split(p)
