"""Registration of depth into the colour camera: depth images from one camera, re-rendered
as seen from another (RealSense raw streams, Azure-Kinect-like layouts, 7-Scenes).

Every valid depth pixel is back-projected with the depth camera's K (OpenCV pinhole, metres),
moved into the colour camera with `T_colour_depth` and projected with the colour camera's K
onto the nearest colour pixel; where several points land on one pixel the nearest wins
(a z-buffer, Open3D's `PointCloud.project_to_depth_image`). The value written is the
point's z in the *colour* camera, in the same depth units as the input.

Forward projection leaves gaps between the projected points wherever the colour camera
samples more finely than the depth camera (the usual case: 1280x720 colour beside 640x480
depth, or a surface turned towards the colour camera). `fill_gaps` closes a gap only when
it is bridged: along a row (then a column, then the row again) there is a projected point at most
`gap_px` pixels away on *both* sides; it takes the value of the closer of the two (the
nearer surface on a tie).
Nothing is ever written beyond the outermost projected point, so edges stay where the
measurements put them (within half a colour pixel), and a disocclusion wider than the
gap stays empty.
"""

from __future__ import annotations

import numpy as np

from labeller.geometry.open3d_tensor import tensor as o3d_tensor

# Gaps up to the colour/depth sampling ratio plus this many pixels are bridged.
GAP_MARGIN_PX = 1
# uint16 depth: no value can be beyond this many units.
MAX_DEPTH_UNITS = 65535


def register_depth(depth: np.ndarray, K_depth: np.ndarray, K_colour: np.ndarray,
                   colour_size: tuple[int, int], T_colour_depth: np.ndarray,
                   depth_scale: float, fill_holes: bool = True) -> np.ndarray:
    """Depth of the depth camera re-rendered in the colour camera.

    depth: (Hd, Wd) uint16, `depth_scale` units per metre, 0 = no measurement.
    K_depth, K_colour: (3, 3) pinhole matrices (pixels). colour_size: (width, height).
    T_colour_depth: (4, 4) pose of the depth camera in the colour camera's frame
    (p_colour = T_colour_depth @ p_depth, metres).
    Returns (H, W) uint16 in the same units: z in the colour camera, 0 where no point
    landed (occluded background, outside the depth camera's view).
    """
    import open3d as o3d

    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"depth must be (H, W) uint16, got {depth.dtype} {depth.shape}")
    width, height = int(colour_size[0]), int(colour_size[1])
    depth_max_m = MAX_DEPTH_UNITS / depth_scale + 1.0
    pcd = o3d.t.geometry.PointCloud.create_from_depth_image(
        o3d.t.geometry.Image(np.ascontiguousarray(depth)), o3d_tensor(_f64(K_depth)),
        o3d_tensor(np.eye(4)), float(depth_scale), float(depth_max_m))
    out = np.zeros((height, width), np.uint16)
    if pcd.is_empty():
        return out
    projected = pcd.project_to_depth_image(width, height, o3d_tensor(_f64(K_colour)),
                                           o3d_tensor(_f64(T_colour_depth)),
                                           float(depth_scale), float(depth_max_m))
    z_units = np.asarray(projected.as_tensor().numpy(), np.float64).reshape(height, width)
    out = np.clip(np.round(z_units), 0, MAX_DEPTH_UNITS).astype(np.uint16)
    return fill_gaps(out, gap_px(K_depth, K_colour)) if fill_holes else out


def _f64(a: np.ndarray) -> np.ndarray:
    """A fresh native float64 copy: Open3D refuses some buffer formats numpy hands out
    for arrays decoded from messages ('=d')."""
    return np.array(a, dtype=np.float64, order="C", copy=True)


def gap_px(K_depth: np.ndarray, K_colour: np.ndarray) -> int:
    """Widest gap (colour pixels) to bridge: the focal-length ratio, rounded up, plus
    GAP_MARGIN_PX for rounding and perspective."""
    ratio = max(float(K_colour[0, 0]) / float(K_depth[0, 0]),
                float(K_colour[1, 1]) / float(K_depth[1, 1]))
    return max(1, int(np.ceil(ratio - 1e-6))) + GAP_MARGIN_PX


def _bridge_rows(depth: np.ndarray, gap: int) -> np.ndarray:
    h, w = depth.shape
    valid = depth > 0
    cols = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(valid, cols, -(w + gap + 1)), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, 2 * w + gap + 1)[:, ::-1],
                                  axis=1)[:, ::-1]
    fill = ~valid & (cols - left <= gap) & (right - cols <= gap)
    out = depth.copy()
    if fill.any():
        r, c = np.nonzero(fill)
        dl, dr = c - left[r, c], right[r, c] - c
        vl, vr = depth[r, left[r, c]], depth[r, right[r, c]]
        # The nearer point along the line; on a tie the nearer surface (smaller depth).
        out[r, c] = np.where(dl < dr, vl, np.where(dr < dl, vr, np.minimum(vl, vr)))
    return out


def fill_gaps(depth: np.ndarray, gap: int) -> np.ndarray:
    """(H, W) uint16 with every 0 pixel that has a valid pixel at most `gap` px away on
    both sides along its row (then its column, then its row again) set to the closer one's
    value (the smaller depth on a tie); other pixels unchanged."""
    rows = _bridge_rows(depth, gap)
    cols = np.ascontiguousarray(_bridge_rows(np.ascontiguousarray(rows.T), gap).T)
    return _bridge_rows(cols, gap)  # rows again: gaps whose row ends the columns filled
