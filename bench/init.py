"""Benchmark `labeller init`: fused-estimate accuracy, registration-only accuracy, time.

    .venv/bin/python bench/init.py [--frames 300] [--seeds 0 1] [--skip-register]

For each seed, a synthetic scene (640x480, the ten PROPS classes, `--frames` frames;
generated once under /tmp/labeller_bench_init/, then reused) gets simulated estimator
output written as a BOP results CSV: the true T_cam_obj of every object in view,
perturbed by 1-3 cm and 5-15 degrees per frame, 20 % outliers (8-40 cm off, any
rotation), 10 % missed detections (labeller.init_poses.simulate). Then, against the
ground truth (rotations modulo the class's symmetry):

1. `init --estimates` on the true trajectory: per object the fused error (mm, degrees,
   ADD-S mm) beside the peer, the plain mean of all its estimates (no RANSAC, no
   weights); the error ratio peer / fused is printed. Targets: within 5 mm / 2 degrees
   for >= 90 % of the objects; the whole init under 30 s for 300 frames.
2. `labeller track` (the scene's own cloud), then `init --register` for every class:
   per object the registration-only error or the miss and its reason. Target: within
   1 cm / 5 degrees for >= 70 %, and no suggestion wrong by more with a passing score.
3. The real PoseCNN frames (../shared/data/rgbd/posecnn_ycb): each frame is its own
   one-frame scene (no two share a camera), its .mat imported and "fused" (one estimate
   per object), compared with the poses of posecnn_results_named.json.

The machine is shared: the load average is printed beside each timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/labeller_bench_init")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def loadavg() -> str:
    return "load " + " ".join(open("/proc/loadavg").read().split()[:3])


def errors(T_est: np.ndarray, T_gt: np.ndarray, class_name: str) -> tuple[float, float]:
    from labeller.init_poses.symmetry import class_symmetry, pairwise_distance_deg

    mm = 1000 * float(np.linalg.norm(T_est[:3, 3] - T_gt[:3, 3]))
    deg = float(pairwise_distance_deg(T_est[None, :3, :3], T_gt[None, :3, :3], class_symmetry(class_name))[0, 0])
    return mm, deg


def make_scene(seed: int, frames: int) -> Path:
    from labeller.core.classes import PROPS_CLASS_NAMES
    from labeller.synth import SynthConfig, run

    path = ROOT / f"seed{seed}_{frames}"
    if not (path / "gt" / "annotations.json").is_file():
        t = time.perf_counter()
        print(f"generating {path} (once) ...", flush=True)
        run(SynthConfig(out=path, frames=frames, seed=seed, classes=list(PROPS_CLASS_NAMES),
                        with_annotations=True, overwrite=True))
        print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def fresh_copy(src: Path, dst: Path) -> Path:
    """rgb/depth hard-linked, the rest copied: a scene init may write into."""
    shutil.rmtree(dst, ignore_errors=True)
    for d in ("rgb", "depth"):
        (dst / d).mkdir(parents=True)
        for f in (src / d).iterdir():
            os.link(f, dst / d / f.name)
    for d in ("models", "gt"):
        shutil.copytree(src / d, dst / d)
    for f in ("camera.json",):
        shutil.copyfile(src / f, dst / f)
    shutil.copyfile(src / "gt" / "trajectory.txt", dst / "trajectory.txt")
    return dst


def bench_fused(scene: Path, seed: int) -> tuple[list[tuple], float, float]:
    from labeller.core.camera import CameraIntrinsics
    from labeller.core.poses import adds_error
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.bop_results import write_bop_results
    from labeller.formats.models import load_model
    from labeller.formats.trajectory import Trajectory
    from labeller.init_poses import InitConfig, run
    from labeller.init_poses.simulate import simulate_estimates
    from labeller.init_poses.symmetry import class_symmetry, mean_rotation

    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    traj = Trajectory.read(scene / "gt" / "trajectory.txt")
    est = simulate_estimates(gt, traj, CameraIntrinsics.read(scene / "camera.json"), seed=100 + seed)
    write_bop_results(scene / "estimates.csv", est)
    c0, t0 = time.process_time(), time.perf_counter()
    summary = run(InitConfig(scene=scene, estimates=scene / "estimates.csv"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(summary.format())
    print(f"init --estimates: {len(est)} estimates, {traj.frame_ids[-1] + 1} frames: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU ({loadavg()})")
    doc = AnnotationDocument.read(scene / "annotations.json")
    from labeller.core.classes import BY_NAME

    rows = []
    for g in gt.objects:
        mine = [o for o in doc.objects if o.class_name == g.class_name]
        # the peer: plain mean of every estimate of the class, lifted (no RANSAC, no weights)
        lifted = np.stack([traj[e.frame_id] @ e.T_cam_obj for e in est if e.obj_id == BY_NAME[g.class_name].ycbv_id])
        R_peer = mean_rotation(lifted[0, :3, :3], lifted[:, :3, :3], np.ones(len(lifted)),
                               class_symmetry(g.class_name))
        T_peer = np.eye(4)
        T_peer[:3, :3], T_peer[:3, 3] = R_peer, lifted[:, :3, 3].mean(0)
        pm, pd = errors(T_peer, g.T_world_obj, g.class_name)
        if not mine:
            rows.append((g.class_name, None, None, None, pm, pd))
            continue
        o = min(mine, key=lambda o: errors(o.T_world_obj, g.T_world_obj, g.class_name)[0])
        mm, deg = errors(o.T_world_obj, g.T_world_obj, g.class_name)
        m = load_model(scene / o.model)
        adds = 1000 * adds_error(m.sample_points(2000), o.T_world_obj, g.T_world_obj)
        rows.append((g.class_name, mm, deg, adds, pm, pd))
    return rows, wall, cpu


def bench_register(scene: Path) -> list[tuple]:
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.suggestions import SuggestionFile
    from labeller.init_poses import InitConfig, run
    from labeller.track import TrackConfig
    from labeller.track import run as track_run

    t0 = time.perf_counter()
    tr = track_run(TrackConfig(scene=scene, force=True))
    print(f"track: {tr.summary()} ({time.perf_counter() - t0:.0f} s, {loadavg()})")
    (scene / "annotations.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    summary = run(InitConfig(scene=scene, register=True))
    print(summary.format())
    print(f"init --register: {time.perf_counter() - t0:.1f} s ({loadavg()})")
    gt = AnnotationDocument.read(scene / "gt" / "annotations.json")
    sf = SuggestionFile.read(scene / "suggestions.json")
    why = dict(sf.not_found)
    rows = []
    for g in gt.objects:
        s = [x for x in sf.suggestions if x.class_name == g.class_name]
        if s:
            rows.append((g.class_name, *errors(s[0].T_world_obj, g.T_world_obj, g.class_name), s[0].depth_score,
                         s[0].note or ""))
        else:
            rows.append((g.class_name, None, None, None, why.get(g.class_name, "?")))
    return rows


def bench_posecnn() -> None:
    from labeller.core.poses import make_pose, quat_wxyz_to_matrix
    from labeller.formats.annotations import AnnotationDocument
    from labeller.init_poses import InitConfig, run
    from tests.helpers import POSECNN, posecnn_frame_scene

    src, ycb = POSECNN, SHARED / "ycb_models"
    if not src.is_dir() or not ycb.is_dir():
        print(f"real PoseCNN frames: {src} or {ycb} not found, skipped")
        return
    named = json.loads((src / "posecnn_results_named.json").read_text())["frames"]
    print("\n== real PoseCNN frames (each its own one-frame scene)")
    print(f"{'frame':<7} {'object':<18} {'mm':>7} {'deg':>7} {'depth':>6}")
    for frame in ("000000", "000001", "000002", "000003"):
        root = ROOT / f"posecnn_{frame}"
        shutil.rmtree(root, ignore_errors=True)
        posecnn_frame_scene(root, frame)
        mat = root / "000000-color.png.mat"
        shutil.copyfile(src / "posecnn_results" / f"{frame}-color.png.mat", mat)
        s = run(InitConfig(scene=root, estimates=mat, models_dir=ycb, min_frames=1))
        doc = AnnotationDocument.read(root / "annotations.json")
        rows = {(r.class_name, r.object_id): r for r in s.rows}
        for o in doc.objects:
            (ref,) = [n for n in named[frame] if n["ycb_name"].endswith("_" + o.class_name)]
            mm, deg = errors(o.T_world_obj, make_pose(quat_wxyz_to_matrix(ref["q_wxyz"]), ref["t_m"]), o.class_name)
            print(f"{frame:<7} {o.class_name:<18} {mm:7.3f} {deg:7.3f} {rows[(o.class_name, o.id)].depth_score:6.2f}")
        if s.skipped:
            print(f"{frame:<7} skipped (no model in the ten PROPS meshes): "
                  + ", ".join(f"{c}" for c in sorted(s.skipped)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--skip-register", action="store_true")
    args = ap.parse_args()
    fused_all, reg_all, walls = [], [], []
    for seed in args.seeds:
        print(f"\n== seed {seed}: {args.frames} frames, 640x480, ten objects")
        scene = fresh_copy(make_scene(seed, args.frames), ROOT / f"work_seed{seed}")
        rows, wall, _ = bench_fused(scene, seed)
        walls.append(wall)
        print(f"{'object':<18} {'fused mm':>8} {'deg':>6} {'ADD-S mm':>8} | {'mean mm':>8} {'deg':>6}  peer/fused")
        for name, mm, deg, adds, pm, pd in rows:
            if mm is None:
                print(f"{name:<18} {'missed':>8} {'':>6} {'':>8} | {pm:8.1f} {pd:6.1f}")
                continue
            print(f"{name:<18} {mm:8.1f} {deg:6.2f} {adds:8.1f} | {pm:8.1f} {pd:6.2f}  "
                  f"{pm / max(mm, 1e-3):.1f}x / {pd / max(deg, 1e-3):.1f}x")
        fused_all += rows
        if not args.skip_register:
            rrows = bench_register(scene)
            print(f"{'object':<18} {'reg mm':>8} {'deg':>7} {'depth':>6}  miss / note")
            for name, mm, deg, score, why in rrows:
                if mm is None:
                    print(f"{name:<18} {'-':>8} {'-':>7} {'-':>6}  {why}")
                else:
                    print(f"{name:<18} {mm:8.1f} {deg:7.2f} {score:6.2f}  {why}")
            reg_all += rrows
    ok = [r for r in fused_all if r[1] is not None and r[1] <= 5 and r[2] <= 2]
    print(f"\nfused within 5 mm / 2 deg: {len(ok)}/{len(fused_all)} = {100 * len(ok) / len(fused_all):.0f} % "
          f"(target >= 90 %); init --estimates {max(walls):.1f} s for {args.frames} frames (target < 30 s; "
          f"{loadavg()})")
    if reg_all:
        rok = [r for r in reg_all if r[1] is not None and r[1] <= 10 and r[2] <= 5]
        wrong = [r for r in reg_all if r[1] is not None and not (r[1] <= 10 and r[2] <= 5)]
        # Only a right position with a turn the note owns up to is not silent: the note
        # ("orientation ambiguous") says nothing about the position.
        flagged = [r for r in wrong if r[1] <= 10 and r[4]]
        missed = [r for r in reg_all if r[1] is None]
        print(f"registration-only within 1 cm / 5 deg: {len(rok)}/{len(reg_all)} = "
              f"{100 * len(rok) / len(reg_all):.0f} % (target >= 70 %); reported missing: {len(missed)}; "
              f"suggested but wrong: {len(wrong)} ({len(flagged)} right place, turn flagged ambiguous; "
              f"{len(wrong) - len(flagged)} silently wrong with a passing score)")
    bench_posecnn()


if __name__ == "__main__":
    main()
