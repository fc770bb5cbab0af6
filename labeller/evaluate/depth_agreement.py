"""How well a trajectory explains a scene's recorded depth, with no reference needed.

An ATE figure measures the distance between two trajectories, and the "ground truth" of
a real recording is usually another tracker's estimate (7-Scenes: KinectFusion's). These
checks ask the sensor instead, so an estimate and its reference can be judged alike:

- `refuted_steps`: each step between consecutive posed frames (a, b) is held against the
  depth: warped by the step, how much of frame b's depth lands within tolerance of frame
  a's, and how much it does after Open3D point-to-plane ICP started from the step. A
  step the depth explains far worse than a nearby pose does is refuted (a jump in a
  reference that the images do not show).
- `pair_agreement`: frames far apart in time whose views overlap (the revisits a
  trajectory has to get right globally): the same depth agreement under each trajectory's
  relative pose. Drift shows here, where consecutive frames hide it.

Poses are T_world_cam (4, 4, metres, OpenCV camera); depth in metres. The agreement
tolerance is the tracker's alignment check's (1 cm + 1.5 % of the depth); depth maps are
read every `SUBSAMPLE`-th pixel.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeller.core.errors import BadInput
from labeller.core.poses import inv_pose, rotation_angle_deg
from labeller.core.progress import ProgressFn
from labeller.formats.scene import Scene
from labeller.formats.trajectory import Trajectory
from labeller.geometry.open3d_tensor import tensor

SUBSAMPLE = 4  # read every 4th pixel (160x120 of a 640x480 frame)
AGREE_TOL_M = 0.01  # |dz| within this + AGREE_TOL_REL * z agrees
AGREE_TOL_REL = 0.015
DEPTH_MAX_M = 3.0
MIN_VALID = 0.05  # a frame with less valid depth than this share is not judged
# A step is refuted when ICP from it explains this much more of the depth. On the 400
# real 7-Scenes frames the gain is at most 0.021 for 398 of the 399 ground-truth steps and
# 0.26 for the one the images contradict (frame 122, docs/tracking.md).
REFUTE_MARGIN = 0.1
PAIR_MIN_GAP = 60  # frames between the two views of a long-baseline pair
PAIR_EVERY = 10  # candidate frames every N
PAIR_MAX_DIST_M = 0.4
PAIR_MAX_DEG = 25.0
PAIR_MAX = 40  # pairs judged (evenly spread over the candidates)


class DepthViews:
    """A scene's depth frames, subsampled, read on demand (the last few kept). A frame
    whose depth is missing (a scene opened with allow_missing_depth) or unreadable reads
    as no depth, so the checks skip it."""

    def __init__(self, scene: Scene, cache: int = 8):
        self.scene = scene
        cam = scene.camera
        self.K = np.array([[cam.fx / SUBSAMPLE, 0.0, cam.cx / SUBSAMPLE],
                           [0.0, cam.fy / SUBSAMPLE, cam.cy / SUBSAMPLE], [0.0, 0.0, 1.0]])
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._rgbd: OrderedDict[int, Any] = OrderedDict()
        self._size = cache
        self._no_colour: Any = None

    def rgbd(self, t: int) -> Any:  # open3d.t.geometry.RGBDImage
        """Frame t's full-resolution depth as an Open3D RGBD image (colour left blank:
        point-to-plane odometry reads depth alone)."""
        import open3d as o3d

        if t in self._rgbd:
            self._rgbd.move_to_end(t)
            return self._rgbd[t]
        cam = self.scene.camera
        if self._no_colour is None:
            self._no_colour = o3d.t.geometry.Image(
                np.zeros((cam.height, cam.width, 3), np.uint8))
        im = o3d.t.geometry.RGBDImage(self._no_colour,
                                      o3d.t.geometry.Image(self.scene.depth_raw(t)))
        self._rgbd[t] = im
        while len(self._rgbd) > self._size:
            self._rgbd.popitem(last=False)
        return im

    def _load(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        try:
            d = self.scene.depth(t)[::SUBSAMPLE, ::SUBSAMPLE].astype(np.float64)
        except BadInput:  # an unreadable frame is one the check cannot judge
            cam = self.scene.camera
            d = np.zeros(((cam.height + SUBSAMPLE - 1) // SUBSAMPLE,
                          (cam.width + SUBSAMPLE - 1) // SUBSAMPLE))
        d[(d <= 0) | (d > DEPTH_MAX_M)] = 0.0
        v, u = np.nonzero(d > 0)
        z = d[v, u]
        K = self.K
        pts = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
        self._cache[t] = (d, pts)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return d, pts

    def depth(self, t: int) -> np.ndarray:
        """(h, w) float64 metres of frame t at the subsampled resolution, 0 = none."""
        return self._load(t)[0]

    def points(self, t: int) -> np.ndarray:
        """(N, 3) float64 camera-frame points (metres) of frame t's valid depth."""
        return self._load(t)[1]

    def usable(self, t: int) -> bool:
        return float((self.depth(t) > 0).mean()) >= MIN_VALID


