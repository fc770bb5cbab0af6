"""Finding objects without estimates: global registration of models against the fused cloud.

The scene's fused cloud (`recon/cloud.ply`, world frame, from `labeller track`) is
downsampled, its large planes (table, floor, walls: RANSAC plane fits holding at least
`MIN_PLANE_FRACTION` of it) and the points of objects already placed are removed, and
what remains is split into clusters (DBSCAN, asking few neighbours: the cloud is a
surface sampled about once per voxel). Each class model is matched against each
cluster of a plausible size: coarse poses from RANSAC on FPFH correspondences (Open3D,
seeded), each also turned half a turn about each model axis, all refined by ICP of the
cluster onto the model; small clusters whose RANSAC poses fit nothing are also tried
from their centre in the 24 axis-aligned orientations. Among the refined fits that
explain the shape about as well as the best, the colours choose (the correlation of
the cloud's colours with the model's, a model's spin about its symmetry axis averaged
out); a distinct orientation the colours do not rule out marks the match
`flip_ambiguous`. Models are assigned to clusters best score first (`_Fit.score`),
each cluster once; the caller checks each kept hypothesis against the depth.

The result depends only on the cloud, the models and `seed`: RANSAC is seeded, and
each of its poses only picks where ICP starts among a fixed set of turns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeller.core.progress import ProgressFn, check_progress
from labeller.formats.models import ObjectModel
from labeller.init_poses.symmetry import Symmetry, class_symmetry, pairwise_distance_deg

log = logging.getLogger(__name__)

MODEL_POINTS = 4000
PLANE_DIST_FACTOR = 2.0  # plane inlier distance, in voxels
# A plane with at least this share of the cloud is background (no object is that big).
MIN_PLANE_FRACTION = 0.05
MAX_PLANES = 6
# A plane is background only when its points span more than this many times the
# largest model's diameter (the largest plane left is otherwise some object's face).
BACKGROUND_PLANE_FACTOR = 1.5
CLUSTER_EPS_FACTOR = 2.5  # DBSCAN radius, in voxels
CLUSTER_MIN_POINTS = 15
# DBSCAN core points need this many neighbours within its radius. The fused cloud is a
# surface sampled about once per voxel, so a disc of CLUSTER_EPS_FACTOR voxels holds
# ~pi * 2.5^2 = 20 points at best and far fewer along edges and thin parts: a higher
# count leaves most points of an object non-core and splits it into fragments.
DBSCAN_MIN_NEIGHBOURS = 5
# A cluster is a candidate for a model when its largest extent is between these
# fractions of the model's diameter (objects touching each other make larger clusters;
# a half-seen object makes smaller ones).
CLUSTER_MIN_FRACTION, CLUSTER_MAX_FRACTION = 0.3, 1.6
RANSAC_TRIES = 2
# A kept match explaining less of its cluster than this is tried in every axis turn.
SETTLED_CLUSTER_FITNESS = 0.9
# Fits within this many degrees (modulo the symmetry) are one orientation.
SAME_TURN_DEG = 30.0
RANSAC_ITERS = 10000
# A match must explain at least this share of its cluster's points (a small model fitted
# onto one face of a larger object explains little of it).
MIN_CLUSTER_FITNESS = 0.5
# Fits whose shape score (fitness_model * fitness_cluster) reaches this share of the
# best one's tie on shape; among them the colour correlation picks the orientation.
FLIP_FITNESS_SHARE = 0.9
# A rival orientation whose colour correlation comes within this of the best one's
# leaves the orientation to the person (nothing tells the two apart).
COLOUR_MARGIN = 0.2
# The colour correlation's share of a match's score (the rest is its shape), and the
# power of the cluster's fitness in it (see `_Fit.score`).
COLOUR_WEIGHT = 0.5
CLUSTER_FITNESS_POWER = 3
MIN_COLOUR_POINTS = 20
# Clusters up to this many points whose RANSAC poses fit nothing are also tried from
# their centre in fixed orientations (cheap on so few points).
SMALL_CLUSTER_POINTS = 400
FEATURE_RADIUS_FACTOR = 5.0  # FPFH radius in voxels
ICP_REACH_VOXELS = (6.0, 3.0, 1.5)  # ICP correspondence distances, in voxels, in turn
NORMAL_RADIUS_FACTOR = 2.0


@dataclass
class Hypothesis:
    """A registered model: T_world_obj (4, 4), its match score (`_Fit.score`), the ICP
    fitness values and the colour correlation (-1..1, NaN without colours) it is made
    of, the cluster it was fitted to, and whether its orientation is left open."""

    T_world_obj: np.ndarray
    score: float
    fitness_model: float
    fitness_cluster: float
    colour: float
    cluster: int
    flip_ambiguous: bool = False


def _pcd(points: np.ndarray, voxel_m: float, colors: np.ndarray | None = None):
    import open3d as o3d

    p = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    if colors is not None:
        p.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64))
    p = p.voxel_down_sample(voxel_m)
    p.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=NORMAL_RADIUS_FACTOR * voxel_m * 2,
                                                            max_nn=30))
    return p


def _fpfh(pcd, voxel_m: float):
    import open3d as o3d

    # The stubs make `indices` required; Open3D 0.20 defaults it to every point.
    return o3d.pipelines.registration.compute_fpfh_feature(  # type: ignore[call-arg]
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=FEATURE_RADIUS_FACTOR * voxel_m, max_nn=100))


def object_clusters(cloud_points: np.ndarray, voxel_m: float,
                    placed_points: Sequence[np.ndarray] = (),
                    cloud_colors: np.ndarray | None = None,
                    max_object_m: float | None = None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Point clusters ((n, 3) world points, (n, 3) RGB in [0, 1] or None) left once the
    large planes are removed.

    placed_points: world points of objects already placed; the cloud near them is removed.
    max_object_m: the largest object looked for (metres); a plane whose points span no
    more than BACKGROUND_PLANE_FACTOR times that may be an object's face (in a small
    cloud a box's side holds 5 % of it) and ends the plane removal.
    """
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(cloud_points, np.float64)))
    if cloud_colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.asarray(cloud_colors, np.float64))
    pcd = pcd.voxel_down_sample(voxel_m)
    pts = np.asarray(pcd.points)
    if len(pts) < 3 * CLUSTER_MIN_POINTS:
        return []
    o3d.utility.random.seed(0)  # segment_plane samples at random: same cloud, same planes
    # Remove the large planes (table, floor, walls) one by one, largest first.
    n_all = len(pts)
    for _ in range(MAX_PLANES):
        if len(pcd.points) < 3 * CLUSTER_MIN_POINTS:
            return []
        _, inl = pcd.segment_plane(PLANE_DIST_FACTOR * voxel_m, 3, 1000)
        if len(inl) < MIN_PLANE_FRACTION * n_all:
            break
        if max_object_m is not None:
            span = np.asarray(pcd.points)[inl]
            if np.linalg.norm(span.max(0) - span.min(0)) <= BACKGROUND_PLANE_FACTOR * max_object_m:
                break
        pcd = pcd.select_by_index(inl, invert=True)
    pts = np.asarray(pcd.points)
    keep = np.ones(len(pts), bool)
    if placed_points:
        tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(
            o3d.utility.Vector3dVector(np.concatenate(list(placed_points)))))
        for i in np.nonzero(keep)[0]:
            k, _, d2 = tree.search_knn_vector_3d(pts[i], 1)
            if k and d2[0] < (2 * voxel_m) ** 2:
                keep[i] = False
    rest = pcd.select_by_index(np.nonzero(keep)[0].tolist())
    # Sensor speckle between objects would bridge them into one cluster.
    rest, _ = rest.remove_statistical_outlier(20, 2.0)
    if len(rest.points) < CLUSTER_MIN_POINTS:
        return []
    labels = np.asarray(rest.cluster_dbscan(CLUSTER_EPS_FACTOR * voxel_m, DBSCAN_MIN_NEIGHBOURS))
    rp = np.asarray(rest.points)
    rc = np.asarray(rest.colors) if rest.has_colors() else None
    return [(rp[labels == k], None if rc is None else rc[labels == k])
            for k in range(labels.max() + 1) if (labels == k).sum() >= CLUSTER_MIN_POINTS]


