"""The tracker's state machine: each frame against the keyframe, the previous frame or
look-alike keyframes; keyframe promotion, skip and loop-closure edges.

Frames: T_world_cam maps a frame's camera to the world (the first tracked frame's
camera); T_kf_cam maps it to its keyframe's camera; T_tgt_src maps the source frame's
camera into the target's. Metres, degrees.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from labeller.core.errors import BadInput
from labeller.core.poses import inv_pose, nearest_rigid, rotation_angle_deg
from labeller.formats.trajectory import Trajectory
from labeller.track.config import TrackConfig
from labeller.track.frames import FrameSource
from labeller.track.odometry import (
    ITERATIONS,
    ITERATIONS_EDGE,
    ITERATIONS_REFINE,
    AlignmentCheck,
    OdometryFailed,
    check_alignment,
    hybrid_odometry,
)
from labeller.track.posegraph import GraphEdge, information_matrix, optimise_pose_graph
from labeller.track.pyramid import PreparedFrame

# A frame with depth on less than this fraction of its pixels is not tracked.
MIN_VALID_DEPTH_FRACT = 0.05

# Keyframes: a new one when the view has moved on this far from the current keyframe.
KF_MAX_TRANS_M = 0.15
KF_MAX_ROT_DEG = 15.0
KF_MIN_OVERLAP = 0.6
# Loop-closure candidates: older keyframes whose camera is this close.
LOOP_MAX_DIST_M = 0.5
LOOP_MAX_ANGLE_DEG = 30.0
LOOP_MIN_SEPARATION = 5  # keyframes apart: nearer ones are chained already (skip edges)
RELOC_CANDIDATES = 3  # look-alike keyframes tried per lost frame
RELOC_EVERY_AFTER = 10  # after this many lost frames, try relocalising every 3rd frame


@dataclass
class FrameRecord:
    """What tracking decided for one frame."""

    status: str = "pending"  # "tracked" | "failed" | "pending"
    reason: str | None = None
    node: int = -1  # keyframe node the pose is relative to
    T_kf_cam: np.ndarray | None = None
    fitness: float = float("nan")
    inlier_ratio: float = float("nan")
    reference: int = -1  # frame the accepted odometry was against


class Tracker:
    """Tracking state of one run: per-frame records, keyframes, pose-graph edges.

    `step(t)` decides frame t (frames in order, t = next_t); `optimise()` then adjusts the
    keyframe poses; `trajectory()` gives T_world_cam of every tracked frame.
    """

    def __init__(self, cfg: TrackConfig, src: FrameSource):
        self.cfg = cfg
        self.src = src
        n = src.n_frames
        self.records = [FrameRecord() for _ in range(n)]
        self.kf_frames: list[int] = []  # node -> frame id
        self.T_world_kf: list[np.ndarray] = []  # node -> T_world_kf (estimate, 4x4)
        self.kf_thumbs: list[np.ndarray] = []
        self.edges: list[GraphEdge] = []
        self.next_t = 0
        self.cur_node = -1
        self.prev_t = -1  # last tracked frame
        self.T_world_prev = np.eye(4)
        self.velocity = np.eye(4)  # T_prev_cam per frame (constant-velocity prediction)
        self.lost = 0  # consecutive frames since the last tracked one that failed odometry
        self.last_key: bytes | None = None
        self.last_key_t = -1
        self.last_gray: np.ndarray | None = None
        self.loop_tried = 0
        self.cache: OrderedDict[int, PreparedFrame] = OrderedDict()
        self.prev_frame: PreparedFrame | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[int, Future[tuple[np.ndarray, np.ndarray]]] = {}
        # Plain odometry chains every pair, so each gets Open3D's full default schedule.
        self.track_iterations = ITERATIONS if cfg.mode == "full" else ITERATIONS_EDGE

    # -- frames --
    def load(self, t: int) -> PreparedFrame:
        rgb, depth = self.src.read(t)
        return PreparedFrame(t, rgb, depth, self.src.camera, self.cfg.depth_max_m)

    def load_next(self, t: int) -> PreparedFrame:
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
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="track-read")
            self._ahead = {t + 1: self._pool.submit(self.src.read, t + 1)}
        return PreparedFrame(t, rgb, depth, self.src.camera, self.cfg.depth_max_m)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead = {}

    def keyframe(self, node: int) -> PreparedFrame:
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

    def T_world_cam(self, t: int) -> np.ndarray:
        """T_world_cam (4, 4) of tracked frame t, through its keyframe."""
        r = self.records[t]
        return nearest_rigid(self.T_world_kf[r.node] @ r.T_kf_cam)

    # -- matching --
    def _try(self, src: PreparedFrame, tgt: PreparedFrame, init: np.ndarray,
             strict: bool = False, iterations: tuple[int, ...] = ITERATIONS
             ) -> tuple[np.ndarray | None, float, AlignmentCheck | None, str]:
        """Odometry + validation: (T_tgt_src or None, fitness, check, reason if rejected)."""
        try:
            T, fitness, _ = hybrid_odometry(src, tgt, init, iterations)
        except OdometryFailed as exc:
            return None, float("nan"), None, str(exc)
        chk = check_alignment(src, tgt, T)
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

    def _refine(self, src: PreparedFrame, tgt: PreparedFrame, T: np.ndarray) -> np.ndarray:
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
        step = inv_pose(self.T_world_prev) @ T_world_cam
        d = float(np.linalg.norm(step[:3, 3]))
        a = rotation_angle_deg(step)
        if d > self.cfg.max_step_m * dt:
            return (f"implausible jump of {d:.3f} m since frame {self.prev_t} "
                    f"(limit {self.cfg.max_step_m:.2f} m per frame)")
        if a > self.cfg.max_step_deg * dt:
            return (f"implausible rotation of {a:.1f} deg since frame {self.prev_t} "
                    f"(limit {self.cfg.max_step_deg:.0f} deg per frame)")
        return None

    def _information(self, src: PreparedFrame, tgt: PreparedFrame, T_tgt_src: np.ndarray
                     ) -> np.ndarray:
        return information_matrix(src, tgt, T_tgt_src, self.cfg.depth_max_m)

    # -- keyframes and graph --
    def _add_keyframe(self, fr: PreparedFrame, T_world_kf: np.ndarray) -> int:
        node = len(self.kf_frames)
        self.kf_frames.append(fr.t)
        self.T_world_kf.append(T_world_kf.copy())
        self.kf_thumbs.append(fr.thumb)
        self.cache[fr.t] = fr
        self.cache.move_to_end(fr.t)
        return node

    def _promote(self, fr: PreparedFrame, link_node: int, T_link_cam: np.ndarray, kind: str,
                 link_frame: PreparedFrame | None) -> None:
        """Make tracked frame `fr` a keyframe linked to keyframe `link_node`."""
        T_world_kf = nearest_rigid(self.T_world_kf[link_node] @ T_link_cam)
        node = self._add_keyframe(fr, T_world_kf)
        if self.cfg.mode == "full":
            lf = link_frame if link_frame is not None else self.keyframe(link_node)
            info = self._information(fr, lf, T_link_cam)
        else:  # plain odometry builds no pose graph
            info = np.eye(6)
        self.edges.append(GraphEdge(node, link_node, T_link_cam, info, False, kind))
        r = self.records[fr.t]
        r.node, r.T_kf_cam = node, np.eye(4)
        self.cur_node = node
        if self.cfg.mode == "full":
            self._extra_edges(node, fr)

    def _extra_edges(self, node: int, fr: PreparedFrame) -> None:
        """Skip edge to the keyframe before the previous one, and loop-closure candidates."""
        T_wi = self.T_world_kf[node]
        cands: list[tuple[float, int, str]] = []
        if node >= 2:
            cands.append((-1.0, node - 2, "skip"))
        c_i, z_i = T_wi[:3, 3], T_wi[:3, 2]
        loops = []
        for j in range(node - LOOP_MIN_SEPARATION + 1):
            if j == node - 2:
                continue
            T_wj = self.T_world_kf[j]
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
            init = inv_pose(self.T_world_kf[j]) @ T_wi
            T, _, _, _ = self._try(fr, tgt, init, strict=(kind == "loop"),
                                   iterations=ITERATIONS_EDGE)
            if T is None:
                continue
            # A loop edge that disagrees wildly with the estimate is a false match.
            dev = inv_pose(init) @ T
            if np.linalg.norm(dev[:3, 3]) > 0.3 or rotation_angle_deg(dev) > 20:
                continue
            self.edges.append(GraphEdge(node, j, T, self._information(fr, tgt, T), True, kind))
            self.keyframe(node)  # keep the new keyframe most recent in the cache

    # -- per frame --
    def step(self, t: int) -> None:
        """Decide frame t: its pose relative to a keyframe, or why it failed."""
        rec = self.records[t]
        try:
            fr = self.load_next(t)
        except BadInput as exc:
            rec.status, rec.reason = "failed", str(exc)
            return
        if fr.valid_ratio < MIN_VALID_DEPTH_FRACT:
            rec.status = "failed"
            rec.reason = (f"too little depth ({fr.valid_ratio:.1%} of pixels valid, "
                          f"need {MIN_VALID_DEPTH_FRACT:.0%})")
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
        T_world_pred = self.T_world_prev @ (self.velocity if t - self.prev_t == 1 else np.eye(4))
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
            T_world_tgt = self.T_world_prev if kind == "prev" else self.T_world_kf[j]
            init = inv_pose(T_world_tgt) @ T_world_pred
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
            self._set_prev(fr, t, self.T_world_cam(t))
            self.lost = 0
            return
        rec.status = "failed"
        rec.reason = "; ".join(dict.fromkeys(reasons)) or "no reference to track against"
        self.lost += 1

    def _set_prev(self, fr: PreparedFrame, t: int, T_world_cam: np.ndarray) -> None:
        if self.prev_t >= 0 and t - self.prev_t == 1:
            self.velocity = nearest_rigid(inv_pose(self.T_world_prev) @ T_world_cam)
        else:
            self.velocity = np.eye(4)
        self.prev_t, self.T_world_prev, self.prev_frame = t, T_world_cam.copy(), fr

    def _lookalikes(self, fr: PreparedFrame) -> list[int]:
        if not self.kf_thumbs:
            return []
        sims = np.array([float(fr.thumb.ravel() @ th.ravel()) for th in self.kf_thumbs])
        order = np.argsort(-sims)
        return [int(j) for j in order[:RELOC_CANDIDATES]]

    # -- pose graph --
    def optimise(self) -> int:
        """Optimise the keyframe poses; returns the number of uncertain edges kept."""
        n_nodes = len(self.kf_frames)
        if self.cfg.mode != "full" or n_nodes < 3 or not any(e.uncertain for e in self.edges):
            return 0
        self.T_world_kf, kept = optimise_pose_graph(self.T_world_kf, self.edges)
        return kept

    def trajectory(self) -> Trajectory:
        """T_world_cam of every tracked frame, re-anchored at the first one."""
        poses = {t: self.T_world_cam(t) for t, r in enumerate(self.records) if r.status == "tracked"}
        return Trajectory(poses).reanchored()

