"""Refine one object's pose and score it against the sensor depth (Qt-free).

Built on `labeller.propagate.FrameLabeller`
(render + composite + the `labeller.geometry.depth_check` classes and score) and
`labeller.geometry.depth_check.icp_candidate` (Open3D point-to-plane ICP with the symmetry twist
removed), so the GUI scores exactly as `labeller propagate` does:

- `frame_measures(scene, objects, t)`: each object's depth-consistency measure in frame t.
- `frame_colour(scene, objects, t)`: each object's colour check (flip QA,
  `labeller.geometry.colour_consistency`) in frame t.
- `refine_object(scene, objects, obj_id, frames, source)`: point-to-plane ICP of the
  model against the sensor depth of `frames` (all at once, in the world frame: a view
  that cannot see an error along its ray is helped by the others) or against the fused
  cloud `recon/cloud.ply`; returns the new T_world_obj with the score before and after.

The propagation preview is `labeller.annotate.preview`, keyframe suggestions
`labeller.annotate.keyframes`.

Frames and units: T_world_obj, T_world_cam 4x4 float64 (metres); points (N, 3) metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.classes import BY_NAME
from labeller.core.poses import inv_pose, rotation_error_deg, transform_points, translation_error_m
from labeller.formats.scene import Scene
from labeller.geometry.colour_consistency import ColourResult
from labeller.geometry.depth_check import (
    AGREE,
    MODEL_BEHIND,
    MODEL_IN_FRONT,
    NO_DEPTH,
    OCCLUDED,
    ObjectMeasure,
    depth_normals,
)
from labeller.geometry.icp import IcpSettings, icp_candidate

# Scoring settings: the defaults of `labeller propagate` (PropagateConfig).
DELTA_M = 0.015
OCCLUSION_MARGIN_M = 0.05
FLAG_MIN_SCORE = 0.6
FLAG_MIN_VISIB = 0.2
# GUI refinement: several short ICP rounds, each bounded like propagate's ICP but a bit
# wider (a person's placement is rougher than a propagated pose), until it stops moving.
REFINE_ICP = IcpSettings(max_trans_m=0.04, max_rot_deg=20.0, stages=(1.5, 1.0, 0.5, 0.25),
                         iterations=30, max_model_points=3000, max_sensor_points=6000,
                         min_points=20)
# Tried in order when the previous one fails (thin objects: large capture distances
# reach the neighbours and the ICP runs off).
REFINE_TRIES = (REFINE_ICP, IcpSettings(max_trans_m=0.04, max_rot_deg=20.0, stages=(0.5, 0.25),
                                        iterations=30, max_model_points=3000,
                                        max_sensor_points=6000, min_points=20))
REFINE_ROUNDS = 6
REFINE_STOP_M = 2e-4
REFINE_STOP_DEG = 0.05
# Cloud crops: the model's bounding sphere grown by this much (metres).
CLOUD_MARGIN_M = 0.03


@dataclass(frozen=True)
class PosedObject:
    """An annotated object as the helpers need it: id, mesh file, class, T_world_obj."""

    obj_id: int
    model_path: Path
    class_name: str
    T_world_obj: np.ndarray


@dataclass
class RefineResult:
    """Outcome of `refine_object`: the new pose (None when nothing better was found),
    mean depth-consistency score over the frames before / after, how far it moved."""

    T_world_obj: np.ndarray | None
    score_before: float
    score_after: float
    moved_m: float = 0.0
    turned_deg: float = 0.0
    rounds: int = 0
    reason: str = ""
    # A correction refused for being beyond the bounds: how far ICP wanted to move /
    # turn the object (the widest try's figures; NaN when none was refused) and the
    # bounds it was held to.
    wanted_moved_m: float = float("nan")
    wanted_turned_deg: float = float("nan")
    max_trans_m: float = 0.0
    max_rot_deg: float = 0.0
    # The colour check (flip QA) in the first of the refined frames, at the pose before
    # and at the pose kept (None: not computed, e.g. no camera pose there).
    colour_before: ColourResult | None = None
    colour_after: ColourResult | None = None

    def colour_text(self) -> str:
        """The colour check for the notice: "colour 0.12 → 0.85 ok", "colour: no texture",
        "" when not computed."""
        return colour_change_text(self.colour_before, self.colour_after)


def colour_change_text(before: ColourResult | None, after: ColourResult | None) -> str:
    """"colour 0.12 → 0.85 ok" (scores before → after, the state after); "colour 0.85 ok"
    when only one is known; "colour: no texture" etc. without a score; "" for none."""
    last = after if after is not None else before
    if last is None:
        return ""
    if not np.isfinite(last.score):
        return f"colour: {last.state_name}"
    if before is not None and after is not None and np.isfinite(before.score) \
            and not np.isclose(before.score, after.score, atol=5e-3):
        return f"colour {before.score:.2f} → {after.score:.2f} {after.state_name}"
    return f"colour {last.score:.2f} {last.state_name}"


def _job(scene: Scene, objects: Sequence[PosedObject], refine: str = "none"):
    from labeller.propagate import Job

    objs = tuple((o.obj_id, str(o.model_path), np.asarray(o.T_world_obj, np.float64))
                 for o in objects)
    axes = tuple(BY_NAME[o.class_name].symmetry_axis if o.class_name in BY_NAME else None
                 for o in objects)
    return Job(str(scene.root), scene.camera, objs, DELTA_M, OCCLUSION_MARGIN_M, refine,
               REFINE_ICP, axes)


def scene_labeller(scene: Scene, objects: Sequence[PosedObject]):
    from labeller.propagate import FrameLabeller

    return FrameLabeller(_job(scene, objects))


def frame_measures(scene: Scene, objects: Sequence[PosedObject], t: int,
                   depth_m: np.ndarray | None = None) -> dict[int, ObjectMeasure]:
    """{obj_id: measure} of every object in frame t (empty when t has no camera pose)."""
    traj = scene.trajectory
    if not objects or t not in traj:
        return {}
    fl = scene_labeller(scene, objects)
    d = scene.depth(t) if depth_m is None else depth_m
    _, views, *_ = fl.analyse(np.asarray(traj[t], np.float64), d)
    return {o.obj_id: v.m for o, v in zip(objects, views, strict=True)}


def frame_colour(scene: Scene, objects: Sequence[PosedObject], t: int,
                 only: int | None = None) -> dict[int, ColourResult]:
    """{obj_id: colour check} of every object (or only object `only`) in frame t, as
    `labeller propagate` computes it (empty when t has no camera pose)."""
    traj = scene.trajectory
    if not objects or t not in traj:
        return {}
    fl = scene_labeller(scene, objects)
    T_cam_obj, views, *_ = fl.analyse(np.asarray(traj[t], np.float64), scene.depth(t))
    rgb = scene.rgb(t)
    return {o.obj_id: fl.colour(k, views[k], T_cam_obj[k], rgb)
            for k, o in enumerate(objects) if only is None or o.obj_id == only}


def _mean_score(ms: list[ObjectMeasure]) -> tuple[float, float]:
    """(mean score, mean median |dz|) over the frames where the object is scored."""
    s = [m.score for m in ms if np.isfinite(m.score)]
    z = [m.median_abs_dz_m for m in ms if np.isfinite(m.median_abs_dz_m)]
    return (float(np.mean(s)) if s else float("nan"), float(np.mean(z)) if z else float("nan"))


def _better(after: tuple[float, float], before: tuple[float, float]) -> bool:
    """A higher score, or the same score with smaller depth residuals."""
    if not np.isfinite(after[0]):
        return False
    if not np.isfinite(before[0]) or after[0] > before[0] + 1e-9:
        return True
    return abs(after[0] - before[0]) <= 1e-9 and after[1] < before[1]


def _depth_points(scene: Scene, objects: Sequence[PosedObject], i: int, frames: Sequence[int],
                  reach_m: float):
    """World-frame model surface points of object i as seen in `frames`, sensor points
    around it with normals, and the measures of object i there."""
    cam = scene.camera
    fl = scene_labeller(scene, objects)
    traj = scene.trajectory
    P_model, P_sens, N_sens, measures = [], [], [], []
    oid = objects[i].obj_id
    for t in frames:
        if t not in traj:
            continue
        T_wc = np.asarray(traj[t], np.float64)
        depth_m = scene.depth(t)
        _, views, _, ibuf, _ = fl.analyse(T_wc, depth_m)
        v = views[i]
        measures.append(v.m)
        if v.roi is None or v.code is None:
            continue
        x0, y0, w, h = v.roi
        # Every pixel where the object is the front-most annotated one: OCCLUDED too, as a
        # rough placement may sit more than the occlusion margin behind the surface.
        front = np.isin(v.code, (AGREE, MODEL_IN_FRONT, MODEL_BEHIND, NO_DEPTH, OCCLUDED))
        rr, cc = np.nonzero(front)
        if rr.size == 0:
            continue
        z = v.depth_z[rr, cc].astype(np.float64)
        P_model.append(transform_points(T_wc, cam.backproject(cc + x0, rr + y0, z)))
        import cv2

        pad = int(np.ceil(max(cam.fx, cam.fy) * reach_m / max(float(z.min()), 0.05))) + 1
        X0, Y0 = max(x0 - pad, 0), max(y0 - pad, 0)
        X1, Y1 = min(x0 + w + pad, cam.width), min(y0 + h + pad, cam.height)
        near = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
        near[y0 - Y0:y0 - Y0 + h, x0 - X0:x0 - X0 + w] = front
        near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_RECT,
                                                          (2 * pad + 1, 2 * pad + 1)))
        dz = depth_m[Y0:Y1, X0:X1]
        own = ibuf[Y0:Y1, X0:X1]
        P_img, N_img = depth_normals(cam, dz, X0, Y0)
        sel = ((near > 0) & (dz > 0) & (dz >= z.min() - reach_m) & (dz <= z.max() + reach_m)
               & ((own == 0) | (own == oid)) & (N_img[..., 2] != 0))
        P_sens.append(transform_points(T_wc, P_img[sel].astype(np.float64)))
        N_sens.append(N_img[sel].astype(np.float64) @ T_wc[:3, :3].T)
    def cat(xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros((0, 3))

    P_model_all, P_sens_all, N_sens_all = cat(P_model), cat(P_sens), cat(N_sens)
    keep = _off_support_plane(P_model_all, P_sens_all)
    return P_model_all, P_sens_all[keep], N_sens_all[keep], measures


# The supporting surface (table) is taken out of the sensor points when it holds at least
# this fraction of them and at most SUPPORT_MAX_MODEL_FRACT of the model's points lie on it.
SUPPORT_MIN_FRACT = 0.2
SUPPORT_MAX_MODEL_FRACT = 0.2
SUPPORT_DIST_M = 0.006


def _off_support_plane(P_model: np.ndarray, P_sens: np.ndarray) -> np.ndarray:
    """(M,) bool: sensor points not on the dominant plane under the object.

    Point-to-plane ICP lets a thin object slide along a large table (every table point
    has the same normal); the object's own surfaces never lie on the table, so the table
    is left out, unless the model itself lies largely on that plane (a box face)."""
    import open3d as o3d

    keep = np.ones(len(P_sens), bool)
    if len(P_sens) < 100 or len(P_model) < 10:
        return keep
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(P_sens))
    plane, inl = pcd.segment_plane(SUPPORT_DIST_M, 3, 200, probability=0.9999)
    if len(inl) < SUPPORT_MIN_FRACT * len(P_sens):
        return keep
    n, d = np.asarray(plane[:3]), float(plane[3])
    on_model = np.abs(P_model @ n + d) <= 2 * SUPPORT_DIST_M
    if on_model.mean() > SUPPORT_MAX_MODEL_FRACT:
        return keep
    keep[np.asarray(inl)] = False
    return keep


def _cloud_points(cloud_path: Path, model_path: Path, T_world_obj: np.ndarray):
    """Model surface samples (world) and the fused cloud's points + normals around them."""
    import open3d as o3d

    from labeller.core.errors import FormatError
    from labeller.formats.models import load_model

    if not cloud_path.is_file():
        raise FormatError(cloud_path, "file not found: run tracking (it writes the fused "
                                      "cloud) or refine against the frame's depth")
    pcd = o3d.io.read_point_cloud(Path(cloud_path))
    pts = np.asarray(pcd.points, np.float64)
    if len(pts) == 0:
        raise FormatError(cloud_path, "no points in the fused cloud")
    model = load_model(model_path)
    P_model = transform_points(T_world_obj, model.sample_points(4000))
    c = P_model.mean(0)
    r = float(np.max(np.linalg.norm(P_model - c, axis=1))) + CLOUD_MARGIN_M
    keep = np.linalg.norm(pts - c, axis=1) <= r
    sub = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[keep]))
    if len(sub.points) >= 10:
        sub.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.01, max_nn=30))
    return P_model, np.asarray(sub.points, np.float64), np.asarray(sub.normals, np.float64)


