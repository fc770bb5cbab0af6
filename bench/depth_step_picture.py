"""Picture of one step held against the depth: where frame b's depth, moved into frame a
by the step, disagrees with frame a's, for a trajectory's step and for ICP's from it.

    .venv/bin/python bench/depth_step_picture.py SCENE TRAJECTORY FRAME PNG

FRAME is b (the step is FRAME-1 -> FRAME). Uses `labeller.evaluate.depth_agreement`.
docs/images/tracking_gt_step_122.png is the 7-Scenes ground truth's step 121 -> 122:

    .venv/bin/python bench/depth_step_picture.py datasets/out/kitchen400 \
        datasets/out/kitchen400/gt/trajectory.txt 122 docs/images/tracking_gt_step_122.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeller.core.poses import inv_pose  # noqa: E402
from labeller.evaluate import depth_agreement as da  # noqa: E402
from labeller.formats.scene import Scene  # noqa: E402
from labeller.formats.trajectory import Trajectory  # noqa: E402


def disagreement_map(views: da.DepthViews, a: int, b: int, T_a_b: np.ndarray) -> np.ndarray:
    """(h, w) metres |dz| at frame a's pixels hit by frame b's points (NaN where none)."""
    landed = da.landed_points(views, a, b, T_a_b)
    out = np.full(views.depth(a).shape, np.nan)
    out[landed.v, landed.u] = np.abs(landed.z_a - landed.z)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("trajectory", type=Path)
    ap.add_argument("frame", type=int)
    ap.add_argument("png", type=Path)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scene = Scene(args.scene)
    traj = Trajectory.read(args.trajectory)
    b, a = args.frame, args.frame - 1
    views = da.DepthViews(scene)
    T = inv_pose(traj[a]) @ traj[b]
    T_icp = da.icp_step(views, a, b, T)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    for ax, (name, step) in zip(axes, (("its step", T), ("ICP's step from it", T_icp)),
                                strict=True):
        m = disagreement_map(views, a, b, step) * 1000
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=30)
        ag = da.depth_agreement(views, a, b, step)
        ax.set_title(f"{name}: {np.linalg.norm(step[:3, 3]) * 1000:.1f} mm, "
                     f"{ag:.0%} agree", fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label="|depth difference| (mm)")
    fig.suptitle(f"{args.trajectory.parent.name}/{args.trajectory.name}: frame {b}'s depth moved into frame {a}", fontsize=10)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png)
    print(f"wrote {args.png}: step {np.linalg.norm(T[:3, 3]) * 1000:.1f} mm "
          f"({da.depth_agreement(views, a, b, T):.3f} agree), ICP "
          f"{np.linalg.norm(T_icp[:3, 3]) * 1000:.1f} mm "
          f"({da.depth_agreement(views, a, b, T_icp):.3f} agree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
