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


# --------------------------------------------------------------------------------------
# Checks before and after Open3D reads a mesh: its readers trust a file's counts (a header
# claiming 10^9 vertices allocates them) and its indices (an out-of-range face index is
# rendered from memory outside the vertex array).
# --------------------------------------------------------------------------------------
_PLY_TYPE_BYTES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2,
                   "ushort": 2, "uint16": 2, "int": 4, "int32": 4, "uint": 4, "uint32": 4,
                   "float": 4, "float32": 4, "double": 8, "float64": 8}
_PLY_NUMPY = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
              "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
              "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8",
              "float64": "f8"}
_PLY_FACE_LISTS = ("vertex_indices", "vertex_index")
_PLY_MAX_HEADER_BYTES = 1 << 16
# Open3D turns a polygon into triangles by ear clipping over its vertices; a PLY face
# row may hold up to 255 (uchar count) indices, no model needs more.
PLY_MAX_FACE_SIDES = 255


@dataclass(frozen=True)
class PlyProperty:
    """One `property TYPE NAME` (`count_type` None) or `property list COUNT TYPE NAME`."""

    name: str
    type: str
    count_type: str | None = None


@dataclass(frozen=True)
class PlyElement:
    """One `element NAME COUNT` of a PLY header with its properties."""

    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    def min_row_bytes(self, binary: bool) -> int:
        """The fewest bytes one row can take (binary: the sizes of its values, a face
        list at least 3 indices; ASCII: one digit and a separator per value)."""
        total = 0
        for p in self.properties:
            n = 3 if self.name == "face" and p.name in _PLY_FACE_LISTS else 0
            if p.count_type is None:
                total += _PLY_TYPE_BYTES[p.type] if binary else 2
            else:
                total += (_PLY_TYPE_BYTES[p.count_type] + n * _PLY_TYPE_BYTES[p.type]
                          if binary else 2 * (1 + n))
        return total


