"""Where a trajectory's error comes from: scale, stretches, and what other trackers make of
the same frames.

For a tracked scene with `gt/trajectory.txt` it prints, for `labeller track`'s
`trajectory.txt` and for the peers run here on the same frames:

- ATE RMSE after a rigid alignment and after a similarity alignment (Umeyama with scale),
  with that scale: a scale far from 1 is a calibration disagreement (depth scale, focal
  length, colour/depth registration) between the tracker and the ground truth, not drift;
- ATE RMSE of each stretch of `--stretch` frames aligned on its own: a stretch much worse
  than the others is a local failure (glossy surfaces, no depth, blur), not slow drift;
- the per-frame RPE (the project's `rpe`) against the ground truth's median step.

Peers (each optional, `--peers`):
- `f2f-hybrid`, `f2f-depth`: Open3D tensor RGB-D odometry frame to frame (Hybrid, and
  PointToPlane: depth only);
- `f2m-depth`: Open3D's dense SLAM model (`t.pipelines.slam.Model`), frame to model by
  point-to-plane ICP against the ray-cast TSDF, depth only: a KinectFusion-style tracker,
  like the one that made 7-Scenes' ground truth.

    .venv/bin/python bench/tracking_diagnosis.py SCENE                      # labeller's only
    .venv/bin/python bench/tracking_diagnosis.py SCENE --peers f2f-hybrid,f2f-depth,f2m-depth

SCENE is e.g. the 400-frame kitchen clip as `bench/tracking.py` imports and tracks it
(`datasets/out/bench_tracking/kitchen400`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeller.core.camera import CameraIntrinsics  # noqa: E402
from labeller.core.poses import inv_pose  # noqa: E402
from labeller.evaluate.trajectory import ate, rpe, umeyama_alignment  # noqa: E402
from labeller.formats.trajectory import Trajectory  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rmse_after(X: np.ndarray, Y: np.ndarray, with_scale: bool) -> tuple[float, float]:
    """(RMSE of positions X after the best rigid or similarity alignment onto Y (N, 3),
    the scale it used)."""
    R, t, s = umeyama_alignment(X, Y, with_scale)
    e = np.linalg.norm((s * (R @ X.T)).T + t - Y, axis=1)
    return float(np.sqrt((e ** 2).mean())), s


def describe(name: str, est: Trajectory, gt: Trajectory, stretch: int) -> None:
    ids = sorted(set(est.frame_ids) & set(gt.frame_ids))
    X = np.array([est[t][:3, 3] for t in ids])
    Y = np.array([gt[t][:3, 3] for t in ids])
    rigid, _ = rmse_after(X, Y, False)
    sim, scale = rmse_after(X, Y, True)
    assert abs(rigid - ate(est, gt).rmse_m) < 1e-6  # the project's own ATE agrees
    parts = []
    for a in range(0, max(ids) + 1, stretch):
        m = np.array([a <= t < a + stretch for t in ids])
        if m.sum() >= 3:
            parts.append(f"{a}-{a + stretch - 1}: {rmse_after(X[m], Y[m], False)[0] * 1e3:.1f}")
    r = rpe(est, gt)
    steps = [np.linalg.norm((inv_pose(gt[a]) @ gt[a + 1])[:3, 3]) for a in ids if a + 1 in gt]
    print(f"{name:12s} frames {len(ids):4d}  ATE rigid {rigid * 1e3:6.1f} mm  with scale "
          f"{sim * 1e3:6.1f} mm (scale {scale:.4f})  RPE per frame {r.trans_rmse_m * 1e3:.1f} mm "
          f"RMSE, {r.trans_mean_m * 1e3:.1f} mean (ground-truth step median "
          f"{np.median(steps) * 1e3:.1f} mm)")
    print(f"{'':12s} ATE per stretch of {stretch} frames, mm: " + "; ".join(parts))


def frames(scene: Path) -> tuple[CameraIntrinsics, list[Path], list[Path]]:
    cam = CameraIntrinsics.read(scene / "camera.json")
    return cam, sorted((scene / "rgb").iterdir()), sorted((scene / "depth").iterdir())


def intrinsic_tensor(cam: CameraIntrinsics):
    import open3d.core as o3c

    return o3c.Tensor([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], o3c.float64)


def frame_to_frame(scene: Path, method_name: str, depth_max_m: float) -> Trajectory:
    """Open3D tensor RGB-D odometry, each frame against the previous one."""
    import open3d as o3d
    import open3d.core as o3c

    cam, rgbs, deps = frames(scene)
    K = intrinsic_tensor(cam)
    odo = o3d.t.pipelines.odometry
    method = getattr(odo.Method, method_name)
    crit = [odo.OdometryConvergenceCriteria(k) for k in (10, 5, 3)]

    def load(i: int):
        return o3d.t.geometry.RGBDImage(o3d.t.io.read_image(str(rgbs[i])),
                                        o3d.t.io.read_image(str(deps[i])))

    T = np.eye(4)
    poses = {0: T.copy()}
    prev = load(0)
    for i in range(1, len(deps)):
        cur = load(i)
        try:
            r = odo.rgbd_odometry_multi_scale(cur, prev, K, o3c.Tensor(np.eye(4)),
                                              cam.depth_scale, depth_max_m, crit, method)
            T = T @ r.transformation.numpy()
        except RuntimeError:
            pass  # keep the previous pose: a failed step is a zero step
        poses[i] = T.copy()
        prev = cur
    return Trajectory(poses)


def frame_to_model(scene: Path, voxel_m: float, depth_max_m: float) -> Trajectory:
    """Open3D's dense SLAM model: point-to-plane ICP of each frame against the TSDF ray
    cast from the previous pose, then integration (KinectFusion-style, depth only)."""
    import open3d as o3d
    import open3d.core as o3c

    cam, rgbs, deps = frames(scene)
    K = intrinsic_tensor(cam)
    slam = o3d.t.pipelines.slam
    dev = o3c.Device("CPU:0")
    T = o3c.Tensor(np.eye(4))
    model = slam.Model(voxel_m, 16, 40000, T, dev)
    inp = slam.Frame(cam.height, cam.width, K, dev)
    ray = slam.Frame(cam.height, cam.width, K, dev)
    crit = [o3d.t.pipelines.odometry.OdometryConvergenceCriteria(k) for k in (6, 3, 3)]
    poses = {}
    for i in range(len(deps)):
        inp.set_data_from_image("depth", o3d.t.io.read_image(str(deps[i])))
        inp.set_data_from_image("color", o3d.t.io.read_image(str(rgbs[i])))
        if i > 0:
            try:
                res = model.track_frame_to_model(inp, ray, cam.depth_scale, depth_max_m, 0.07,
                                                 o3d.t.pipelines.odometry.Method.PointToPlane,
                                                 crit)
                T = T @ res.transformation
            except RuntimeError:
                pass
        poses[i] = T.numpy().copy()
        model.update_frame_pose(i, T)
        model.integrate(inp, cam.depth_scale, depth_max_m, 8.0)
        model.synthesize_model_frame(ray, cam.depth_scale, 0.1, depth_max_m, 8.0, False)
    return Trajectory(poses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("--peers", default="", help="comma list: f2f-hybrid, f2f-depth, f2m-depth")
    ap.add_argument("--stretch", type=int, default=100, help="frames per stretch")
    ap.add_argument("--voxel", type=float, default=3.0 / 512, help="f2m-depth TSDF voxel, m")
    ap.add_argument("--depth-max", type=float, default=3.0)
    args = ap.parse_args()
    gt = Trajectory.read(args.scene / "gt" / "trajectory.txt")
    print(f"scene {args.scene} (load {loadavg()})")
    describe("labeller", Trajectory.read(args.scene / "trajectory.txt"), gt, args.stretch)
    for peer in [p for p in args.peers.split(",") if p]:
        t0 = time.perf_counter()
        if peer == "f2f-hybrid":
            est = frame_to_frame(args.scene, "Hybrid", args.depth_max)
        elif peer == "f2f-depth":
            est = frame_to_frame(args.scene, "PointToPlane", args.depth_max)
        elif peer == "f2m-depth":
            est = frame_to_model(args.scene, args.voxel, args.depth_max)
        else:
            raise SystemExit(f"unknown peer {peer!r}")
        dt = time.perf_counter() - t0
        describe(peer, est, gt, args.stretch)
        print(f"{'':12s} {len(est) / dt:.1f} frames/s (load {loadavg()})")


if __name__ == "__main__":
    main()
