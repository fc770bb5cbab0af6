"""Are colour and depth of a frame from the same instant? A check on the stream itself.

Depth discontinuities (object outlines) show up as colour edges too. For each run of
five consecutive frames (m-2 .. m+2), the depth edges of frame m are scored against the
colour gradients of each of the five (the gradient on the edges relative to that in a
band around them, so colour growing sharper or softer is not a lag). A lag in -1, 0, +1
votes when its score is a peak, above both its neighbours': a score that only rises or
falls with the lag is a trend of the view, not a timing. Only frames whose view moves
vote (the depth edges of m-1 and m+1 correlate less than MAX_EDGE_SIMILARITY): where the
camera hardly moves, a static colour/depth offset outweighs a frame's motion. In a
synchronised recording lag 0 peaks; when the colour stream is shifted by a frame against
the depth, lag +1 (colour lags: frame m+1's colour is what the depth of m saw) or -1
(colour leads) does. Frames whose colour or depth repeats another in the window cannot
tell and are skipped. (Comparing only lags -1..+1, every frame voting, a synchronised
synthetic scene moving under 2 pixels a frame read "colour leads" 106 to 0.)

Everything runs on the pyramid level of the alignment checks (160x120 for 640x480): a few hundred
microseconds per frame, on frames the tracker reads anyway.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from labeller.track.pyramid import PreparedFrame

DEPTH_EDGE_M = 0.03  # a depth step above this (+ DEPTH_EDGE_REL * z) between neighbours
DEPTH_EDGE_REL = 0.02
WINDOW = 5  # frames m-2 .. m+2: each voting lag needs a neighbour on both sides
# A frame votes only when its neighbours' depth edges (m-1 against m+1) correlate less than
# this: where the view hardly moves, any static colour/depth offset outweighs a frame's
# motion (slow synthetic scenes voted "colour leads" 15 to 1 without it).
MAX_EDGE_SIMILARITY = 0.7
AROUND_SIGMA_PX = 5.0  # the band around the depth edges the edge score is relative to
MIN_EDGE_PIXELS = 50  # fewer depth-edge pixels: the frame cannot tell
DECISIVE_MARGIN = 0.001  # a peak must beat both neighbouring lags by this share of its score
# (slow motion moves edges by a fraction of a pixel: the differences are small but steady)
MIN_DECISIVE = 20  # votes needed before any verdict
LEAD_FACTOR = 2.0  # a non-zero lag is reported when it has this many times the votes of
# lag 0 and of the opposite lag (the 400 real 7-Scenes frames: lag 0 88, -1 21, +1 33;
# with colour shifted by a frame: -1 83, 0 33, +1 0)


class StreamConsistency:
    """Accumulates lag votes frame by frame (`add`); `verdict()` says what they show."""

    def __init__(self) -> None:
        self.votes = {-1: 0, 0: 0, 1: 0}
        self._recent: deque[tuple[int, bytes, bytes, tuple[np.ndarray, np.ndarray] | None,
                                  np.ndarray]] = \
            deque(maxlen=WINDOW)

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
        if len(self._recent) < WINDOW:
            return
        win = list(self._recent)
        ts = [w[0] for w in win]
        if ts != list(range(ts[0], ts[0] + WINDOW)):
            return
        if len({w[1] for w in win}) < WINDOW or len({w[2] for w in win}) < WINDOW:
            return  # a repeated image says nothing about timing
        e = win[WINDOW // 2][3]
        if e is None:
            return
        near, around = e
        prev_e, next_e = win[WINDOW // 2 - 1][3], win[WINDOW // 2 + 1][3]
        if prev_e is None or next_e is None or \
                _similarity(prev_e[0], next_e[0]) > MAX_EDGE_SIMILARITY:
            return  # the view hardly moved over two frames: a lag cannot be told apart
        # scores[k] for lags k = -2 .. +2 (colour of frame m + k against depth of frame m):
        # the colour gradient on the depth edges over that in a band around them, so that
        # colour growing sharper or softer over the window (a trend) does not read as a lag.
        scores = {k: float((near * win[WINDOW // 2 + k][4]).sum())
                  / max(float((around * win[WINDOW // 2 + k][4]).sum()), 1e-12)
                  for k in range(-(WINDOW // 2), WINDOW // 2 + 1)}
        for lag in (-1, 0, 1):
            margin = DECISIVE_MARGIN * scores[lag]
            if scores[lag] - scores[lag - 1] >= margin and scores[lag] - scores[lag + 1] >= margin:
                self.votes[lag] += 1
                break

    def verdict(self) -> dict:
        """{"votes": {"-1", "0", "+1"}, "warning": str | None} for recon/tracking.json."""
        decisive = sum(self.votes.values())
        warning = None
        lag = max((-1, 1), key=lambda k: self.votes[k])
        if decisive >= MIN_DECISIVE and self.votes[lag] > LEAD_FACTOR * self.votes[0] \
                and self.votes[lag] > LEAD_FACTOR * self.votes[-lag]:
            which = "lags" if lag == 1 else "leads"
            warning = (f"colour and depth look shifted in time: the colour {which} the depth by "
                       f"one frame in {self.votes[lag]} of {decisive} decisive checks "
                       "(depth edges line up with the colour edges of the "
                       f"{'next' if lag == 1 else 'previous'} frame); poses will be off by a "
                       "frame's motion. Fix the pairing of colour and depth files")
        return {"votes": {"-1": self.votes[-1], "0": self.votes[0], "+1": self.votes[1]},
                "warning": warning}


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two edge maps (1 = the same edges)."""
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / max(float(np.sqrt((a * a).sum() * (b * b).sum())), 1e-12))


def _depth_edges(depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Depth-discontinuity maps (h, w) float32 of a depth map (NaN = none): the edges
    blurred a little (sigma 1 pixel) and a wide band around them (sigma AROUND_SIGMA_PX);
    None when it has too few edges to tell anything."""
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
    f = edges.astype(np.float32)
    return (cv2.GaussianBlur(f, (5, 5), 1.0),
            cv2.GaussianBlur(f, (0, 0), AROUND_SIGMA_PX))