def ply_header(path: Path) -> tuple[str, list[PlyElement], int]:
    """(format, elements, header length in bytes) of a PLY file; ModelError naming the
    file when the header is not one (no `end_header` within 64 KB, an unknown format,
    property type or a malformed line)."""
    with open(path, "rb") as f:
        head = f.read(_PLY_MAX_HEADER_BYTES)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise ModelError(path, "not a PLY file (no 'ply' ... 'end_header' header in its first 64 KB)")
    nl = head.find(b"\n", end)
    if nl < 0:
        raise ModelError(path, "PLY header ends without a newline")
    fmt = ""
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for lineno, raw in enumerate(head[:end].decode("latin1").splitlines(), start=1):
        words = raw.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        bad = f"PLY header line {lineno} {raw.strip()!r} is malformed"
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise ModelError(path, f"PLY header line {lineno}: unknown format {raw.strip()!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise ModelError(path, bad)
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise ModelError(path, bad + " (a property before any element)")
            if len(words) == 3 and words[1] in _PLY_TYPE_BYTES:
                elements[-1][2].append(PlyProperty(words[2], words[1]))
            elif (len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPE_BYTES
                  and words[3] in _PLY_TYPE_BYTES and not words[2].startswith(("f", "d"))):
                elements[-1][2].append(PlyProperty(words[4], words[3], words[2]))
            else:
                raise ModelError(path, bad)
        else:
            raise ModelError(path, bad)
    if not fmt:
        raise ModelError(path, "PLY header has no 'format' line")
    return fmt, [PlyElement(n, c, tuple(p)) for n, c, p in elements], nl + 1


def _bad_faces(path: Path, indices: np.ndarray, sides: np.ndarray, n_vertices: int) -> None:
    """ModelError for a face with fewer than 3 or more than PLY_MAX_FACE_SIDES corners, or
    an index outside 0..n_vertices-1."""
    if sides.size and (sides.min() < 3 or sides.max() > PLY_MAX_FACE_SIDES):
        bad = int(sides.min() if sides.min() < 3 else sides.max())
        raise ModelError(path, f"a face has {bad} corners (3..{PLY_MAX_FACE_SIDES} expected; "
                               "corrupt file)")
    if indices.size and (indices.min() < 0 or indices.max() >= n_vertices):
        bad = int(indices.min() if indices.min() < 0 else indices.max())
        raise ModelError(path, f"face index {bad} is out of range (the model has "
                               f"{n_vertices} vertices)")


def _check_ply_binary(path: Path, body: memoryview, endian: str, elements: list[PlyElement],
                      n_vertices: int) -> None:
    pos = 0
    for el in elements:
        lists = [p for p in el.properties if p.count_type is not None]
        if not lists:
            pos += el.count * el.min_row_bytes(True)
            continue
        faces = el.name == "face"
        # Fast path, every list of 3 values (triangles): one structured view of the rows.
        parts: list[tuple] = []
        for i, p in enumerate(el.properties):
            if p.count_type is None:
                parts.append((f"v{i}", endian + _PLY_NUMPY[p.type]))
            else:
                parts.append((f"n{i}", endian + _PLY_NUMPY[p.count_type]))
                parts.append((f"l{i}", endian + _PLY_NUMPY[p.type], (3,)))
        fast = np.dtype(parts)
        need = el.count * fast.itemsize
        if pos + need <= len(body):
            rows = np.frombuffer(body, dtype=fast, count=el.count, offset=pos)
            if all(np.all(rows[f"n{i}"] == 3) for i, p in enumerate(el.properties)
                   if p.count_type is not None):
                if faces:
                    for i, p in enumerate(el.properties):
                        if p.name in _PLY_FACE_LISTS and p.count_type is not None:
                            _bad_faces(path, rows[f"l{i}"], np.zeros(0, np.int64), n_vertices)
                pos += need
                continue
        # Slow path: any list lengths, row by row.
        for _ in range(el.count):
            for p in el.properties:
                if p.count_type is None:
                    pos += _PLY_TYPE_BYTES[p.type]
                    continue
                cs = _PLY_TYPE_BYTES[p.count_type]
                if pos + cs > len(body):
                    raise ModelError(path, f"PLY data ends inside element '{el.name}' (truncated file)")
                n = int(np.frombuffer(body, endian + _PLY_NUMPY[p.count_type], 1, pos)[0])
                pos += cs
                size = n * _PLY_TYPE_BYTES[p.type]
                if n < 0 or pos + size > len(body):
                    raise ModelError(path, f"PLY data ends inside element '{el.name}' (truncated file)")
                if faces and p.name in _PLY_FACE_LISTS:
                    idx = np.frombuffer(body, endian + _PLY_NUMPY[p.type], n, pos)
                    _bad_faces(path, idx, np.array([n]), n_vertices)
                pos += size
    if pos > len(body):
        raise ModelError(path, f"PLY data is {pos - len(body)} bytes shorter than its header says "
                               "(truncated file)")


def _ascii_triangles(path: Path, tokens: list[bytes], pos: int, el: PlyElement,
                     n_vertices: int) -> bool:
    """Fast path of an ASCII element of one list property: True (checked) when every row
    is ``3 a b c``; False to check it row by row."""
    rows = tokens[pos: pos + 4 * el.count]
    if len(rows) != 4 * el.count:
        return False
    try:
        values = np.array(rows).astype(np.int64).reshape(el.count, 4)
    except (ValueError, OverflowError):
        return False
    if not np.all(values[:, 0] == 3):
        return False
    if el.name == "face" and el.properties[0].name in _PLY_FACE_LISTS:
        _bad_faces(path, values[:, 1:], np.zeros(0, np.int64), n_vertices)
    return True


def _check_ply_ascii(path: Path, body: bytes, elements: list[PlyElement], n_vertices: int) -> None:
    tokens = body.split()
    pos = 0
    for el in elements:
        lists = [p for p in el.properties if p.count_type is not None]
        if not lists:
            pos += el.count * len(el.properties)
            continue
        if len(el.properties) == 1 and _ascii_triangles(path, tokens, pos, el, n_vertices):
            pos += 4 * el.count
            continue
        for _ in range(el.count):
            for p in el.properties:
                if p.count_type is None:
                    pos += 1
                    continue
                try:
                    n = int(tokens[pos])
                    values = tokens[pos + 1: pos + 1 + n]
                    if el.name == "face" and p.name in _PLY_FACE_LISTS:
                        idx = np.array([int(v) for v in values], np.int64)
                        _bad_faces(path, idx, np.array([n]), n_vertices)
                except (IndexError, ValueError):
                    raise ModelError(path, f"PLY element '{el.name}' has a malformed or missing "
                                           "row (corrupt or truncated file)") from None
                if len(values) != n:
                    raise ModelError(path, f"PLY data ends inside element '{el.name}' (truncated file)")
                pos += 1 + n
    if pos > len(tokens):
        raise ModelError(path, "PLY data has fewer values than its header says (truncated file)")


def check_model_file(path: str | os.PathLike) -> None:
    """Checks a model file before any mesh library reads it. A PLY file's header counts
    must fit its size (a forged count would exhaust memory) and every face must have 3 to
    255 corners, all of them vertices of the model (Open3D reads outside the vertex array
    otherwise, or crashes). ModelError naming the file."""
    path = Path(path)
    if path.suffix.lower() != ".ply":
        return
    try:
        size = path.stat().st_size
        fmt, elements, header_len = ply_header(path)
    except OSError as exc:
        raise ModelError(path, f"cannot read ({exc.strerror or exc})") from None
    binary = fmt != "ascii"
    need = sum(e.count * e.min_row_bytes(binary) for e in elements)
    have = size - header_len
    if need > have:
        claims = ", ".join(f"{e.count} {e.name}" for e in elements)
        raise ModelError(path, f"PLY header claims {claims}, at least {need} bytes, but only "
                               f"{have} bytes follow it (truncated or forged file)")
    n_vertices = next((e.count for e in elements if e.name == "vertex"), 0)
    try:
        body = path.read_bytes()[header_len:]
    except OSError as exc:
        raise ModelError(path, f"cannot read ({exc.strerror or exc})") from None
    if binary:
        endian = "<" if fmt == "binary_little_endian" else ">"
        _check_ply_binary(path, memoryview(body), endian, elements, n_vertices)
    else:
        _check_ply_ascii(path, body, elements, n_vertices)


def _check_mesh(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """The mesh Open3D read: non-empty, face indices in range, finite, not degenerate,
    in metres. ModelError naming the file."""
    if len(vertices) == 0 or len(triangles) == 0:
        raise ModelError(path, "mesh has no triangles (unreadable or empty model file)")
    lo, hi = int(triangles.min()), int(triangles.max())
    if lo < 0 or hi >= len(vertices):
        bad = lo if lo < 0 else hi
        raise ModelError(path, f"face index {bad} is out of range (the mesh has "
                               f"{len(vertices)} vertices)")
    if not np.all(np.isfinite(vertices)):
        raise ModelError(path, "mesh has NaN or infinite vertices")
    extent = float((vertices.max(0) - vertices.min(0)).max())
    if extent == 0.0:
        raise ModelError(path, "all vertices are at one point (a degenerate model)")
    tri = vertices[triangles]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    if not area > 0.0:
        raise ModelError(path, "every triangle has zero area (a degenerate model)")
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
    check_model_file(path)
    mesh = o3d.io.read_triangle_mesh(path, False)
    v = np.asarray(mesh.vertices, dtype=np.float64).copy()
    f = np.asarray(mesh.triangles, dtype=np.int32).copy()
    _check_mesh(path, v, f)
    v.setflags(write=False)
    f.setflags(write=False)
    return ObjectModel(path, v, f)


def load_model(path: str | os.PathLike) -> ObjectModel:
    """Load a mesh's geometry (no textures), checked: a PLY header that fits the file,
    non-empty, face indices in range, finite, not degenerate, in metres.

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
    check_model_file(path)
    mesh = o3d.io.read_triangle_mesh(path, True)
    _check_mesh(path, np.asarray(mesh.vertices), np.asarray(mesh.triangles))
    return mesh
