"""The annotation document (`annotations.json`): a typed model and its one codec.

Format (docs/design.md)::

    {"format": "labeller-annotations", "version": 1,
     "classes": [...], "trajectory_sha256": "...",            # the latter optional
     "objects": [{"id": 1, "class": "mug", "model": "models/mug.ply",
                  "T_world_obj": [[...4x4...]], "keyframes": [12, 140]}]}

`T_world_obj` is in the world frame of the scene's `trajectory.txt` (metres). Unknown
keys and newer versions are rejected with a message naming the file and the field.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.errors import FormatError
from labeller.core.fileio import atomic_write_text
from labeller.core.poses import pose_problem

ANNOTATIONS_FORMAT = "labeller-annotations"
ANNOTATIONS_VERSION = 1
_TOP_KEYS = {"format", "version", "classes", "objects", "trajectory_sha256"}
_OBJECT_KEYS = {"id", "class", "model", "T_world_obj", "keyframes"}
_OBJECT_REQUIRED = ("id", "class", "model", "T_world_obj")


@dataclass
class ObjectAnnotation:
    """One placed object: instance `id` (>= 1), class name, model path, T_world_obj (4x4)."""

    id: int
    class_name: str
    model: str
    T_world_obj: np.ndarray
    keyframes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {
            "id": int(self.id),
            "class": self.class_name,
            "model": self.model,
            "T_world_obj": np.asarray(self.T_world_obj, dtype=np.float64).tolist(),
        }
        if self.keyframes:
            d["keyframes"] = sorted(int(k) for k in self.keyframes)
        return d

    def copy(self) -> ObjectAnnotation:
        return ObjectAnnotation(self.id, self.class_name, self.model,
                                np.array(self.T_world_obj, dtype=np.float64), list(self.keyframes))


@dataclass
class AnnotationDocument:
    """All objects of one scene. `classes` is the label order (default: PROPS order)."""

    objects: list[ObjectAnnotation] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: list(PROPS_CLASS_NAMES))
    trajectory_sha256: str | None = None

    def object(self, obj_id: int) -> ObjectAnnotation:
        for o in self.objects:
            if o.id == obj_id:
                return o
        raise KeyError(obj_id)

    def next_id(self) -> int:
        return max((o.id for o in self.objects), default=0) + 1

    def copy(self) -> AnnotationDocument:
        return AnnotationDocument([o.copy() for o in self.objects], list(self.classes),
                                  self.trajectory_sha256)

    def to_dict(self) -> dict:
        d: dict = {"format": ANNOTATIONS_FORMAT, "version": ANNOTATIONS_VERSION,
                   "classes": list(self.classes)}
        if self.trajectory_sha256:
            d["trajectory_sha256"] = self.trajectory_sha256
        d["objects"] = [o.to_dict() for o in self.objects]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file, then rename): a failed write leaves the old file."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls, path: str | os.PathLike) -> AnnotationDocument:
        path = Path(path)
        if not path.is_file():
            raise FormatError(path, "file not found")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(path, f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
        except RecursionError:
            # json's decoder recurses once per nesting level: a crafted file thousands of
            # levels deep exhausts the stack. No annotations.json is nested beyond four.
            raise FormatError(path, "not valid annotations: JSON nested too deeply") from None
        return cls.from_dict(d, path)

    @classmethod
    def from_dict(cls, d, where: str | os.PathLike = "annotations.json") -> AnnotationDocument:
        def bad(field_: str, problem: str) -> FormatError:
            return FormatError(where, f"{field_}: {problem}")

        if not isinstance(d, dict):
            raise FormatError(where, "must hold a JSON object")
        if d.get("format") != ANNOTATIONS_FORMAT:
            raise bad("format", f"expected '{ANNOTATIONS_FORMAT}', got {d.get('format')!r}")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad("version", f"must be an integer, got {version!r}")
        if version > ANNOTATIONS_VERSION:
            raise bad("version", f"{version} is newer than this labeller reads "
                                 f"({ANNOTATIONS_VERSION}); upgrade labeller")
        if version < 1:
            raise bad("version", f"unsupported version {version}")
        unknown = sorted(set(d) - _TOP_KEYS)
        if unknown:
            raise bad(unknown[0], "unknown key" + (f" (also {', '.join(unknown[1:])})" if len(unknown) > 1 else ""))
        classes = d.get("classes", list(PROPS_CLASS_NAMES))
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise bad("classes", "must be a list of non-empty class names")
        if len(set(classes)) != len(classes):
            raise bad("classes", "class names must be unique")
        sha = d.get("trajectory_sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise bad("trajectory_sha256", "must be a 64-character hex sha256")
        objs_raw = d.get("objects")
        if not isinstance(objs_raw, list):
            raise bad("objects", "must be a list")
        objects: list[ObjectAnnotation] = []
        seen: set[int] = set()
        for i, o in enumerate(objs_raw):
            f = f"objects[{i}]"
            if not isinstance(o, dict):
                raise bad(f, "must be an object")
            unknown = sorted(set(o) - _OBJECT_KEYS)
            if unknown:
                raise bad(f"{f}.{unknown[0]}", "unknown key")
            for k in _OBJECT_REQUIRED:
                if k not in o:
                    raise bad(f"{f}.{k}", "missing")
            oid = o["id"]
            if not isinstance(oid, int) or isinstance(oid, bool) or not 1 <= oid <= 65535:
                raise bad(f"{f}.id", f"must be an integer in 1..65535, got {oid!r}")
            if oid in seen:
                raise bad(f"{f}.id", f"duplicated id {oid}")
            seen.add(oid)
            cname = o["class"]
            if not isinstance(cname, str) or cname not in classes:
                raise bad(f"{f}.class", f"unknown class {cname!r} (not in 'classes')")
            if not isinstance(o["model"], str) or not o["model"]:
                raise bad(f"{f}.model", "must be a non-empty path")
            try:
                T = np.array(o["T_world_obj"], dtype=np.float64)
            except (TypeError, ValueError):
                raise bad(f"{f}.T_world_obj", "must be a 4x4 list of numbers") from None
            if (p := pose_problem(T)) is not None:
                raise bad(f"{f}.T_world_obj", p)
            kf = o.get("keyframes", [])
            if not isinstance(kf, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in kf):
                raise bad(f"{f}.keyframes", "must be a list of frame ids (integers >= 0)")
            objects.append(ObjectAnnotation(oid, cname, o["model"], T, list(kf)))
        return cls(objects, list(classes), sha)


def perturbed(doc: AnnotationDocument, trans_m: float, rot_deg: float, seed: int = 0) -> AnnotationDocument:
    """A copy with every object moved by exactly `trans_m` in a random direction and
    turned by exactly `rot_deg` about a random axis through the object origin."""
    from labeller.core.poses import axis_angle_to_matrix

    rng = np.random.default_rng(seed)
    out = copy.deepcopy(doc)
    for o in out.objects:
        d = rng.normal(size=3)
        a = rng.normal(size=3)
        T = np.array(o.T_world_obj)
        T[:3, 3] += trans_m * d / np.linalg.norm(d)
        T[:3, :3] = T[:3, :3] @ axis_angle_to_matrix(a, np.radians(rot_deg))
        o.T_world_obj = T
    return out