def reference_colours(model_pcd, sym: Symmetry, bin_m: float) -> np.ndarray | None:
    """(N, 3) colours of the model's points to compare the cloud's with, or None.

    A model free to turn about an axis (a can, a bottle, the marker) is placed by its
    shape with that turn left to chance, but its label is not symmetric: the turn would
    decide the comparison. Its points get instead the mean colour of all its points at
    their height along the axis (bins of bin_m): the colour profile from one end to
    the other, which does tell the ends apart and is the same for every turn."""
    if not model_pcd.has_colors():
        return None
    col = np.asarray(model_pcd.colors)
    if sym.axis_obj is None:
        return col
    h = np.asarray(model_pcd.points) @ sym.axis_obj
    k = np.floor((h - h.min()) / bin_m).astype(np.int64)
    sums = np.zeros((k.max() + 1, 3))
    np.add.at(sums, k, col)
    counts = np.bincount(k, minlength=len(sums))[:, None]
    return (sums / np.maximum(counts, 1))[k]


def colour_correlation(model_colours: np.ndarray | None, cluster_pcd, pairs: np.ndarray) -> float | None:
    """How well the posed model's colour pattern matches the cluster's: the Pearson
    correlation, averaged over R, G, B, between the colours of the paired points.

    model_colours: (N, 3) per model point (`reference_colours`), or None.
    pairs: (K, 2) int, cluster point index and model point index of each correspondence
    (Open3D's `correspondence_set` of cluster onto model). A correlation, not a colour
    distance: the cloud's colours are the sensor's (lit, shaded, blurred by the fusion),
    the model's are its albedo; a gain and an offset between them cost nothing, while a
    label or stripe in the wrong place does. None when either has no colours or fewer
    than MIN_COLOUR_POINTS pairs; 0 for a channel of one flat colour."""
    if model_colours is None or not cluster_pcd.has_colors() or len(pairs) < MIN_COLOUR_POINTS:
        return None
    a = np.asarray(cluster_pcd.colors)[pairs[:, 0]]
    b = model_colours[pairs[:, 1]]
    corr = []
    for ch in range(3):
        sa, sb = a[:, ch].std(), b[:, ch].std()
        corr.append(0.0 if sa < 1e-6 or sb < 1e-6 else
                    float(np.mean((a[:, ch] - a[:, ch].mean()) * (b[:, ch] - b[:, ch].mean())) / (sa * sb)))
    return float(np.mean(corr))