@dataclass(frozen=True)
class LandedPoints:
    """Frame b's depth points moved into camera a that land on frame a's depth."""

    n_points: int  # frame b's depth points in all
    u: np.ndarray  # (M,) int pixel column in frame a (subsampled resolution)
    v: np.ndarray  # (M,) int pixel row
    z: np.ndarray  # (M,) float64 metres: the moved point's depth in camera a
    z_a: np.ndarray  # (M,) float64 metres: frame a's depth at (v, u)

    @property
    def agrees(self) -> np.ndarray:
        """(M,) bool: within AGREE_TOL_M + AGREE_TOL_REL * z."""
        return np.abs(self.z_a - self.z) <= AGREE_TOL_M + AGREE_TOL_REL * self.z


def landed_points(views: DepthViews, a: int, b: int, T_a_b: np.ndarray) -> LandedPoints:
    """Frame b's depth points moved into camera a by T_a_b (4, 4) and projected, those
    that land on a pixel of frame a with depth."""
    p = views.points(b) @ T_a_b[:3, :3].T + T_a_b[:3, 3]
    d = views.depth(a)
    h, w = d.shape
    p = p[p[:, 2] > 1e-6]
    K = views.K
    u = np.round(K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2]).astype(np.int64)
    v = np.round(K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z = u[inside], v[inside], p[inside, 2]
    z_a = d[v, u]
    on = z_a > 0
    return LandedPoints(len(views.points(b)), u[on], v[on], z[on], z_a[on])


def depth_agreement(views: DepthViews, a: int, b: int, T_a_b: np.ndarray) -> float:
    """Share of frame b's depth points that, moved into camera a by T_a_b (4, 4), land on
    frame a's depth and agree with it (0 when none land)."""
    landed = landed_points(views, a, b, T_a_b)
    return float(landed.agrees.sum() / landed.n_points) if landed.n_points else 0.0


def icp_step(views: DepthViews, a: int, b: int, init_T_a_b: np.ndarray) -> np.ndarray:
    """T_a_b (4, 4) refined by Open3D's projective point-to-plane ICP of frame b's depth
    onto frame a's (`rgbd_odometry_multi_scale`, Method.PointToPlane, full resolution,
    coarse to fine), started from `init_T_a_b`; `init_T_a_b` itself when ICP finds no
    correspondence."""
    import open3d as o3d

    odo = o3d.t.pipelines.odometry
    cam = views.scene.camera
    K = tensor(np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], np.float64))
    crit = [odo.OdometryConvergenceCriteria(n) for n in (10, 5, 3)]
    try:
        res = odo.rgbd_odometry_multi_scale(
            views.rgbd(b), views.rgbd(a), K, tensor(np.asarray(init_T_a_b, np.float64)),
            float(cam.depth_scale), DEPTH_MAX_M, crit, odo.Method.PointToPlane)
    except RuntimeError:  # no correspondence at some level
        return np.asarray(init_T_a_b, dtype=np.float64)
    return np.asarray(res.transformation.numpy(), dtype=np.float64)


