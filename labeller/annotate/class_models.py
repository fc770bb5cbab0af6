"""The classes a user can add to a scene: each with a model file (Qt-free).

`available_classes(scene_dir, models_dir)` lists them from the scene's `models/` folder
and from a `--models` library (e.g. the YCB meshes, folders like `025_mug` offered as
class `mug`); `ClassModel` says where each mesh is and how annotations.json stores it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labeller.core.errors import ModelError
from labeller.formats.models import MESH_SUFFIXES, find_class_model, list_library_classes


@dataclass(frozen=True)
class ClassModel:
    """A class the user can add: its mesh file and the path stored in annotations.json."""

    name: str
    path: Path
    stored: str
    source: str  # "scene" or "library"


def available_classes(scene_dir: str | os.PathLike | None,
                      models_dir: str | os.PathLike | None) -> dict[str, ClassModel]:
    """Every class with a model: the scene's `models/` first, then the `--models` library.

    A scene's `models/<class>/...` folder or `models/<class>.ply` file, and a library
    folder like `025_mug` (offered as `mug`), each give one class.
    """
    out: dict[str, ClassModel] = {}
    if scene_dir is not None:
        root = Path(scene_dir) / "models"
        if root.is_dir():
            for d in sorted(root.iterdir()):
                if d.is_file() and d.suffix.lower() not in MESH_SUFFIXES:
                    continue
                name = d.stem if d.is_file() else d.name
                try:
                    path, stored = find_class_model(name, scene_dir, None)
                except ModelError:
                    continue
                out[name] = ClassModel(name, path, stored, "scene")
    if models_dir is not None:
        for name in list_library_classes(models_dir):
            if name in out:
                continue
            try:
                path, stored = find_class_model(name, None, models_dir)
            except ModelError:
                continue
            out[name] = ClassModel(name, path, stored, "library")
    return out


__all__ = ["ClassModel", "available_classes"]
