"""The keyframe pose graph: its edges, their information matrices, and the optimisation.

Nodes are keyframes (pose T_world_kf, 4x4, metres); an edge holds T_target_source, the
source keyframe's camera in the target keyframe's frame, and a 6x6 information matrix.
Chain edges are certain; skip, loop and relocalisation edges are "uncertain", so the
optimiser's line process may drop those that disagree with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeller.core.poses import nearest_rigid
from labeller.geometry.open3d_tensor import tensor
from labeller.track.pyramid import PreparedFrame

INFO_DIST_M = 0.015  # correspondence distance for the pose-graph information matrices
# The line process's weight on uncertain edges. Open3D's reconstruction system uses 0.1 for
# odometry-only loop edges and 5.0 for edges from feature registration; ours are verified
# twice (ORB + PnP-RANSAC, then the dense depth check), and at 0.1 the line process
# dropped every loop that corrects real drift (all 16 long loops of the 400-frame
# 7-Scenes clip, accepted by both checks).
PREFERENCE_LOOP_CLOSURE = 2.0


@dataclass
class GraphEdge:
    """An edge between keyframe nodes `source` and `target` (indices into the keyframes)."""

    source: int  # keyframe node
    target: int
    T_target_source: np.ndarray  # (4, 4): source keyframe camera → target keyframe camera
    information: np.ndarray  # (6, 6)
    uncertain: bool
    kind: str  # "chain" | "skip" | "loop" | "reloc"


def information_matrix(src: PreparedFrame, tgt: PreparedFrame, T_tgt_src: np.ndarray,
                       depth_max_m: float) -> np.ndarray:
    """(6, 6) float64 information of the edge T_tgt_src (identity when degenerate)."""
    import open3d as o3d

    # On the half-resolution level: 4x cheaper, and every edge is weighed the same way.
    s, g = src.levels[-2], tgt.levels[-2]
    info = o3d.t.pipelines.odometry.compute_odometry_information_matrix(
        o3d.t.geometry.Image(s.depth), o3d.t.geometry.Image(g.depth), s.K,
        tensor(T_tgt_src), INFO_DIST_M, 1.0, depth_max_m).numpy()
    info = info.astype(np.float64)
    if not np.all(np.isfinite(info)) or info[5, 5] <= 0:
        info = np.eye(6)
    return info


def optimise_pose_graph(T_world_kf: list[np.ndarray], edges: list[GraphEdge]
                        ) -> tuple[list[np.ndarray], set[tuple[int, int]]]:
    """Optimised keyframe poses (node 0 fixed) and the (source, target) nodes of the
    uncertain edges the line process kept.

    Levenberg-Marquardt `open3d.pipelines.registration.global_optimization`; the inputs
    are not modified.
    """
    import open3d as o3d

    reg = o3d.pipelines.registration
    pg = reg.PoseGraph()
    for T in T_world_kf:
        pg.nodes.append(reg.PoseGraphNode(T.copy()))
    for e in edges:
        pg.edges.append(reg.PoseGraphEdge(e.source, e.target, e.T_target_source.copy(),
                                          e.information.copy(), uncertain=e.uncertain))
    option = reg.GlobalOptimizationOption(
        max_correspondence_distance=INFO_DIST_M, edge_prune_threshold=0.25,
        preference_loop_closure=PREFERENCE_LOOP_CLOSURE, reference_node=0)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        reg.global_optimization(pg, reg.GlobalOptimizationLevenbergMarquardt(),
                                reg.GlobalOptimizationConvergenceCriteria(), option)
    # Node 0 is fixed, so the world stays the first keyframe's camera.
    optimised = [nearest_rigid(np.asarray(nd.pose, dtype=np.float64)) for nd in pg.nodes]
    return optimised, {(int(e.source_node_id), int(e.target_node_id)) for e in pg.edges
                       if e.uncertain}
