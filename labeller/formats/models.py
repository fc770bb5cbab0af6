"""Object models: find, load and check meshes (PLY/OBJ, metres) with Open3D.

Models are looked up first relative to the scene directory, then in a models library
(`--models DIR`): a folder of `<name>/textured.obj` or `<name>/*.ply` meshes in metres,
like the YCB meshes in ../shared/data/ycb_models (folders named `<ycb_code>_<class>`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.classes import BY_NAME
from labeller.core.errors import ModelError

# No object a person labels on a table is 2 m across; a model that is was almost
# certainly saved in millimetres.
MAX_MODEL_EXTENT_M = 2.0
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


@dataclass(frozen=True)
class ObjectModel:
    """A loaded mesh in its own frame (metres): vertices (V, 3) float64, triangles (F, 3) int32."""

    path: Path
    vertices: np.ndarray
    triangles: np.ndarray

    @property
    def extent_m(self) -> np.ndarray:
        return self.vertices.max(0) - self.vertices.min(0)

    @functools.cached_property
    def diameter_m(self) -> float:
        """Largest distance between two vertices (on the convex hull), metres."""
        return mesh_diameter_m(self.vertices)

    def legacy_mesh(self):
        import open3d as o3d

        # Copies: the cached arrays are read-only and pybind11 refuses read-only buffers.
        return o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(np.array(self.vertices, dtype=np.float64)),
            o3d.utility.Vector3iVector(np.array(self.triangles, dtype=np.int32)),
        )

    def sample_points(self, n: int = 2000, seed: int = 0) -> np.ndarray:
        """(n, 3) points spread uniformly over the surface (metres, model frame)."""
        import open3d as o3d

        np.random.seed(seed)  # Open3D's sampler draws from its own seeded generator
        o3d.utility.random.seed(seed)
        pcd = self.legacy_mesh().sample_points_uniformly(number_of_points=n)
        return np.asarray(pcd.points)


def convex_hull_vertices(vertices: np.ndarray) -> np.ndarray:
    """(K, 3) float64 vertices of the convex hull of (N, 3) points (same frame and units).

    The points are copied first: Open3D refuses a read-only (cached model) array.
    """
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.array(vertices, np.float64)))
    hull, _ = pcd.compute_convex_hull()
    return np.asarray(hull.vertices, np.float64).copy()


def mesh_diameter_m(vertices: np.ndarray) -> float:
    """Largest distance between two of the (N, 3) vertices (over the convex hull), metres."""
    h = convex_hull_vertices(vertices)
    d2 = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()))


def resolve_model_path(model: str | os.PathLike, scene_dir: str | os.PathLike | None = None,
                       models_dir: str | os.PathLike | None = None) -> Path:
    """Where the model file named in an annotation lives: scene first, then the library.

    Raises ModelError naming every place it looked when it is nowhere.
    """
    p = Path(model)
    candidates = [p] if p.is_absolute() else []
    if not p.is_absolute():
        if scene_dir is not None:
            candidates.append(Path(scene_dir) / p)
        if models_dir is not None:
            candidates.append(Path(models_dir) / p)
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates) or str(p)
    raise ModelError(model, f"model file not found (looked in {looked}; pass --models DIR?)")


def find_class_model(class_name: str, scene_dir: str | os.PathLike | None = None,
                     models_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The mesh for a class name: (absolute path, path as stored in annotations).

    Looks for `models/<name>...` in the scene, then `<name>` or `<ycb_code>_<name>` in the
    library; inside a folder prefers `textured.obj`, then any mesh file.
    """
    names = [class_name]
    if class_name in BY_NAME:
        names.append(BY_NAME[class_name].ycb_folder)
    roots: list[tuple[Path, Path]] = []  # (root, what stored paths are relative to)
    if scene_dir is not None:
        roots.append((Path(scene_dir) / "models", Path(scene_dir)))
    if models_dir is not None:
        roots.append((Path(models_dir), Path(models_dir)))
    for root, rel in roots:
        for name in names:
            d = root / name
            if d.is_dir():
                for pick in ["textured.obj", "textured_simple.obj"]:
                    if (d / pick).is_file():
                        return d / pick, str((d / pick).relative_to(rel))
                for f in sorted(d.iterdir()):
                    if f.suffix.lower() in MESH_SUFFIXES:
                        return f, str(f.relative_to(rel))
            for sfx in MESH_SUFFIXES:
                f = root / f"{name}{sfx}"
                if f.is_file():
                    return f, str(f.relative_to(rel))
    where = " or ".join(str(r) for r, _ in roots) or "nowhere (no scene, no --models)"
    raise ModelError(class_name, f"no model for this class in {where}")


def list_library_classes(models_dir: str | os.PathLike) -> dict[str, Path]:
    """Class name -> mesh path for every model folder/file in a library.

    A YCB-style folder `025_mug` is offered as class `mug`."""
    out: dict[str, Path] = {}
    root = Path(models_dir)
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        name = d.stem if d.is_file() else d.name
        code, _, rest = name.partition("_")
        if code.isdigit() and rest:
            name = rest
        try:
            out[name] = find_class_model(name, None, root)[0]
        except ModelError:
            continue
    return out


def _check_mesh(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    if len(vertices) == 0 or len(triangles) == 0:
        raise ModelError(path, "mesh has no triangles (unreadable or empty model file)")
    if not np.all(np.isfinite(vertices)):
        raise ModelError(path, "mesh has NaN or infinite vertices")
    extent = float((vertices.max(0) - vertices.min(0)).max())
    if extent > MAX_MODEL_EXTENT_M:
        raise ModelError(
            path,
            f"model is {extent:.1f} units across; models must be in metres "
            f"(if it is in millimetres, scale it by 0.001)",
        )


@functools.lru_cache(maxsize=64)
def _load_cached(path_str: str, mtime_ns: int) -> ObjectModel:
    import open3d as o3d

    path = Path(path_str)
    mesh = o3d.io.read_triangle_mesh(path, False)
    v = np.asarray(mesh.vertices, dtype=np.float64).copy()
    f = np.asarray(mesh.triangles, dtype=np.int32).copy()
    _check_mesh(path, v, f)
    v.setflags(write=False)
    f.setflags(write=False)
    return ObjectModel(path, v, f)


def load_model(path: str | os.PathLike) -> ObjectModel:
    """Load a mesh's geometry (no textures), checked: non-empty, finite, in metres.

    Cached per (path, modification time), so stages and the GUI can call it freely.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found")
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


def load_textured_mesh(path: str | os.PathLike):
    """An Open3D legacy TriangleMesh with its textures and UVs (for colour rendering)."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found")
    mesh = o3d.io.read_triangle_mesh(path, True)
    _check_mesh(path, np.asarray(mesh.vertices), np.asarray(mesh.triangles))
    return mesh