def refine_object(scene: Scene, objects: Sequence[PosedObject], obj_id: int,
                  frames: Sequence[int], source: str = "depth",
                  rounds: int = REFINE_ROUNDS) -> RefineResult:
    """Point-to-plane ICP of object `obj_id`'s model against the sensor.

    source "depth": the depth images of `frames` (sensor points around the object's
    silhouette, normals from the depth image, other annotated objects' pixels left out),
    all frames registered together in the world frame. source "cloud": the fused cloud
    `recon/cloud.ply` (world frame) cropped around the object. Each round is one bounded
    `icp_candidate`; rounds repeat from the new pose until it stops moving. The score
    reported is the mean depth-consistency score over `frames`; the result is kept only
    when it is better (higher score, or equal score and smaller depth residuals).
    """
    if source not in ("depth", "cloud"):
        raise ValueError(f"source must be 'depth' or 'cloud', got {source!r}")
    idx = [o.obj_id for o in objects].index(obj_id)
    objs = list(objects)
    sym = BY_NAME[objs[idx].class_name].symmetry_axis if objs[idx].class_name in BY_NAME \
        else None
    T0 = np.asarray(objs[idx].T_world_obj, np.float64)

    def score_at(T: np.ndarray) -> tuple[float, float]:
        o = objs[idx]
        trial = objs[:idx] + [PosedObject(o.obj_id, o.model_path, o.class_name, T)] \
            + objs[idx + 1:]
        fl = scene_labeller(scene, trial)
        ms = []
        for t in frames:
            if t in scene.trajectory:
                _, views, *_ = fl.analyse(np.asarray(scene.trajectory[t], np.float64),
                                          scene.depth(t))
                ms.append(views[idx].m)
        return _mean_score(ms)

    before = score_at(T0)
    T = T0.copy()
    reason, n = "", 0
    wanted = (float("nan"), float("nan"))  # the first correction refused by the bounds
    for n_round in range(1, rounds + 1):
        n = n_round
        o = objs[idx]
        cur = (objs[:idx] + [PosedObject(o.obj_id, o.model_path, o.class_name, T)]
               + objs[idx + 1:])
        if source == "depth":
            Pm, Ps, Ns, _ = _depth_points(scene, cur, idx, frames, 2 * REFINE_ICP.max_trans_m)
        else:
            Pm, Ps, Ns = _cloud_points(scene.paths.cloud, o.model_path, T)
        # icp_candidate works in any one frame. The object's own frame keeps the
        # linearised rotation about the object (not about a world origin a metre away),
        # which keeps thin objects on a large table from sliding off.
        T_ow = inv_pose(T)
        Pm_o, Ps_o = transform_points(T_ow, Pm), transform_points(T_ow, Ps)
        Ns_o = Ns @ T_ow[:3, :3].T if len(Ns) else Ns
        T_fix, moved, turned, why = None, 0.0, 0.0, "no settings"
        for settings in REFINE_TRIES:  # wide first; narrower when the wide one runs off
            T_fix, moved, turned, why = icp_candidate(np.eye(4), Pm_o, Ps_o, Ns_o, settings, sym)
            if T_fix is not None:
                break
            if why == "correction beyond the bounds" and not np.isfinite(wanted[0]):
                wanted = (moved, turned)
        if T_fix is None:  # thin objects: point-to-plane runs off, point-to-point holds
            T_fix, moved, turned, why = _point_to_point(Pm_o, Ps_o, sym)
        if T_fix is None and why == "correction beyond the bounds" \
                and not np.isfinite(wanted[0]):
            wanted = (moved, turned)
        if T_fix is None:
            reason = "correction beyond the bounds" if np.isfinite(wanted[0]) else why
            break
        T = T @ T_fix
        if moved < REFINE_STOP_M and turned < REFINE_STOP_DEG:
            break
    after = score_at(T)
    moved, turned = translation_error_m(T, T0), rotation_error_deg(T, T0)

    def colour_at(T_obj: np.ndarray) -> ColourResult | None:
        """The colour check in the first refined frame (ICP never turns a label over, but
        it shows whether the pose it refined is the right way round)."""
        if not frames:
            return None
        o = objs[idx]
        trial = objs[:idx] + [PosedObject(o.obj_id, o.model_path, o.class_name, T_obj)] \
            + objs[idx + 1:]
        return frame_colour(scene, trial, frames[0], only=o.obj_id).get(o.obj_id)

    c0 = colour_at(T0)
    if np.array_equal(T, T0):
        return RefineResult(None, before[0], before[0], 0.0, 0.0, n,
                            reason or "ICP found no correction", wanted[0], wanted[1],
                            REFINE_ICP.max_trans_m, REFINE_ICP.max_rot_deg, c0, c0)
    if not _better(after, before):
        return RefineResult(None, before[0], after[0], moved, turned, n,
                            "the ICP result does not fit the depth better; pose kept",
                            colour_before=c0, colour_after=c0)
    return RefineResult(T, before[0], after[0], moved, turned, n, reason or "ok",
                        colour_before=c0, colour_after=colour_at(T))


