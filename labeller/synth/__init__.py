"""Synthetic RGB-D scenes with ground truth (`labeller synth`).

A textured table stands in a room whose walls are turned against it; objects of the PROPS
classes stand on the table top (no two intersect, random yaw); a hand-held-like camera
orbits the table. Every frame is ray-cast with Open3D's RaycastingScene: depth from the
hit distance (with sensor-like noise, edge holes and dropouts, quantised to mm), colour
from our own shading of the hits (textures through barycentric UVs, Lambertian light with
shadows, ambient), instance ids from the noise-free cast.

Output (docs/design.md native layout)::

    OUT/rgb/000000.png  depth/000000.png  camera.json  models/<class>/<class>.ply
    OUT/gt/trajectory.txt  gt/annotations.json  gt/masks/000000.png

Frames: everything is built in a *table frame* (origin at the table-top centre, z up,
y away from the viewer); the written trajectory and object poses are re-expressed in
the world frame of camera 0 (T_world_cam[0] = I), as docs/design.md requires.

Determinism: every random draw comes from `numpy.random.default_rng([seed, stream, ...])`,
so the same seed gives byte-identical files.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, LabellerError, ModelError
from labeller.core.fileio import atomic_dir, sha256_file
from labeller.core.poses import axis_angle_to_matrix, inv_pose
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation, perturbed
from labeller.formats.scene import ScenePaths
from labeller.formats.trajectory import Trajectory
from labeller.geometry.render import pixel_rays_cam
from labeller.synth.procedural import box_mesh, class_mesh, ply_bytes, value_noise

# Default camera: a RealSense-like 640x480 colour camera, depth registered to it.
BASE_WIDTH, BASE_HEIGHT = 640, 480
BASE_FX, BASE_FY, BASE_CX, BASE_CY = 610.0, 609.5, 321.8, 238.4
DEPTH_SCALE = 1000.0  # depth PNG units per metre (mm)

DEFAULT_N_OBJECTS = 6
MAX_OBJECTS = 16
MAX_FRAMES = 100_000

# Depth sensor model (metres). Noise grows with distance like a structured-light camera.
DEPTH_MIN_M, DEPTH_MAX_M = 0.15, 4.0
EDGE_JUMP_M = 0.02            # a 3x3 neighbourhood spanning more than this (+2% of z) is an edge
EDGE_DROP_P = 0.7             # chance an edge pixel has no measurement
DROPOUT_P = 0.003             # random isolated missing pixels
GRAZING_COS = 0.1             # surfaces seen more edge-on than this return nothing
RGB_NOISE_SIGMA = 1.5         # 8-bit levels
RGB_NOISE_BANK = 8
MIP_LEVELS = 3  # texture pyramid levels (full, 1/2, 1/4)
# Lighting: ambient (drawn per scene) + SKY_K * n_z + SKY_C + KEY_K * max(0, n . L) * visible.
SKY_K, SKY_C, KEY_K = 0.06, 0.06, 0.7
MISS_RGB = np.array([0.10, 0.10, 0.11], np.float32)

ProgressFn = Callable[[int, int], "bool | None"]


def depth_noise_sigma_m(z_m: np.ndarray) -> np.ndarray:
    """Standard deviation (metres) of the simulated depth noise at distance z (metres)."""
    return 0.0012 + 0.0019 * (np.asarray(z_m) - 0.4) ** 2


class Cancelled(LabellerError):
    """The progress callback asked to stop; nothing was written."""


@dataclass
class SynthConfig:
    """What `labeller synth` makes. `classes=None` picks `n_objects` distinct classes by seed."""

    out: Path
    frames: int = 300
    seed: int = 0
    classes: list[str] | None = None
    models_dir: Path | None = None
    with_annotations: bool = False
    annotation_noise: tuple[float, float] = (0.0, 0.0)  # (metres, degrees)
    overwrite: bool = False
    width: int = BASE_WIDTH
    height: int = BASE_HEIGHT
    n_objects: int = DEFAULT_N_OBJECTS


@dataclass
class SynthResult:
    out: Path
    frames: int
    camera: CameraIntrinsics
    objects: list[ObjectAnnotation]
    seconds: float


@dataclass
class SynthFrame:
    """One rendered frame, all (H, W): rgb (.., 3) uint8 as written; depth_png uint16 mm as
    written (sensor model applied unless rendered with noisy=False; 0 = no measurement);
    depth_clean_m float32 metres, the exact ray-cast z (0 = nothing hit); inst uint16
    object ids from the noise-free cast (0 = table, walls, nothing), as in gt/masks."""

    rgb: np.ndarray
    depth_png: np.ndarray
    depth_clean_m: np.ndarray
    inst: np.ndarray


@dataclass
class _Surface:
    """A textured mesh in the table frame; obj_id 0 for scene geometry."""

    vertices: np.ndarray  # (V, 3) float64, table frame, metres
    triangles: np.ndarray  # (F, 3) int32
    corner_uvs: np.ndarray  # (F, 3, 2) float32
    texture: np.ndarray | None  # (H, W, 3) uint8 RGB
    color_rgb: tuple[int, int, int] = (128, 128, 128)
    obj_id: int = 0
    # Scene geometry is flat-faced and never moves, like the light: its lighting (with
    # shadows) is baked into its texture once, computed every `bake_step` texels.
    bake_step: int = 0


@dataclass
class _PlacedObject:
    obj_id: int
    class_name: str
    model: str  # as stored in the annotations
    T_table_obj: np.ndarray
    surface: _Surface = field(repr=False, default=None)  # type: ignore[assignment]


# --- configuration checks -------------------------------------------------------------------

def make_camera(width: int = BASE_WIDTH, height: int = BASE_HEIGHT) -> CameraIntrinsics:
    """The default intrinsics for a width x height image (pixel centres at integers).

    Focal lengths scale with the width (same horizontal field of view, square-ish pixels
    whatever the aspect ratio); the principal point keeps its relative position.
    """
    sx, sy = width / BASE_WIDTH, height / BASE_HEIGHT
    return CameraIntrinsics(int(width), int(height), BASE_FX * sx, BASE_FY * sx,
                            (BASE_CX + 0.5) * sx - 0.5, (BASE_CY + 0.5) * sy - 0.5, DEPTH_SCALE)


def _library_class_paths(models_dir: Path, names: Sequence[str]) -> dict[str, tuple[Path, str]]:
    from labeller.formats.models import find_class_model

    out = {}
    for name in names:
        try:
            out[name] = find_class_model(name, None, models_dir)
        except ModelError:
            folder = BY_NAME[name].ycb_folder if name in BY_NAME else name
            raise BadInput(models_dir, f"no model for class '{name}' in this library "
                                       f"(looked for {name}/ and {folder}/)") from None
    return out


def check_config(cfg: SynthConfig) -> None:
    """Raise BadInput (one line, naming the option) for anything wrong with `cfg`."""
    if isinstance(cfg.frames, bool) or not isinstance(cfg.frames, int) or not 1 <= cfg.frames <= MAX_FRAMES:
        raise BadInput("--frames", f"must be an integer from 1 to {MAX_FRAMES}, got {cfg.frames!r}")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise BadInput("--seed", f"must be an integer >= 0, got {cfg.seed!r}")
    for name, v in (("--width", cfg.width), ("--height", cfg.height)):
        if not isinstance(v, int) or not 16 <= v <= 4096:
            raise BadInput(name, f"must be an integer from 16 to 4096, got {v!r}")
    if cfg.classes is not None:
        if len(cfg.classes) == 0:
            raise BadInput("--classes", "give at least one class name")
        if len(cfg.classes) > MAX_OBJECTS:
            raise BadInput("--classes", f"at most {MAX_OBJECTS} objects fit on the table, "
                                        f"got {len(cfg.classes)}")
        for c in cfg.classes:
            if c not in BY_NAME:
                raise BadInput("--classes", f"unknown class '{c}' (known: {', '.join(PROPS_CLASS_NAMES)})")
    elif not 1 <= cfg.n_objects <= len(PROPS_CLASS_NAMES):
        raise BadInput("n_objects", f"must be from 1 to {len(PROPS_CLASS_NAMES)}, got {cfg.n_objects}")
    m, deg = cfg.annotation_noise
    if not (math.isfinite(m) and math.isfinite(deg)) or m < 0 or deg < 0:
        raise BadInput("--annotation-noise", f"metres and degrees must be >= 0, got {m} {deg}")
    if (m or deg) and not cfg.with_annotations:
        raise BadInput("--annotation-noise", "needs --with-annotations (it perturbs those)")
    if cfg.models_dir is not None:
        md = Path(cfg.models_dir)
        if not md.is_dir():
            raise BadInput(md, "models library not found (not a directory)")
        if cfg.classes is not None:
            _library_class_paths(md, sorted(set(cfg.classes)))
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BadInput(out, "exists and is not a directory")
    if out.exists() and not cfg.overwrite:
        raise BadInput(out, "already exists (pass --overwrite to replace it)")


# --- textures of the scene geometry ---------------------------------------------------------

def _rand_text(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(int(c)) for c in rng.integers(65, 91, n))


def _rot_rect(img, rng, center, size, angle, color) -> np.ndarray:
    box = cv2.boxPoints(((float(center[0]), float(center[1])), (float(size[0]), float(size[1])),
                         float(angle)))
    cv2.fillConvexPoly(img, box.astype(np.int32), color, cv2.LINE_AA)
    return box


def _paper(img, rng, center, size, angle, px_per_m: float) -> None:
    """A sheet of printed paper: light background, lines of text, a picture."""
    shade = int(rng.integers(215, 250))
    _rot_rect(img, rng, center, size, angle, (shade, shade, int(shade * 0.97)))
    # Text lines and a picture drawn on an upright patch, then rotated in.
    w, h = int(size[0]), int(size[1])
    patch = np.full((h, w, 3), shade, np.uint8)
    fs = max(0.3, px_per_m / 2500)
    y = int(0.08 * h) + 12
    while y < h - 8:
        x = 6
        while x < w - 30:
            word = _rand_text(rng, int(rng.integers(2, 8)))
            cv2.putText(patch, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (25, 25, 30), 1, cv2.LINE_AA)
            x += int(len(word) * 14 * fs / 0.5) + 8
        y += int(20 * fs / 0.5) + 4
    if rng.random() < 0.8:
        pw, ph = int(w * rng.uniform(0.3, 0.6)), int(h * rng.uniform(0.2, 0.4))
        px, py = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
        pic = (value_noise(rng, (ph, pw), 6)[..., None] * 0.5 + 0.5) * rng.uniform(60, 255, 3)
        patch[py:py + ph, px:px + pw] = pic.astype(np.uint8)
    # Warp only into the sheet's bounding box (warping into the whole image is slow).
    r = 0.5 * math.hypot(w, h) + 2
    bx0, by0 = max(int(center[0] - r), 0), max(int(center[1] - r), 0)
    bx1, by1 = min(int(center[0] + r) + 1, img.shape[1]), min(int(center[1] + r) + 1, img.shape[0])
    if bx1 <= bx0 or by1 <= by0:
        return
    M = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    M[:, 2] += np.asarray(center) - [w / 2, h / 2] - [bx0, by0]
    mask = np.zeros((h, w), np.uint8) + 255
    roi = img[by0:by1, bx0:bx1]
    warped = cv2.warpAffine(patch, M, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR)
    wmask = cv2.warpAffine(mask, M, (bx1 - bx0, by1 - by0), flags=cv2.INTER_NEAREST)
    roi[wmask > 0] = warped[wmask > 0]


def table_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A wooden table top (H, W, 3) uint8 with papers, a mat and stickers on it.

    Feature sizes stay above ~3 texels (texel ~1 mm): finer detail would alias when seen
    from 0.5-1.5 m and flicker from frame to frame, which biases photometric tracking.
    """
    h, w = size_px
    base = np.array([rng.uniform(120, 190), rng.uniform(80, 130), rng.uniform(45, 85)], np.float32)
    # Grain: noise stretched along x, at two scales; blotches in every direction.
    g1 = cv2.resize(rng.uniform(-1, 1, (max(2, h // 14), max(2, w // 120))).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    g2 = cv2.resize(rng.uniform(-1, 1, (max(2, h // 6), max(2, w // 40))).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    shade = (1.0 + 0.15 * g1 + 0.08 * g2 + 0.15 * value_noise(rng, (h, w), 8)
             + 0.12 * value_noise(rng, (h, w), max(8, w // 25)))
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    # Planks.
    plank = int(px_per_m * rng.uniform(0.12, 0.2))
    for y in range(int(rng.integers(0, plank)), h, plank):
        cv2.line(img, (0, y), (w, y), tuple(int(c) for c in base * 0.45), 2, cv2.LINE_AA)
    # Papers, a mat, stickers: strong corners and edges for visual tracking.
    for _ in range(int(rng.integers(7, 12))):
        s = rng.uniform(0.12, 0.28) * px_per_m
        _paper(img, rng, (rng.uniform(0, w), rng.uniform(0, h)), (s, s * rng.uniform(1.2, 1.5)),
               rng.uniform(-40, 40), px_per_m)
    for _ in range(int(rng.integers(60, 100))):
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = int(rng.uniform(0.006, 0.025) * px_per_m)
        if rng.random() < 0.5:
            cv2.circle(img, c, r, col, -1, cv2.LINE_AA)
        else:
            _rot_rect(img, rng, c, (2 * r, r), rng.uniform(0, 180), col)
    return img


def wall_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A painted wall (H, W, 3) uint8 with posters, shelves of books and scribbles."""
    h, w = size_px
    base = rng.uniform(150, 230, 3).astype(np.float32)
    shade = 1.0 + 0.10 * value_noise(rng, (h, w), 10) + 0.05 * value_noise(rng, (h, w), 80)
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 11))):
        pw = rng.uniform(0.25, 0.7) * px_per_m
        ph = pw * rng.uniform(0.6, 1.5)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, y0 = int(cx - pw / 2), int(cy - ph / 2)
        x1, y1 = int(cx + pw / 2), int(cy + ph / 2)
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if xb <= xa or yb <= ya:
            continue
        kind = rng.integers(0, 3)
        if kind == 0:  # a photo-like poster: coloured smooth noise
            pic = (value_noise(rng, (yb - ya, xb - xa), 8)[..., None] * 0.5 + 0.5)
            pic = pic * rng.uniform(40, 255, 3) + (1 - pic) * rng.uniform(0, 200, 3)
            img[ya:yb, xa:xb] = np.clip(pic, 0, 255).astype(np.uint8)
        elif kind == 1:  # a chart: blocks of colour
            img[ya:yb, xa:xb] = rng.integers(200, 256)
            for _ in range(int(rng.integers(5, 14))):
                col = tuple(int(c) for c in rng.integers(0, 256, 3))
                bx, by = rng.uniform(xa, xb), rng.uniform(ya, yb)
                bw, bh = rng.uniform(0.05, 0.3) * pw, rng.uniform(0.05, 0.3) * ph
                cv2.rectangle(img, (int(bx), int(by)), (int(bx + bw), int(by + bh)), col, -1)
        else:  # a notice: text
            _paper(img, rng, (cx, cy), (pw, ph), 0.0, px_per_m)
        cv2.rectangle(img, (x0, y0), (x1, y1), (30, 30, 30), 3)
    # A band of "books" on a shelf line.
    y = int(rng.uniform(0.2, 0.5) * h)
    x = 0
    while x < w:
        bw = int(rng.uniform(0.02, 0.06) * px_per_m)
        bh = int(rng.uniform(0.15, 0.3) * px_per_m)
        col = tuple(int(c) for c in rng.integers(20, 240, 3))
        cv2.rectangle(img, (x, y - bh), (x + bw, y), col, -1)
        cv2.rectangle(img, (x, y - bh), (x + bw, y), (15, 15, 15), 1)
        x += bw + int(rng.integers(0, 4))
    cv2.rectangle(img, (0, y), (w, y + int(0.02 * px_per_m)), (60, 45, 35), -1)
    return img


def floor_texture(rng: np.random.Generator, size_px: tuple[int, int], px_per_m: float) -> np.ndarray:
    """A tiled floor (H, W, 3) uint8: tiles of random shade, grout, noise."""
    h, w = size_px
    tile = max(4, int(rng.uniform(0.25, 0.4) * px_per_m))
    base = rng.uniform(90, 200, 3)
    ny, nx = h // tile + 1, w // tile + 1
    shades = rng.uniform(0.75, 1.2, (ny, nx)).astype(np.float32)
    shade = cv2.resize(shades, (nx * tile, ny * tile), interpolation=cv2.INTER_NEAREST)[:h, :w]
    shade = shade * (1.0 + 0.15 * value_noise(rng, (h, w), 40))
    img = np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    img[::tile, :] = 40
    img[:, ::tile] = 40
    return img


def box_texture(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """A cardboard box or book (size, size, 3) uint8, printed."""
    base = np.array([rng.uniform(140, 200), rng.uniform(100, 150), rng.uniform(60, 100)])
    if rng.random() < 0.5:
        base = rng.uniform(30, 230, 3)
    img = np.clip(base[None, None] * (1 + 0.1 * value_noise(rng, (size, size), 16))[..., None], 0,
                  255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 9))):
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = rng.integers(0, size, 2)
        d = rng.integers(size // 16, size // 3, 2)
        cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[0] + d[0]), int(p[1] + d[1])), col, -1)
    for _ in range(int(rng.integers(8, 16))):
        org = (int(rng.integers(0, size - 60)), int(rng.integers(20, size)))
        cv2.putText(img, _rand_text(rng, int(rng.integers(3, 7))), org, cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.6, 1.4)), (20, 20, 20), 2, cv2.LINE_AA)
    return img


# --- scene construction ---------------------------------------------------------------------

def _quad(p0, p1, p3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parallelogram p0, p1, p1 + p3 - p0, p3; faces along cross(p1 - p0, p3 - p0); UVs [0,1]^2."""
    p0, p1, p3 = (np.asarray(p, np.float64) for p in (p0, p1, p3))
    v = np.stack([p0, p1, p1 + p3 - p0, p3])
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)[f]
    return v, f, uv


def _yaw(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _T(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _load_library_surface(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertices, triangles, corner_uvs (F,3,2), texture or None) of a library mesh."""
    from labeller.formats.models import load_textured_mesh

    mesh = load_textured_mesh(path)
    v = np.asarray(mesh.vertices, np.float64).copy()
    f = np.asarray(mesh.triangles, np.int32).copy()
    uvs = np.asarray(mesh.triangle_uvs, np.float32)
    tex = None
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
        tex = cv2.resize(tex, (1024, 1024), interpolation=cv2.INTER_AREA)
    return v, f, uvs.reshape(-1, 3, 2).copy(), tex


class SynthWorld:
    """The whole synthetic scene for one config: geometry, textures, camera path, renderer.

    Deterministic in `cfg.seed` (and the other settings). `render(t)` gives frame t.
    Attributes: camera (CameraIntrinsics), T_world_cam (N, 4, 4) with T_world_cam[0] = I,
    objects (list of ObjectAnnotation with T_world_obj in that world frame).
    """

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        # Threads per ray cast (0 = all cores). `run` renders frames in parallel and sets 1.
        self.ray_threads = 0
        self.seed = int(cfg.seed)
        self.camera = make_camera(cfg.width, cfg.height)
        self.class_names = self._pick_classes()
        self.surfaces: list[_Surface] = []
        self.placed: list[_PlacedObject] = []
        self._build_room()
        self._place_objects()
        self._place_clutter()
        self.T_table_cam = self._camera_path(cfg.frames)
        T_world_table = inv_pose(self.T_table_cam[0])
        self.T_world_cam = np.einsum("ij,njk->nik", T_world_table, self.T_table_cam)
        self.T_world_cam[0] = np.eye(4)
        self.objects = [
            ObjectAnnotation(p.obj_id, p.class_name, p.model, T_world_table @ p.T_table_obj)
            for p in self.placed
        ]
        rng = np.random.default_rng([self.seed, 5])
        el = rng.uniform(math.radians(45), math.radians(70))
        az = rng.uniform(-math.pi, math.pi)
        # Direction towards the light (table frame), a warm-white key light from above.
        self.light_dir = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                                   math.sin(el)])
        self.light_rgb = np.array([1.0, 0.97, 0.92], np.float32) * rng.uniform(0.85, 1.0)
        self.ambient = float(rng.uniform(0.3, 0.4))
        self._build_raycaster()

    # -- contents --
    def _pick_classes(self) -> list[str]:
        cfg = self.cfg
        if cfg.classes is not None:
            return list(cfg.classes)
        pool = list(PROPS_CLASS_NAMES)
        if cfg.models_dir is not None:
            from labeller.formats.models import list_library_classes

            have = list_library_classes(cfg.models_dir)
            pool = [c for c in pool if c in have]
            if not pool:
                raise BadInput(cfg.models_dir, "holds no model of a PROPS class")
        rng = np.random.default_rng([self.seed, 1])
        k = min(cfg.n_objects, len(pool))
        return [pool[i] for i in rng.choice(len(pool), k, replace=False)]

    def _build_room(self) -> None:
        rng = np.random.default_rng([self.seed, 2])
        tw, td = rng.uniform(1.1, 1.4), rng.uniform(0.75, 0.9)
        self.table_size = (tw, td)
        thick = 0.035
        px_m = 900.0  # texels per metre: ~1 mm, what the camera resolves at 0.6 m
        tex = table_texture(rng, (int(td * px_m), int(tw * px_m)), px_m)
        x0, x1, y0, y1 = -tw / 2, tw / 2, -td / 2, td / 2
        top = self._merge_surface([_quad((x0, y0, 0), (x1, y0, 0), (x0, y1, 0))], tex)  # faces +z
        top.bake_step = 2
        self.surfaces.append(top)
        # Table edges (front, right, back, left; facing out), one texture band each.
        zb = -thick
        edge_tex = np.ascontiguousarray(np.concatenate([tex[-int(thick * px_m):]] * 4, 0)[:, ::-1])
        parts = []
        for k, (p0, p1) in enumerate((((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)),
                                      ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0)))):
            v, f, uv = _quad((p0[0], p0[1], zb), (p1[0], p1[1], zb), (p0[0], p0[1], 0.0))
            uv = uv.copy()
            uv[..., 1] = (uv[..., 1] * 0.9 + 0.05 + k) / 4
            parts.append((v, f, uv))
        edges = self._merge_surface(parts, edge_tex)
        edges.bake_step = 2
        self.surfaces.append(edges)
        # The room: turned against the table so that no wall is parallel to a table edge
        # (point-to-plane ICP is then constrained in every direction).
        floor_z = -0.74
        top_z = 1.6
        yaw = rng.choice([-1, 1]) * rng.uniform(math.radians(12), math.radians(28))
        R = _yaw(yaw)
        back, front, half = 0.88, -2.1, 1.9
        corners = [R @ np.array(p) for p in ((-half, front, 0), (half, front, 0), (half, back, 0),
                                             (-half, back, 0))]
        # Floor.
        wpx = 250.0
        fl = floor_texture(rng, (int((back - front) * wpx), int(2 * half * wpx)), wpx)
        c0, c1, c3 = (corners[0] + [0, 0, floor_z], corners[1] + [0, 0, floor_z],
                      corners[3] + [0, 0, floor_z])
        self.surfaces.append(self._merge_surface([_quad(c0, c1, c3)], fl))
        self.surfaces[-1].bake_step = 4
        # Walls, facing inwards (cross(p1 - p0, up) points into the room when walking
        # the corners clockwise seen from above: here we walk them in reverse).
        wall_px = 320.0
        for i in range(4):
            a, b = corners[(i + 1) % 4], corners[i]
            length = float(np.linalg.norm(b - a))
            tex = wall_texture(rng, (int((top_z - floor_z) * wall_px), int(length * wall_px)), wall_px)
            q = _quad(a + [0, 0, floor_z], b + [0, 0, floor_z], a + [0, 0, top_z])
            self.surfaces.append(self._merge_surface([q], tex))
            self.surfaces[-1].bake_step = 4
        self.room_yaw = yaw

    @staticmethod
    def _merge_surface(parts, tex, obj_id: int = 0, color=(128, 128, 128)) -> _Surface:
        vs, fs, uvs, off = [], [], [], 0
        for v, f, uv in parts:
            vs.append(v)
            fs.append(f + off)
            uvs.append(uv)
            off += len(v)
        return _Surface(np.concatenate(vs), np.concatenate(fs).astype(np.int32),
                        np.concatenate(uvs).astype(np.float32), tex, color, obj_id)

    def _object_surface(self, name: str) -> tuple[_Surface, str]:
        if self.cfg.models_dir is None:
            m = class_mesh(name)
            return (_Surface(m.vertices, m.triangles, m.corner_uvs, m.texture, m.color_rgb),
                    f"models/{name}/{name}.ply")
        path, stored = _library_class_paths(Path(self.cfg.models_dir), [name])[name]
        v, f, uv, tex = _load_library_surface(path)
        return _Surface(v, f, uv, tex, BY_NAME[name].color_rgb), stored

    def _place_objects(self) -> None:
        rng = np.random.default_rng([self.seed, 3])
        tw, td = self.table_size
        cache: dict[str, tuple[_Surface, str]] = {}
        placed: list[tuple[np.ndarray, float]] = []
        for k, name in enumerate(self.class_names):
            if name not in cache:
                cache[name] = self._object_surface(name)
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
                if all(np.linalg.norm(xy - q) > radius + r + 0.01 for q, r in placed):
                    break
            else:
                raise BadInput("--classes", f"cannot fit {len(self.class_names)} objects on the "
                                            "table without overlap; ask for fewer")
            placed.append((xy, radius))
            yaw = rng.uniform(-math.pi, math.pi)
            # Stands on the table top: the model's lowest point at z = 0.
            T = _T(_yaw(yaw), (xy[0], xy[1], -float(v[:, 2].min())))
            obj = _Surface(surf.vertices, surf.triangles, surf.corner_uvs, surf.texture,
                           surf.color_rgb, k + 1)
            self.placed.append(_PlacedObject(k + 1, name, stored, T, obj))
        self._footprints = placed
        self.target_table = np.array([*np.mean([q for q, _ in placed], 0), 0.05])

    def _place_clutter(self) -> None:
        """Two or three boxes (scene geometry, not objects) near the back of the table."""
        rng = np.random.default_rng([self.seed, 4])
        tw, td = self.table_size
        n = int(rng.integers(2, 4))
        for _ in range(n):
            size = np.array([rng.uniform(0.06, 0.16), rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.22)])
            r = float(np.linalg.norm(size[:2]) / 2)
            tex = box_texture(rng)
            for _ in range(200):
                xy = np.array([rng.uniform(-tw / 2 + r, tw / 2 - r), rng.uniform(0.0, td / 2 - r)])
                if all(np.linalg.norm(xy - q) > rr + r + 0.02 for q, rr in self._footprints):
                    break
            else:
                continue
            self._footprints.append((xy, r))
            v, f, uv = box_mesh(size, center=(0, 0, size[2] / 2), n=1)
            v = v @ _yaw(rng.uniform(-math.pi, math.pi)).T + [xy[0], xy[1], 0.0]
            self.surfaces.append(_Surface(v, f, uv, tex, bake_step=2))

    # -- camera --
    def _camera_path(self, n: int) -> np.ndarray:
        """T_table_cam (n, 4, 4): a smooth hand-held orbit about the objects, with shake.

        Speeds are per frame (30 fps-like), independent of n: at most ~0.6 deg and ~8 mm a
        frame, so frame-to-frame tracking is easy; longer scenes sweep further round.
        """
        rng = np.random.default_rng([self.seed, 6])
        t = np.arange(n, dtype=np.float64)

        def wave(amp, w_lo, w_hi):
            return amp * np.sin(rng.uniform(w_lo, w_hi) * t + rng.uniform(0, 2 * np.pi))

        az = rng.uniform(-0.3, 0.3) + wave(rng.uniform(0.6, 0.9), 0.006, 0.009)
        el = rng.uniform(0.6, 0.72) + wave(0.15, 0.008, 0.013)
        dist = rng.uniform(0.72, 0.8) + wave(rng.uniform(0.2, 0.25), 0.007, 0.011)

        def shake(amp, n_waves=3, w_lo=0.08, w_hi=0.3):
            return sum(wave(amp, w_lo, w_hi) for _ in range(n_waves))

        target = self.target_table[None] + np.stack([shake(0.01, 2, 0.01, 0.04) for _ in range(3)], 1)
        pos = target + dist[:, None] * np.stack(
            [np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)], 1)
        pos = pos + np.stack([shake(0.0012) for _ in range(3)], 1)
        roll = wave(math.radians(3), 0.01, 0.03) + shake(math.radians(0.15))
        T = np.zeros((n, 4, 4))
        up = np.array([0.0, 0.0, 1.0])
        for i in range(n):
            z = target[i] - pos[i]
            z /= np.linalg.norm(z)
            x = np.cross(z, up)
            x /= np.linalg.norm(x)
            y = np.cross(z, x)
            R = np.stack([x, y, z], 1) @ axis_angle_to_matrix(np.array([0.0, 0.0, 1.0]), roll[i])
            T[i] = _T(R, pos[i])
        return T

    # -- rendering --
    def _build_raycaster(self) -> None:
        import open3d as o3d

        self._scene = o3d.t.geometry.RaycastingScene()
        self._geoms: list[_Surface] = []
        all_surfaces = [(s, np.eye(4)) for s in self.surfaces] + [(p.surface, p.T_table_obj)
                                                                  for p in self.placed]
        self._geom_T: list[np.ndarray] = []
        for surf, T in all_surfaces:
            v = (surf.vertices @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
            gid = self._scene.add_triangles(o3d.core.Tensor(v),
                                            o3d.core.Tensor(surf.triangles.astype(np.uint32)))
            assert gid == len(self._geoms)
            self._geoms.append(surf)
            self._geom_T.append(T)
        G = len(self._geoms)
        # geometry id -> object id; the extra last entry is "no hit".
        self._gid_to_inst = np.array([s.obj_id for s in self._geoms] + [0], np.uint16)
        self._build_atlas()
        rays_cam = pixel_rays_cam(self.camera).reshape(-1, 3)
        self._ray_x = np.ascontiguousarray(rays_cam[:, 0])
        self._ray_y = np.ascontiguousarray(rays_cam[:, 1])
        self._inv_ray_len = (1.0 / np.linalg.norm(rays_cam, axis=1)).astype(np.float32)
        self._n_geoms = G
        # Image noise: a bank of patterns drawn once (drawing 0.9 M normals a frame costs
        # more than the shading); each frame picks one by its own seeded draw.
        nrng = np.random.default_rng([self.seed, 8])
        self._rgb_noise = [nrng.standard_normal((self.camera.height, self.camera.width, 3),
                                                dtype=np.float32) * np.float32(RGB_NOISE_SIGMA)
                           for _ in range(RGB_NOISE_BANK)]
        # Commit the scene now: later casts may run from several threads at once.
        self._scene.cast_rays(o3d.core.Tensor(np.array([[0, 0, 0, 0, 0, 1]], np.float32)))

    def _light_factor(self, n_z: np.ndarray, ndl_visible: np.ndarray) -> np.ndarray:
        """Scalar light (before the light colour) for unit normal z components and
        max(0, n . L) * visibility, same shapes; float32."""
        return (np.float32(self.ambient + SKY_C) + np.float32(SKY_K) * n_z
                + np.float32(KEY_K) * ndl_visible).astype(np.float32)

    def _bake_lighting(self, surf: _Surface) -> np.ndarray:
        """The surface's texture (H, W, 3) uint8 with its lighting (shadows included) applied.

        Each triangle is rasterised in texture space on a grid every `bake_step` texels
        (dilated by 1.5 cells so bilinear lookups at the edges stay lit); a shadow ray goes
        from every cell's 3-D point to the light. The light map is then upsampled.
        """
        import open3d as o3d

        tex = surf.texture
        assert tex is not None
        h, w = tex.shape[:2]
        step = surf.bake_step
        gh, gw = -(-h // step), -(-w // step)
        factor = np.full((gh, gw), np.nan, np.float32)
        L = self.light_dir
        pts_all, cells_all, ndl_all, nz_all = [], [], [], []
        for f in range(len(surf.triangles)):
            P = surf.vertices[surf.triangles[f]]
            n = np.cross(P[1] - P[0], P[2] - P[0])
            n /= np.linalg.norm(n)
            uv = surf.corner_uvs[f].astype(np.float64)
            # Grid-cell coordinates of the corners (cell centres at integers).
            q = np.stack([(uv[:, 0] * w - 0.5) / step, ((1.0 - uv[:, 1]) * h - 0.5) / step], 1)
            M = np.stack([q[1] - q[0], q[2] - q[0]], 1)  # columns: edges in cell units
            det = np.linalg.det(M)
            if abs(det) < 1e-12:
                continue
            longest = max(np.linalg.norm(q[1] - q[2]), np.linalg.norm(q[2] - q[0]),
                          np.linalg.norm(q[0] - q[1]))
            eps = 1.5 / (abs(det) / longest)  # 1.5 cells in barycentric units
            x0, y0 = np.floor(q.min(0) - 2).astype(int)
            x1, y1 = np.ceil(q.max(0) + 2).astype(int)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, gw - 1), min(y1, gh - 1)
            if x1 < x0 or y1 < y0:
                continue
            X, Y = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
            rel = np.stack([X.ravel() - q[0, 0], Y.ravel() - q[0, 1]], 0)
            b = np.linalg.solve(M, rel)  # (2, m): weights of corners 1 and 2
            inside = (b[0] >= -eps) & (b[1] >= -eps) & (b[0] + b[1] <= 1 + eps)
            b = b[:, inside]
            cells = Y.ravel()[inside] * gw + X.ravel()[inside]
            ndl = float(n @ L)
            if ndl <= 0:  # facing away from the light: ambient and sky only
                factor.ravel()[cells] = self._light_factor(np.float32(n[2]), np.float32(0.0))
                continue
            pts = P[0] + np.outer(b[0], P[1] - P[0]) + np.outer(b[1], P[2] - P[0])
            pts_all.append(pts + n * 1e-3)
            cells_all.append(cells)
            ndl_all.append(np.full(len(cells), ndl, np.float32))
            nz_all.append(np.full(len(cells), n[2], np.float32))
        if pts_all:
            pts = np.concatenate(pts_all).astype(np.float32)
            rays = np.empty((len(pts), 6), np.float32)
            rays[:, :3] = pts
            rays[:, 3:] = L.astype(np.float32)
            occluded = self._scene.test_occlusions(o3d.core.Tensor.from_numpy(rays), nthreads=0).numpy()
            visible = np.where(occluded, np.float32(0.0), np.concatenate(ndl_all))
            factor.ravel()[np.concatenate(cells_all)] = self._light_factor(np.concatenate(nz_all), visible)
        factor = np.where(np.isnan(factor), np.float32(self.ambient + SKY_C), factor)
        if step > 1:
            factor = cv2.resize(factor, (gw * step, gh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
        lit = tex.astype(np.float32) * factor[..., None] * self.light_rgb[None, None].astype(np.float32)
        return np.clip(np.rint(lit), 0, 255).astype(np.uint8)

    def _build_atlas(self) -> None:
        """Pack every texture into one image and every triangle's UVs into atlas pixels.

        Then one gather and a few `cv2.remap`s colour a whole frame, whatever it shows.
        `_tri_uv` (F_total + 1, 6) float32 holds per triangle the atlas pixel position of
        corner 0 and the steps to corners 1 and 2; the last row is "no hit". `_tri_tpm`
        holds each triangle's texels per metre (for the mip level). The atlas comes as a
        pyramid of MIP_LEVELS (each half the size): textures sit at multiples of 4 texels
        with 8 texels of replicated border, so that no level bleeds between textures.
        """
        pad = 8
        miss = np.empty((8, 8, 3), np.uint8)
        miss[:] = np.rint(MISS_RGB * 255).astype(np.uint8)
        texs = []
        for s in self._geoms:
            if s.bake_step:
                texs.append(self._bake_lighting(s))
            elif s.texture is None:
                t = np.empty((8, 8, 3), np.uint8)
                t[:] = s.color_rgb
                texs.append(t)
            else:
                texs.append(s.texture)
        texs.append(miss)
        width = max(2048, max(t.shape[1] for t in texs) + 2 * pad)
        # Shelf packing, tallest first.
        order = sorted(range(len(texs)), key=lambda i: (-texs[i].shape[0], i))
        pos = [(0, 0)] * len(texs)
        x = y = shelf_h = 0
        def up4(a: int) -> int:
            return -(-a // 4) * 4

        width = up4(width)
        for i in order:
            h, w = up4(texs[i].shape[0] + 2 * pad), up4(texs[i].shape[1] + 2 * pad)
            if x + w > width:
                x, y, shelf_h = 0, y + shelf_h, 0
            pos[i] = (x, y)
            x += w
            shelf_h = max(shelf_h, h)
        atlas = np.zeros((up4(y + shelf_h), width, 3), np.uint8)
        for i, t in enumerate(texs):
            ox, oy = pos[i]
            # Replicated borders: bilinear lookups at a texture's edge stay inside it.
            atlas[oy:oy + t.shape[0] + 2 * pad, ox:ox + t.shape[1] + 2 * pad] = cv2.copyMakeBorder(
                t, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rows, tpm = [], []
        for i, s in enumerate(self._geoms):
            h, w = texs[i].shape[:2]
            ox, oy = pos[i][0] + pad, pos[i][1] + pad
            if s.texture is None:
                uv = np.full((len(s.triangles), 3, 2), 0.5, np.float32)
            else:
                uv = np.clip(s.corner_uvs, 0.0, 1.0)
            px = np.empty_like(uv)
            px[..., 0] = uv[..., 0] * w - 0.5 + ox
            px[..., 1] = (1.0 - uv[..., 1]) * h - 0.5 + oy  # texture row = (1 - v) * H
            rows.append(np.concatenate([px[:, 0], px[:, 1] - px[:, 0], px[:, 2] - px[:, 0]], 1))
            # Texels per metre: sqrt(texture area / surface area) of each triangle.
            T = self._geom_T[i]
            P = (s.vertices @ T[:3, :3].T)[s.triangles]
            a3 = np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1)
            e1, e2 = px[:, 1] - px[:, 0], px[:, 2] - px[:, 0]
            a2 = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
            tpm.append(np.sqrt(a2 / np.maximum(a3, 1e-12)))
        mx, my = pos[-1][0] + pad + 3.5, pos[-1][1] + pad + 3.5
        rows.append(np.array([[mx, my, 0, 0, 0, 0]], np.float32))
        tpm.append(np.zeros(1))
        self._tri_uv = np.ascontiguousarray(np.concatenate(rows).astype(np.float32))
        self._tri_tpm = np.concatenate(tpm).astype(np.float32)
        counts = [len(s.triangles) for s in self._geoms]
        self._prim_offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._atlas = [atlas]
        for _ in range(MIP_LEVELS - 1):
            self._atlas.append(cv2.pyrDown(self._atlas[-1]))

    def _sample_atlas(self, mx: np.ndarray, my: np.ndarray, fid: np.ndarray, t_hit: np.ndarray,
                      cos_view: np.ndarray) -> np.ndarray:
        """(H*W, 3) float32 colours at atlas positions (mx, my) (level-0 pixels), mip-mapped.

        Level of detail = log2(texels per pixel): a pixel at distance r (metres) seeing the
        surface at |cos| c covers r / (f sqrt(c)) metres (geometric mean of its two axes);
        levels are blended linearly (trilinear filtering), so distant or slanted texture
        neither aliases nor flickers from frame to frame.
        """
        f = np.float32(0.5 * (self.camera.fx + self.camera.fy))
        dist = np.where(np.isfinite(t_hit), t_hit, np.float32(0.0)) / self._inv_ray_len
        rho = self._tri_tpm[fid] * dist / (f * np.sqrt(np.maximum(cos_view, np.float32(0.1))))
        lod = np.clip(np.log2(np.maximum(rho, np.float32(1e-6))), 0.0, MIP_LEVELS - 1).astype(np.float32)
        H, W = self.camera.height, self.camera.width
        lod = lod.reshape(H, W)
        mx, my = mx.reshape(H, W), my.reshape(H, W)
        out = None
        for k, level in enumerate(self._atlas):
            if k and not np.any(lod > k - 1):
                break
            s = np.float32(0.5 ** k)
            sample = cv2.remap(level, (mx + 0.5) * s - 0.5, (my + 0.5) * s - 0.5, cv2.INTER_LINEAR)
            if out is None:
                out = sample
                continue
            # Blend this level in where lod > k - 1 (weight lod - (k - 1), capped at 1).
            w = np.clip(lod - np.float32(k - 1), 0.0, 1.0).astype(np.float32)
            out = cv2.blendLinear(out, sample, 1.0 - w, w)
        assert out is not None
        return out.reshape(-1, 3).astype(np.float32)

    def render(self, t: int, noisy: bool = True) -> SynthFrame:
        """Frame t: colour and depth as written (noisy unless `noisy=False`), the noise-free
        depth and the instance ids. Thread-safe: frames may be rendered concurrently."""
        import open3d as o3d

        H, W = self.camera.height, self.camera.width
        N = H * W
        T = self.T_table_cam[t]
        R, p = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
        # Ray directions R @ (x, y, 1), one column at a time (cheaper than an (N,3)@(3,3)).
        X, Y = self._ray_x, self._ray_y
        rays = np.empty((N, 6), np.float32)
        for k in range(3):
            rays[:, k] = p[k]
            rays[:, 3 + k] = X * R[k, 0] + Y * R[k, 1] + R[k, 2]
        d = rays[:, 3:]
        ans = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=self.ray_threads)
        t_hit = ans["t_hit"].numpy()
        hit = np.isfinite(t_hit)
        depth_clean = np.where(hit, t_hit, np.float32(0.0)).reshape(H, W)  # rays have z_cam = 1
        gid = np.minimum(ans["geometry_ids"].numpy().astype(np.int64), self._n_geoms)
        inst = self._gid_to_inst[gid].reshape(H, W)
        # Texture lookup through the atlas (misses land on the "no hit" patch).
        fid = np.minimum(self._prim_offset[gid] + ans["primitive_ids"].numpy(), len(self._tri_uv) - 1)
        tri = self._tri_uv[fid]
        b = ans["primitive_uvs"].numpy()
        mx = tri[:, 0] + tri[:, 2] * b[:, 0] + tri[:, 4] * b[:, 1]
        my = tri[:, 1] + tri[:, 3] * b[:, 0] + tri[:, 5] * b[:, 1]
        # Normals facing the camera (table frame); |cos| of the viewing angle.
        nrm = ans["primitive_normals"].numpy()
        ndd = np.einsum("ij,ij->i", nrm, d)
        cos_flat = np.abs(ndd) * self._inv_ray_len
        cos_view = cos_flat.reshape(H, W)
        albedo = self._sample_atlas(mx, my, fid, t_hit, cos_flat).reshape(H, W, 3)
        # The scene geometry's texels carry their light already; objects are lit here:
        # Lambertian key light with hard shadows, plus ambient and a little sky from above.
        rgb = albedo
        on_obj = np.flatnonzero(inst.ravel() > 0)
        if len(on_obj):
            n_o = nrm[on_obj]
            n_o *= np.where(ndd[on_obj] > 0, np.float32(-1.0), np.float32(1.0))[:, None]
            L = self.light_dir.astype(np.float32)
            ndl = n_o @ L
            srays = np.empty((len(on_obj), 6), np.float32)
            srays[:, :3] = p + d[on_obj] * t_hit[on_obj, None] + n_o * np.float32(1e-3)
            srays[:, 3:] = L
            occluded = self._scene.test_occlusions(o3d.core.Tensor.from_numpy(srays),
                                                  nthreads=self.ray_threads).numpy()
            light = self._light_factor(n_o[:, 2], np.where(occluded | (ndl < 0), np.float32(0.0), ndl))
            flat = rgb.reshape(-1, 3)
            flat[on_obj] *= light[:, None] * self.light_rgb.astype(np.float32)[None]
        rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)  # the lens is not perfectly sharp
        rng = np.random.default_rng([self.seed, 100, t])
        if noisy:
            rgb += self._rgb_noise[int(rng.integers(len(self._rgb_noise)))]
        rgb8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        depth_png = self._sensor_depth(depth_clean, cos_view, rng, noisy)
        return SynthFrame(rgb8, depth_png, depth_clean, inst.astype(np.uint16))

    def _sensor_depth(self, z: np.ndarray, cos_view: np.ndarray, rng: np.random.Generator,
                      noisy: bool) -> np.ndarray:
        """uint16 mm depth as a sensor gives it: noise, edge holes, dropouts, range limits."""
        valid = (z > DEPTH_MIN_M) & (z < DEPTH_MAX_M)
        if noisy:
            zf = np.where(z > 0, z, np.float32(10.0))
            k = np.ones((3, 3), np.uint8)
            span = cv2.dilate(zf, k) - cv2.erode(zf, k)
            edge = span > EDGE_JUMP_M + 0.02 * zf
            u = rng.random(z.shape, dtype=np.float32)
            valid &= ~(edge & (u < EDGE_DROP_P))
            valid &= cos_view > GRAZING_COS
            valid &= rng.random(z.shape, dtype=np.float32) >= DROPOUT_P
            sigma = depth_noise_sigma_m(z).astype(np.float32)
            z = z + rng.standard_normal(z.shape, dtype=np.float32) * sigma
        mm = np.rint(z * np.float32(DEPTH_SCALE))
        return np.where(valid, np.clip(mm, 0, 65535), 0).astype(np.uint16)


# --- writing --------------------------------------------------------------------------------

# Measured here on 640x480 frames: Huffman-only coding is both faster and smaller than
# zlib level 1 on noisy colour and depth (sensor noise leaves few long matches to find);
# masks are flat regions, which run-length coding suits.
_PNG_NOISY = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_PNG_FLAT = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def _encode_png(arr: np.ndarray, flat: bool = False) -> bytes:
    a = arr[:, :, ::-1] if arr.ndim == 3 else arr  # RGB -> OpenCV's BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), _PNG_FLAT if flat else _PNG_NOISY)
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return buf.tobytes()


def _write_png(path: Path, arr: np.ndarray, flat: bool = False) -> None:
    # Inside the temporary scene directory: no per-file rename needed, the whole
    # directory is renamed into place at the end.
    path.write_bytes(_encode_png(arr, flat))


def run(cfg: SynthConfig, progress: ProgressFn | None = None) -> SynthResult:
    """Write the synthetic scene `cfg.out` (see module docstring).

    `progress(done, total)` is called after each frame; returning False cancels (raises
    Cancelled; nothing is written). Raises BadInput for a bad config or an existing OUT.
    """
    t0 = time.perf_counter()
    out = Path(cfg.out)
    check_config(cfg)
    world = SynthWorld(cfg)
    n = cfg.frames
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        paths = ScenePaths(tmp)
        for d in (paths.rgb_dir, paths.depth_dir, paths.gt / "masks"):
            d.mkdir(parents=True, exist_ok=True)
        world.camera.write(paths.camera)
        if cfg.models_dir is None:
            for name in sorted(set(world.class_names)):
                m = class_mesh(name)
                dest = tmp / "models" / name / f"{name}.ply"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(ply_bytes(m.vertices, m.triangles, m.vertex_colors()))
        traj = Trajectory({t: world.T_world_cam[t] for t in range(n)})
        traj.write(paths.gt_trajectory)
        doc = AnnotationDocument([o.copy() for o in world.objects], list(PROPS_CLASS_NAMES),
                                 sha256_file(paths.gt_trajectory))
        doc.write(paths.gt_annotations)
        def job(t: int) -> None:
            fr = world.render(t)
            _write_png(paths.rgb_path(t), fr.rgb)
            _write_png(paths.depth_path(t), fr.depth_png)
            _write_png(paths.gt_mask(t), fr.inst, flat=True)

        # Whole frames in parallel: Open3D, OpenCV and most numpy work release the GIL, so
        # one frame's Python-side shading overlaps another's ray casting and PNG encoding.
        workers = max(2, min(4, os.cpu_count() or 2))
        world.ray_threads = 1  # the frames are the parallelism; no nested thread pools
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque = deque()
            done = 0

            def finish_one() -> None:
                nonlocal done
                pending.popleft().result()
                done += 1
                if progress is not None and progress(done, n) is False:
                    raise Cancelled("cancelled")

            try:
                for t in range(n):
                    pending.append(pool.submit(job, t))
                    if len(pending) >= 2 * workers:
                        finish_one()
                while pending:
                    finish_one()
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        if cfg.with_annotations:
            shutil.copyfile(paths.gt_trajectory, paths.trajectory)
            m, deg = cfg.annotation_noise
            top = perturbed(doc, float(m), float(deg), seed=cfg.seed) if (m or deg) else doc.copy()
            top.trajectory_sha256 = sha256_file(paths.trajectory)
            top.write(paths.annotations)
    return SynthResult(out, n, world.camera, [o.copy() for o in world.objects],
                       time.perf_counter() - t0)


def contact_sheet(scene_dir: str | os.PathLike, frames: Sequence[int], tile_width: int = 320,
                  depth_max_m: float = 2.5) -> np.ndarray:
    """A (rows, 3 tiles) RGB uint8 overview of a scene: per frame the colour image, the
    depth in false colour (black = no measurement) and the ground-truth masks over the
    colour (each instance id its own hue). For docs and quick looks."""
    import colorsys

    root = Path(scene_dir)
    paths = ScenePaths(root)
    cam = CameraIntrinsics.read(paths.camera)
    rows = []
    for t in frames:
        rgb = cv2.imread(str(paths.rgb_path(t)))[:, :, ::-1]
        depth = cv2.imread(str(paths.depth_path(t)), cv2.IMREAD_UNCHANGED).astype(np.float32)
        depth /= cam.depth_scale
        dc = cv2.applyColorMap(np.clip(depth / depth_max_m * 255, 0, 255).astype(np.uint8),
                               cv2.COLORMAP_TURBO)[:, :, ::-1].copy()
        dc[depth == 0] = 0
        tiles = [rgb, dc]
        mp = paths.gt_mask(t)
        if mp.is_file():
            mask = cv2.imread(str(mp), cv2.IMREAD_UNCHANGED)
            over = rgb.astype(np.float32) * 0.45
            for i in np.unique(mask):
                if i == 0:
                    continue
                col = np.array(colorsys.hsv_to_rgb((i * 0.137) % 1.0, 0.85, 1.0)) * 255
                over[mask == i] += col * 0.55
            edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            over[edges] = 255
            tiles.append(np.clip(over, 0, 255).astype(np.uint8))
        h = int(round(tile_width * rgb.shape[0] / rgb.shape[1]))
        rows.append(np.concatenate([cv2.resize(x, (tile_width, h), interpolation=cv2.INTER_AREA)
                                    for x in tiles], 1))
    return np.concatenate(rows, 0)


__all__ = ["SynthConfig", "SynthResult", "SynthFrame", "SynthWorld", "Cancelled", "run",
           "check_config", "make_camera", "depth_noise_sigma_m", "contact_sheet"]
