"""`run`: write a synthetic scene, its ground truth and (optionally) top-level annotations.

Output (docs/design.md native layout)::

    OUT/rgb/000000.png  depth/000000.png  camera.json  models/<class>/<class>.ply
    OUT/gt/trajectory.txt  gt/annotations.json  gt/masks/000000.png

Everything is written into a temporary directory beside OUT that is renamed into place
at the end (`labeller.core.fileio.atomic_dir`), so a failed or cancelled run leaves
nothing behind, and a killed one leaves the previous OUT or the new one. `--overwrite`
replaces only a scene synth wrote (`is_synth_scene`), never another folder.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import PROPS_CLASS_NAMES
from labeller.core.fileio import atomic_dir, sha256_file
from labeller.core.pool import available_cpus
from labeller.core.progress import ProgressFn, check_progress
from labeller.formats.annotations import AnnotationDocument, ObjectAnnotation, perturbed
from labeller.formats.scene import ScenePaths
from labeller.formats.trajectory import Trajectory
from labeller.synth.config import SYNTH_SCENE_TEXT, SynthConfig, is_synth_scene
from labeller.synth.procedural import class_mesh, ply_bytes
from labeller.synth.world import SynthWorld

# Measured here on 640x480 frames: Huffman-only coding is both faster and smaller than
# zlib level 1 on noisy colour and depth (sensor noise leaves few long matches to find);
# masks are flat regions, which run-length coding suits.
_PNG_NOISY = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_PNG_FLAT = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


@dataclass
class SynthResult:
    """What `run` wrote: the scene folder, its frame count, camera, objects (T_world_obj
    in the world of camera 0) and the wall time in seconds."""

    out: Path
    frames: int
    camera: CameraIntrinsics
    objects: list[ObjectAnnotation]
    seconds: float


def encode_png(arr: np.ndarray, flat: bool = False) -> bytes:
    """PNG bytes of an (H, W, 3) RGB uint8 or (H, W) uint16 image; `flat` for masks."""
    a = arr[:, :, ::-1] if arr.ndim == 3 else arr  # RGB -> OpenCV's BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), _PNG_FLAT if flat else _PNG_NOISY)
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return buf.tobytes()


def _write_png(path: Path, arr: np.ndarray, flat: bool = False) -> None:
    # Inside the temporary scene directory: no per-file rename needed, the whole
    # directory is renamed into place at the end.
    path.write_bytes(encode_png(arr, flat))


def run(cfg: SynthConfig, progress: ProgressFn | None = None) -> SynthResult:
    """Write the synthetic scene `cfg.out` (see module docstring).

    `progress(done, total)` is called after each frame; returning False cancels (raises
    `labeller.core.errors.Cancelled`; nothing is written). Raises ConfigError or BadInput
    for a bad config, an existing OUT without `overwrite`, or an OUT that is not a
    synthetic scene.
    """
    t0 = time.perf_counter()
    out = Path(cfg.out)
    cfg.check()
    world = SynthWorld(cfg)
    n = cfg.frames
    with atomic_dir(out, overwrite=cfg.overwrite, ours=is_synth_scene, what=SYNTH_SCENE_TEXT) as tmp:
        paths = ScenePaths(tmp)
        for d in (paths.rgb_dir, paths.depth_dir, paths.gt / "masks"):
            d.mkdir(parents=True, exist_ok=True)
        world.camera.write(paths.camera)
        if cfg.models_dir is None:
            _write_procedural_models(tmp, world.class_names)
        doc = _write_ground_truth(paths, world, n)
        _write_frames(paths, world, n, progress)
        if cfg.with_annotations:
            _write_top_level_annotations(paths, doc, cfg)
    return SynthResult(out, n, world.camera, [o.copy() for o in world.objects],
                       time.perf_counter() - t0)


def _write_procedural_models(root: Path, class_names: list[str]) -> None:
    """root/models/<class>/<class>.ply for every class (metres, vertex colours)."""
    for name in sorted(set(class_names)):
        mesh = class_mesh(name)
        dest = root / "models" / name / f"{name}.ply"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(ply_bytes(mesh.vertices, mesh.triangles, mesh.vertex_colors()))


def _write_ground_truth(paths: ScenePaths, world: SynthWorld, n: int) -> AnnotationDocument:
    """gt/trajectory.txt and gt/annotations.json (which refers to it); the document."""
    traj = Trajectory({t: world.T_world_cam[t] for t in range(n)})
    traj.write(paths.gt_trajectory)
    doc = AnnotationDocument([o.copy() for o in world.objects], list(PROPS_CLASS_NAMES),
                             sha256_file(paths.gt_trajectory))
    doc.write(paths.gt_annotations)
    return doc


def _write_frames(paths: ScenePaths, world: SynthWorld, n: int,
                  progress: ProgressFn | None) -> None:
    """rgb/, depth/ and gt/masks/ PNGs of frames 0..n-1; progress in frame order."""
    def job(t: int) -> None:
        fr = world.render(t)
        _write_png(paths.rgb_path(t), fr.rgb)
        _write_png(paths.depth_path(t), fr.depth_png)
        _write_png(paths.gt_mask(t), fr.inst, flat=True)

    # Whole frames in parallel threads (not `core.pool`'s processes: the world is big and
    # shared): Open3D, OpenCV and most numpy work release the GIL, so one frame's
    # Python-side shading overlaps another's ray casting and PNG encoding.
    workers = max(2, min(4, available_cpus()))
    world.ray_threads = 1  # the frames are the parallelism; no nested thread pools
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[None]] = deque()
        done = 0

        def finish_one() -> None:
            nonlocal done
            pending.popleft().result()
            done += 1
            check_progress(progress, done, n, "cancelled")

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


def _write_top_level_annotations(paths: ScenePaths, doc: AnnotationDocument,
                                 cfg: SynthConfig) -> None:
    """trajectory.txt (a copy of the ground truth's) and annotations.json, every object
    moved by cfg.annotation_noise (metres, degrees) when that is not zero."""
    shutil.copyfile(paths.gt_trajectory, paths.trajectory)
    noise_m, noise_deg = cfg.annotation_noise
    top = (perturbed(doc, float(noise_m), float(noise_deg), seed=cfg.seed)
           if (noise_m or noise_deg) else doc.copy())
    top.trajectory_sha256 = sha256_file(paths.trajectory)
    top.write(paths.annotations)
