"""Where things stand in a synthetic scene: the table, the room, the objects, the clutter.

Everything is built in the *table frame* (metres; origin at the table-top centre, z up,
y away from the viewer). Each part draws from its own generator
``default_rng([seed, stream])`` (1 classes, 2 room, 3 objects, 4 clutter), so a part's
draws do not depend on the others'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, ConfigError
from labeller.core.poses import make_pose
from labeller.synth.config import SynthConfig, library_class_paths
from labeller.synth.procedural import box_mesh, class_mesh, merge_parts
from labeller.synth.textures import box_texture, floor_texture, table_texture, wall_texture

# (vertices (V, 3) float64, triangles (F, 3) int32, corner UVs (F, 3, 2) float32)
MeshParts = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Surface:
    """A textured triangle mesh; obj_id 0 for scene geometry.

    vertices: (V, 3) float64 metres, in the table frame for scene geometry and in the
    model frame for an object (placed by its `PlacedObject.T_table_obj`).
    """

    vertices: np.ndarray  # (V, 3) float64, metres
    triangles: np.ndarray  # (F, 3) int32
    corner_uvs: np.ndarray  # (F, 3, 2) float32
    texture: np.ndarray | None  # (H, W, 3) uint8 RGB
    color_rgb: tuple[int, int, int] = (128, 128, 128)
    obj_id: int = 0
    # Scene geometry is flat-faced and never moves, like the light: its lighting (with
    # shadows) is baked into its texture once, computed every `bake_step` texels.
    bake_step: int = 0


@dataclass
class PlacedObject:
    """One object on the table: its model as stored in the annotations and its pose."""

    obj_id: int
    class_name: str
    model: str  # as stored in the annotations
    T_table_obj: np.ndarray  # (4, 4): model frame -> table frame
    surface: Surface = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class SceneLayout:
    """The scene geometry and objects of one config, in the table frame.

    surfaces: the table top, its edges, floor, walls, then the clutter boxes (obj_id 0);
    placed: the objects, ids 1..n in `class_names` order; table_size_m: (width along x,
    depth along y); room_yaw_rad: the room's turn against the table about z;
    target_table: (3,) the point the camera orbits (the objects' centre, 5 cm up).
    """

    surfaces: list[Surface]
    placed: list[PlacedObject]
    table_size_m: tuple[float, float]
    room_yaw_rad: float
    target_table: np.ndarray


def quad(p0, p1, p3) -> MeshParts:
    """Parallelogram p0, p1, p1 + p3 - p0, p3; faces along cross(p1 - p0, p3 - p0); UVs [0,1]^2."""
    p0, p1, p3 = (np.asarray(p, np.float64) for p in (p0, p1, p3))
    v = np.stack([p0, p1, p1 + p3 - p0, p3])
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)[f]
    return v, f, uv


def yaw_matrix(a_rad: float) -> np.ndarray:
    """(3, 3) rotation by `a_rad` about z."""
    c, s = math.cos(a_rad), math.sin(a_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def merge_surface(parts: Sequence[MeshParts], tex: np.ndarray | None, obj_id: int = 0,
                  color: tuple[int, int, int] = (128, 128, 128)) -> Surface:
    """One Surface of several meshes sharing the texture `tex`."""
    v, f, uv = merge_parts(parts)  # the parts' vertices are float64 already
    return Surface(v, f, uv, tex, color, obj_id)


def load_library_surface(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertices, triangles, corner_uvs (F,3,2), texture or None) of a library mesh."""
    from labeller.formats.models import load_textured_mesh

    mesh = load_textured_mesh(path)
    v = np.asarray(mesh.vertices, np.float64).copy()
    f = np.asarray(mesh.triangles, np.int32).copy()
    uvs = np.asarray(mesh.triangle_uvs, np.float32)
    tex: np.ndarray | None = None
    if mesh.has_textures() and len(uvs) == 3 * len(f):
        t = np.asarray(mesh.textures[0])
        if t.ndim == 3 and t.size > 0:
            # Open3D's OBJ reader flips the texture image upside down (OpenGL's rows);
            # flip it back so that, as in the file, image row = (1 - v) * height.
            tex = np.ascontiguousarray(t[::-1, :, :3]).astype(np.uint8)
    if tex is None:
        return v, f, np.zeros((len(f), 3, 2), np.float32), None
    # A poor man's mip-map: objects span ~50-300 px, so a 4096^2 texture would alias
    # (sparkle from frame to frame) and cost memory; 1024^2 keeps the print legible.
    if max(tex.shape[:2]) > 1024:
        tex = np.asarray(cv2.resize(tex, (1024, 1024), interpolation=cv2.INTER_AREA))
    return v, f, uvs.reshape(-1, 3, 2).copy(), tex


def pick_classes(cfg: SynthConfig) -> list[str]:
    """The class of every object: `cfg.classes`, or `cfg.n_objects` distinct ones by seed
    (among those the models library holds, with `cfg.models_dir`)."""
    if cfg.classes is not None:
        return list(cfg.classes)
    pool = list(PROPS_CLASS_NAMES)
    if cfg.models_dir is not None:
        from labeller.formats.models import list_library_classes

        have = list_library_classes(cfg.models_dir)
        pool = [c for c in pool if c in have]
        if not pool:
            raise BadInput(cfg.models_dir, "holds no model of a PROPS class")
    rng = np.random.default_rng([int(cfg.seed), 1])
    k = min(cfg.n_objects, len(pool))
    return [pool[i] for i in rng.choice(len(pool), k, replace=False)]


def build_layout(cfg: SynthConfig, class_names: Sequence[str]) -> SceneLayout:
    """Table, room, objects (one per name, ids 1..n) and clutter of `cfg`, in the table frame."""
    seed = int(cfg.seed)
    surfaces, table_size_m, room_yaw_rad = _build_room(seed)
    placed, footprints = _place_objects(cfg, class_names, table_size_m)
    target_table = np.array([*np.mean([q for q, _ in footprints], 0), 0.05])
    surfaces += _place_clutter(seed, table_size_m, footprints)
    return SceneLayout(surfaces, placed, table_size_m, room_yaw_rad, target_table)


def _build_room(seed: int) -> tuple[list[Surface], tuple[float, float], float]:
    """(surfaces, table size (x, y) in metres, room yaw in radians): the table top and
    edges, the floor and the four walls."""
    rng = np.random.default_rng([seed, 2])
    surfaces: list[Surface] = []
    tw, td = rng.uniform(1.1, 1.4), rng.uniform(0.75, 0.9)
    thick = 0.035
    px_m = 900.0  # texels per metre: ~1 mm, what the camera resolves at 0.6 m
    tex = table_texture(rng, (int(td * px_m), int(tw * px_m)), px_m)
    x0, x1, y0, y1 = -tw / 2, tw / 2, -td / 2, td / 2
    top = merge_surface([quad((x0, y0, 0), (x1, y0, 0), (x0, y1, 0))], tex)  # faces +z
    top.bake_step = 2
    surfaces.append(top)
    # Table edges (front, right, back, left; facing out), one texture band each.
    zb = -thick
    edge_tex = np.ascontiguousarray(np.concatenate([tex[-int(thick * px_m):]] * 4, 0)[:, ::-1])
    parts = []
    for k, (p0, p1) in enumerate((((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)),
                                  ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0)))):
        v, f, uv = quad((p0[0], p0[1], zb), (p1[0], p1[1], zb), (p0[0], p0[1], 0.0))
        uv = uv.copy()
        uv[..., 1] = (uv[..., 1] * 0.9 + 0.05 + k) / 4
        parts.append((v, f, uv))
    edges = merge_surface(parts, edge_tex)
    edges.bake_step = 2
    surfaces.append(edges)
    # The room: turned against the table so that no wall is parallel to a table edge
    # (point-to-plane ICP is then constrained in every direction).
    floor_z = -0.74
    top_z = 1.6
    yaw = rng.choice([-1, 1]) * rng.uniform(math.radians(12), math.radians(28))
    R = yaw_matrix(yaw)
    back, front, half = 0.88, -2.1, 1.9
    corners = [R @ np.array(p) for p in ((-half, front, 0), (half, front, 0), (half, back, 0),
                                         (-half, back, 0))]
    # Floor.
    wpx = 250.0
    fl = floor_texture(rng, (int((back - front) * wpx), int(2 * half * wpx)), wpx)
    c0, c1, c3 = (corners[0] + [0, 0, floor_z], corners[1] + [0, 0, floor_z],
                  corners[3] + [0, 0, floor_z])
    surfaces.append(merge_surface([quad(c0, c1, c3)], fl))
    surfaces[-1].bake_step = 4
    # Walls, facing inwards (cross(p1 - p0, up) points into the room when walking
    # the corners clockwise seen from above: here we walk them in reverse).
    wall_px = 320.0
    for i in range(4):
        a, b = corners[(i + 1) % 4], corners[i]
        length = float(np.linalg.norm(b - a))
        tex = wall_texture(rng, (int((top_z - floor_z) * wall_px), int(length * wall_px)), wall_px)
        q = quad(a + [0, 0, floor_z], b + [0, 0, floor_z], a + [0, 0, top_z])
        surfaces.append(merge_surface([q], tex))
        surfaces[-1].bake_step = 4
    return surfaces, (tw, td), yaw