@dataclass
class _Fit:
    """One refined pose of a model on a cluster (T: model to world, (4, 4))."""

    T: np.ndarray
    fitness_model: float
    fitness_cluster: float
    colour: float | None

    @property
    def shape(self) -> float:
        return self.fitness_model * self.fitness_cluster

    @property
    def score(self) -> float:
        """The match score that assigns models to clusters: fitness_model *
        fitness_cluster^CLUSTER_FITNESS_POWER * (1 - COLOUR_WEIGHT + COLOUR_WEIGHT * colour).

        A cluster is one object (or one object and what touches it), so points of it the
        model leaves unexplained speak strongly against the model (a tin fitted into a
        larger can's cluster explains two thirds of it); the share of the model near the
        cluster speaks weakly, since nobody saw its far side. Colour ranks fits of the same
        shape quality; it never vetoes one alone (the vertex colours of a model are
        coarse, the sensor's are lit and blurred)."""
        c = 0.0 if self.colour is None else max(self.colour, 0.0)
        return (self.fitness_model * self.fitness_cluster ** CLUSTER_FITNESS_POWER
                * (1 - COLOUR_WEIGHT + COLOUR_WEIGHT * c))


def _turns(model: ObjectModel, half_only: bool) -> list[np.ndarray]:
    """Model-frame moves (4, 4) about the centre of the model's box (where a symmetric
    shape is symmetric): identity first, then the three half turns about its axes
    (`half_only`) or the other 23 rotations that map its axes onto each other."""
    c = (model.vertices.max(0) + model.vertices.min(0)) / 2
    rots = _axis_rotations()
    if half_only:
        rots = [R for R in rots if np.allclose(R, np.diag(np.diag(R)))]  # identity, half turns
    out = []
    for R in rots:
        F = np.eye(4)
        F[:3, :3] = R
        F[:3, 3] = c - R @ c
        out.append(F)
    return out


