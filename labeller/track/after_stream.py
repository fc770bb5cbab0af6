"""The passes over the recorded frames after the stream, before fusion.

`pose_lost_stretches` poses the frames lost before a relocalisation, backwards;
`repose_stale_colour` poses the frames whose colour stalled by their depth alone. Both
change a `Tracker`'s frame records in place (poses relative to keyframes, metres).
"""

from __future__ import annotations

import numpy as np

from labeller.core.errors import BadInput
from labeller.core.poses import interpolate_pose, inv_pose, nearest_rigid, rotation_angle_deg
from labeller.track.odometry import ITERATIONS_EDGE, ITERATIONS_REFINE
from labeller.track.tracker import Tracker

# A frame whose colour repeats the previous frame's but whose depth is new is posed by depth
# alone from the pose interpolated between its posed neighbours (at most
# STALE_NEIGHBOUR_GAP frames away), and kept only within STALE_MAX_MOVE_M / _DEG of that
# start (depth alone slides along planes).
STALE_NEIGHBOUR_GAP = 3
STALE_MAX_MOVE_M = 0.02
STALE_MAX_MOVE_DEG = 2.0


def pose_lost_stretches(tracker: Tracker) -> int:
    """Pose the frames lost before a relocalisation, backwards from the first frame
    tracked again (each against the next one); returns how many were posed.

    A stretch ends where a frame still fails (or one has bad data)."""
    n_posed = 0
    t = len(tracker.records) - 1
    while t > 0:
        r, before = tracker.records[t], tracker.records[t - 1]
        if not (r.status == "tracked" and before.status == "failed" and before.lost):
            t -= 1
            continue
        nxt = tracker.load(t)
        f = t - 1
        while f >= 0 and tracker.records[f].status == "failed" and tracker.records[f].lost:
            try:
                fr = tracker.load(f)
            except BadInput:
                break
            T, fitness, chk, _ = tracker.match(fr, nxt, np.eye(4), iterations=ITERATIONS_EDGE)
            if T is None or chk is None or rotation_angle_deg(T) > tracker.cfg.max_step_deg \
                    or np.linalg.norm(T[:3, 3]) > tracker.cfg.max_step_m:
                break
            rf, rn = tracker.records[f], tracker.records[f + 1]
            assert rn.T_kf_cam is not None
            rf.status, rf.node, rf.T_kf_cam = "tracked", rn.node, nearest_rigid(rn.T_kf_cam @ T)
            rf.fitness, rf.inlier_ratio, rf.reference = fitness, chk.inlier_ratio, f + 1
            rf.note = f"posed after the stream, backwards from frame {f + 1} ({rf.reason})"
            rf.reason, rf.lost = None, False
            n_posed += 1
            nxt, f = fr, f - 1
        t = f
    return n_posed

def repose_stale_colour(tracker: Tracker) -> int:
    """Re-pose the frames tracked with stale colour by their depth alone; returns how
    many moved.

    Such a frame's colour shows the camera where it was when the colour last changed,
    so the Hybrid odometry's photometric term pulls its pose back there (on the
    400-frame 7-Scenes clip frame 313 came out 9 mm short of what its depth says).
    After the pose graph, it starts from the pose interpolated between its neighbours
    and takes point-to-plane odometry against its keyframe at full resolution; a
    result that moves further than STALE_MAX_MOVE_M / _DEG from that start, or fails
    the depth checks, keeps the tracked pose. Duplicates of it follow it."""
    n_moved = 0
    recs = tracker.records
    for t, rec in enumerate(recs):
        if not rec.stale_colour or t == 0 or not recs[t - 1].posed:
            continue
        nxt = next((u for u in range(t + 1, min(len(recs), t + 1 + STALE_NEIGHBOUR_GAP))
                    if recs[u].status == "tracked" and not recs[u].stale_colour), None)
        if nxt is None:
            continue
        T_pred = interpolate_pose(tracker.T_world_cam(t - 1), tracker.T_world_cam(nxt),
                                  1.0 / (nxt - t + 1))
        try:
            fr = tracker.load(t)
        except BadInput:
            continue
        kf = tracker.keyframe(rec.node)
        init = inv_pose(tracker.T_world_kf[rec.node]) @ T_pred
        T, fitness, chk, _ = tracker.match(fr, kf, init, iterations=ITERATIONS_REFINE,
                                       geometric_only=True)
        if T is None or chk is None:
            continue
        dev = inv_pose(init) @ T
        if np.linalg.norm(dev[:3, 3]) > STALE_MAX_MOVE_M \
                or rotation_angle_deg(dev) > STALE_MAX_MOVE_DEG:
            continue
        rec.T_kf_cam, rec.fitness, rec.inlier_ratio = T, fitness, chk.inlier_ratio
        rec.note = (f"{rec.note}; posed after the stream by its depth alone, from its "
                    f"neighbours' poses (frames {t - 1} and {nxt})")
        for d in recs[t + 1:nxt]:
            if d.status == "duplicate" and d.reference == t:
                d.node, d.T_kf_cam = rec.node, T
        n_moved += 1
    return n_moved