@dataclass(frozen=True)
class RefutedStep:
    """A step a → b of a trajectory that the depth contradicts (lengths metres)."""

    previous: int  # frame a
    frame: int  # frame b
    step_m: float  # |translation| of the trajectory's step T_a_b
    depth_step_m: float  # |translation| of ICP's step from it
    disagreement_m: float  # translation between the two steps
    disagreement_deg: float
    agreement: float  # depth agreement under the trajectory's step
    agreement_icp: float  # ... under ICP's
    T_a_b_icp: np.ndarray  # (4, 4) ICP's step

    def describe(self) -> str:
        return (f"frame {self.previous} -> {self.frame}: a step of {self.step_m * 1e3:.1f} mm "
                f"under which {self.agreement:.0%} of the depth agrees, against "
                f"{self.agreement_icp:.0%} for ICP's {self.depth_step_m * 1e3:.1f} mm step "
                f"from it ({self.disagreement_m * 1e3:.1f} mm / "
                f"{self.disagreement_deg:.2f} deg apart)")


def refuted_steps(views: DepthViews, traj: Trajectory,
                  progress: ProgressFn | None = None) -> list[RefutedStep]:
    """The steps between consecutive posed frames that the depth refutes: ICP started from
    the step explains at least REFUTE_MARGIN more of frame b's depth. Steps across an
    unposed frame, into frames with too little depth or beyond the scene are skipped."""
    ids = traj.frame_ids
    out: list[RefutedStep] = []
    for k in range(1, len(ids)):
        a, b = ids[k - 1], ids[k]
        if progress is not None:
            progress(k, len(ids) - 1)
        if b != a + 1 or b >= views.scene.n_frames or not (views.usable(a)
                                                           and views.usable(b)):
            continue
        T = inv_pose(traj[a]) @ traj[b]
        ag = depth_agreement(views, a, b, T)
        if ag > 1.0 - REFUTE_MARGIN:  # nothing can explain REFUTE_MARGIN more
            continue
        T_icp = icp_step(views, a, b, T)
        ag_icp = depth_agreement(views, a, b, T_icp)
        if ag_icp - ag >= REFUTE_MARGIN:
            D = inv_pose(T) @ T_icp
            out.append(RefutedStep(a, b, float(np.linalg.norm(T[:3, 3])),
                                   float(np.linalg.norm(T_icp[:3, 3])),
                                   float(np.linalg.norm(D[:3, 3])),
                                   rotation_angle_deg(D[:3, :3]), ag, ag_icp, T_icp))
    return out


def with_steps_replaced(traj: Trajectory, steps: list[RefutedStep]) -> Trajectory:
    """`traj` with each refuted step replaced by ICP's (every later pose moved with it)."""
    poses = {t: traj[t].copy() for t in traj.frame_ids}
    for s in sorted(steps, key=lambda s: s.frame):
        C = poses[s.previous] @ s.T_a_b_icp @ inv_pose(poses[s.frame])
        for t in poses:
            if t >= s.frame:
                poses[t] = C @ poses[t]
    return Trajectory(poses)


def long_baseline_pairs(views: DepthViews, *trajectories: Trajectory) -> list[tuple[int, int]]:
    """Pairs (a, b), b - a >= PAIR_MIN_GAP, on a PAIR_EVERY grid, whose views overlap
    (within PAIR_MAX_DIST_M and PAIR_MAX_DEG) by any of the trajectories; at most
    PAIR_MAX, spread evenly."""
    common = set.intersection(*(set(t.frame_ids) for t in trajectories))
    grid = [t for t in sorted(common) if t % PAIR_EVERY == 0 and 0 <= t < views.scene.n_frames
            and views.usable(t)]
    pairs = []
    for i, a in enumerate(grid):
        for b in grid[i + 1:]:
            if b - a < PAIR_MIN_GAP:
                continue
            for traj in trajectories:
                T = inv_pose(traj[a]) @ traj[b]
                if (np.linalg.norm(T[:3, 3]) <= PAIR_MAX_DIST_M
                        and rotation_angle_deg(T[:3, :3]) <= PAIR_MAX_DEG):
                    pairs.append((a, b))
                    break
    if len(pairs) > PAIR_MAX:
        pick = np.linspace(0, len(pairs) - 1, PAIR_MAX).round().astype(int)
        pairs = [pairs[i] for i in pick]
    return pairs