def _refine(model_pcd, cluster_pcd, T: np.ndarray, voxel_m: float, model_colours: np.ndarray | None) -> _Fit:
    import open3d as o3d

    reg = o3d.pipelines.registration
    dist = 1.5 * voxel_m

    def icp(estimation) -> tuple[np.ndarray, float, float, np.ndarray]:
        # The cluster onto the model, not the other way: every cluster point has its
        # match on the model, while the model's far side has none in the cluster and
        # would drag a model-to-cluster ICP towards the camera.
        # A wide first pass: RANSAC may leave a box a face's width along its length,
        # where the sides slide freely and the ends are out of a tight reach.
        T_inv = np.linalg.inv(T)
        for thr in ICP_REACH_VOXELS:
            thr = thr * voxel_m
            T_inv = np.asarray(reg.registration_icp(cluster_pcd, model_pcd, thr, T_inv, estimation,
                                                    reg.ICPConvergenceCriteria(max_iteration=40)).transformation)
        T_ = np.linalg.inv(T_inv)
        back = reg.evaluate_registration(cluster_pcd, model_pcd, dist, T_inv)
        return (T_, reg.evaluate_registration(model_pcd, cluster_pcd, dist, T_).fitness,
                back.fitness, np.asarray(back.correspondence_set))

    T, f_model, f_cluster, pairs = icp(reg.TransformationEstimationPointToPlane())
    if f_cluster < MIN_CLUSTER_FITNESS:
        # Point-to-plane leaves a slide along a flat patch unconstrained (the lid of a
        # tin, one face of a box) and on a small cluster runs off; point-to-point holds.
        T2, fm2, fc2, pairs2 = icp(reg.TransformationEstimationPointToPoint())
        if fc2 * fm2 > f_cluster * f_model:
            T, f_model, f_cluster, pairs = T2, fm2, fc2, pairs2
    return _Fit(T, f_model, f_cluster, colour_correlation(model_colours, cluster_pcd, pairs.reshape(-1, 2)))


def _greedy_assignment(score: np.ndarray) -> list[tuple[int, int]]:
    """(model, cluster) pairs taken best score first, each model and cluster once."""
    s = np.array(score, np.float64)
    out = []
    while s.size and s.max() > 0:
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        out.append((int(i), int(j)))
        s[i, :] = 0
        s[:, j] = 0
    return out