# Point-to-point fallback: capture distances (metres), shrinking.
P2P_STAGES_M = (0.03, 0.015, 0.008)


def _point_to_point(P_model: np.ndarray, P_sensor: np.ndarray, symmetry_axis
                    ) -> tuple[np.ndarray | None, float, float, str]:
    """Point-to-point ICP (model onto sensor, both in the object's frame) within the
    bounds of REFINE_ICP; the twist about a symmetry axis is dropped, as in
    `icp_candidate`. Returns (T_fix | None, moved_m, turned_deg, reason)."""
    import open3d as o3d

    from labeller.geometry.icp import single_thread, stride_pick, without_twist

    s = REFINE_ICP
    if len(P_model) < s.min_points or len(P_sensor) < s.min_points:
        return None, float("nan"), float("nan"), "too few points"
    reg = o3d.pipelines.registration
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
        P_model[stride_pick(len(P_model), s.max_model_points)]))
    tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
        P_sensor[stride_pick(len(P_sensor), s.max_sensor_points)]))
    T_fix = np.eye(4)
    with single_thread():
        for d in P2P_STAGES_M:
            res = reg.registration_icp(src, tgt, d, T_fix,
                                       reg.TransformationEstimationPointToPoint(),
                                       reg.ICPConvergenceCriteria(max_iteration=50))
            if len(res.correspondence_set) < s.min_points:
                return None, float("nan"), float("nan"), "too few correspondences"
            T_fix = np.asarray(res.transformation, np.float64).copy()
    if symmetry_axis is not None:
        T_fix = without_twist(np.eye(4), T_fix, symmetry_axis)
    moved, turned = translation_error_m(T_fix, np.eye(4)), rotation_error_deg(T_fix, np.eye(4))
    if moved > s.max_trans_m or turned > s.max_rot_deg:
        return None, moved, turned, "correction beyond the bounds"
    return T_fix, moved, turned, "ok"
