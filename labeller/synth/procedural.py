"""Procedural stand-in meshes and textures of the PROPS classes.

Each stand-in has the YCB-Video size of its class (`labeller.core.classes`) and lives in the
YCB-Video model frame: metres, origin near the box centre, z up for everything that stands
(the cans' axis is z), the marker's long axis y, the mug's handle towards +x.

Every mesh comes with per-corner texture coordinates into a texture image that is a
function of the class alone (colour, stripes, a printed label, noise; seeded by the class
name), so an object of one class looks the same in every scene and differs from the other
classes. Texture convention as in the YCB meshes: image row = (1 - v) * height.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeller.core.classes import BY_NAME, ObjectClass, class_color
from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_write_bytes

TEXTURE_SIZE = 512
# Facets around a round object: shading and silhouettes look smooth at 640x480 and the
# mesh stays small (a can is ~1k triangles).
N_SEGMENTS = 64


@dataclass(frozen=True)
class TexturedMesh:
    """A mesh in its model frame (metres) with per-corner UVs and one RGB texture.

    vertices: (V, 3) float64; triangles: (F, 3) int32 (counter-clockwise seen from outside);
    corner_uvs: (F, 3, 2) float32 texture coordinates, image row = (1 - v) * H;
    texture: (H, W, 3) uint8 RGB, or None with a plain `color_rgb`.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    corner_uvs: np.ndarray
    texture: np.ndarray | None
    color_rgb: tuple[int, int, int] = (128, 128, 128)

    def vertex_colors(self) -> np.ndarray:
        """(V, 3) uint8 colours sampled from the texture at each vertex's UV (for PLY export)."""
        cols = np.empty((len(self.vertices), 3), np.uint8)
        cols[:] = self.color_rgb
        if self.texture is None:
            return cols
        h, w = self.texture.shape[:2]
        uv = self.corner_uvs.reshape(-1, 2)
        x = np.clip(np.round(uv[:, 0] * w - 0.5), 0, w - 1).astype(np.int64)
        y = np.clip(np.round((1.0 - uv[:, 1]) * h - 0.5), 0, h - 1).astype(np.int64)
        cols[self.triangles.reshape(-1)] = self.texture[y, x]
        return cols


def _class_rng(name: str) -> np.random.Generator:
    # crc32, not hash(): str hashes change between processes and the texture must not.
    return np.random.default_rng(zlib.crc32(name.encode()))


