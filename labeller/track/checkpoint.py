"""recon/track_checkpoint.npz: the tracker's state, so an interrupted run resumes.

One .npz holding ``meta`` (UTF-8 JSON as uint8: counters, per-frame records, edges, the
header that ties it to one scene and config, the stage reached) and the arrays:
``T_kf_cam`` (n_frames, 4, 4; zeros where a frame has none), ``kf_T_world``
(n_keyframes, 4, 4; each keyframe's T_world_kf), ``kf_thumbs`` (n_keyframes, 30, 40)
float32, ``edge_T`` (n_edges, 4, 4) T_target_source, ``edge_info`` (n_edges, 6, 6),
``prev_T_world`` (4, 4; the last tracked frame's T_world_cam), ``velocity`` (4, 4), and
the keyframes' ORB features concatenated: ``feat_count`` (n_keyframes,), ``feat_uv``
(M, 2), ``feat_pts`` (M, 3) metres in each keyframe's camera, ``feat_desc`` (M, 32) uint8.
The key names ``kf_T_world`` / ``prev_T_world`` predate the T_world_kf naming in the code;
they stay so that checkpoints already on disk keep resuming.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.errors import BadInput
from labeller.core.fileio import atomic_path
from labeller.formats.scene import ScenePaths
from labeller.track.features import FeatureDatabase, ViewFeatures
from labeller.track.posegraph import GraphEdge
from labeller.track.pyramid import THUMB_SIZE
from labeller.track.tracker import FrameRecord, Tracker

CHECKPOINT_NAME = "track_checkpoint.npz"
CHECKPOINT_VERSION = 2  # 2: duplicates, keyframe ORB features, verified edges


def checkpoint_path(paths: ScenePaths) -> Path:
    return paths.recon / CHECKPOINT_NAME


def tracker_state(tracker: Tracker) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of the tracker, as the checkpoint stores them."""
    meta = {
        "next_t": tracker.next_t, "cur_node": tracker.cur_node, "prev_t": tracker.prev_t,
        "lost": tracker.lost, "last_key_t": tracker.last_key_t,
        "loop_tried": tracker.loop_tried, "last_color_t": tracker.last_color_t,
        "kf_frames": tracker.kf_frames,
        "records": [[r.status, r.reason, r.node, r.fitness, r.inlier_ratio, r.reference,
                     r.lost, r.note] for r in tracker.records],
        "loop_log": tracker.loop_log,
        "consistency_votes": [[k, v] for k, v in tracker.consistency.votes.items()],
        "edges": [[e.source, e.target, e.uncertain, e.kind] for e in tracker.edges],
    }
    n = len(tracker.records)
    T_kf_cam = np.zeros((n, 4, 4))
    for t, r in enumerate(tracker.records):
        if r.T_kf_cam is not None:
            T_kf_cam[t] = r.T_kf_cam
    views = tracker.features.views
    arrays = {
        "T_kf_cam": T_kf_cam,
        "kf_T_world": np.array(tracker.T_world_kf).reshape(-1, 4, 4),
        "kf_thumbs": np.array(tracker.kf_thumbs, dtype=np.float32).reshape(
            -1, THUMB_SIZE[1], THUMB_SIZE[0]),
        "edge_T": np.array([e.T_target_source for e in tracker.edges]).reshape(-1, 4, 4),
        "edge_info": np.array([e.information for e in tracker.edges]).reshape(-1, 6, 6),
        "prev_T_world": tracker.T_world_prev, "velocity": tracker.velocity,
        "feat_count": np.array([len(v) for v in views], dtype=np.int64),
        "feat_uv": np.concatenate([v.uv for v in views]).reshape(-1, 2).astype(np.float32)
        if views else np.zeros((0, 2), np.float32),
        "feat_pts": np.concatenate([v.pts_cam for v in views]).reshape(-1, 3).astype(np.float32)
        if views else np.zeros((0, 3), np.float32),
        "feat_desc": np.concatenate([v.desc for v in views]).reshape(-1, 32).astype(np.uint8)
        if views else np.zeros((0, 32), np.uint8),
    }
    return meta, arrays


def restore_tracker(tracker: Tracker, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Put the state of `tracker_state` back (re-reading the frames it needs from disk)."""
    tracker.next_t = int(meta["next_t"])
    tracker.cur_node, tracker.prev_t = int(meta["cur_node"]), int(meta["prev_t"])
    tracker.lost, tracker.loop_tried = int(meta["lost"]), int(meta["loop_tried"])
    tracker.kf_frames = [int(x) for x in meta["kf_frames"]]
    tracker.T_world_kf = [T.copy() for T in arrays["kf_T_world"]]
    tracker.kf_thumbs = [th.copy() for th in arrays["kf_thumbs"]]
    tracker.records = []
    for t, (status, reason, node, fit, inl, ref, lost, note) in enumerate(meta["records"]):
        r = FrameRecord(status, reason, int(node), None, float(fit), float(inl), int(ref),
                        bool(lost), note)
        if r.posed:
            r.T_kf_cam = arrays["T_kf_cam"][t].copy()
        tracker.records.append(r)
    tracker.loop_log = list(meta["loop_log"])
    tracker.consistency.votes = {int(k): int(v) for k, v in meta["consistency_votes"]}
    tracker.features = FeatureDatabase()
    start = 0
    for c in arrays["feat_count"]:
        c = int(c)
        tracker.features.add(ViewFeatures(
            arrays["feat_uv"][start:start + c].copy(), arrays["feat_pts"][start:start + c].copy(),
            arrays["feat_desc"][start:start + c].copy()))
        start += c
    tracker.edges = [GraphEdge(int(s), int(g), arrays["edge_T"][i].copy(),
                               arrays["edge_info"][i].copy(), bool(u), str(k))
                     for i, (s, g, u, k) in enumerate(meta["edges"])]
    tracker.T_world_prev = arrays["prev_T_world"].copy()
    tracker.velocity = arrays["velocity"].copy()
    tracker.prev_frame = None
    if tracker.prev_t >= 0:
        try:
            tracker.prev_frame = tracker.load(tracker.prev_t)
        except BadInput:
            tracker.prev_frame = None
    lk, lc = int(meta["last_key_t"]), int(meta["last_color_t"])
    tracker.last_key_t, tracker.last_key = lk, None
    tracker.last_color_t, tracker.last_color_key = lc, None
    prev = tracker.prev_frame
    for t in sorted({lk, lc}):
        if t < 0:
            continue
        try:
            f = prev if prev is not None and prev.t == t else tracker.load(t)
        except BadInput:
            continue
        if t == lk:
            tracker.last_key = f.key
        if t == lc:
            tracker.last_color_key = f.color_key


def save_checkpoint(path: Path, header: dict, tracker: Tracker, stage: str) -> None:
    """Write the tracker's state with `header` and the `stage` reached ("track" | "fuse")."""
    meta, arrays = tracker_state(tracker)
    meta = {**meta, **header, "stage": stage, "checkpoint_version": CHECKPOINT_VERSION}
    buf = io.BytesIO()
    # meta first, then the arrays: the order of the members in the .npz
    members: dict[str, Any] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
    np.savez(buf, **members)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_checkpoint(path: Path, header: dict) -> tuple[dict, dict[str, np.ndarray]] | None:
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
