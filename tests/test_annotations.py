"""`AnnotationDocument.from_dict`: one row per way an annotations.json can be malformed.

Each row starts from a valid document, breaks one thing, and names the message fragment
the FormatError must carry (it always starts with the file, then the field).
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from labeller.core.errors import FormatError
from labeller.formats.annotations import (
    ANNOTATIONS_FORMAT,
    ANNOTATIONS_VERSION,
    AnnotationDocument,
)

WHERE = "scene/annotations.json"


def _valid() -> dict:
    """A small valid document: two objects, one with keyframes."""
    return {
        "format": ANNOTATIONS_FORMAT,
        "version": ANNOTATIONS_VERSION,
        "classes": ["mug", "bowl"],
        "trajectory_sha256": "0" * 64,
        "objects": [
            {"id": 1, "class": "mug", "model": "models/mug.ply",
             "T_world_obj": np.eye(4).tolist(), "keyframes": [0, 12]},
            {"id": 2, "class": "bowl", "model": "models/bowl.ply",
             "T_world_obj": np.eye(4).tolist()},
        ],
    }


def _with(**top) -> dict:
    """The valid document with top-level keys replaced (a value of ... removes the key)."""
    d = _valid()
    for k, v in top.items():
        if v is ...:
            del d[k]
        else:
            d[k] = v
    return d


def _obj(i: int = 0, **fields) -> dict:
    """The valid document with fields of objects[i] replaced (... removes the field)."""
    d = _valid()
    o = d["objects"][i]
    for k, v in fields.items():
        k = "class" if k == "class_" else k
        if v is ...:
            del o[k]
        else:
            o[k] = v
    return d


def _pose(**entries) -> list:
    """The identity pose with entries (name 'rRC' = row R, column C) replaced."""
    T = np.eye(4)
    for name, v in entries.items():
        T[int(name[1]), int(name[2])] = v
    return T.tolist()


def _duplicated_id() -> dict:
    d = _valid()
    d["objects"][1]["id"] = 1
    return d


# (case, bad document, expected fragment of the message after "scene/annotations.json: ")
CASES = [
    ("not a dict", [1, 2], "must hold a JSON object"),
    ("wrong format", _with(format="labeller-labels"),
     "format: expected 'labeller-annotations', got 'labeller-labels'"),
    ("no format", _with(format=...), "format: expected 'labeller-annotations', got None"),
    ("version not an integer", _with(version="1"), "version: must be an integer, got '1'"),
    ("version a bool", _with(version=True), "version: must be an integer, got True"),
    ("version newer", _with(version=ANNOTATIONS_VERSION + 1),
     f"version: {ANNOTATIONS_VERSION + 1} is newer than this labeller reads "
     f"({ANNOTATIONS_VERSION}); upgrade labeller"),
    ("version below 1", _with(version=0), "version: unsupported version 0"),
    ("unknown top-level key", _with(notes="x"), "notes: unknown key"),
    ("several unknown top-level keys", _with(notes="x", author="y"),
     "author: unknown key (also notes)"),
    ("classes not a list", _with(classes="mug"), "classes: must be a list of non-empty class names"),
    ("empty class name", _with(classes=["mug", ""]),
     "classes: must be a list of non-empty class names"),
    ("duplicated class", _with(classes=["mug", "mug"]), "classes: class names must be unique"),
    ("sha256 too short", _with(trajectory_sha256="abc"),
     "trajectory_sha256: must be a 64-character hex sha256"),
    ("sha256 not a string", _with(trajectory_sha256=64),
     "trajectory_sha256: must be a 64-character hex sha256"),
    ("objects missing", _with(objects=...), "objects: must be a list"),
    ("objects not a list", _with(objects={"id": 1}), "objects: must be a list"),
    ("object not a dict", _with(objects=[["id", 1]]), "objects[0]: must be an object"),
    ("unknown object key", _obj(1, colour="red"), "objects[1].colour: unknown key"),
    ("object field missing", _obj(0, model=...), "objects[0].model: missing"),
    ("id out of range", _obj(0, id=0), "objects[0].id: must be an integer in 1..65535, got 0"),
    ("id not an integer", _obj(0, id="1"), "objects[0].id: must be an integer in 1..65535, got '1'"),
    ("duplicated id", _duplicated_id(), "objects[1].id: duplicated id 1"),
    ("class not in classes", _obj(0, class_="cup"),
     "objects[0].class: unknown class 'cup' (not in 'classes')"),
    ("empty model path", _obj(0, model=""), "objects[0].model: must be a non-empty path"),
    ("model not a string", _obj(0, model=3), "objects[0].model: must be a non-empty path"),
    ("pose not numbers", _obj(0, T_world_obj=[["a"] * 4] * 4),
     "objects[0].T_world_obj: must be a 4x4 list of numbers"),
    ("pose ragged", _obj(0, T_world_obj=[[1, 0, 0, 0], [0, 1, 0]]),
     "objects[0].T_world_obj: must be a 4x4 list of numbers"),
    ("pose not 4x4", _obj(0, T_world_obj=np.eye(3).tolist()),
     "objects[0].T_world_obj: pose must be 4x4, got shape (3, 3)"),
    ("pose not rigid", _obj(0, T_world_obj=_pose(r00=2.0)),
     "objects[0].T_world_obj: pose is not rigid"),
    ("keyframes not a list", _obj(0, keyframes=5),
     "objects[0].keyframes: must be a list of frame ids (integers >= 0)"),
    ("negative keyframe", _obj(0, keyframes=[3, -1]),
     "objects[0].keyframes: must be a list of frame ids (integers >= 0)"),
    ("bool keyframe", _obj(0, keyframes=[True]),
     "objects[0].keyframes: must be a list of frame ids (integers >= 0)"),
]


def test_the_valid_document_reads():
    doc = AnnotationDocument.from_dict(_valid(), WHERE)
    assert [o.id for o in doc.objects] == [1, 2] and doc.classes == ["mug", "bowl"]
    assert doc.objects[0].keyframes == [0, 12] and doc.objects[1].keyframes == []
    assert doc.to_dict() == _valid()


@pytest.mark.parametrize(("bad", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_from_dict_rejects(bad, fragment):
    before = copy.deepcopy(bad)
    with pytest.raises(FormatError, match="^" + re.escape(f"{WHERE}: {fragment}")) as info:
        AnnotationDocument.from_dict(bad, WHERE)
    assert info.value.path == WHERE
    assert bad == before  # the input is never modified