def _axis_rotations() -> list[np.ndarray]:
    """The 24 rotations (3, 3) that map the coordinate axes onto themselves."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                out.append(R)
    return out


def _rotation_deg(Ra: np.ndarray, Rb: np.ndarray, sym: Symmetry) -> float:
    return float(pairwise_distance_deg(Ra[None], Rb[None], sym)[0, 0])


def _register_one(model_pcd, model_feat, cluster_pcd, cluster_feat, model: ObjectModel, sym: Symmetry,
                  voxel_m: float, seed: int) -> list[_Fit]:
    """The refined fits of the model on the cluster (`_choose` picks among them).

    Coarse poses: RANSAC on FPFH correspondences (RANSAC_TRIES seeds, seed + k). Each is
    tried as it is and turned half a turn about each model axis, all refined by ICP: a
    box, a can and a bottle fit their shape nearly as well either way round, RANSAC lands
    on either at random, and only the colours tell them apart."""
    import open3d as o3d

    reg = o3d.pipelines.registration
    dist = 1.5 * voxel_m
    model_colours = reference_colours(model_pcd, sym, voxel_m)
    fits: list[_Fit] = []
    coarse = []
    for k in range(RANSAC_TRIES):
        o3d.utility.random.seed(seed + k)
        r = reg.registration_ransac_based_on_feature_matching(
            model_pcd, cluster_pcd, model_feat, cluster_feat, True, dist,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
            reg.RANSACConvergenceCriteria(RANSAC_ITERS, 0.999))
        coarse.append(np.asarray(r.transformation))
    for T0 in coarse:
        fits += [_refine(model_pcd, cluster_pcd, T0 @ F, voxel_m, model_colours) for F in _turns(model, True)]
    if (max(f.fitness_cluster for f in fits) < MIN_CLUSTER_FITNESS
            and len(cluster_pcd.points) <= SMALL_CLUSTER_POINTS):
        # Too few points for distinctive FPFH features (a marker, a flat tin seen from
        # the side): start from the cluster's centre in each of the 24 axis-aligned
        # orientations instead and let ICP settle each.
        # The first ICP is point-to-point with a wide reach: the cluster is the side the
        # camera saw, its centre lies off the model's, and point-to-plane steps on so
        # few, far pairs run away.
        centre = np.asarray(cluster_pcd.get_center())
        c_obj = (model.vertices.max(0) + model.vertices.min(0)) / 2
        for Rm in _axis_rotations():
            T0 = np.eye(4)
            T0[:3, :3], T0[:3, 3] = Rm, centre - Rm @ c_obj
            for reach in (0.5 * model.diameter_m, 0.25 * model.diameter_m):
                T0 = np.asarray(reg.registration_icp(
                    model_pcd, cluster_pcd, reach, T0, reg.TransformationEstimationPointToPoint(),
                    reg.ICPConvergenceCriteria(max_iteration=30)).transformation)
            fits.append(_refine(model_pcd, cluster_pcd, T0, voxel_m, model_colours))
    return fits


def _settle(fits: list[_Fit], model_pcd, cluster_pcd, model: ObjectModel, sym: Symmetry,
            voxel_m: float) -> tuple[_Fit, bool]:
    """Refine a chosen match further: the best fit turned by each of the 24 rotations
    that map the model's axes onto each other, each refined, chosen among again with
    `fits`. RANSAC on a box's features may confuse two faces (a fit that explains two
    thirds of the cluster); the right pose is then one such turn away. Done only for the
    matches kept that explain less than SETTLED_CLUSTER_FITNESS of their cluster (23
    ICPs each)."""
    best, ambiguous = _choose(fits, model, sym)
    if best.fitness_cluster >= SETTLED_CLUSTER_FITNESS:
        return best, ambiguous
    model_colours = reference_colours(model_pcd, sym, voxel_m)
    more = [_refine(model_pcd, cluster_pcd, best.T @ F, voxel_m, model_colours) for F in _turns(model, False)[1:]]
    return _choose(fits + more, model, sym)


def _choose(fits: list[_Fit], model: ObjectModel, sym: Symmetry) -> tuple[_Fit, bool]:
    """The best of `fits`, and whether a distinct orientation (more than 90 degrees away
    modulo `sym`, at about the same place) fits the shape and the colours about as well."""
    best_shape = max(f.shape for f in fits)
    # Fits that explain the shape about as well as the best one: the colours choose.
    ties = [f for f in fits if f.shape >= FLIP_FITNESS_SHARE * best_shape]
    by_colour = max(ties, key=lambda f: (-1.0 if f.colour is None else f.colour, f.shape))
    # The colours choose the orientation, the shape the pose within it (a colour
    # correlation a little higher says nothing about a few degrees).
    best = max((f for f in ties if _rotation_deg(f.T[:3, :3], by_colour.T[:3, :3], sym) < SAME_TURN_DEG
                and np.linalg.norm(f.T[:3, 3] - by_colour.T[:3, 3]) < 0.25 * model.diameter_m),
               key=lambda f: f.shape)
    rivals = [f for f in ties if _rotation_deg(f.T[:3, :3], best.T[:3, :3], sym) > 90
              and np.linalg.norm(f.T[:3, 3] - best.T[:3, 3]) < 0.5 * model.diameter_m]
    ambiguous = any(best.colour is None or f.colour is None or f.colour > best.colour - COLOUR_MARGIN
                    for f in rivals)
    return best, ambiguous


def _model_pcd(model: ObjectModel, voxel_m: float, seed: int):
    """Points sampled over the model, with its vertex colours where the mesh has them."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(model.path)
    if not mesh.has_vertex_colors() or len(mesh.vertices) != len(model.vertices):
        return _pcd(model.sample_points(MODEL_POINTS, seed=seed), voxel_m)
    o3d.utility.random.seed(seed)
    p = mesh.sample_points_uniformly(number_of_points=MODEL_POINTS)
    return _pcd(np.asarray(p.points), voxel_m, np.asarray(p.colors))