def pair_agreement(views: DepthViews, traj: Trajectory, pairs: list[tuple[int, int]]
                   ) -> np.ndarray:
    """(len(pairs),) depth agreement of each pair under `traj`'s relative pose."""
    return np.array([depth_agreement(views, a, b, inv_pose(traj[a]) @ traj[b])
                     for a, b in pairs], dtype=np.float64)


@dataclass(frozen=True)
class AgreementReport:
    """A trajectory, and optionally its reference, held against the depth."""

    pairs: list[tuple[int, int]]
    agreement: np.ndarray  # (P,) the trajectory's long-baseline agreement
    refuted: list[RefutedStep]
    reference_agreement: np.ndarray | None = None
    reference_refuted: list[RefutedStep] | None = None
    reference_ate_floor_m: float | None = None  # ATE(reference, reference repaired)

    def summary(self) -> list[str]:
        lines = []
        if self.pairs:
            line = (f"depth agreement over {len(self.pairs)} long-baseline pairs (>= "
                    f"{PAIR_MIN_GAP} frames apart, views overlapping): median "
                    f"{np.median(self.agreement):.3f}")
            if self.reference_agreement is not None:
                better = int((self.agreement > self.reference_agreement).sum())
                line += (f", reference {np.median(self.reference_agreement):.3f}; the "
                         f"trajectory agrees better on {better} of {len(self.pairs)}")
            lines.append(line)
        else:
            lines.append("no long-baseline pairs (no view seen again "
                         f">= {PAIR_MIN_GAP} frames later)")
        for who, steps in (("trajectory", self.refuted), ("reference", self.reference_refuted)):
            if steps is None:
                continue
            lines.append(f"steps of the {who} the depth refutes: {len(steps)}")
            lines += [f"  {s.describe()}" for s in steps[:10]]
        if self.reference_ate_floor_m is not None:
            lines.append(f"the reference against itself with those steps replaced by ICP's: "
                         f"ATE {self.reference_ate_floor_m * 1e3:.2f} mm (what following the "
                         "depth there costs against it)")
        return lines


def check_against_depth(scene: Scene, traj: Trajectory, reference: Trajectory | None = None,
                        progress: ProgressFn | None = None) -> AgreementReport:
    """Long-baseline agreement and refuted steps of `traj` (and of `reference`), on the
    frames of `scene` (poses of frames it does not hold are left out)."""
    from labeller.evaluate.trajectory import ate

    views = DepthViews(scene)
    # Only the frames the scene holds can be judged (a reference may cover more).
    traj = Trajectory({t: traj[t] for t in traj.frame_ids if 0 <= t < scene.n_frames})
    if reference is not None:
        reference = Trajectory({t: reference[t] for t in reference.frame_ids
                                if 0 <= t < scene.n_frames})
    refs = [traj] if reference is None else [traj, reference]
    pairs = long_baseline_pairs(views, *refs)
    ag = pair_agreement(views, traj, pairs)
    n1 = max(len(traj.frame_ids) - 1, 0)
    n2 = max(len(reference.frame_ids) - 1, 0) if reference is not None else 0

    def first(done: int, total: int) -> None:
        if progress is not None:
            progress(done, n1 + n2)

    def second(done: int, total: int) -> None:
        if progress is not None:
            progress(n1 + done, n1 + n2)

    refuted = refuted_steps(views, traj, first)
    if reference is None:
        return AgreementReport(pairs, ag, refuted)
    ref_refuted = refuted_steps(views, reference, second)
    floor = ate(reference, with_steps_replaced(reference, ref_refuted)).rmse_m \
        if ref_refuted else 0.0
    return AgreementReport(pairs, ag, refuted, pair_agreement(views, reference, pairs),
                           ref_refuted, floor)
