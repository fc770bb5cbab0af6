"""What the three exporters share: reading labels, the scene split, sampling, crops,
the worker pool, progress, the output folder's safety and the manifest.

Scenes are read through `SceneSource`: the scene (frames, camera) plus the bulk arrays
of its `labels/labels.h5` (poses, boxes, pixel counts, scores; not the masks, which are
read per frame where a format needs them). Array shapes: F labelled frames, O objects.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.errors import BadInput, FormatError, LabellerError, SceneError
from labeller.core.fileio import sha256_file
from labeller.formats.scene import Scene

MANIFEST_FORMAT = "labeller-export"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"

# Crops: a square of side max(w, h) * (1 + 2 * CROP_MARGIN) centred on the visible box,
# so the whole visible object plus a little context is in the 32x32 image.
CROP_MARGIN = 0.1
CROP_SIZE = 32
# Parts of the square outside the image are filled with this colour (black), never
# with stretched or mirrored image content that was not there.
CROP_PAD_RGB = (0, 0, 0)

# PROPS labels beyond the ten published classes: 10, 11, ... in order of appearance.
N_PROPS = len(PROPS_CLASS_NAMES)


class ExportCancelled(LabellerError):
    """The progress callback asked to stop; nothing was written."""


class ExportWarning(UserWarning):
    """Something the user should know about the dataset (also kept in the manifest)."""


# --------------------------------------------------------------------------------------
# Reading labels
# --------------------------------------------------------------------------------------
@dataclass
class SceneSource:
    """One scene given on the command line and the bulk arrays of its labels.h5.

    Read with `labeller.formats.labels.Labels` (schema in docs/labels_h5.md). Poses in metres
    (T_cam_obj: (F, O, 4, 4), T_world_cam: (F, 4, 4)); boxes BOP [x, y, w, h] (F, O, 4),
    [-1, -1, -1, -1] for an empty mask; counts and fractions (F, O). Masks, boxes and
    scores describe the propagated pose `T_cam_obj` (an ICP correction is stored beside
    it, not used for them), so that is the pose every export writes.
    """

    index: int  # position on the command line (0-based)
    root: Path
    name: str
    scene: Scene
    labels_path: Path
    classes: list[str]
    object_ids: np.ndarray
    object_classes: list[str]
    object_models: list[str]
    frame_ids: np.ndarray
    T_world_cam: np.ndarray
    arrays: dict[str, np.ndarray]
    _sha256: str | None = None

    @property
    def n_objects(self) -> int:
        return len(self.object_ids)

    def __getattr__(self, name: str) -> np.ndarray:
        # T_cam_obj, bbox_visib, visib_fract, flagged, ... straight from the labels' arrays
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def labels_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.labels_path)
        return self._sha256

    def rgb_path(self, frame_id: int) -> Path:
        return self.scene.rgb_file(int(frame_id))

    def depth_path(self, frame_id: int) -> Path:
        return self.scene.depth_file(int(frame_id))

    def describe(self) -> dict:
        """For the manifest: where the scene and its labels came from."""
        return {"scene": str(self.root), "name": self.name, "labels": str(self.labels_path),
                "labels_sha256": self.labels_sha256, "frames": int(self.scene.n_frames),
                "labelled_frames": int(len(self.frame_ids)), "objects": int(self.n_objects)}


def open_scene_source(root: str | os.PathLike, index: int = 0) -> SceneSource:
    """Open a scene and read its labels.h5, checked.

    Raises SceneError / FormatError naming the file: no labels yet, a run that did not
    finish, another format or version, or labels for another frame size.
    """
    from labeller.formats.labels import Labels

    root = Path(root)
    if not root.is_dir():
        raise SceneError(root, "not a directory (give scene folders)")
    scene = Scene.open(root)
    path = scene.paths.labels
    if not path.is_file():
        raise FormatError(path, f"file not found: run `labeller propagate {root}` first")
    with Labels.open(path) as lab:
        src = SceneSource(
            index=index, root=root, name=root.resolve().name, scene=scene, labels_path=path,
            classes=list(lab.classes), object_ids=np.array([o.id for o in lab.objects], np.int64),
            object_classes=[o.class_name for o in lab.objects],
            object_models=[o.model for o in lab.objects], frame_ids=lab.frame_ids.copy(),
            T_world_cam=np.asarray(lab.T_world_cam, np.float64).reshape(-1, 4, 4),
            arrays=lab.arrays)
        w, h = lab.width, lab.height
    cam = scene.camera
    if (w, h) != (cam.width, cam.height):
        raise FormatError(path, f"labels are for {w}x{h} frames but the scene's camera is "
                                f"{cam.width}x{cam.height}; rerun `labeller propagate {root}`")
    fids = src.frame_ids
    if len(fids) and (fids.min() < 0 or fids.max() >= scene.n_frames):
        raise FormatError(path, f"frame ids outside the scene's {scene.n_frames} frames; "
                                f"rerun `labeller propagate {root}`")
    return src


_worker_labels: dict[str, object] = {}
# Readers a process keeps open (tasks of a few scenes interleave in a pool).
MAX_OPEN_LABELS = 8


def worker_labels(path: str | os.PathLike):
    """A `Labels` reader kept open per process (workers read masks frame by frame)."""
    from labeller.formats.labels import Labels

    key = str(path)
    lab = _worker_labels.pop(key, None)
    if lab is None:
        while len(_worker_labels) >= MAX_OPEN_LABELS:
            _worker_labels.pop(next(iter(_worker_labels))).close()
        lab = Labels.open(path)
    _worker_labels[key] = lab  # most recently used last
    return lab


def close_worker_labels() -> None:
    for lab in _worker_labels.values():
        lab.close()
    _worker_labels.clear()


def open_sources(scenes: Sequence[str | os.PathLike]) -> list[SceneSource]:
    """Open every scene, refusing the same scene twice."""
    if not scenes:
        raise BadInput("SCENE", "give at least one scene")
    seen: dict[Path, str] = {}
    out = []
    for i, s in enumerate(scenes):
        r = Path(s).resolve()
        if r in seen:
            raise BadInput(s, f"scene given twice (also as {seen[r]})")
        seen[r] = str(s)
        out.append(open_scene_source(s, i))
    return out


def class_table(sources: Sequence[SceneSource]) -> list[str]:
    """The label order: the ten PROPS classes, then any other class in order of appearance
    (the scenes' class lists in command-line order, then their objects)."""
    names = list(PROPS_CLASS_NAMES)
    for s in sources:
        for c in [*s.classes, *s.object_classes]:
            if c not in names:
                names.append(c)
    return names


# --------------------------------------------------------------------------------------
# The split by scene
# --------------------------------------------------------------------------------------
def default_n_test(n_scenes: int) -> int:
    """How many of n scenes are held out by default: max(1, round(n / 6)) for n >= 2."""
    return 0 if n_scenes < 2 else max(1, round(n_scenes / 6))


def choose_test_scenes(sources: Sequence[SceneSource], test_scenes: Sequence[str] | None,
                       seed: int) -> list[bool]:
    """Which scenes are held out (True), by folder name or path, or chosen by `seed`.

    Whole scenes only, so no scene feeds both splits.
    """
    n = len(sources)
    if test_scenes is None:
        k = default_n_test(n)
        rng = np.random.default_rng(seed)
        picked = set(rng.choice(n, size=k, replace=False).tolist()) if k else set()
        return [i in picked for i in range(n)]
    held = [False] * n
    names = [s.name for s in sources]
    for t in test_scenes:
        tp = Path(t)
        matches = [i for i, s in enumerate(sources)
                   if s.name == t or (tp.exists() and tp.resolve() == s.root.resolve())]
        if not matches:
            raise BadInput("--test-scenes", f"'{t}' is not one of the scenes given "
                                            f"({', '.join(names)})")
        if len(matches) > 1:
            raise BadInput("--test-scenes", f"'{t}' names {len(matches)} scenes; give its path")
        held[matches[0]] = True
    return held


# --------------------------------------------------------------------------------------
# Sampling evenly over time and scenes
# --------------------------------------------------------------------------------------
def spread_quota(available: Sequence[int], k: int) -> list[int]:
    """Share k picks over groups as evenly as their sizes allow (water filling).

    Every group gets the same share unless it has fewer items; what it cannot take goes
    to the others. Returns picks per group (sum = min(k, sum(available))).
    """
    avail = [int(a) for a in available]
    out = [0] * len(avail)
    remaining = min(int(k), sum(avail))
    order = sorted(range(len(avail)), key=lambda i: (avail[i], i))
    for j, i in enumerate(order):
        left = len(order) - j
        share = -(-remaining // left)  # ceil: the largest groups absorb the remainder
        out[i] = min(avail[i], share)
        remaining -= out[i]
    return out


def pick_evenly(n: int, k: int, offset: float) -> np.ndarray:
    """k distinct indices of 0..n-1 evenly spaced (stride n/k), shifted by offset in [0, 1).

    Items are in time order, so the picks spread over the whole recording instead of
    taking its first k frames (consecutive frames are near-duplicates).
    """
    if k <= 0:
        return np.zeros(0, np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    return np.floor((np.arange(k) + offset) * (n / k)).astype(np.int64)


# --------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------
def crop_squares(bbox_xywh, margin: float = CROP_MARGIN) -> np.ndarray:
    """Squares (N, 3) int [x0, y0, side] around BOP boxes (N, 4) [x, y, w, h], pixels.

    side = max(w, h) * (1 + 2 margin), rounded; the square is centred on the box.
    """
    b = np.asarray(bbox_xywh, np.float64).reshape(-1, 4)
    side = np.maximum(1.0, np.floor(np.maximum(b[:, 2], b[:, 3]) * (1.0 + 2.0 * margin) + 0.5))
    # centre in continuous coordinates where pixel i spans [i, i + 1)
    x0 = np.floor(b[:, 0] + b[:, 2] / 2.0 - side / 2.0 + 0.5)
    y0 = np.floor(b[:, 1] + b[:, 3] / 2.0 - side / 2.0 + 0.5)
    return np.stack([x0, y0, side], axis=1).astype(np.int32)


def crop_resize(img: np.ndarray, square: tuple[int, int, int], size: int = CROP_SIZE,
                pad=CROP_PAD_RGB) -> np.ndarray:
    """Cut the square (x0, y0, side) out of img (H, W, C), padding outside the image,
    and resize it to (size, size, C) with area interpolation."""
    x0, y0, side = square
    H, W = img.shape[:2]  # noqa: N806
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if xa == x0 and ya == y0 and xb == x0 + side and yb == y0 + side:
        patch = img[y0:y0 + side, x0:x0 + side]
    else:
        patch = np.empty((side, side, img.shape[2]), img.dtype)
        patch[:] = np.asarray(pad, img.dtype)[: img.shape[2]]
        if xb > xa and yb > ya:
            patch[ya - y0:yb - y0, xa - x0:xb - x0] = img[ya:yb, xa:xb]
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------
# Worker pool and progress
# --------------------------------------------------------------------------------------
def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _worker_init() -> None:
    # One process per core already; OpenCV's own threads would only fight over them.
    cv2.setNumThreads(1)
    warnings.simplefilter("ignore", ExportWarning)


def run_tasks(fn: Callable, tasks: Sequence, workers: int) -> Iterator:
    """Run fn(task) for every task, yielding the results as they complete.

    workers <= 1 (or a single task) runs in this process. Otherwise a pool of fresh
    (spawned) processes, with at most 2 tasks per worker in flight so memory stays
    bounded however many tasks there are. An exception in a task stops the pool and is
    raised here.
    """
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(t)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # never fork a process holding HDF5 / Open3D state
    ex = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                             initializer=_worker_init)
    pending: set[Future] = set()
    it = iter(tasks)
    try:
        for t in it:
            pending.add(ex.submit(fn, t))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                for t in it:
                    pending.add(ex.submit(fn, t))
                    break
                yield result
    finally:
        for fut in pending:
            fut.cancel()
        ex.shutdown(wait=True, cancel_futures=True)


ProgressCallback = Callable[[int, int, str], object]


class Progress:
    """One bar overall and one per scene (tqdm on stderr), and an optional callback
    `progress(done, total, message)` for the GUI; a callback returning False cancels."""

    def __init__(self, total: int, desc: str, scene_totals: dict[int, tuple[str, int]],
                 bars: bool = True, callback: ProgressCallback | None = None):
        self.total = int(total)
        self.done = 0
        self.callback = callback
        self._scene_totals = scene_totals
        self._scene_done: dict[int, int] = {}
        self._bars: dict[int, object] = {}
        self._slots: dict[int, int] = {}
        self._tqdm = None
        self._bars_on = bars and total > 0
        if self._bars_on:
            from tqdm import tqdm

            self._tqdm = tqdm
            self._overall = tqdm(total=self.total, desc=desc, unit="it", position=0,
                                 file=sys.stderr, dynamic_ncols=True)
        self._check("")

    def _check(self, msg: str) -> None:
        if self.callback is not None and self.callback(self.done, self.total, msg) is False:
            raise ExportCancelled("export cancelled")

    def update(self, scene_index: int, n: int) -> None:
        self.done += n
        name, stotal = self._scene_totals.get(scene_index, (str(scene_index), 0))
        sdone = self._scene_done.get(scene_index, 0) + n
        self._scene_done[scene_index] = sdone
        if self._bars_on:
            bar = self._bars.get(scene_index)
            if bar is None:
                # a scene's bar takes the lowest free line under the overall bar
                used = set(self._slots.values())
                pos = next(p for p in range(1, len(used) + 2) if p not in used)
                bar = self._tqdm(total=stotal, desc=f"  {name}", unit="it", leave=False,
                                 position=pos, file=sys.stderr, dynamic_ncols=True)
                self._slots[scene_index] = pos
                self._bars[scene_index] = bar
            bar.update(n)
            self._overall.update(n)
            if sdone >= stotal:
                bar.close()
                del self._bars[scene_index], self._slots[scene_index]
        self._check(name)

    def close(self) -> None:
        if self._bars_on:
            for b in self._bars.values():
                b.close()
            self._overall.close()


def write_frames(task_fn: Callable, tasks: Sequence, n_frames: int,
                 totals: dict[int, tuple[str, int]], cfg: ExportConfig,
                 progress: ProgressCallback | None) -> dict[str, str]:
    """Run a format's per-frame writer over `tasks` in the pool, with the progress bars;
    returns the sha256 of every file written (relative path -> hex)."""
    bar = Progress(n_frames, "frames", totals, cfg.progress_bars, progress)
    hashes: dict[str, str] = {}
    try:
        for si, n, h in run_tasks(task_fn, tasks, cfg.n_workers):
            hashes.update(h)
            bar.update(si, n)
    finally:
        bar.close()
    return hashes


# --------------------------------------------------------------------------------------
# Output folder, files and the manifest
# --------------------------------------------------------------------------------------
def check_out_dir(out: Path, sources: Sequence[SceneSource], overwrite: bool) -> None:
    """Refuse an output folder that would replace anything but a previous export.

    Without --overwrite an existing folder is an error. With it, only an empty folder or
    one holding a labeller export (its manifest.json) is replaced, and never a scene or a
    folder that contains one of the scenes.
    """
    out_r = out.resolve()
    for s in sources:
        sr = s.root.resolve()
        if out_r == sr or out_r in sr.parents or sr in out_r.parents:
            raise BadInput(out, f"output folder overlaps the scene {s.root}; choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(out, "exists and is not a folder")
    if not overwrite:
        raise BadInput(out, "already exists (pass --overwrite to replace it)")
    if any(out.iterdir()):
        man = out / MANIFEST_NAME
        try:
            ok = json.loads(man.read_text()).get("format") == MANIFEST_FORMAT
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise BadInput(out, "is not empty and holds no labeller export (no manifest.json); "
                                "refusing to replace it even with --overwrite")


def hash_tree(root: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of every file under root (relative POSIX paths), reusing `known` hashes."""
    known = known or {}
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            rel = p.relative_to(root).as_posix()
            out[rel] = known.get(rel) or sha256_file(p)
    return out


def write_manifest(root: Path, body: dict, known_hashes: dict[str, str] | None = None) -> dict:
    """Write root/manifest.json: `body` plus format/version and the sha256 of every file."""
    from labeller import __version__
    from labeller.core.fileio import atomic_write_json

    man = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
           "labeller_version": __version__, **body}
    man["files"] = hash_tree(root, known_hashes)
    atomic_write_json(root / MANIFEST_NAME, man)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(root / MANIFEST_NAME, 0o666 & ~mask)  # not the temp file's private 0600
    return man


def bop_json(d: dict) -> str:
    """JSON like the BOP toolkit's save_json: one line per image key, keys in id order."""
    items = sorted(d.items(), key=lambda kv: int(kv[0]))
    lines = [f'  "{k}": {json.dumps(v, sort_keys=True)}' for k, v in items]
    return "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"


def to_jsonable(o):
    """numpy scalars/arrays and Paths to plain JSON values."""
    if isinstance(o, dict):
        return {str(k): to_jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return to_jsonable(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return o


# --------------------------------------------------------------------------------------
# Pickles the course loaders read
# --------------------------------------------------------------------------------------
# NumPy 2 pickles arrays as `numpy._core.multiarray._reconstruct`, a module NumPy 1.x does
# not have (numpy/numpy#28340), so students on NumPy 1.x could not load the dataset. The
# name NumPy 1.x writes, `numpy.core.multiarray._reconstruct`, loads in both.
_NP2_RECONSTRUCT = "numpy._core.multiarray _reconstruct"
_COMPAT_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\n"
# Protocol 3: plain GLOBAL opcodes (rewritable) and raw bytes for the pixels; Python 3.0+.
PICKLE_PROTOCOL = 3


def dumps_compat(obj) -> bytes:
    """pickle.dumps(obj) loadable by Python 3 with NumPy 1.x or 2.x (dicts, lists, arrays)."""
    raw = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    out = io.BytesIO()
    last = 0
    for op, arg, pos in pickletools.genops(raw):
        if op.name == "GLOBAL" and arg == _NP2_RECONSTRUCT:
            end = raw.index(b"\n", raw.index(b"\n", pos) + 1) + 1
            out.write(raw[last:pos])
            out.write(_COMPAT_RECONSTRUCT)
            last = end
    out.write(raw[last:])
    return out.getvalue()


# --------------------------------------------------------------------------------------
# Models and their licences
# --------------------------------------------------------------------------------------
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


def emit_warning(warnings_list: list[str], msg: str) -> None:
    """Warn once per distinct message, and keep it for the summary and the manifest."""
    if msg in warnings_list:
        return
    warnings_list.append(msg)
    warnings.warn(msg, ExportWarning, stacklevel=3)


# --------------------------------------------------------------------------------------
# Configuration and summary
# --------------------------------------------------------------------------------------
FORMATS = ("props", "props-pose", "bop")
BOP_SPLIT_RE = r"^(train|val|test)(_[A-Za-z0-9]+)?$"


@dataclass
class ExportConfig:
    """One export. `scenes` in command-line order (that order numbers them).

    min_visib / min_size: which objects make crops (props); train_per_class /
    test_per_class: crops per class and split (props); test_scenes: held-out scene
    folder names (props: test, props-pose: val; default max(1, round(n/6)) of n >= 2
    scenes chosen by `seed`); allow_short: write what exists when there are too few
    candidates; keep_flagged: also export frames with a label propagation flagged
    (props-pose, bop; a flagged object never makes a crop); split: the BOP split
    folder; workers: processes (None = one per core); cache: reuse / write the per-scene
    crop caches (SCENE/labels/crops_cache.h5); progress_bars: tqdm bars on stderr.
    """

    format: str
    out: Path
    scenes: list[Path]
    models_dir: Path | None = None
    min_visib: float = 0.5
    min_size: int = 24
    train_per_class: int = 5000
    test_per_class: int = 1000
    test_scenes: list[str] | None = None
    seed: int = 0
    allow_short: bool = False
    keep_flagged: bool = False
    split: str = "test"
    workers: int | None = None
    overwrite: bool = False
    cache: bool = True
    progress_bars: bool = True

    def check(self) -> None:
        import re

        if self.format not in FORMATS:
            raise BadInput("--format", f"must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0.0 <= float(self.min_visib) <= 1.0:
            raise BadInput("--min-visib", f"must be in [0, 1], got {self.min_visib!r}")
        for name, v in (("--min-size", self.min_size), ("--train-per-class", self.train_per_class),
                        ("--test-per-class", self.test_per_class)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise BadInput(name, f"must be an integer >= 0, got {v!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise BadInput("--workers", f"must be an integer >= 1, got {self.workers!r}")
        if not re.match(BOP_SPLIT_RE, self.split):
            raise BadInput("--split", f"must be train, val or test with an optional _TYPE "
                                      f"(BOP), got {self.split!r}")
        if self.models_dir is not None and not Path(self.models_dir).is_dir():
            raise BadInput("--models", f"{self.models_dir}: not a directory")
        if self.test_scenes is not None and self.format == "bop":
            raise BadInput("--test-scenes", "BOP puts every scene in one split (--split)")

    @property
    def n_workers(self) -> int:
        return self.workers if self.workers is not None else default_workers()

    def options(self) -> dict:
        """The options as recorded in the manifest."""
        return to_jsonable({
            "format": self.format, "models_dir": self.models_dir, "min_visib": self.min_visib,
            "min_size": self.min_size, "train_per_class": self.train_per_class,
            "test_per_class": self.test_per_class, "test_scenes": self.test_scenes,
            "seed": self.seed, "allow_short": self.allow_short, "keep_flagged": self.keep_flagged,
            "split": self.split, "crop_size": CROP_SIZE, "crop_margin": CROP_MARGIN})


@dataclass
class ExportSummary:
    """What an export wrote. `format()` is the text the command prints."""

    export_format: str
    out: Path
    lines: list[str]
    counts: dict
    warnings: list[str] = field(default_factory=list)
    contact_sheet: Path | None = None
    manifest: Path | None = None
    seconds: float = 0.0

    def format(self) -> str:
        out = [f"wrote {self.export_format} dataset {self.out} in {self.seconds:.1f} s",
               *self.lines]
        if self.contact_sheet is not None:
            out.append(f"contact sheet: {self.contact_sheet}")
        if self.manifest is not None:
            out.append(f"manifest: {self.manifest}")
        out += [f"warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


# --------------------------------------------------------------------------------------
# Files written by workers (hashed as they are written, for the manifest)
# --------------------------------------------------------------------------------------
def copy_hashed(src: str | os.PathLike, dest: Path) -> str:
    """Copy a file byte for byte; returns its sha256."""
    import hashlib

    data = Path(src).read_bytes()
    dest.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_png_hashed(dest: Path, img: np.ndarray) -> str:
    """Write a PNG (uint8/uint16, 1 or 3 channels given as RGB); returns its sha256."""
    import hashlib

    arr = img[:, :, ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise OSError(f"{dest}: OpenCV could not encode the image")
    data = buf.tobytes()
    dest.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def finish_permissions(root: Path) -> None:
    """Temporary files and folders are created private (0600/0700); a dataset is meant to
    be shared, so give it the permissions of a normally created tree (umask applies)."""
    mask = os.umask(0)
    os.umask(mask)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for fn in filenames:
            os.chmod(os.path.join(dirpath, fn), 0o666 & ~mask)


# --------------------------------------------------------------------------------------
# Object models of the exported classes
# --------------------------------------------------------------------------------------
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
    import open3d as o3d

    from labeller.formats.models import load_model

    load_model(path)  # checks: readable, non-empty, in metres (ModelError otherwise)
    mesh = o3d.io.read_triangle_mesh(str(path), False)
    mesh.compute_vertex_normals()
    v = np.asarray(mesh.vertices, np.float64)
    colors = None
    if mesh.has_vertex_colors():
        colors = np.clip(np.round(np.asarray(mesh.vertex_colors) * 255), 0, 255).astype(np.uint8)
    return MeshArrays(v, np.asarray(mesh.vertex_normals, np.float64),
                      np.asarray(mesh.triangles, np.int64), colors)