def register_models(cloud_points: np.ndarray, models: Sequence[tuple[str, ObjectModel]], voxel_m: float,
                    placed_points: Sequence[np.ndarray] = (), seed: int = 0,
                    progress: ProgressFn | None = None,
                    cloud_colors: np.ndarray | None = None) -> list[Hypothesis | None]:
    """One hypothesis (or None) per entry of `models` ((class name, model)), each
    cluster used at most once; the same model given twice finds two instances.
    cloud_colors: (N, 3) RGB in [0, 1] of the cloud's points, compared with the models'
    vertex colours where both exist."""
    import open3d as o3d

    # Open3D warns on every RANSAC with few mutual correspondences; that is expected here.
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        return _register_models(cloud_points, models, voxel_m, placed_points, seed, progress, cloud_colors)


def _register_models(cloud_points, models, voxel_m, placed_points, seed, progress, cloud_colors):
    clusters = object_clusters(cloud_points, voxel_m, placed_points, cloud_colors,
                               max((m.diameter_m for _, m in models), default=None))
    out: list[Hypothesis | None] = [None] * len(models)
    if not clusters or not models:
        check_progress(progress, len(models), len(models))
        return out
    cl_pcd = [_pcd(c, voxel_m, col) for c, col in clusters]
    cl_feat = [_fpfh(p, voxel_m) for p in cl_pcd]
    cl_extent = [float(np.linalg.norm(c.max(0) - c.min(0))) for c, _ in clusters]
    score = np.zeros((len(models), len(clusters)))
    found: dict[tuple[str, int], tuple[_Fit, bool]] = {}
    all_fits: dict[tuple[str, int], list[_Fit]] = {}
    cache: dict[str, tuple] = {}
    for i, (name, model) in enumerate(models):
        if name not in cache:
            mp = _model_pcd(model, voxel_m, seed)
            cache[name] = (mp, _fpfh(mp, voxel_m), model.diameter_m)
        mp, mf, diam = cache[name]
        for j in range(len(clusters)):
            if not CLUSTER_MIN_FRACTION * diam <= cl_extent[j] <= CLUSTER_MAX_FRACTION * diam:
                continue
            key = (name, j)
            if key not in found:
                all_fits[key] = _register_one(mp, mf, cl_pcd[j], cl_feat[j], model, class_symmetry(name),
                                              voxel_m, seed)
                found[key] = _choose(all_fits[key], model, class_symmetry(name))
            fit, _ = found[key]
            log.debug("%s vs cluster %d (%d points): fitness %.2f / %.2f, colour %s", name, j,
                      len(clusters[j][0]), fit.fitness_model, fit.fitness_cluster, fit.colour)
            score[i, j] = fit.score if fit.fitness_cluster >= MIN_CLUSTER_FITNESS else 0.0
        check_progress(progress, i + 1, len(models))
    # Best score first, not the best total (Hungarian): a total trades a clear match for
    # two poor ones (a tin takes a can's cluster, the can goes onto a clutter box).
    for i, j in _greedy_assignment(score):
        if score[i, j] <= 0:
            continue
        name, model = models[i]
        fit, ambiguous = _settle(all_fits[(name, j)], cache[name][0], cl_pcd[j], model, class_symmetry(name),
                                 voxel_m)
        out[i] = Hypothesis(np.array(fit.T), float(score[i, j]), fit.fitness_model, fit.fitness_cluster,
                            float("nan") if fit.colour is None else fit.colour, j, ambiguous)
    return out
