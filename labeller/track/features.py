"""Keyframe features for place recognition: ORB keypoints lifted by the depth, and PnP.

Each keyframe keeps `ViewFeatures`: its ORB keypoints that have depth, their descriptors
and their 3-D points in the keyframe's camera frame. `FeatureDatabase` holds those of all
keyframes (about 40 KB each: memory grows with the keyframes, not the frames) and ranks
the keyframes that share the most descriptors with a query view (place recognition).
`pnp_pose` verifies a candidate geometrically: the reference keyframe's 3-D points
against the query's keypoints with OpenCV's `solvePnPRansac`; the result initialises the
dense odometry that then refines and checks the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.poses import inv_pose, make_pose

ORB_FEATURES = 1000  # keypoints per view (OpenCV's ORB, 8 scale levels)
RATIO_TEST = 0.8  # Lowe's ratio between the best and second-best match
VOTE_MAX_HAMMING = 50  # a database hit closer than this votes for its keyframe (of 256 bits)
# The strongest keypoints of a query vote (brute-force voting against every keyframe costs
# query x database descriptors: 1,000 x 35,000 took 130 ms at 40 keyframes).
VOTE_QUERY_MAX = 300
PNP_REPROJ_PX = 3.0  # RANSAC inlier threshold; keypoints are detected at integer scale levels
PNP_MIN_INLIERS = 25  # fewer consistent matches are not evidence of the same place
PNP_MIN_INLIER_SHARE = 0.25  # of the ratio-test matches
PNP_ITERATIONS = 200


@dataclass
class ViewFeatures:
    """ORB features of one view that have depth, strongest keypoint first.

    uv (N, 2) float32 pixel coordinates, pts_cam (N, 3) float32 metres in the view's
    camera frame, desc (N, 32) uint8 ORB descriptors.
    """

    uv: np.ndarray
    pts_cam: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return len(self.desc)


def extract_features(gray_u8: np.ndarray, depth_m: np.ndarray, K: np.ndarray) -> ViewFeatures:
    """ORB features of a view: gray (H, W) uint8, depth (H, W) float32 metres (NaN = none),
    K (3, 3). Keypoints without depth at their pixel are dropped."""
    import cv2

    orb = cv2.ORB.create(nfeatures=ORB_FEATURES)
    kps, desc = orb.detectAndCompute(gray_u8, None)
    if desc is None or not kps:
        return empty_features()
    order = np.argsort([-k.response for k in kps], kind="stable")  # strongest first
    kps = [kps[i] for i in order]
    desc = desc[order]
    uv = np.array([k.pt for k in kps], dtype=np.float32)
    h, w = depth_m.shape
    ui = np.clip(np.round(uv[:, 0]).astype(int), 0, w - 1)
    vi = np.clip(np.round(uv[:, 1]).astype(int), 0, h - 1)
    z = depth_m[vi, ui]
    ok = np.isfinite(z) & (z > 0)
    uv, z, desc = uv[ok], z[ok], desc[ok]
    x = (uv[:, 0] - K[0, 2]) * z / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) * z / K[1, 1]
    pts = np.stack([x, y, z], axis=1).astype(np.float32)
    return ViewFeatures(uv, pts, np.ascontiguousarray(desc, dtype=np.uint8))


def empty_features() -> ViewFeatures:
    return ViewFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32),
                        np.zeros((0, 32), np.uint8))


def match_features(query: ViewFeatures, ref: ViewFeatures) -> np.ndarray:
    """(M, 2) int indices (query, ref) of the matches that pass the ratio test."""
    import cv2

    if len(query) < 2 or len(ref) < 2:
        return np.zeros((0, 2), np.int64)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.desc, ref.desc, k=2)
    out = [(m.queryIdx, m.trainIdx) for m, n in (p for p in pairs if len(p) == 2)
           if m.distance < RATIO_TEST * n.distance]
    return np.array(out, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class PnPResult:
    T_ref_query: np.ndarray  # (4, 4): query camera -> reference camera, metres
    n_matches: int  # ratio-test matches tried
    n_inliers: int  # of those, consistent with the pose


def pnp_pose(query: ViewFeatures, ref: ViewFeatures, K: np.ndarray) -> PnPResult | None:
    """The query camera's pose in the reference camera from the reference's 3-D points and
    the query's keypoints (PnP-RANSAC), or None when too few matches agree."""
    import cv2

    m = match_features(query, ref)
    if len(m) < PNP_MIN_INLIERS:
        return None
    obj = ref.pts_cam[m[:, 1]].astype(np.float64)
    img = query.uv[m[:, 0]].astype(np.float64)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        obj, img, K, None, iterationsCount=PNP_ITERATIONS, reprojectionError=PNP_REPROJ_PX,
        confidence=0.999, flags=cv2.SOLVEPNP_EPNP)
    if not ok or inliers is None:
        return None
    n_in = len(inliers)
    if n_in < PNP_MIN_INLIERS or n_in < PNP_MIN_INLIER_SHARE * len(m):
        return None
    idx = inliers.reshape(-1)
    # EPnP inside RANSAC is a minimal solution; Levenberg-Marquardt on the inliers refines it.
    rvec, tvec = cv2.solvePnPRefineLM(obj[idx], img[idx], K, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    T_query_ref = make_pose(R, tvec.reshape(3))
    if not np.all(np.isfinite(T_query_ref)):
        return None
    return PnPResult(inv_pose(T_query_ref), len(m), n_in)


class FeatureDatabase:
    """The keyframes' features, by keyframe node, and appearance-based candidates."""

    def __init__(self) -> None:
        self.views: list[ViewFeatures] = []

    def add(self, view: ViewFeatures) -> None:
        self.views.append(view)

    def candidates(self, query: ViewFeatures, nodes: range | list[int], k: int
                   ) -> list[tuple[int, int]]:
        """Up to k (votes, node) among `nodes`, most votes first: each of the query's
        VOTE_QUERY_MAX strongest descriptors votes for the keyframe among `nodes` that
        holds its nearest descriptor (when it is close)."""
        import cv2

        allowed = [j for j in nodes if 0 <= j < len(self.views) and len(self.views[j])]
        if len(query) == 0 or not allowed:
            return []
        db = np.concatenate([self.views[j].desc for j in allowed])
        owner = np.concatenate([np.full(len(self.views[j]), j, np.int64) for j in allowed])
        hits = cv2.BFMatcher(cv2.NORM_HAMMING).match(query.desc[:VOTE_QUERY_MAX], db)
        votes: dict[int, int] = {}
        for h in hits:
            if h.distance < VOTE_MAX_HAMMING:
                j = int(owner[h.trainIdx])
                votes[j] = votes.get(j, 0) + 1
        return sorted(((v, j) for j, v in votes.items()), reverse=True)[:k]