def _shade(rgb: tuple[int, int, int] | np.ndarray, f: float) -> tuple[int, int, int]:
    c = np.clip(np.asarray(rgb, np.float64) * f, 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (20, 20, 20) if sum(rgb) > 380 else (245, 245, 240)


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] of `shape` (H, W): a random grid of `cells` across, upsampled."""
    h, w = shape
    ch = max(2, int(round(cells * h / max(h, w))))
    cw = max(2, int(round(cells * w / max(h, w))))
    g = rng.uniform(-1, 1, (ch, cw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def class_texture(name: str, color_rgb: tuple[int, int, int] | None = None,
                  size: int = TEXTURE_SIZE) -> np.ndarray:
    """The texture (size, size, 3) uint8 RGB of a class: a function of the class name only.

    The class colour with stripes, a printed label (the name, a bar code, shapes) and a
    little noise: enough texture for photometric tracking, distinct between classes.
    """
    rng = _class_rng(name)
    base = color_rgb if color_rgb is not None else class_color(name)
    ink = _contrast(base)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = base
    # Stripes in a darker shade; direction, count and width depend on the class.
    n_stripes = int(rng.integers(3, 9))
    horizontal = bool(rng.integers(0, 2))
    dark = _shade(base, 0.6)
    for k in range(n_stripes):
        a = int((k + 0.2) * size / n_stripes)
        b = a + int(rng.integers(size // 60, size // 18))
        if horizontal:
            img[a:b, :] = dark
        else:
            img[:, a:b] = dark
    # Coloured shapes (the "art" of the packaging).
    for _ in range(int(rng.integers(6, 12))):
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        if rng.random() < 0.5:
            cv2.circle(img, c, int(rng.integers(size // 30, size // 8)), col, -1, cv2.LINE_AA)
        else:
            d = rng.integers(size // 30, size // 6, 2)
            cv2.rectangle(img, c, (c[0] + int(d[0]), c[1] + int(d[1])), col, -1)
    # A label panel with the class name printed a few times, and a bar code.
    x0, y0 = int(size * 0.06), int(size * rng.uniform(0.15, 0.45))
    x1, y1 = int(size * 0.94), y0 + int(size * 0.32)
    cv2.rectangle(img, (x0, y0), (x1, y1), ink, -1)
    label_ink = _contrast(ink)
    words = name.replace("_", " ").upper().split()
    for i, word in enumerate(words[:3]):
        cv2.putText(img, word, (x0 + 8, y0 + 40 + 42 * i), cv2.FONT_HERSHEY_DUPLEX,
                    size / 400, label_ink, 2, cv2.LINE_AA)
    bx = x0 + 8
    while bx < x1 - 12:
        wbar = int(rng.integers(1, 5))
        if rng.random() < 0.6:
            img[y1 - 40:y1 - 8, bx:bx + wbar] = label_ink
        bx += wbar + int(rng.integers(1, 4))
    # Small print all over: fine texture everywhere, not only on the label.
    for _ in range(int(rng.integers(14, 22))):
        txt = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 8))))
        org = (int(rng.integers(0, size - 40)), int(rng.integers(10, size)))
        cv2.putText(img, txt, org, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 0.9)),
                    ink, 1, cv2.LINE_AA)
    n = value_noise(rng, (size, size), 24) * 0.12 + value_noise(rng, (size, size), 96) * 0.06
    out = img.astype(np.float32) * (1.0 + n[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)


# --- geometry -------------------------------------------------------------------------------

def _quad_grid(origin, e_u, e_v, n_u: int, n_v: int, uv_rect) -> tuple[np.ndarray, ...]:
    """A planar patch origin + s*e_u + t*e_v (s, t in [0, 1]) as a grid of triangles.

    Faces point along cross(e_u, e_v). uv_rect = (u0, v0, u1, v1) is where it goes in the texture.
    """
    s = np.linspace(0, 1, n_u + 1)
    t = np.linspace(0, 1, n_v + 1)
    S, Tt = np.meshgrid(s, t, indexing="xy")  # (n_v+1, n_u+1)
    verts = (np.asarray(origin)[None, None] + S[..., None] * np.asarray(e_u)[None, None]
             + Tt[..., None] * np.asarray(e_v)[None, None]).reshape(-1, 3)
    idx = np.arange((n_v + 1) * (n_u + 1)).reshape(n_v + 1, n_u + 1)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    u0, v0, u1, v1 = uv_rect
    uv_vert = np.stack([u0 + S.ravel() * (u1 - u0), v0 + Tt.ravel() * (v1 - v0)], 1)
    return verts, tris, uv_vert[tris]


def merge_parts(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One mesh of several (vertices (N, 3), triangles (M, 3), per-corner UVs (M, 3, 2)):
    float64 vertices, int32 triangles re-indexed, float32 UVs."""
    vs, fs, uvs, off = [], [], [], 0
    for v, f, uv in parts:
        vs.append(v)
        fs.append(f + off)
        uvs.append(uv)
        off += len(v)
    return (np.concatenate(vs).astype(np.float64), np.concatenate(fs).astype(np.int32),
            np.concatenate(uvs).astype(np.float32))


def box_mesh(size_xyz, center=(0.0, 0.0, 0.0), n: int = 6):
    """An axis-aligned box (faces outward), each face an n x n grid in its own texture cell.

    Returns (vertices (V, 3), triangles (F, 3), corner_uvs (F, 3, 2)); the six faces share
    the texture as a 3 x 2 grid of cells.
    """
    sx, sy, sz = (float(a) for a in size_xyz)
    c = np.asarray(center, np.float64)
    lo = c - np.array([sx, sy, sz]) / 2
    X, Y, Z = np.array([sx, 0, 0]), np.array([0, sy, 0]), np.array([0, 0, sz])
    # (origin, e_u, e_v) with cross(e_u, e_v) pointing out of the box.
    faces = [
        (lo, X, Z),                      # -y face: cross(X, Z) = -Y
        (lo + X + Y, -X, Z),             # +y face
        (lo + X, Y, Z),                  # +x face: cross(Y, Z) = +X
        (lo + Y, -Y, Z),                 # -x face
        (lo + Z, X, Y),                  # +z face: cross(X, Y) = +Z
        (lo + Y, X, -Y),                 # -z face: cross(X, -Y) = -Z
    ]
    parts = []
    for k, (o, eu, ev) in enumerate(faces):
        cu, cv = k % 3, k // 3
        rect = (cu / 3 + 0.005, cv / 2 + 0.005, (cu + 1) / 3 - 0.005, (cv + 1) / 2 - 0.005)
        parts.append(_quad_grid(o, eu, ev, n, n, rect))
    return merge_parts(parts)