def _object_surface(cfg: SynthConfig, name: str) -> tuple[Surface, str]:
    """The mesh of class `name` (model frame) and its model path as stored in annotations."""
    if cfg.models_dir is None:
        m = class_mesh(name)
        return (Surface(m.vertices, m.triangles, m.corner_uvs, m.texture, m.color_rgb),
                f"models/{name}/{name}.ply")
    path, stored = library_class_paths(Path(cfg.models_dir), [name])[name]
    v, f, uv, tex = load_library_surface(path)
    return Surface(v, f, uv, tex, BY_NAME[name].color_rgb), stored


def _place_objects(cfg: SynthConfig, class_names: Sequence[str], table_size_m: tuple[float, float],
                   ) -> tuple[list[PlacedObject], list[tuple[np.ndarray, float]]]:
    """The objects standing on the table top, random yaw, footprint circles 1 cm apart;
    and those footprints ((2,) centre, radius in metres)."""
    rng = np.random.default_rng([int(cfg.seed), 3])
    tw, td = table_size_m
    cache: dict[str, tuple[Surface, str]] = {}
    footprints: list[tuple[np.ndarray, float]] = []
    placed: list[PlacedObject] = []
    for k, name in enumerate(class_names):
        if name not in cache:
            cache[name] = _object_surface(cfg, name)
        surf, stored = cache[name]
        v = surf.vertices
        radius = float(np.sqrt((v[:, :2] ** 2).sum(1)).max())  # footprint about the origin
        # Region for objects: the middle of the table, grown if it gets crowded.
        hx, hy = 0.22, 0.14
        for attempt in range(4000):
            if attempt and attempt % 400 == 0:
                hx, hy = hx * 1.1, hy * 1.1
            xy = rng.uniform([-hx, -hy], [hx, hy])
            if abs(xy[0]) + radius > tw / 2 - 0.03 or abs(xy[1]) + radius > td / 2 - 0.03:
                continue
            if all(np.linalg.norm(xy - q) > radius + r + 0.01 for q, r in footprints):
                break
        else:
            raise ConfigError(cfg, "classes", f"cannot fit {len(class_names)} objects on the "
                                              "table without overlap; ask for fewer")
        footprints.append((xy, radius))
        yaw = rng.uniform(-math.pi, math.pi)
        # Stands on the table top: the model's lowest point at z = 0.
        T = make_pose(yaw_matrix(yaw), (xy[0], xy[1], -float(v[:, 2].min())))
        obj = Surface(surf.vertices, surf.triangles, surf.corner_uvs, surf.texture,
                      surf.color_rgb, k + 1)
        placed.append(PlacedObject(k + 1, name, stored, T, obj))
    return placed, footprints


def _place_clutter(seed: int, table_size_m: tuple[float, float],
                   footprints: list[tuple[np.ndarray, float]]) -> list[Surface]:
    """Two or three boxes (scene geometry, not objects) near the back of the table, clear
    of `footprints` (which gets theirs appended)."""
    rng = np.random.default_rng([seed, 4])
    tw, td = table_size_m
    surfaces: list[Surface] = []
    n = int(rng.integers(2, 4))
    for _ in range(n):
        size = np.array([rng.uniform(0.06, 0.16), rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.22)])
        r = float(np.linalg.norm(size[:2]) / 2)
        tex = box_texture(rng)
        for _ in range(200):
            xy = np.array([rng.uniform(-tw / 2 + r, tw / 2 - r), rng.uniform(0.0, td / 2 - r)])
            if all(np.linalg.norm(xy - q) > rr + r + 0.02 for q, rr in footprints):
                break
        else:
            continue
        footprints.append((xy, r))
        v, f, uv = box_mesh(size, center=(0, 0, size[2] / 2), n=1)
        v = v @ yaw_matrix(rng.uniform(-math.pi, math.pi)).T + [xy[0], xy[1], 0.0]
        surfaces.append(Surface(v, f, uv, tex, bake_step=2))
    return surfaces
