"""Reading pose estimates and turning their object ids into classes with models.

An estimates path is a BOP results CSV, one PoseCNN `.mat`, or a folder of `.mat`s.
Object ids are YCB-V (BOP ycbv) ids by default: the ten PROPS classes map to their
names (labeller.core.classes), the other YCB-V objects to their YCB names (`bowl`),
and are used when a model of them can be found (`--models`), skipped otherwise. An
`--obj-map` JSON replaces that table for other object sets. Every check that can fail
runs before anything is written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from labeller.core.classes import BY_YCBV_ID
from labeller.core.errors import FormatError, ModelError
from labeller.core.fileio import read_json
from labeller.formats.bop_results import YCBV_OBJECTS, PoseEstimate, read_bop_results
from labeller.formats.models import find_class_model
from labeller.formats.posecnn_results import POSECNN_SUFFIX, read_posecnn_dir, read_posecnn_mat


def read_estimates(path: str | os.PathLike, bop_scene_id: int | None = None) -> list[PoseEstimate]:
    """The estimates in `path` (CSV, `.mat` or a folder of `.mat`), T_cam_obj in metres.

    bop_scene_id: keep the CSV rows of this scene_id; None keeps all, which must then
    share one scene_id.
    """
    path = Path(path)
    if path.is_dir():
        return read_posecnn_dir(path)
    if not path.exists():
        raise FormatError(path, "file not found")
    if path.suffix == POSECNN_SUFFIX:
        return read_posecnn_mat(path)
    est = read_bop_results(path)
    ids = sorted({e.scene_id for e in est})
    if bop_scene_id is None:
        if len(ids) > 1:
            raise FormatError(path, f"rows of {len(ids)} BOP scenes ({', '.join(map(str, ids))}): "
                                    "pass --scene-id to pick this scene's")
        return est
    kept = [e for e in est if e.scene_id == bop_scene_id]
    if not kept:
        raise FormatError(path, f"no rows with scene_id {bop_scene_id} (the file has "
                                f"{', '.join(map(str, ids))})")
    return kept


def read_obj_map(path: str | os.PathLike) -> dict[int, str]:
    """An --obj-map JSON: {"obj_id": "class name", ...} -> {obj_id: class name}."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "file not found")
    raw = read_json(path)
    if not isinstance(raw, dict) or not raw:
        raise FormatError(path, 'must be a JSON object {"obj_id": "class name", ...}')
    out: dict[int, str] = {}
    for k, v in raw.items():
        try:
            oid = int(k)
        except ValueError:
            raise FormatError(path, f"key {k!r}: must be an integer object id") from None
        if not isinstance(v, str) or not v:
            raise FormatError(path, f"key {k!r}: must map to a class name, got {v!r}")
        out[oid] = v
    return out


def default_class_names() -> dict[int, tuple[str, ...]]:
    """YCB-V id -> the class names a model may be found under (PROPS name first)."""
    out: dict[int, tuple[str, ...]] = {}
    for oid, code_name in YCBV_OBJECTS.items():
        name = code_name.split("_", 1)[1]
        out[oid] = (BY_YCBV_ID[oid].name,) if oid in BY_YCBV_ID else (name, code_name)
    return out


@dataclass
class ClassModels:
    """Which class each object id is and where its model lives.

    class_of: obj_id -> class name (only ids with a model); model_of: class name ->
    (absolute mesh path, path as annotations.json stores it); skipped: class name ->
    how many estimates were dropped for want of a model.
    """

    class_of: dict[int, str] = field(default_factory=dict)
    model_of: dict[str, tuple[Path, str]] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)


def resolve_classes(estimates: list[PoseEstimate], obj_map: dict[int, str] | None,
                    scene_dir: Path, models_dir: Path | None,
                    obj_map_path: str | os.PathLike | None = None) -> ClassModels:
    """Map every estimate's obj_id to a class with a model.

    FormatError naming the estimate's file and row for an id the table (or --obj-map)
    does not know; estimates of a known class without a model are counted in
    `skipped`. ModelError when no estimate at all has a model.
    """
    table: dict[int, tuple[str, ...]] = (
        {k: (v,) for k, v in obj_map.items()} if obj_map is not None else default_class_names())
    out = ClassModels()
    tried: dict[int, str | None] = {}
    for e in estimates:
        if e.obj_id not in table:
            hint = (f"not in {obj_map_path}" if obj_map is not None
                    else f"YCB-V ids are {min(table)}..{max(table)}; pass --obj-map JSON for other sets")
            raise FormatError(e.where, f"unknown obj_id {e.obj_id} ({hint})")
        if e.obj_id not in tried:
            tried[e.obj_id] = None
            for name in table[e.obj_id]:
                try:
                    path, stored = find_class_model(name, scene_dir, models_dir)
                except ModelError:
                    continue
                tried[e.obj_id] = table[e.obj_id][0]
                out.class_of[e.obj_id] = table[e.obj_id][0]
                out.model_of[table[e.obj_id][0]] = (path, stored)
                break
        if tried[e.obj_id] is None:
            out.skipped[table[e.obj_id][0]] += 1
    if not out.class_of:
        names = ", ".join(sorted(out.skipped))
        raise ModelError(scene_dir, f"no model for any estimated class ({names}); pass --models DIR")
    return out