def lathe_mesh(profile, n_seg: int = N_SEGMENTS, center_xy=(0.0, 0.0), cap_bottom: bool = True,
               cap_top: bool = True, inward: bool = False, side_v=(0.3, 1.0)):
    """A surface of revolution about z from rings `profile` = [(z, rx, ry), ...] (z ascending).

    Elliptic rings allowed (rx != ry). The side maps to texture u = angle / 2 pi and v in
    `side_v` (by z); the caps map to discs in the bottom strip of the texture. `inward`
    flips the faces (for the inside of a mug).
    """
    prof = np.asarray(profile, np.float64)
    nr = len(prof)
    ang = np.linspace(0, 2 * np.pi, n_seg + 1)  # last column repeats the first (UV seam)
    cx, cy = center_xy
    X = cx + prof[:, 1:2] * np.cos(ang)[None]
    Y = cy + prof[:, 2:3] * np.sin(ang)[None]
    Z = np.repeat(prof[:, 0:1], n_seg + 1, 1)
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    idx = np.arange(nr * (n_seg + 1)).reshape(nr, n_seg + 1)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    z0, z1 = prof[0, 0], prof[-1, 0]
    vz = side_v[0] + (prof[:, 0] - z0) / max(z1 - z0, 1e-9) * (side_v[1] - side_v[0])
    U = np.repeat((ang / (2 * np.pi))[None], nr, 0)
    V = np.repeat(vz[:, None], n_seg + 1, 1)
    uv_vert = np.stack([U.ravel(), V.ravel()], 1)
    parts = [(verts, tris, uv_vert[tris])]
    for which, do in ((0, cap_bottom), (nr - 1, cap_top)):
        if not do or prof[which, 1] <= 0:
            continue
        z, rx, ry = prof[which]
        ring = np.stack([cx + rx * np.cos(ang[:-1]), cy + ry * np.sin(ang[:-1]), np.full(n_seg, z)], 1)
        centre = np.array([[cx, cy, z]])
        v = np.concatenate([centre, ring])
        k = np.arange(n_seg)
        f = np.stack([np.zeros(n_seg, int), 1 + k, 1 + (k + 1) % n_seg], 1)
        if which == 0:
            f = f[:, [0, 2, 1]]  # bottom cap faces -z
        uc = 0.25 if which == 0 else 0.75
        disc = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(ang[:-1]), np.sin(ang[:-1])], 1)])
        uvv = np.stack([uc + 0.22 * disc[:, 0], 0.14 + 0.12 * disc[:, 1]], 1)
        parts.append((v, f, uvv[f]))
    V_, F_, UV_ = merge_parts(parts)
    if inward:
        F_ = F_[:, [0, 2, 1]]
        UV_ = UV_[:, [0, 2, 1]]
    return V_, F_, UV_


def _tube_arc(center, radius: float, tube_r: float, a0: float, a1: float, n_arc: int = 24,
              n_ring: int = 16):
    """A tube of radius tube_r swept along an arc in the xz plane (the mug's handle)."""
    cx, cy, cz = center
    th = np.linspace(a0, a1, n_arc + 1)
    ph = np.linspace(0, 2 * np.pi, n_ring + 1)
    # Arc point and its outward direction in xz; the tube ring spans (outward, y).
    ox, oz = np.cos(th), np.sin(th)
    R = radius + tube_r * np.cos(ph)[None, :]
    X = cx + R * ox[:, None]
    Z = cz + R * oz[:, None]
    Y = cy + tube_r * np.sin(ph)[None, :] * np.ones_like(th)[:, None]
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    idx = np.arange((n_arc + 1) * (n_ring + 1)).reshape(n_arc + 1, n_ring + 1)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    # (a, c, b) winding: the tube's faces point away from its axis.
    tris = np.concatenate([np.stack([a, c, b], 1), np.stack([a, d, c], 1)])
    U, Vv = np.meshgrid(np.linspace(0.05, 0.45, n_ring + 1), np.linspace(0.02, 0.28, n_arc + 1))
    uv = np.stack([U.ravel(), Vv.ravel()], 1)
    return verts, tris, uv[tris]


