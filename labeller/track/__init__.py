"""Camera tracking (`labeller track`): a trajectory and a fused cloud for a scene.

Method (in the spirit of Open3D's reconstruction system, but streaming):

* Odometry: Open3D's tensor RGB-D odometry, Hybrid method (photometric + geometric,
  Park et al. 2017), coarse to fine over a 3-level pyramid — the same kernels, loss
  parameters and update scheme as ``o3d.t.pipelines.odometry.rgbd_odometry_multi_scale``
  (``compute_odometry_result_hybrid`` per iteration), but each frame's pyramid is built
  once and reused, because every frame is matched against a keyframe that serves many
  frames. Iterations per level: see ``ITERATIONS``.
* Each frame is tracked against the current keyframe (initialised from the previous
  frame's pose and velocity); when that fails, against the previous frame. A frame
  becomes a keyframe every ``keyframe_every`` frames, or sooner when the view has moved
  on (overlap with the keyframe drops, or it moved ``KF_MAX_TRANS_M`` / ``KF_MAX_ROT_DEG``).
* Every new keyframe is also matched against the keyframe before the previous one and
  against up to ``max_loop_candidates`` older keyframes whose estimated view is close
  (loop-closure candidates). The keyframes and these edges form a pose graph that
  ``open3d.pipelines.registration.global_optimization`` optimises at the end (loop
  edges are "uncertain": the optimiser's line process drops those that disagree).
  Non-keyframes follow their keyframe: T_world_cam[t] = T_world_kf @ T_kf_cam[t].
* Failure detection: a frame fails when it cannot be read, has (almost) no depth,
  duplicates the previous frame, the odometry raises, the result does not explain the
  images (too little overlap, or too few depth / intensity inliers when the source is
  warped into the target by the estimate), or the camera would have jumped further than
  ``max_step_m`` / ``max_step_deg`` per frame. A failed frame gets no pose; the reason
  is kept. After a failure the next frames are tried against the keyframe, the last
  good frame and the keyframes that look most alike (relocalisation).
* Fusion: after the pose graph, keyframes and every ``integrate_every``-th tracked frame
  are fused into a TSDF (Open3D's tensor ``VoxelBlockGrid``; the legacy
  ``ScalableTSDFVolume`` returns empty meshes in open3d 0.20) and its coloured surface
  points are written as ``recon/cloud.ply``.

Memory: per frame only its pose record (a 4x4 and a few numbers) is kept; keyframes
keep a 40x30 thumbnail, their pyramids live in a small LRU cache and are re-read from
disk when a loop closure or relocalisation needs them again.

Outputs: ``trajectory.txt`` (world = first tracked frame), ``recon/cloud.ply``,
``recon/tracking.json`` (per-frame status, failures and why, fitness statistics).
``recon/track_checkpoint.npz`` holds the state every ``checkpoint_every`` frames so a
rerun after an interruption resumes; it is removed when the run completes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput, LabellerError, SceneError
from labeller.core.fileio import atomic_path, atomic_write_json, read_image, sha256_file
from labeller.core.poses import inv_pose, nearest_rigid, rotation_angle_deg
from labeller.formats.annotations import AnnotationDocument
from labeller.formats.scene import ScenePaths, list_frame_files
from labeller.formats.trajectory import Trajectory

ProgressFn = Callable[[int, int], "bool | None"]

TRACKING_FORMAT = "labeller-tracking"
TRACKING_VERSION = 1
CHECKPOINT_NAME = "track_checkpoint.npz"
CHECKPOINT_VERSION = 1

# Odometry (Open3D's defaults for rgbd_odometry_multi_scale).
PYRAMID_LEVELS = 3
# Iterations per level, coarse to fine. rgbd_odometry_multi_scale's default is (10, 5, 3);
# each full-resolution iteration costs as much as the whole coarse level. Tracking a frame
# uses one (ATE on the synthetic / 7-Scenes clips 0.16 / 6.07 mm against 0.11 / 6.04 mm
# with two, at 25% less CPU); the few pose-graph edges (skip and loop) use the default.
ITERATIONS = (10, 5, 1)
ITERATIONS_EDGE = (10, 5, 3)
ITERATIONS_REFINE = (0, 0, 2)
DEPTH_OUTLIER_TRUNC_M = 0.07
DEPTH_HUBER_DELTA_M = 0.05
INTENSITY_HUBER_DELTA = 0.1  # intensities in [0, 1]
CONVERGED_REL = 1e-6

# Validation of an odometry result (warp the source into the target with the estimate).
CHECK_MIN_WIDTH = 160  # checks run on the coarsest pyramid level at least this wide
CHECK_DEPTH_TOL_M = 0.01  # |dz| within this (+ CHECK_DEPTH_TOL_REL * z) is a depth inlier
CHECK_DEPTH_TOL_REL = 0.015
CHECK_INTENSITY_TOL = 0.1  # |dI| (after removing the median brightness change) on [0, 1]
MIN_VALID_DEPTH = 0.05  # share of pixels with depth below which a frame is not tracked

# Keyframes: a new one when the view has moved on this far from the current keyframe.
KF_MAX_TRANS_M = 0.15
KF_MAX_ROT_DEG = 15.0
KF_MIN_OVERLAP = 0.6
# Loop-closure candidates: older keyframes whose camera is this close.
LOOP_MAX_DIST_M = 0.5
LOOP_MAX_ANGLE_DEG = 30.0
LOOP_MIN_SEPARATION = 5  # keyframes apart: nearer ones are chained already (skip edges)
THUMB_SIZE = (40, 30)  # (w, h) of the relocalisation thumbnails
RELOC_CANDIDATES = 3  # look-alike keyframes tried per lost frame
RELOC_EVERY_AFTER = 10  # after this many lost frames, try relocalising every 3rd frame

# Fusion
TSDF_BLOCK_RESOLUTION = 8
TSDF_TRUNC_VOXELS = 4.0  # truncation distance in voxels (2.4 cm at 6 mm)
INFO_DIST_M = 0.015  # correspondence distance for the pose-graph information matrices


class TrackingCancelled(LabellerError):
    """The progress callback asked to stop (the checkpoint keeps the work so far)."""


@dataclass
class TrackConfig:
    """What `labeller track` does. Distances in metres, angles in degrees."""

    scene: Path
    keyframe_every: int = 10  # a keyframe at least every N frames
    voxel_m: float = 0.006  # TSDF voxel size of the fused cloud
    force: bool = False  # replace a trajectory that saved annotations refer to
    mode: str = "full"  # "full" (keyframes + pose graph) | "odometry" (frame to frame only)
    depth_max_m: float = 3.0  # depth beyond this is ignored (odometry and fusion)
    min_overlap: float = 0.3  # of valid source pixels landing on valid target depth
    min_depth_inliers: float = 0.6  # of overlapping pixels
    min_intensity_inliers: float = 0.5  # of depth inliers
    max_step_m: float = 0.10  # camera motion per frame above this is a jump (3 m/s at 30 fps)
    max_step_deg: float = 15.0
    max_loop_candidates: int = 1  # per new keyframe
    integrate_every: int = 10  # fuse keyframes and every N-th tracked frame
    write_cloud: bool = True
    resume: bool = True
    checkpoint_every: int = 10
    keyframe_cache: int = 6  # keyframe pyramids kept in memory
    progress_bar: bool = True

    def problem(self) -> str | None:
        if self.mode not in ("full", "odometry"):
            return f"mode must be 'full' or 'odometry', got {self.mode!r}"
        if not isinstance(self.keyframe_every, int) or self.keyframe_every < 1:
            return f"--keyframe-every must be an integer >= 1, got {self.keyframe_every!r}"
        if not (0.0005 <= self.voxel_m <= 0.2):
            return f"--voxel must be between 0.0005 and 0.2 m, got {self.voxel_m!r}"
        if self.integrate_every < 1:
            return f"integrate_every must be >= 1, got {self.integrate_every!r}"
        if self.depth_max_m <= 0:
            return f"depth_max_m must be > 0, got {self.depth_max_m!r}"
        return None

    def fingerprint(self) -> str:
        """Hash of the settings that change the trajectory (a checkpoint must match)."""
        d = asdict(self)
        for k in ("scene", "force", "write_cloud", "resume", "checkpoint_every",
                  "keyframe_cache", "progress_bar", "voxel_m", "integrate_every"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrackResult:
    scene: Path
    n_frames: int
    trajectory: Trajectory
    failed: dict[int, str] = field(default_factory=dict)  # frame -> reason
    n_keyframes: int = 0
    loop_closures: int = 0  # accepted loop / skip edges kept after optimisation
    mean_fitness: float = float("nan")
    mean_inlier_ratio: float = float("nan")
    longest_gap: int = 0
    seconds: float = 0.0
    tracking_seconds: float = 0.0
    cloud_points: int = 0
    resumed_from: int | None = None
    cancelled: bool = False

    @property
    def n_tracked(self) -> int:
        return len(self.trajectory)

    @property
    def frames_per_second(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (f"tracked {self.n_tracked} / {self.n_frames} frames, longest gap "
                f"{self.longest_gap} frame(s), mean fitness {self.mean_fitness:.3f}, "
                f"{self.n_keyframes} keyframes, {self.loop_closures} loop edges, "
                f"{self.frames_per_second:.1f} frames/s")


# --- frames -------------------------------------------------------------------------------


class FrameSource:
    """Tolerant frame reader: a missing or broken frame is that frame's failure, not the run's.

    Unlike `Scene`, a scene with a missing rgb/depth file still opens; `read(t)` raises
    BadInput naming the file for that frame only.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.paths = ScenePaths(self.root)
        if not self.root.is_dir():
            raise SceneError(self.root, "not a directory")
        self.camera = CameraIntrinsics.read(self.paths.camera)
        self.rgb = list_frame_files(self.paths.rgb_dir)
        self.depth = list_frame_files(self.paths.depth_dir)
        self.n_frames = max(max(self.rgb, default=-1), max(self.depth, default=-1)) + 1
        if self.n_frames == 0:
            raise SceneError(self.paths.rgb_dir, "no frames (expected rgb/000000.png and "
                                                 "depth/000000.png ...)")

    def fingerprint(self) -> dict:
        """Identity of the frames on disk (for checkpoint validity)."""
        probe = sorted({0, self.n_frames // 2, self.n_frames - 1})
        files = []
        for t in probe:
            for p in (self.rgb.get(t), self.depth.get(t)):
                st = p.stat() if p is not None and p.exists() else None
                files.append(None if st is None else [p.name, st.st_size, st.st_mtime_ns])
        return {"n_frames": self.n_frames, "camera": self.camera.to_dict(), "files": files}

    def read(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) uint16) of frame t; BadInput naming the file."""
        cam = self.camera
        rgb_path = self.rgb.get(t, self.paths.rgb_path(t))
        depth_path = self.depth.get(t, self.paths.depth_path(t))
        if t not in self.depth:
            raise BadInput(depth_path, f"missing depth frame {t}")
        if t not in self.rgb:
            raise BadInput(rgb_path, f"missing rgb frame {t}")
        rgb = read_image(rgb_path)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.dtype != np.uint8:
            raise BadInput(rgb_path, f"colour frame must be 8-bit, got {rgb.dtype}")
        depth = read_image(depth_path)
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise BadInput(depth_path,
                           f"depth must be a single-channel 16-bit PNG, got {depth.dtype}")
        for p, img in ((rgb_path, rgb), (depth_path, depth)):
            if img.shape[:2] != (cam.height, cam.width):
                raise BadInput(p, f"size {img.shape[1]}x{img.shape[0]} differs from camera.json's "
                                  f"{cam.width}x{cam.height}")
        return rgb, depth


_GAUSS5 = np.array([1, 4, 6, 4, 1], np.float32)


def _pyrdown_depth(d: np.ndarray, max_diff_m: float) -> np.ndarray:
    """Halve a depth map (H, W) float32 metres, NaN = none, without blurring across edges.

    Like Open3D's PyrDownDepth (not exposed in Python): output pixel (y, x) is the 5x5
    Gaussian-weighted mean, around input (2y, 2x), of the samples within `max_diff_m` of
    the centre sample; NaN where the centre has no depth.
    """
    H, W = d.shape
    h, w = (H + 1) // 2, (W + 1) // 2
    p = np.pad(d, 2, mode="constant", constant_values=np.nan)
    c = d[::2, ::2]
    acc = np.zeros((h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    with np.errstate(invalid="ignore"):
        for dy in range(5):
            for dx in range(5):
                v = p[dy:dy + 2 * h:2, dx:dx + 2 * w:2]
                m = np.abs(v - c) < max_diff_m
                wt = _GAUSS5[dy] * _GAUSS5[dx]
                acc += np.where(m, v, 0.0) * wt
                wsum += m * wt
        out = np.where(wsum > 0, acc / np.maximum(wsum, 1e-12), np.nan).astype(np.float32)
    out[np.isnan(c)] = np.nan
    return out


class _Level:
    """One pyramid level of a frame, as Open3D tensors (and numpy views for checks)."""

    __slots__ = ("depth", "inten", "vm", "K", "K_np", "ddx", "ddy", "idx", "idy")

    def __init__(self, depth, inten, vm, K, K_np):
        self.depth, self.inten, self.vm, self.K, self.K_np = depth, inten, vm, K, K_np
        self.ddx = self.ddy = self.idx = self.idy = None


class _Frame:
    """A preprocessed frame: pyramid (coarse to fine), thumbnail and identity hash."""

    def __init__(self, t: int, rgb: np.ndarray, depth_raw: np.ndarray, cam: CameraIntrinsics,
                 depth_max_m: float):
        import open3d as o3d

        Image = o3d.t.geometry.Image
        self.t = t
        depth_m = depth_raw.astype(np.float32) / np.float32(cam.depth_scale)
        valid = (depth_m > 0) & (depth_m <= depth_max_m)
        self.valid_ratio = float(valid.mean())
        depth_m = np.where(valid, depth_m, np.nan).astype(np.float32)
        gray = _gray(rgb)
        # Identity for duplicate detection: the raw depth bytes and a coarse colour print.
        self.key = hashlib.blake2b(depth_raw.tobytes(), digest_size=16).digest()
        self.gray_small = _resize_area(gray, (80, 60))
        th = _resize_area(gray, THUMB_SIZE)
        th = th - th.mean()
        self.thumb = (th / (np.linalg.norm(th) + 1e-9)).astype(np.float32)
        K = cam.K.copy()
        levels: list[_Level] = []
        d, g = depth_m, gray
        for i in range(PYRAMID_LEVELS):
            Kt = o3d.core.Tensor(K)
            dimg = Image(o3d.core.Tensor(np.ascontiguousarray(d[:, :, None])))
            gimg = Image(o3d.core.Tensor(np.ascontiguousarray(g[:, :, None])))
            vm = dimg.create_vertex_map(Kt, float("nan"))
            levels.append(_Level(dimg.as_tensor(), gimg.as_tensor(), vm.as_tensor(), Kt, K.copy()))
            if i != PYRAMID_LEVELS - 1:
                # As Open3D's multi-scale odometry: edge-aware 5x5 Gaussian for depth,
                # Gaussian pyramid for intensity, K halved.
                d = _pyrdown_depth(d, DEPTH_OUTLIER_TRUNC_M * 2)
                g = gimg.pyrdown().as_tensor().numpy()[:, :, 0]
                h2, w2 = min(d.shape[0], g.shape[0]), min(d.shape[1], g.shape[1])
                d = np.ascontiguousarray(d[:h2, :w2])
                g = np.ascontiguousarray(g[:h2, :w2])
                K = K / 2.0
                K[2, 2] = 1.0
        self.levels = levels[::-1]  # coarse to fine
        self.check_level = next((i for i, lv in enumerate(self.levels)
                                 if lv.depth.shape[1] >= CHECK_MIN_WIDTH), len(self.levels) - 1)

    def as_target(self) -> None:
        """Compute the gradients a target needs (once)."""
        import open3d as o3d

        for lv in self.levels:
            if lv.ddx is None:
                ddx, ddy = o3d.t.geometry.Image(lv.depth).filter_sobel()
                idx, idy = o3d.t.geometry.Image(lv.inten).filter_sobel()
                lv.ddx, lv.ddy = ddx.as_tensor(), ddy.as_tensor()
                lv.idx, lv.idy = idx.as_tensor(), idy.as_tensor()


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Intensity (H, W) float32 in [0, 1] of an RGB uint8 image (ITU-R 601 weights)."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)


def _resize_area(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


class _OdometryFailed(Exception):
    pass


def _odometry(src: _Frame, tgt: _Frame, init_T_tgt_src: np.ndarray,
              iterations: tuple[int, ...] = ITERATIONS) -> tuple[np.ndarray, float, float]:
    """Hybrid RGB-D odometry: (T_tgt_src (4, 4), fitness, inlier_rmse).

    Same kernels and coarse-to-fine scheme as rgbd_odometry_multi_scale (Method.Hybrid,
    default criteria and loss parameters), on cached pyramids. fitness = share of all
    pixels of the finest level with a correspondence. Raises _OdometryFailed.
    """
    import open3d as o3d

    od = o3d.t.pipelines.odometry
    tgt.as_target()
    T = o3d.core.Tensor(np.asarray(init_T_tgt_src, dtype=np.float64))
    fitness, rmse = 1.0, 0.0
    try:
        for lvl, n_iter in enumerate(iterations):
            s, g = src.levels[lvl], tgt.levels[lvl]
            for _ in range(n_iter):
                r = od.compute_odometry_result_hybrid(
                    s.depth, g.depth, s.inten, g.inten, g.ddx, g.ddy, g.idx, g.idy, s.vm, s.K, T,
                    DEPTH_OUTLIER_TRUNC_M, DEPTH_HUBER_DELTA_M, INTENSITY_HUBER_DELTA)
                T = r.transformation @ T
                converged = (abs(fitness - r.fitness) / max(fitness, 1e-12) < CONVERGED_REL
                             and abs(rmse - r.inlier_rmse) / max(rmse, 1e-12) < CONVERGED_REL)
                fitness, rmse = r.fitness, r.inlier_rmse
                if converged:
                    break
    except RuntimeError as exc:  # Open3D raises when no pixel corresponds
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise _OdometryFailed(f"odometry failed ({msg[:120]})") from None
    T_np = T.numpy().astype(np.float64)
    if not np.all(np.isfinite(T_np)):
        raise _OdometryFailed("odometry diverged (non-finite pose)")
    return nearest_rigid(T_np), float(fitness), float(rmse)


@dataclass
class _Check:
    overlap: float  # valid source pixels that land on valid target depth (share of valid)
    depth_inliers: float  # of those, share within the depth tolerance
    intensity_inliers: float  # of the depth inliers, share within the intensity tolerance

    @property
    def inlier_ratio(self) -> float:
        """Valid source pixels explained in depth and intensity."""
        return self.overlap * self.depth_inliers * self.intensity_inliers


def _check(src: _Frame, tgt: _Frame, T_tgt_src: np.ndarray) -> _Check:
    """Warp the source into the target with T_tgt_src and measure how well it agrees."""
    s, g = src.levels[src.check_level], tgt.levels[tgt.check_level]
    vm = s.vm.numpy().reshape(-1, 3)
    si = s.inten.numpy().reshape(-1)
    ok = np.isfinite(vm[:, 2])
    n_valid = int(ok.sum())
    if n_valid == 0:
        return _Check(0.0, 0.0, 0.0)
    p = vm[ok].astype(np.float64) @ T_tgt_src[:3, :3].T + T_tgt_src[:3, 3]
    si = si[ok]
    K = g.K_np
    gd = g.depth.numpy()[:, :, 0]
    gi = g.inten.numpy()[:, :, 0]
    h, w = gd.shape
    z = p[:, 2]
    front = z > 1e-6
    u = np.full(len(z), -1, np.int64)
    v = np.full(len(z), -1, np.int64)
    u[front] = np.round(K[0, 0] * p[front, 0] / z[front] + K[0, 2]).astype(np.int64)
    v[front] = np.round(K[1, 1] * p[front, 1] / z[front] + K[1, 2]).astype(np.int64)
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    zt = np.full(len(z), np.nan, np.float32)
    zt[inside] = gd[v[inside], u[inside]]
    on = inside & np.isfinite(zt)
    n_on = int(on.sum())
    if n_on == 0:
        return _Check(0.0, 0.0, 0.0)
    dz = np.abs(zt[on] - z[on])
    d_in = dz <= CHECK_DEPTH_TOL_M + CHECK_DEPTH_TOL_REL * z[on]
    n_d = int(d_in.sum())
    if n_d == 0:
        return _Check(n_on / n_valid, 0.0, 0.0)
    di = gi[v[on][d_in], u[on][d_in]] - si[on][d_in]
    di = di - np.median(di)  # a global brightness change (auto exposure) is not a mismatch
    n_i = int((np.abs(di) <= CHECK_INTENSITY_TOL).sum())
    return _Check(n_on / n_valid, n_d / n_on, n_i / n_d)


# --- tracker state -------------------------------------------------------------------------


@dataclass
class _Record:
    """What tracking decided for one frame."""

    status: str = "pending"  # "tracked" | "failed" | "pending"
    reason: str | None = None
    node: int = -1  # keyframe node the pose is relative to
    T_kf_cam: np.ndarray | None = None
    fitness: float = float("nan")
    inlier_ratio: float = float("nan")
    reference: int = -1  # frame the accepted odometry was against


@dataclass
class _Edge:
    source: int  # keyframe node
    target: int
    T_target_source: np.ndarray
    information: np.ndarray
    uncertain: bool
    kind: str  # "chain" | "skip" | "loop" | "reloc"


class _Tracker:
    def __init__(self, cfg: TrackConfig, src: FrameSource):
        self.cfg = cfg
        self.src = src
        n = src.n_frames
        self.records = [_Record() for _ in range(n)]
        self.kf_frames: list[int] = []  # node -> frame id
        self.kf_T_world: list[np.ndarray] = []  # node -> T_world_kf (estimate)
        self.kf_thumbs: list[np.ndarray] = []
        self.edges: list[_Edge] = []
        self.next_t = 0
        self.cur_node = -1
        self.prev_t = -1  # last tracked frame
        self.prev_T_world = np.eye(4)
        self.velocity = np.eye(4)  # T_prev_cam per frame (constant-velocity prediction)
        self.lost = 0  # consecutive frames since the last tracked one that failed odometry
        self.last_key: bytes | None = None
        self.last_key_t = -1
        self.last_gray: np.ndarray | None = None
        self.loop_tried = 0
        self.cache: OrderedDict[int, _Frame] = OrderedDict()
        self.prev_frame: _Frame | None = None
        self._pool = None
        self._ahead: dict = {}
        # Plain odometry chains every pair, so each gets Open3D's full default schedule.
        self.track_iterations = ITERATIONS if cfg.mode == "full" else ITERATIONS_EDGE

    # -- frames --
    def load(self, t: int) -> _Frame:
        rgb, depth = self.src.read(t)
        return _Frame(t, rgb, depth, self.src.camera, self.cfg.depth_max_m)

    def load_next(self, t: int) -> _Frame:
        """Frame t of the stream; frame t + 1 is read from disk in the background meanwhile.

        Decoding PNG/JPEG releases the GIL, so the next frame's read overlaps this frame's
        odometry (about 10-20 ms a frame at 640x480).
        """
        fut = self._ahead.pop(t, None)
        if fut is None:
            rgb, depth = self.src.read(t)
        else:
            rgb, depth = fut.result()  # re-raises the read's BadInput
        if t + 1 < self.src.n_frames:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="track-read")
            self._ahead = {t + 1: self._pool.submit(self.src.read, t + 1)}
        return _Frame(t, rgb, depth, self.src.camera, self.cfg.depth_max_m)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead = {}

    def keyframe(self, node: int) -> _Frame:
        t = self.kf_frames[node]
        fr = self.cache.get(t)
        if fr is None:
            fr = self.prev_frame if (self.prev_frame is not None and self.prev_frame.t == t) \
                else self.load(t)
            self.cache[t] = fr
        self.cache.move_to_end(t)
        while len(self.cache) > max(2, self.cfg.keyframe_cache):
            self.cache.popitem(last=False)
        return fr

    def T_world(self, t: int) -> np.ndarray:
        r = self.records[t]
        return nearest_rigid(self.kf_T_world[r.node] @ r.T_kf_cam)

    # -- matching --
    def _try(self, src: _Frame, tgt: _Frame, init: np.ndarray, strict: bool = False,
             iterations: tuple[int, ...] = ITERATIONS
             ) -> tuple[np.ndarray | None, float, _Check | None, str]:
        """Odometry + validation: (T_tgt_src or None, fitness, check, reason if rejected)."""
        try:
            T, fitness, _ = _odometry(src, tgt, init, iterations)
        except _OdometryFailed as exc:
            return None, float("nan"), None, str(exc)
        chk = _check(src, tgt, T)
        cfg = self.cfg
        scale = 1.25 if strict else 1.0  # loop closures / relocalisation must be surer
        if chk.overlap < min(0.95, cfg.min_overlap * scale):
            return None, fitness, chk, (f"too little overlap with frame {tgt.t} "
                                        f"({chk.overlap:.2f} < {cfg.min_overlap * scale:.2f})")
        if chk.depth_inliers < min(0.95, cfg.min_depth_inliers * scale):
            return None, fitness, chk, (f"low depth inlier ratio against frame {tgt.t} "
                                        f"({chk.depth_inliers:.2f} < "
                                        f"{cfg.min_depth_inliers * scale:.2f})")
        if chk.intensity_inliers < min(0.95, cfg.min_intensity_inliers * scale):
            return None, fitness, chk, (f"low intensity inlier ratio against frame {tgt.t} "
                                        f"({chk.intensity_inliers:.2f} < "
                                        f"{cfg.min_intensity_inliers * scale:.2f})")
        return T, fitness, chk, ""

    def _refine(self, src: _Frame, tgt: _Frame, T: np.ndarray) -> np.ndarray:
        """More full-resolution iterations for a link the keyframe chain will rest on.

        Tracking a frame uses one finest-level iteration; a keyframe's pose is chained by
        every later frame, so its link gets ITERATIONS_REFINE more (kept only if it still
        passes the checks).
        """
        if self.cfg.mode != "full":
            return T
        T2, _, chk, _ = self._try(src, tgt, T, iterations=ITERATIONS_REFINE)
        return T if T2 is None else T2

    def _jump(self, t: int, T_world_cam: np.ndarray) -> str | None:
        """Why the pose is implausible after the last tracked frame, or None."""
        if self.prev_t < 0:
            return None
        dt = min(t - self.prev_t, 10)
        step = inv_pose(self.prev_T_world) @ T_world_cam
        d = float(np.linalg.norm(step[:3, 3]))
        a = rotation_angle_deg(step)
        if d > self.cfg.max_step_m * dt:
            return (f"implausible jump of {d:.3f} m since frame {self.prev_t} "
                    f"(limit {self.cfg.max_step_m:.2f} m per frame)")
        if a > self.cfg.max_step_deg * dt:
            return (f"implausible rotation of {a:.1f} deg since frame {self.prev_t} "
                    f"(limit {self.cfg.max_step_deg:.0f} deg per frame)")
        return None

    def _information(self, src: _Frame, tgt: _Frame, T_tgt_src: np.ndarray) -> np.ndarray:
        import open3d as o3d

        # On the half-resolution level: 4x cheaper, and every edge is weighed the same way.
        s, g = src.levels[-2], tgt.levels[-2]
        info = o3d.t.pipelines.odometry.compute_odometry_information_matrix(
            o3d.t.geometry.Image(s.depth), o3d.t.geometry.Image(g.depth), s.K,
            o3d.core.Tensor(T_tgt_src), INFO_DIST_M, 1.0, self.cfg.depth_max_m).numpy()
        info = info.astype(np.float64)
        if not np.all(np.isfinite(info)) or info[5, 5] <= 0:
            info = np.eye(6)
        return info

    # -- keyframes and graph --
    def _add_keyframe(self, fr: _Frame, T_world: np.ndarray) -> int:
        node = len(self.kf_frames)
        self.kf_frames.append(fr.t)
        self.kf_T_world.append(T_world.copy())
        self.kf_thumbs.append(fr.thumb)
        self.cache[fr.t] = fr
        self.cache.move_to_end(fr.t)
        return node

    def _promote(self, fr: _Frame, link_node: int, T_link_cam: np.ndarray, kind: str,
                 link_frame: _Frame | None) -> None:
        """Make tracked frame `fr` a keyframe linked to keyframe `link_node`."""
        T_world = nearest_rigid(self.kf_T_world[link_node] @ T_link_cam)
        node = self._add_keyframe(fr, T_world)
        if self.cfg.mode == "full":
            lf = link_frame if link_frame is not None else self.keyframe(link_node)
            info = self._information(fr, lf, T_link_cam)
        else:  # plain odometry builds no pose graph
            info = np.eye(6)
        self.edges.append(_Edge(node, link_node, T_link_cam, info, False, kind))
        r = self.records[fr.t]
        r.node, r.T_kf_cam = node, np.eye(4)
        self.cur_node = node
        if self.cfg.mode == "full":
            self._extra_edges(node, fr)

    def _extra_edges(self, node: int, fr: _Frame) -> None:
        """Skip edge to the keyframe before the previous one, and loop-closure candidates."""
        T_wi = self.kf_T_world[node]
        cands: list[tuple[float, int, str]] = []
        if node >= 2:
            cands.append((-1.0, node - 2, "skip"))
        c_i, z_i = T_wi[:3, 3], T_wi[:3, 2]
        loops = []
        for j in range(node - LOOP_MIN_SEPARATION + 1):
            if j == node - 2:
                continue
            T_wj = self.kf_T_world[j]
            d = float(np.linalg.norm(T_wj[:3, 3] - c_i))
            ang = math.degrees(math.acos(float(np.clip(T_wj[:3, 2] @ z_i, -1.0, 1.0))))
            if d <= LOOP_MAX_DIST_M and ang <= LOOP_MAX_ANGLE_DEG:
                loops.append((d + 0.01 * ang, j, "loop"))
        loops.sort()
        cands += loops[: self.cfg.max_loop_candidates]
        linked = {(e.source, e.target) for e in self.edges}
        for _, j, kind in cands:
            if (node, j) in linked:
                continue
            if kind == "loop":
                self.loop_tried += 1
            tgt = self.keyframe(j)
            init = inv_pose(self.kf_T_world[j]) @ T_wi
            T, _, _, _ = self._try(fr, tgt, init, strict=(kind == "loop"),
                                   iterations=ITERATIONS_EDGE)
            if T is None:
                continue
            # A loop edge that disagrees wildly with the estimate is a false match.
            dev = inv_pose(init) @ T
            if np.linalg.norm(dev[:3, 3]) > 0.3 or rotation_angle_deg(dev) > 20:
                continue
            self.edges.append(_Edge(node, j, T, self._information(fr, tgt, T), True, kind))
            self.keyframe(node)  # keep the new keyframe most recent in the cache

    # -- per frame --
    def step(self, t: int) -> None:
        rec = self.records[t]
        try:
            fr = self.load_next(t)
        except BadInput as exc:
            rec.status, rec.reason = "failed", str(exc)
            return
        if fr.valid_ratio < MIN_VALID_DEPTH:
            rec.status = "failed"
            rec.reason = (f"too little depth ({fr.valid_ratio:.1%} of pixels valid, "
                          f"need {MIN_VALID_DEPTH:.0%})")
            return
        if self.last_key is not None and fr.key == self.last_key and self.last_gray is not None \
                and float(np.abs(fr.gray_small - self.last_gray).mean()) < 1.0 / 255:
            rec.status = "failed"
            rec.reason = f"duplicate of frame {self.last_key_t} (identical images)"
            return
        self.last_key, self.last_key_t, self.last_gray = fr.key, t, fr.gray_small

        if self.cur_node < 0:  # the first usable frame defines the world
            node = self._add_keyframe(fr, np.eye(4))
            self.cur_node = node
            rec.status, rec.node, rec.T_kf_cam = "tracked", node, np.eye(4)
            rec.fitness, rec.inlier_ratio, rec.reference = 1.0, 1.0, t
            self._set_prev(fr, t, np.eye(4))
            return

        cfg = self.cfg
        T_pred_world = self.prev_T_world @ (self.velocity if t - self.prev_t == 1 else np.eye(4))
        attempts: list[tuple[str, int]] = [("kf", self.cur_node)]
        if self.prev_frame is not None and self.prev_t != self.kf_frames[self.cur_node]:
            attempts.append(("prev", -1))
        if self.lost > 0 and (self.lost <= RELOC_EVERY_AFTER or self.lost % 3 == 0):
            for j in self._lookalikes(fr):
                if j != self.cur_node:
                    attempts.append(("reloc", j))
        reasons: list[str] = []
        for kind, j in attempts:
            tgt = self.prev_frame if kind == "prev" else self.keyframe(j)
            assert tgt is not None
            T_world_tgt = self.prev_T_world if kind == "prev" else self.kf_T_world[j]
            init = inv_pose(T_world_tgt) @ T_pred_world
            T, fitness, chk, why = self._try(fr, tgt, init, strict=(kind == "reloc"),
                                             iterations=self.track_iterations)
            if T is None:
                reasons.append(why)
                continue
            T_world_cam = T_world_tgt @ T
            if kind != "reloc" and (jump := self._jump(t, T_world_cam)):
                reasons.append(jump)
                continue
            assert chk is not None
            rec.status, rec.fitness, rec.inlier_ratio, rec.reference = (
                "tracked", fitness, chk.inlier_ratio, tgt.t)
            if kind == "kf":
                n_since = t - self.kf_frames[j]
                moved = (np.linalg.norm(T[:3, 3]) > KF_MAX_TRANS_M or rotation_angle_deg(T) > KF_MAX_ROT_DEG
                         or chk.overlap < KF_MIN_OVERLAP)
                promote = n_since >= cfg.keyframe_every or moved
                if promote:
                    T = self._refine(fr, tgt, T)
                rec.node, rec.T_kf_cam = j, T
                if promote:
                    self._promote(fr, j, T, "chain", tgt)
            elif kind == "prev":
                # The keyframe no longer matches but the last frame does: chain through it
                # and start a new keyframe here.
                T = self._refine(fr, tgt, T)
                pr = self.records[self.prev_t]
                T_kf_cam = nearest_rigid(pr.T_kf_cam @ T)
                rec.node, rec.T_kf_cam = pr.node, T_kf_cam
                self._promote(fr, pr.node, T_kf_cam, "chain", None)
            else:
                T = self._refine(fr, tgt, T)
                rec.node, rec.T_kf_cam = j, T
                self._promote(fr, j, T, "reloc", tgt)
            self._set_prev(fr, t, self.T_world(t))
            self.lost = 0
            return
        rec.status = "failed"
        rec.reason = "; ".join(dict.fromkeys(reasons)) or "no reference to track against"
        self.lost += 1

    def _set_prev(self, fr: _Frame, t: int, T_world: np.ndarray) -> None:
        if self.prev_t >= 0 and t - self.prev_t == 1:
            self.velocity = nearest_rigid(inv_pose(self.prev_T_world) @ T_world)
        else:
            self.velocity = np.eye(4)
        self.prev_t, self.prev_T_world, self.prev_frame = t, T_world.copy(), fr

    def _lookalikes(self, fr: _Frame) -> list[int]:
        if not self.kf_thumbs:
            return []
        sims = np.array([float(fr.thumb.ravel() @ th.ravel()) for th in self.kf_thumbs])
        order = np.argsort(-sims)
        return [int(j) for j in order[:RELOC_CANDIDATES]]

    # -- pose graph --
    def optimise(self) -> int:
        """Optimise the keyframe poses; returns the number of uncertain edges kept."""
        import open3d as o3d

        reg = o3d.pipelines.registration
        n_nodes = len(self.kf_frames)
        if self.cfg.mode != "full" or n_nodes < 3 or not any(e.uncertain for e in self.edges):
            return 0
        pg = reg.PoseGraph()
        for T in self.kf_T_world:
            pg.nodes.append(reg.PoseGraphNode(T.copy()))
        for e in self.edges:
            pg.edges.append(reg.PoseGraphEdge(e.source, e.target, e.T_target_source.copy(),
                                              e.information.copy(), uncertain=e.uncertain))
        option = reg.GlobalOptimizationOption(
            max_correspondence_distance=INFO_DIST_M, edge_prune_threshold=0.25,
            preference_loop_closure=0.1, reference_node=0)
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            reg.global_optimization(pg, reg.GlobalOptimizationLevenbergMarquardt(),
                                    reg.GlobalOptimizationConvergenceCriteria(), option)
        # Node 0 is fixed, so the world stays the first keyframe's camera.
        self.kf_T_world = [nearest_rigid(np.asarray(nd.pose, dtype=np.float64)) for nd in pg.nodes]
        return sum(1 for e in pg.edges if e.uncertain)

    def trajectory(self) -> Trajectory:
        poses = {t: self.T_world(t) for t, r in enumerate(self.records) if r.status == "tracked"}
        return Trajectory(poses).reanchored()

    # -- checkpoint --
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "next_t": self.next_t, "cur_node": self.cur_node, "prev_t": self.prev_t,
            "lost": self.lost, "last_key_t": self.last_key_t, "loop_tried": self.loop_tried,
            "kf_frames": self.kf_frames,
            "records": [[r.status, r.reason, r.node, r.fitness, r.inlier_ratio, r.reference]
                        for r in self.records],
            "edges": [[e.source, e.target, e.uncertain, e.kind] for e in self.edges],
        }
        n = len(self.records)
        T_kf = np.zeros((n, 4, 4))
        for t, r in enumerate(self.records):
            if r.T_kf_cam is not None:
                T_kf[t] = r.T_kf_cam
        arrays = {
            "T_kf_cam": T_kf,
            "kf_T_world": np.array(self.kf_T_world).reshape(-1, 4, 4),
            "kf_thumbs": np.array(self.kf_thumbs, dtype=np.float32).reshape(
                -1, THUMB_SIZE[1], THUMB_SIZE[0]),
            "edge_T": np.array([e.T_target_source for e in self.edges]).reshape(-1, 4, 4),
            "edge_info": np.array([e.information for e in self.edges]).reshape(-1, 6, 6),
            "prev_T_world": self.prev_T_world, "velocity": self.velocity,
        }
        return meta, arrays

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.next_t = int(meta["next_t"])
        self.cur_node, self.prev_t = int(meta["cur_node"]), int(meta["prev_t"])
        self.lost, self.loop_tried = int(meta["lost"]), int(meta["loop_tried"])
        self.kf_frames = [int(x) for x in meta["kf_frames"]]
        self.kf_T_world = [T.copy() for T in arrays["kf_T_world"]]
        self.kf_thumbs = [th.copy() for th in arrays["kf_thumbs"]]
        self.records = []
        for t, (status, reason, node, fit, inl, ref) in enumerate(meta["records"]):
            r = _Record(status, reason, int(node), None, float(fit), float(inl), int(ref))
            if status == "tracked":
                r.T_kf_cam = arrays["T_kf_cam"][t].copy()
            self.records.append(r)
        self.edges = [_Edge(int(s), int(g), arrays["edge_T"][i].copy(),
                            arrays["edge_info"][i].copy(), bool(u), str(k))
                      for i, (s, g, u, k) in enumerate(meta["edges"])]
        self.prev_T_world = arrays["prev_T_world"].copy()
        self.velocity = arrays["velocity"].copy()
        self.prev_frame = None
        if self.prev_t >= 0:
            try:
                self.prev_frame = self.load(self.prev_t)
            except BadInput:
                self.prev_frame = None
        lk = int(meta["last_key_t"])
        self.last_key_t, self.last_key, self.last_gray = lk, None, None
        if lk >= 0:
            try:
                same = self.prev_frame is not None and self.prev_frame.t == lk
                f = self.prev_frame if same else self.load(lk)
                self.last_key, self.last_gray = f.key, f.gray_small
            except BadInput:
                pass


# --- checkpoint files ----------------------------------------------------------------------


def _checkpoint_path(paths: ScenePaths) -> Path:
    return paths.recon / CHECKPOINT_NAME


def _save_checkpoint(path: Path, header: dict, tracker: _Tracker, stage: str) -> None:
    meta, arrays = tracker.state()
    meta = {**meta, **header, "stage": stage, "checkpoint_version": CHECKPOINT_VERSION}
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _load_checkpoint(path: Path, header: dict) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The checkpoint's (meta, arrays) if it belongs to this scene and config, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    if meta.get("checkpoint_version") != CHECKPOINT_VERSION:
        return None
    if any(meta.get(k) != v for k, v in header.items()):
        return None
    return meta, arrays


# --- annotations guard ---------------------------------------------------------------------


def check_annotations_guard(paths: ScenePaths, force: bool) -> str | None:
    """Refuse (BadInput) to replace a trajectory that saved annotations refer to.

    Returns a note when `force` overrides the guard, else None.
    """
    if not (paths.annotations.is_file() and paths.trajectory.is_file()):
        return None
    current = sha256_file(paths.trajectory)
    try:
        ref = AnnotationDocument.read(paths.annotations).trajectory_sha256
    except BadInput:
        try:
            ref = json.loads(paths.annotations.read_text()).get("trajectory_sha256")
        except (OSError, ValueError, AttributeError):
            ref = current  # unreadable: assume it refers, to be safe
    if ref != current:
        return None
    if force:
        return (f"{paths.annotations}: refers to the trajectory being replaced (--force); "
                "its object poses are in the old world frame and need checking")
    raise BadInput(paths.annotations,
                   "its trajectory_sha256 matches the current trajectory.txt: the saved object "
                   "poses are expressed in that trajectory's world frame, and tracking again "
                   "would move it under them. Pass --force to replace trajectory.txt anyway "
                   "(then re-check the annotations in the GUI)")


# --- fusion --------------------------------------------------------------------------------


def _fuse(src: FrameSource, traj: Trajectory, frames: list[int], cfg: TrackConfig,
          tick: Callable[[], bool]):
    """TSDF-fuse `frames` with poses from `traj`; returns an Open3D t.PointCloud or None."""
    import open3d as o3d

    cam = src.camera
    vbg = o3d.t.geometry.VoxelBlockGrid(
        ("tsdf", "weight", "color"), (o3d.core.float32, o3d.core.float32, o3d.core.float32),
        ((1), (1), (3)), cfg.voxel_m, TSDF_BLOCK_RESOLUTION, 4096)
    K = o3d.core.Tensor(cam.K)
    n_done = 0
    for t in frames:
        try:
            rgb, depth = src.read(t)
        except BadInput:
            if not tick():
                return None
            continue
        extrinsic = o3d.core.Tensor(inv_pose(traj[t]))  # T_cam_world
        dimg = o3d.t.geometry.Image(np.ascontiguousarray(depth))
        cimg = o3d.t.geometry.Image(np.ascontiguousarray(rgb))
        coords = vbg.compute_unique_block_coordinates(dimg, K, extrinsic, cam.depth_scale,
                                                      cfg.depth_max_m, TSDF_TRUNC_VOXELS)
        vbg.integrate(coords, dimg, cimg, K, extrinsic, cam.depth_scale, cfg.depth_max_m,
                      TSDF_TRUNC_VOXELS)
        n_done += 1
        if not tick():
            return None
    if n_done == 0:
        return o3d.t.geometry.PointCloud()
    # Surfaces seen at least a few times (fewer when only a few frames were fused).
    # (Open3D keeps voxels whose weight is strictly above the threshold.)
    weight = float(min(3.0, max(0.5, (n_done - 1) / 3.0)))
    return vbg.extract_point_cloud(weight_threshold=weight)


def _write_cloud(pcd, dest: Path) -> int:
    import open3d as o3d

    n = 0 if pcd.is_empty() else int(pcd.point.positions.shape[0])
    if n == 0:
        # Open3D refuses to write an empty cloud; a very short scene can fuse to nothing
        # above the TSDF weight threshold. The trajectory is still good: say so, go on.
        import sys

        print(f"warning: {dest} not written: the fused cloud is empty "
              f"(too few frames fused for the TSDF)", file=sys.stderr)
        return 0
    if "colors" in pcd.point:
        # Fused colours come back as float; 8-bit channels make a standard coloured PLY
        # (red/green/blue uchar) that every reader, Open3D's legacy one included, gets right.
        c = pcd.point.colors.numpy().astype(np.float64)
        if c.size and float(c.max()) <= 1.0 + 1e-6:
            c = c * 255.0
        pcd.point.colors = o3d.core.Tensor(np.clip(np.round(c), 0, 255).astype(np.uint8))
    with atomic_path(dest) as tmp:
        if not o3d.t.io.write_point_cloud(str(tmp), pcd, write_ascii=False):
            raise OSError(f"{dest}: Open3D could not write the point cloud")
    return n


# --- the stage -----------------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    v = np.array([x for x in values if np.isfinite(x)])
    if v.size == 0:
        return {"mean": None, "min": None, "median": None}
    return {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
            "median": round(float(np.median(v)), 4)}


def run(cfg: TrackConfig, progress: ProgressFn | None = None) -> TrackResult:
    """Track `cfg.scene` and write trajectory.txt, recon/cloud.ply and recon/tracking.json.

    `progress(done, total)` is called after every frame (tracking, then fusion); returning
    False cancels: the work so far is kept in the checkpoint and the result has
    `cancelled=True` (nothing else is written). Raises BadInput for a bad scene or config,
    or when saved annotations refer to the current trajectory and `cfg.force` is False.
    """
    import open3d  # noqa: F401  (loaded before the clock starts: frames/s is about frames)

    t_start = time.perf_counter()
    cfg = replace(cfg, scene=Path(cfg.scene))
    if (p := cfg.problem()) is not None:
        raise BadInput(p)
    src = FrameSource(cfg.scene)
    paths = src.paths
    check_annotations_guard(paths, cfg.force)
    if cfg.mode == "odometry":
        cfg = replace(cfg, keyframe_every=1)  # every frame is matched against the one before
    n = src.n_frames
    header = {"config": cfg.fingerprint(), "scene": src.fingerprint()}
    ckpt = _checkpoint_path(paths)
    tracker = _Tracker(cfg, src)
    resumed_from = None
    stage = "track"
    loaded = _load_checkpoint(ckpt, header) if cfg.resume else None
    if loaded is not None:
        meta, arrays = loaded
        tracker.restore(meta, arrays)
        stage = meta.get("stage", "track")
        resumed_from = tracker.next_t
    kept_loops = int(loaded[0].get("kept_loops", 0)) if loaded is not None else 0

    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=tracker.next_t, desc="track", unit="frame", leave=False)
    total_steps = [n]
    done = [tracker.next_t]

    def tick() -> bool:
        done[0] += 1
        if bar is not None:
            bar.update(1)
        if progress is not None and progress(done[0], total_steps[0]) is False:
            return False
        return True

    t_track0 = time.perf_counter()
    try:
        if stage == "track":
            while tracker.next_t < n:
                t = tracker.next_t
                tracker.step(t)
                tracker.next_t = t + 1
                cancel = not tick()
                if cancel or (tracker.next_t % cfg.checkpoint_every == 0 and tracker.next_t < n):
                    _save_checkpoint(ckpt, header, tracker, "track")
                if cancel:
                    raise TrackingCancelled(f"{cfg.scene}: tracking cancelled at frame {t + 1}")
            kept_loops = tracker.optimise()
            stage = "fuse"
            _save_checkpoint(ckpt, {**header, "kept_loops": kept_loops}, tracker, "fuse")
    except TrackingCancelled:
        if bar is not None:
            bar.close()
        return _partial_result(cfg, tracker, n, t_start, resumed_from)
    except BaseException:
        # Interrupted (Ctrl-C) or failed mid-frame: the state may be half-updated, so the
        # last periodic checkpoint (at most checkpoint_every frames back) is what resumes.
        if bar is not None:
            bar.close()
        raise
    finally:
        tracker.close()
    t_track = time.perf_counter() - t_track0

    traj = tracker.trajectory()
    failed = {t: r.reason or "failed" for t, r in enumerate(tracker.records)
              if r.status != "tracked"}
    cloud_points = 0
    if cfg.write_cloud and len(traj):
        kf_set = set(tracker.kf_frames) if cfg.mode == "full" else set()
        fuse_frames = [t for t in traj.frame_ids if t in kf_set or t % cfg.integrate_every == 0]
        total_steps[0] = n + len(fuse_frames)
        done[0] = n
        if bar is not None:
            bar.close()
            from tqdm import tqdm

            bar = tqdm(total=len(fuse_frames), desc="fuse", unit="frame", leave=False)
        pcd = _fuse(src, traj, fuse_frames, cfg, tick)
        if pcd is None:
            if bar is not None:
                bar.close()
            return _partial_result(cfg, tracker, n, t_start, resumed_from)
        cloud_points = _write_cloud(pcd, paths.cloud)
    if bar is not None:
        bar.close()

    # The first frame is the world, matched against nothing: it has no fitness to report.
    matched = [(t, r) for t, r in enumerate(tracker.records)
               if r.status == "tracked" and r.reference != t]
    fits = [r.fitness for _, r in matched]
    inls = [r.inlier_ratio for _, r in matched]
    seconds = time.perf_counter() - t_start
    gaps = traj.gaps(n)
    longest = max((b - a + 1 for a, b in gaps), default=0)
    result = TrackResult(
        scene=cfg.scene, n_frames=n, trajectory=traj, failed=failed,
        n_keyframes=len(tracker.kf_frames), loop_closures=kept_loops,
        mean_fitness=float(np.mean(fits)) if fits else float("nan"),
        mean_inlier_ratio=float(np.mean(inls)) if inls else float("nan"),
        longest_gap=longest, seconds=seconds, tracking_seconds=t_track,
        cloud_points=cloud_points, resumed_from=resumed_from)

    # Check again just before replacing: annotations may have been saved meanwhile.
    note = check_annotations_guard(paths, cfg.force)
    report = {
        "format": TRACKING_FORMAT, "version": TRACKING_VERSION,
        "n_frames": n, "n_tracked": len(traj), "tracked_fraction": round(len(traj) / n, 4),
        "longest_gap": longest, "gaps": [list(g) for g in gaps],
        "failed": [{"frame": t, "reason": why} for t, why in sorted(failed.items())],
        "fitness": _stats(fits), "inlier_ratio": _stats(inls),
        "keyframes": tracker.kf_frames,
        "pose_graph": {"nodes": len(tracker.kf_frames),
                       "loop_candidates_tried": tracker.loop_tried,
                       "loop_edges": sum(1 for e in tracker.edges if e.kind == "loop"),
                       "skip_edges": sum(1 for e in tracker.edges if e.kind == "skip"),
                       "relocalisations": sum(1 for e in tracker.edges if e.kind == "reloc"),
                       "uncertain_edges_kept": kept_loops},
        "frames": [{"frame": t, "status": r.status,
                    **({"reference": r.reference, "fitness": round(r.fitness, 4),
                        "inlier_ratio": round(r.inlier_ratio, 4)} if r.status == "tracked"
                       else {"reason": r.reason})}
                   for t, r in enumerate(tracker.records)],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "cloud_points": cloud_points,
        "seconds": round(seconds, 2), "frames_per_second": round(n / seconds, 2),
        "resumed_from": resumed_from, "note": note,
    }
    traj.write(paths.trajectory)
    report["trajectory_sha256"] = sha256_file(paths.trajectory)
    atomic_write_json(paths.tracking_report, report)
    if ckpt.exists():
        ckpt.unlink()
    return result


def _partial_result(cfg: TrackConfig, tracker: _Tracker, n: int, t_start: float,
                    resumed_from: int | None) -> TrackResult:
    return TrackResult(scene=cfg.scene, n_frames=n, trajectory=Trajectory(),
                       seconds=time.perf_counter() - t_start, resumed_from=resumed_from,
                       cancelled=True, n_keyframes=len(tracker.kf_frames))


def read_report(scene: str | os.PathLike) -> dict:
    """The scene's recon/tracking.json as a dict (FormatError-free: SceneError if missing)."""
    p = ScenePaths(Path(scene)).tracking_report
    if not p.is_file():
        raise SceneError(p, "missing: run `labeller track` first")
    return json.loads(p.read_text())
