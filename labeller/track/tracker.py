"""The tracker's state machine: each frame against the keyframe, the previous frame or
look-alike keyframes; keyframe promotion, skip and loop-closure edges. The passes over
the recorded frames after the stream are in `after_stream`.

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
from labeller.track.consistency import StreamConsistency
from labeller.track.features import FeatureDatabase, PnPResult, pnp_pose
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
# Place recognition: keyframes sharing the most ORB descriptors with a new keyframe (or a
# lost frame) are verified with PnP-RANSAC, then refined and checked by dense odometry.
LOOP_APPEARANCE_CANDIDATES = 5
# A verified edge's dense refinement must stay near its PnP pose: PnP is the evidence.
# (PnP on keypoints lifted by the depth is good to a few centimetres: colour and depth
# of a real sensor are not perfectly registered.)
PNP_AGREE_M = 0.10
PNP_AGREE_DEG = 10.0
# How the note of a frame whose colour repeats the previous frame's (the colour stream
# stalled) but whose depth is new begins; `after_stream.repose_stale_colour` finds them.
STALE_COLOUR_NOTE = "colour repeats frame"
RELOC_EVERY_AFTER = 10  # after this many lost frames, try relocalising every 3rd frame


@dataclass
class FrameRecord:
    """What tracking decided for one frame."""

    status: str = "pending"  # "tracked" | "duplicate" | "failed" | "pending"
    reason: str | None = None  # why it failed; for a duplicate, what it repeats
    node: int = -1  # keyframe node the pose is relative to
    T_kf_cam: np.ndarray | None = None
    fitness: float = float("nan")
    inlier_ratio: float = float("nan")
    reference: int = -1  # frame the accepted odometry was against; a duplicate's original
    lost: bool = False  # failed for want of a match (not bad data): retried afterwards
    note: str | None = None  # how a tracked frame was tracked when not the usual way

    @property
    def posed(self) -> bool:
        return self.status in ("tracked", "duplicate")

    @property
    def stale_colour(self) -> bool:
        """Tracked with colour that repeats an earlier frame's (the note says so)."""
        return self.status == "tracked" and (self.note or "").startswith(STALE_COLOUR_NOTE)


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
        self.last_key: bytes | None = None  # depth identity of the last frame read
        self.last_key_t = -1  # the frame that first had that depth
        self.last_color_key: bytes | None = None
        self.last_color_t = -1  # the frame that first had the last colour
        self.loop_tried = 0
        self.features = FeatureDatabase()  # node -> ORB features
        self.loop_log: list[dict] = []  # verified loop / relocalisation edges, for the report
        self.consistency = StreamConsistency()
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

    def release_frames(self) -> None:
        """Drop the prepared frames (keyframe cache and previous frame) once every frame
        is decided: the pose graph and fusion need none of them, and Open3D's pose-graph
        optimisation (dense in the keyframes) then peaks without them underneath."""
        self.cache.clear()
        self.prev_frame = None

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
        """T_world_cam (4, 4) of posed frame t, through its keyframe."""
        r = self.records[t]
        return nearest_rigid(self.T_world_kf[r.node] @ r.T_kf_cam)

    # -- matching --
    def match(self, src: PreparedFrame, tgt: PreparedFrame, init: np.ndarray,
             strict: bool = False, iterations: tuple[int, ...] = ITERATIONS,
             geometric_only: bool = False
             ) -> tuple[np.ndarray | None, float, AlignmentCheck | None, str]:
        """Odometry + validation: (T_tgt_src or None, fitness, check, reason if rejected).

        `geometric_only`: depth alone (point-to-plane); the intensity check is then not
        applied (it is still measured)."""
        try:
            T, fitness, _ = hybrid_odometry(src, tgt, init, iterations, geometric_only)
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
        if not geometric_only and \
                chk.intensity_inliers < min(0.95, cfg.min_intensity_inliers * scale):
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
        T2, _, chk, _ = self.match(src, tgt, T, iterations=ITERATIONS_REFINE)
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
        if self.cfg.mode == "full":
            self.features.add(fr.features())
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
        """Skip edge to the keyframe before the previous one, and loop closures.

        Loop candidates are older keyframes (at least LOOP_MIN_SEPARATION back) that look
        alike (ORB votes, verified by PnP-RANSAC, which also gives the initial pose) or
        whose estimated camera is close (initialised from the estimate). Each is refined
        by dense odometry and accepted only when the strict alignment check passes.
        """
        T_wi = self.T_world_kf[node]
        cands: list[tuple[int, str, np.ndarray, PnPResult | None]] = []
        if node >= 2:
            cands.append((node - 2, "skip", inv_pose(self.T_world_kf[node - 2]) @ T_wi, None))
        older = range(node - LOOP_MIN_SEPARATION + 1)
        for _, j, found in self._appearance_matches(fr, older, LOOP_APPEARANCE_CANDIDATES):
            if j != node - 2:
                cands.append((j, "loop", found.T_ref_query, found))
        c_i, z_i = T_wi[:3, 3], T_wi[:3, 2]
        near = []
        for j in older:
            if j == node - 2 or any(c[0] == j for c in cands):
                continue
            T_wj = self.T_world_kf[j]
            d = float(np.linalg.norm(T_wj[:3, 3] - c_i))
            ang = math.degrees(math.acos(float(np.clip(T_wj[:3, 2] @ z_i, -1.0, 1.0))))
            if d <= LOOP_MAX_DIST_M and ang <= LOOP_MAX_ANGLE_DEG:
                near.append((d + 0.01 * ang, j))
        near.sort()
        for _, j in near[: self.cfg.max_loop_candidates]:
            cands.append((j, "loop", inv_pose(self.T_world_kf[j]) @ T_wi, None))
        linked = {(e.source, e.target) for e in self.edges}
        for j, kind, init, pnp in cands:
            if (node, j) in linked:
                continue
            linked.add((node, j))
            if kind == "loop":
                self.loop_tried += 1
            tgt = self.keyframe(j)
            if pnp is None:
                T, _, chk, _ = self.match(fr, tgt, init, strict=(kind == "loop"),
                                         iterations=ITERATIONS_EDGE)
            else:
                T, chk = self._refine_from_pnp(fr, tgt, pnp)
            if T is None or chk is None:
                continue
            if pnp is not None and not _agrees(T, pnp.T_ref_query):
                continue  # dense odometry slid away from the place PnP found
            if pnp is None:
                # Without appearance evidence, an edge far from the estimate is a false match.
                dev = inv_pose(init) @ T
                if np.linalg.norm(dev[:3, 3]) > 0.3 or rotation_angle_deg(dev) > 20:
                    continue
            if kind == "loop":
                # A loop edge is information only where it explains the two images better
                # than the current estimate does (the estimate has drifted); where the
                # estimate already explains them as well, the edge would only add its own
                # error (a wide-baseline match is less exact than the chain).
                T_est = inv_pose(self.T_world_kf[j]) @ T_wi
                if check_alignment(fr, tgt, T_est).inlier_ratio >= chk.inlier_ratio:
                    continue
            self.edges.append(GraphEdge(node, j, T, self._information(fr, tgt, T), True, kind))
            if kind == "loop":
                self._log_edge("loop", fr.t, tgt.t, T, chk, pnp)
            self.keyframe(node)  # keep the new keyframe most recent in the cache

    def _refine_from_pnp(self, fr: PreparedFrame, tgt: PreparedFrame, pnp: PnPResult
                         ) -> tuple[np.ndarray | None, AlignmentCheck | None]:
        """Dense refinement of a PnP pose T_tgt_src: depth alone first (over a wide baseline
        the photometric term's basin is narrow), then Hybrid from there; of the results
        that pass the strict check, the one that explains more of the images."""
        T_geo, _, chk_geo, _ = self.match(fr, tgt, pnp.T_ref_query, strict=True,
                                         iterations=ITERATIONS_EDGE, geometric_only=True)
        if T_geo is None or chk_geo is None:
            return None, None
        best: tuple[np.ndarray | None, AlignmentCheck | None] = (None, None)
        if chk_geo.intensity_inliers >= self.cfg.min_intensity_inliers:
            best = (T_geo, chk_geo)
        T_hyb, _, chk_hyb, _ = self.match(fr, tgt, T_geo, strict=True, iterations=ITERATIONS_EDGE)
        if T_hyb is not None and chk_hyb is not None and (
                best[1] is None or chk_hyb.inlier_ratio > best[1].inlier_ratio):
            best = (T_hyb, chk_hyb)
        return best

    def _appearance_matches(self, fr: PreparedFrame, nodes: range | list[int], k: int
                            ) -> list[tuple[int, int, PnPResult]]:
        """(votes, node, PnP result) of the keyframes among `nodes` that look like `fr` and
        pass PnP-RANSAC verification, most votes first."""
        if self.cfg.mode != "full":
            return []
        feats = fr.features()
        out = []
        for votes, j in self.features.candidates(feats, nodes, k):
            pnp = pnp_pose(feats, self.features.views[j], self.src.camera.K)
            if pnp is not None:
                out.append((votes, j, pnp))
        return out

    def _log_edge(self, kind: str, t: int, ref_t: int, T: np.ndarray, chk: AlignmentCheck,
                  pnp: PnPResult | None) -> None:
        self.loop_log.append({
            "kind": kind, "frame": t, "matched_frame": ref_t,
            "evidence": "orb+pnp" if pnp is not None else "proximity",
            "pnp_matches": pnp.n_matches if pnp is not None else None,
            "pnp_inliers": pnp.n_inliers if pnp is not None else None,
            "overlap": round(chk.overlap, 3), "depth_inliers": round(chk.depth_inliers, 3),
            "intensity_inliers": round(chk.intensity_inliers, 3),
            "distance_m": round(float(np.linalg.norm(T[:3, 3])), 3),
            "angle_deg": round(rotation_angle_deg(T), 1)})

    # -- per frame --
    def step(self, t: int) -> None:
        """Decide frame t: its pose relative to a keyframe, a duplicate, or why it failed."""
        rec = self.records[t]
        try:
            fr = self.load_next(t)
        except BadInput as exc:
            rec.status, rec.reason = "failed", str(exc)
            self.lost += 1
            return
        self.consistency.add(fr)
        if fr.valid_ratio < MIN_VALID_DEPTH_FRACT:
            rec.status = "failed"
            rec.reason = (f"too little depth ({fr.valid_ratio:.1%} of pixels valid, "
                          f"need {MIN_VALID_DEPTH_FRACT:.0%})")
            self.lost += 1
            return
        same_depth = self.last_key is not None and fr.key == self.last_key
        same_color = self.last_color_key is not None and fr.color_key == self.last_color_key
        if not same_depth:
            self.last_key, self.last_key_t = fr.key, t
        if not same_color:
            self.last_color_key, self.last_color_t = fr.color_key, t
        if same_depth:
            # A stalled depth sensor: this frame's depth is that of an earlier frame, and so
            # is the camera pose it measures (the pose labels are checked against).
            k = self.last_key_t
            what = ("duplicate of frame {k} (identical colour and depth)" if same_color
                    else "depth repeats frame {k} (the depth stream stalled)").format(k=k)
            src = self.records[k]
            if src.posed:
                rec.status, rec.reason, rec.reference = "duplicate", what, k
                rec.node, rec.T_kf_cam = src.node, src.T_kf_cam
            else:
                rec.status, rec.reason = "failed", f"{what}, which has no pose"
            return
        # The colour is stale when it repeats an earlier frame's while the depth is new.
        # Such a frame is tracked as usual (on depth alone it slid along the kitchen's
        # planes on the 400-frame 7-Scenes clip: 38 mm off in one step) but never becomes
        # a keyframe, which later frames would match their colour against.
        stale_color = same_color
        if stale_color:
            rec.note = (f"{STALE_COLOUR_NOTE} {self.last_color_t} (the colour stream "
                        "stalled): not made a keyframe")

        if self.cur_node < 0:  # the first usable frame defines the world
            node = self._add_keyframe(fr, np.eye(4))
            self.cur_node = node
            rec.status, rec.node, rec.T_kf_cam = "tracked", node, np.eye(4)
            rec.fitness, rec.inlier_ratio, rec.reference = 1.0, 1.0, t
            self._set_prev(fr, t, np.eye(4))
            return

        cfg = self.cfg
        T_world_pred = self.T_world_prev @ (self.velocity if t - self.prev_t == 1 else np.eye(4))
        attempts: list[tuple[str, int, PnPResult | None]] = [("kf", self.cur_node, None)]
        if self.prev_frame is not None and self.prev_t != self.kf_frames[self.cur_node]:
            attempts.append(("prev", -1, None))
        if self.lost > 0 and (self.lost <= RELOC_EVERY_AFTER or self.lost % 3 == 0):
            tried = {self.cur_node}
            nodes = list(range(len(self.kf_frames)))
            for _, j, found in self._appearance_matches(fr, nodes, RELOC_CANDIDATES):
                if j not in tried:
                    tried.add(j)
                    attempts.append(("reloc", j, found))
            for j in self._lookalikes(fr):
                if j not in tried:
                    tried.add(j)
                    attempts.append(("reloc", j, None))
        reasons: list[str] = []
        for kind, j, pnp in attempts:
            tgt = self.prev_frame if kind == "prev" else self.keyframe(j)
            assert tgt is not None
            T_world_tgt = self.T_world_prev if kind == "prev" else self.T_world_kf[j]
            init = inv_pose(T_world_tgt) @ T_world_pred if pnp is None else pnp.T_ref_query
            T, fitness, chk, why = self.match(fr, tgt, init, strict=(kind == "reloc"),
                                             iterations=self.track_iterations)
            if T is None:
                reasons.append(why)
                continue
            if pnp is not None and not _agrees(T, pnp.T_ref_query):
                reasons.append(f"dense odometry against frame {tgt.t} left the PnP pose")
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
                moved = (np.linalg.norm(T[:3, 3]) > KF_MAX_TRANS_M
                         or rotation_angle_deg(T) > KF_MAX_ROT_DEG or chk.overlap < KF_MIN_OVERLAP)
                promote = (n_since >= cfg.keyframe_every or moved) and not stale_color
                if promote:
                    T = self._refine(fr, tgt, T)
                rec.node, rec.T_kf_cam = j, T
                if promote:
                    self._promote(fr, j, T, "chain", tgt)
            elif kind == "prev":
                # The keyframe no longer matches but the last frame does: chain through it
                # and start a new keyframe here (a stale-colour frame cannot be one; the
                # next frame will be).
                T = self._refine(fr, tgt, T)
                pr = self.records[self.prev_t]
                T_kf_cam = nearest_rigid(pr.T_kf_cam @ T)
                rec.node, rec.T_kf_cam = pr.node, T_kf_cam
                if not stale_color:
                    self._promote(fr, pr.node, T_kf_cam, "chain", None)
            else:
                T = self._refine(fr, tgt, T)
                rec.node, rec.T_kf_cam = j, T
                if cfg.mode == "full":
                    self._log_edge("reloc", t, tgt.t, T, chk, pnp)
                if not stale_color:
                    self._promote(fr, j, T, "reloc", tgt)
            self._set_prev(fr, t, self.T_world_cam(t))
            self.lost = 0
            return
        rec.status, rec.lost = "failed", True
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
        frame_pairs = {(self.kf_frames[s], self.kf_frames[g]) for s, g in kept}
        for entry in self.loop_log:
            if entry["kind"] == "loop":
                entry["kept"] = (entry["frame"], entry["matched_frame"]) in frame_pairs
        return len(kept)

    def trajectory(self) -> Trajectory:
        """T_world_cam of every posed frame (duplicates included), re-anchored at the first."""
        poses = {t: self.T_world_cam(t) for t, r in enumerate(self.records) if r.posed}
        return Trajectory(poses).reanchored()


def _agrees(T: np.ndarray, T_ref: np.ndarray) -> bool:
    """Whether two estimates of one relative pose agree within PNP_AGREE_M / _DEG."""
    dev = inv_pose(T_ref) @ T
    return bool(np.linalg.norm(dev[:3, 3]) <= PNP_AGREE_M and rotation_angle_deg(dev) <= PNP_AGREE_DEG)