def class_geometry(cls: ObjectClass) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, triangles, corner_uvs) of the stand-in of `cls` in the YCB-Video frame."""
    sx, sy, sz = cls.size_m
    if cls.shape == "box":
        return box_mesh(cls.size_m)
    if cls.shape == "cylinder":
        return lathe_mesh([(-sz / 2, sx / 2, sy / 2), (sz / 2, sx / 2, sy / 2)])
    if cls.shape == "cylinder_y":
        # A marker: barrel, slightly wider cap, tapered tip; built along z then turned so
        # that its long axis is y (YCB-Video frame). z_old -> y, y_old -> -z.
        lo, hi = -0.0573, 0.0637
        length = hi - lo
        scale = sy / length
        lo, hi = lo * scale, hi * scale
        rx, rz = sx / 2, sz / 2
        prof = [(lo, rx * 0.85, rz * 0.85), (lo + 0.004, rx, rz), (hi - 0.03, rx, rz),
                (hi - 0.029, rx * 0.96, rz * 0.96), (hi - 0.004, rx * 0.96, rz * 0.96),
                (hi, rx * 0.4, rz * 0.4)]
        v, f, uv = lathe_mesh(prof)
        v = np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1)  # proper rotation about x by +90 deg
        return v, f, uv
    if cls.shape == "bottle":
        # Mustard bottle: an elliptic body, a shoulder, a neck and a cap. YCB-Video's
        # origin sits 16 mm below the box centre (z from -0.080 to +0.112).
        z0 = -0.4167 * sz
        z1 = z0 + sz
        a, b = sx / 2, sy / 2
        prof = [(z0, a * 0.96, b * 0.96), (z0 + 0.006, a, b), (z0 + 0.68 * sz, a, b),
                (z0 + 0.80 * sz, a * 0.45, b * 0.55), (z0 + 0.84 * sz, 0.013, 0.013),
                (z0 + 0.86 * sz, 0.016, 0.016), (z1 - 0.004, 0.016, 0.016), (z1, 0.006, 0.006)]
        return lathe_mesh(prof)
    if cls.shape == "mug":
        # YCB-Video mug: body radius sy/2 centred at x = -2.6 mm, handle out to +x,
        # z from -36.5 mm to +44.8 mm (scaled to the class size).
        r = sy / 2
        cx = -0.0496 * (sx / 0.117) + r
        z0 = -0.0365 * (sz / 0.082)
        z1 = z0 + sz
        wall, floor = 0.005, 0.007
        outer = lathe_mesh([(z0, r, r), (z1, r, r)], center_xy=(cx, 0.0), cap_top=False)
        inner = lathe_mesh([(z0 + floor, r - wall, r - wall), (z1, r - wall, r - wall)],
                           center_xy=(cx, 0.0), cap_bottom=True, cap_top=False, inward=True)
        # The rim: an annulus between the inner and outer wall, facing +z.
        ang = np.linspace(0, 2 * np.pi, N_SEGMENTS + 1)[:-1]
        ring_o = np.stack([cx + r * np.cos(ang), r * np.sin(ang), np.full_like(ang, z1)], 1)
        ring_i = np.stack([cx + (r - wall) * np.cos(ang), (r - wall) * np.sin(ang),
                           np.full_like(ang, z1)], 1)
        k = np.arange(N_SEGMENTS)
        k1 = (k + 1) % N_SEGMENTS
        n = N_SEGMENTS
        rim_f = np.concatenate([np.stack([k, k1, n + k1], 1), np.stack([k, n + k1, n + k], 1)])
        rim_v = np.concatenate([ring_o, ring_i])
        rim_uv = np.full((len(rim_f), 3, 2), [0.5, 0.1], np.float32)
        tube_r = 0.006
        hx = sx - 2 * r  # how far the handle reaches beyond the body
        radius = hx + 0.004 - tube_r
        zc = (z0 + z1) / 2 + 0.004
        handle = _tube_arc((cx + r - 0.004, 0.0, zc), radius, tube_r, -np.pi / 2 * 0.95,
                           np.pi / 2 * 0.95)
        return merge_parts([outer, inner, (rim_v, rim_f, rim_uv), handle])
    raise ValueError(f"no procedural shape {cls.shape!r}")


def class_mesh(name: str) -> TexturedMesh:
    """The procedural stand-in of a PROPS class (BadInput for an unknown class)."""
    cls = BY_NAME.get(name)
    if cls is None:
        raise BadInput("--classes", f"unknown class '{name}'")
    v, f, uv = class_geometry(cls)
    tex = class_texture(name, cls.color_rgb)
    return TexturedMesh(v, f, uv, tex, cls.color_rgb)


def ply_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> bytes:
    """A binary little-endian PLY (float32 xyz, optional uchar rgb, int32 faces)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    header = ["ply", "format binary_little_endian 1.0",
              "comment labeller procedural model, metres", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z"]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        fields += [("r", "u1"), ("g", "u1"), ("b", "u1")]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    vert = np.empty(len(v), dtype=fields)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        c = np.asarray(colors, np.uint8)
        vert["r"], vert["g"], vert["b"] = c[:, 0], c[:, 1], c[:, 2]
    face = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = f
    return ("\n".join(header) + "\n").encode("ascii") + vert.tobytes() + face.tobytes()


def write_class_model(name: str, dest: str | os.PathLike) -> Path:
    """Write the stand-in of class `name` as a PLY (metres, vertex colours) to `dest`."""
    mesh = class_mesh(name)
    dest = Path(dest)
    atomic_write_bytes(dest, ply_bytes(mesh.vertices, mesh.triangles, mesh.vertex_colors()))
    return dest
