"""Are colour and depth of a frame from the same instant? A check on the stream itself.

Depth discontinuities (object outlines) show up as colour edges too. For each run of
three consecutive frames (m-1, m, m+1), the depth edges of frame m are scored against
the colour gradients of each of the three frames; the best-scoring lag votes. In a
synchronised recording lag 0 wins whenever the camera moves; when the colour stream is
shifted by a frame against the depth, lag +1 (colour lags: frame m+1's colour is what
the depth of m saw) or -1 (colour leads) wins. Frames whose colour or depth repeats the
previous frame's cannot tell and are skipped. A static offset between the colour and the
depth camera (7-Scenes is not registered) blurs every lag alike and does not vote.

Everything runs on the pyramid level of the alignment checks (160x120 for 640x480): a few hundred
microseconds per frame, on frames the tracker reads anyway.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from labeller.track.pyramid import PreparedFrame

DEPTH_EDGE_M = 0.03  # a depth step above this (+ DEPTH_EDGE_REL * z) between neighbours
DEPTH_EDGE_REL = 0.02
MIN_EDGE_PIXELS = 50  # fewer depth-edge pixels: the frame cannot tell
DECISIVE_MARGIN = 0.001  # the best lag must beat the others by this share of its score
# (slow motion moves edges by a fraction of a pixel: the differences are small but steady)
MIN_DECISIVE = 20  # votes needed before any verdict
WARN_SHARE = 0.8  # of the decisive votes, for a non-zero lag to be reported (a static
# colour-depth offset, as in 7-Scenes, tilts the votes: 20 of 36 for +1 on its 60-frame clip)


class StreamConsistency:
    """Accumulates lag votes frame by frame (`add`); `verdict()` says what they show."""

    def __init__(self) -> None:
        self.votes = {-1: 0, 0: 0, 1: 0}
        self._recent: deque[tuple[int, bytes, bytes, np.ndarray | None, np.ndarray]] = \
            deque(maxlen=3)

    def add(self, fr: PreparedFrame) -> None:
        """Feed the next frame read (frames in stream order)."""
        import cv2

        lv = fr.levels[fr.check_level]
        depth = lv.depth.numpy()[:, :, 0]
        inten = lv.inten.numpy()[:, :, 0]
        gx = cv2.Sobel(inten, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(inten, cv2.CV_32F, 0, 1, ksize=3)
        grad = np.sqrt(gx * gx + gy * gy)
        grad = grad / max(float(grad.mean()), 1e-6)
        self._recent.append((fr.t, fr.key, fr.color_key, _depth_edges(depth), grad))
        if len(self._recent) < 3:
            return
        (t0, d0, c0, _, g0), (t1, d1, c1, e1, g1), (t2, d2, c2, _, g2) = self._recent
        if t1 != t0 + 1 or t2 != t1 + 1 or e1 is None:
            return
        if len({d0, d1, d2}) < 3 or len({c0, c1, c2}) < 3:
            return  # a repeated image says nothing about timing
        w = e1 / float(e1.sum())
        scores = {-1: float((w * g0).sum()), 0: float((w * g1).sum()), 1: float((w * g2).sum())}
        best = max(scores, key=lambda k: scores[k])
        others = [v for k, v in scores.items() if k != best]
        if scores[best] - max(others) >= DECISIVE_MARGIN * scores[best]:
            self.votes[best] += 1

    def verdict(self) -> dict:
        """{"votes": {"-1", "0", "+1"}, "warning": str | None} for recon/tracking.json."""
        decisive = sum(self.votes.values())
        warning = None
        lag = max((-1, 1), key=lambda k: self.votes[k])
        if decisive >= MIN_DECISIVE and self.votes[lag] >= WARN_SHARE * decisive \
                and self.votes[lag] > 2 * self.votes[0]:
            which = "lags" if lag == 1 else "leads"
            warning = (f"colour and depth look shifted in time: the colour {which} the depth by "
                       f"one frame in {self.votes[lag]} of {decisive} decisive checks "
                       "(depth edges line up with the colour edges of the "
                       f"{'next' if lag == 1 else 'previous'} frame); poses will be off by a "
                       "frame's motion. Fix the pairing of colour and depth files")
        return {"votes": {"-1": self.votes[-1], "0": self.votes[0], "+1": self.votes[1]},
                "warning": warning}


def _depth_edges(depth_m: np.ndarray) -> np.ndarray | None:
    """Blurred depth-discontinuity map (h, w) float32 of a depth map (NaN = none), or None
    when it has too few edges to tell anything."""
    import cv2

    z = np.nan_to_num(depth_m, nan=0.0)
    valid = depth_m > 0  # NaN compares False
    edges = np.zeros(depth_m.shape, bool)
    with np.errstate(invalid="ignore"):
        for dz, ok in ((np.abs(z[:, 1:] - z[:, :-1]), valid[:, 1:] & valid[:, :-1]),
                       (np.abs(z[1:, :] - z[:-1, :]), valid[1:, :] & valid[:-1, :])):
            zz = z[:, 1:] if dz.shape[1] != z.shape[1] else z[1:, :]
            step = ok & (dz > DEPTH_EDGE_M + DEPTH_EDGE_REL * zz)
            if dz.shape[1] != z.shape[1]:
                edges[:, 1:] |= step
                edges[:, :-1] |= step
            else:
                edges[1:, :] |= step
                edges[:-1, :] |= step
    if int(edges.sum()) < MIN_EDGE_PIXELS:
        return None
    return cv2.GaussianBlur(edges.astype(np.float32), (5, 5), 1.0)
