"""The object models an export carries: one model file per class (looked up like
`labeller propagate` does), its mesh arrays, and the YCB attribution and licences.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.classes import BY_NAME
from labeller.core.fileio import sha256_file
from labeller.export.config import emit_warning
from labeller.export.sources import SceneSource


@dataclass
class ClassModel:
    """The model file a class is exported with (the first scene's), metres."""

    class_name: str
    path: Path
    sha256: str
    scenes: list[str]


def collect_models(sources: Sequence[SceneSource], models_dir: Path | None,
                   warns: list[str]) -> dict[str, ClassModel]:
    """class name -> its model, looked up like propagate does (scene, then --models)."""
    from labeller.formats.models import resolve_model_path

    out: dict[str, ClassModel] = {}
    for s in sources:
        for cls, model in zip(s.object_classes, s.object_models, strict=True):
            path = resolve_model_path(model, s.root, models_dir)
            sha = sha256_file(path)
            cm = out.get(cls)
            if cm is None:
                out[cls] = ClassModel(cls, path, sha, [s.name])
            elif s.name not in cm.scenes:
                cm.scenes.append(s.name)
                if sha != cm.sha256:
                    emit_warning(warns, f"class {cls} has different model files in scenes "
                                        f"{cm.scenes[0]} ({cm.path}) and {s.name} ({path}); "
                                        f"the dataset carries the first")
    return out


@dataclass
class MeshArrays:
    """A mesh for export: vertices (V, 3) and normals (V, 3) in the model frame (metres),
    triangles (F, 3), vertex colours (V, 3) uint8 or None."""

    vertices: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None


def load_mesh_arrays(path: Path) -> MeshArrays:
    """The mesh of a model file, checked like propagate loads it, with vertex normals."""
    import open3d as o3d

    from labeller.formats.models import load_model

    load_model(path)  # checks: readable, non-empty, in metres (ModelError otherwise)
    mesh = o3d.io.read_triangle_mesh(path, False)
    mesh.compute_vertex_normals()
    v = np.asarray(mesh.vertices, np.float64)
    colors = None
    if mesh.has_vertex_colors():
        colors = np.clip(np.round(np.asarray(mesh.vertex_colors) * 255), 0, 255).astype(np.uint8)
    return MeshArrays(v, np.asarray(mesh.vertex_normals, np.float64),
                      np.asarray(mesh.triangles, np.int64), colors)


# Models and their licences
YCB_ATTRIBUTION = """\
Object models: the YCB Object and Model Set (https://www.ycbbenchmarks.com/), licensed
under Creative Commons Attribution 4.0 International (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/). Berk Calli, Aaron Walsman, Arjun Singh,
Siddhartha Srinivasa, Pieter Abbeel, Aaron M. Dollar: "Benchmarking in Manipulation
Research: The YCB Object and Model Set and Benchmarking Protocols", IEEE Robotics and
Automation Magazine, 2015. Meshes in the YCB-Video frame; they were converted for this
dataset (copied, renamed, and for BOP rescaled to millimetres with vertex normals).
The licence texts that came with the meshes are in the files beside this one.
"""


def model_licences(model_path: Path) -> list[Path]:
    """Licence files that came with a model: LICENSE* in its folder or the one above."""
    out: list[Path] = []
    for d in (model_path.parent, model_path.parent.parent):
        out += sorted(p for p in d.glob("LICENSE*") if p.is_file())
    return out


def is_ycb_model(model_path: Path) -> bool:
    """A mesh from the YCB set (its licence files say so, or it sits in `<code>_<class>/`)."""
    if any("YCB" in p.name for p in model_licences(model_path)):
        return True
    folder = model_path.parent.name
    code, _, name = folder.partition("_")
    return name in BY_NAME and BY_NAME[name].ycb_code == code


def copy_attribution(dest_dir: Path, model_paths: Iterable[Path]) -> list[str]:
    """Write ATTRIBUTION.txt and the YCB models' licence files into dest_dir.

    Returns the names written (empty when none of the models is from YCB).
    """
    ycb = [p for p in model_paths if is_ycb_model(p)]
    if not ycb:
        return []
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = ["ATTRIBUTION.txt"]
    (dest_dir / "ATTRIBUTION.txt").write_text(YCB_ATTRIBUTION)
    for p in ycb:
        for lic in model_licences(p):
            if not (dest_dir / lic.name).exists():
                shutil.copyfile(lic, dest_dir / lic.name)
                names.append(lic.name)
    return names
