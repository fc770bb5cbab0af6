"""A frame prepared for odometry: its image pyramid, thumbnail and identity.

`PreparedFrame` holds, coarse to fine, `PYRAMID_LEVELS` levels of depth (metres, NaN =
none), intensity ([0, 1]) and the vertex map (camera frame, metres) as Open3D tensors,
with the intrinsics of each level (K halved per level); target frames also get their
Sobel gradients (`as_target`). Built once per frame and reused for every match against it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.geometry.open3d_tensor import tensor
from labeller.track.features import ViewFeatures, extract_features

if TYPE_CHECKING:
    import open3d as o3d

PYRAMID_LEVELS = 3  # Open3D's default for rgbd_odometry_multi_scale
# The odometry's depth outlier truncation (Open3D's default); the depth pyramid does not
# average across depth steps larger than twice it, as Open3D's multi-scale odometry.
DEPTH_OUTLIER_TRUNC_M = 0.07
CHECK_MIN_WIDTH = 160  # validation checks run on the coarsest pyramid level at least this wide
THUMB_SIZE = (40, 30)  # (w, h) of the relocalisation thumbnails

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


class PyramidLevel:
    """One pyramid level of a frame, as Open3D tensors (and numpy views for checks).

    depth (h, w, 1) float32 metres (NaN = none), inten (h, w, 1) float32 in [0, 1], vm
    (h, w, 3) float32 vertex map (camera frame, metres; NaN = none), K the level's
    intrinsics as a (3, 3) float64 tensor and K_np the same as numpy. ddx, ddy, idx, idy:
    Sobel gradients of depth and intensity, (h, w, 1) float32, set by
    `PreparedFrame.as_target` (None until then); normals (h, w, 3) by
    `as_geometric_target`.
    """

    __slots__ = ("depth", "inten", "vm", "K", "K_np", "ddx", "ddy", "idx", "idy", "normals")

    def __init__(self, depth: o3d.core.Tensor, inten: o3d.core.Tensor, vm: o3d.core.Tensor,
                 K: o3d.core.Tensor, K_np: np.ndarray):
        self.depth, self.inten, self.vm, self.K, self.K_np = depth, inten, vm, K, K_np
        self.ddx: o3d.core.Tensor | None = None
        self.ddy: o3d.core.Tensor | None = None
        self.idx: o3d.core.Tensor | None = None
        self.idy: o3d.core.Tensor | None = None
        self.normals: o3d.core.Tensor | None = None  # (h, w, 3), for geometric-only odometry


class PreparedFrame:
    """A preprocessed frame t: pyramid (coarse to fine), thumbnail and identity hash.

    rgb (H, W, 3) uint8 and depth_raw (H, W) uint16 as read; depth beyond `depth_max_m`
    counts as none. valid_ratio: share of pixels with depth in range. key (of the raw
    depth) identifies a repeated depth image; thumb (30, 40) float32, zero mean and
    unit norm, finds look-alike keyframes. color_key identifies repeated colour;
    gray_u8 (H, W) uint8 is what the ORB features (`features()`) are detected on.
    """

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
        # Identity for duplicate detection: the raw depth bytes and the raw colour bytes
        # (a stalled sensor repeats one stream or both byte for byte).
        self.key = hashlib.blake2b(depth_raw.tobytes(), digest_size=16).digest()
        self.color_key = hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(),
                                         digest_size=16).digest()
        self.gray_u8 = np.round(gray * 255.0).astype(np.uint8)
        self._features: ViewFeatures | None = None
        th = _resize_area(gray, THUMB_SIZE)
        th = th - th.mean()
        self.thumb = (th / (np.linalg.norm(th) + 1e-9)).astype(np.float32)
        K = cam.K.copy()
        levels: list[PyramidLevel] = []
        d, g = depth_m, gray
        for i in range(PYRAMID_LEVELS):
            Kt = tensor(K)
            dimg = Image(tensor(np.ascontiguousarray(d[:, :, None])))
            gimg = Image(tensor(np.ascontiguousarray(g[:, :, None])))
            vm = dimg.create_vertex_map(Kt, float("nan"))
            levels.append(PyramidLevel(dimg.as_tensor(), gimg.as_tensor(), vm.as_tensor(), Kt, K.copy()))
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

    def features(self) -> ViewFeatures:
        """ORB features with depth of the full-resolution level (computed once)."""
        if self._features is None:
            fine = self.levels[-1]
            self._features = extract_features(self.gray_u8, fine.depth.numpy()[:, :, 0],
                                              fine.K_np)
        return self._features

    def as_target(self) -> None:
        """Compute the gradients a target needs (once)."""
        import open3d as o3d

        for lv in self.levels:
            if lv.ddx is None:
                ddx, ddy = o3d.t.geometry.Image(lv.depth).filter_sobel()
                idx, idy = o3d.t.geometry.Image(lv.inten).filter_sobel()
                lv.ddx, lv.ddy = ddx.as_tensor(), ddy.as_tensor()
                lv.idx, lv.idy = idx.as_tensor(), idy.as_tensor()

    def as_geometric_target(self) -> None:
        """Compute the normal maps a point-to-plane target needs (once)."""
        import open3d as o3d

        for lv in self.levels:
            if lv.normals is None:
                lv.normals = o3d.t.geometry.Image(lv.vm).create_normal_map(
                    float("nan")).as_tensor()


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Intensity (H, W) float32 in [0, 1] of an RGB uint8 image (ITU-R 601 weights)."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)


def _resize_area(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` resized to size = (w, h) by area averaging."""
    import cv2

    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)

