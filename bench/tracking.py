"""Tracking accuracy and speed: `labeller track` against ground truth, and against odometry.

For each scene it runs the full tracker (keyframes, loop closures, pose graph, TSDF
fusion) and plain frame-to-frame odometry (the same Hybrid odometry, no keyframes or
graph), each in a fresh subprocess so that peak memory is that run's alone, and prints:
ATE RMSE after rigid alignment (Umeyama, no scale), RPE per frame (translation,
rotation), tracked fraction, frames/s (tracking + pose graph + TSDF + writing, after
imports) and peak memory (ru_maxrss of the subprocess; "base" is the RSS after imports,
before the first frame, so peak - base is what tracking itself holds).

Scenes: synthetic 300-frame scenes of two seeds (seed 0's are the first 300 frames of its
1000-frame scene, hard-linked, so 300 vs 1000 compares the same stream), the 1000-frame
scene (memory must stay flat), and the real 7-Scenes kitchen clip (60 frames, imported
with `labeller import 7scenes`). Synthetic scenes are generated once into --work.

    .venv/bin/python bench/tracking.py                 # everything (~15-25 min on 2 cores)
    .venv/bin/python bench/tracking.py --quick         # 7-Scenes + one 300-frame scene
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("LABELLER_SHARED_DATA", ROOT.parent / "shared" / "data"))
SEVEN = SHARED / "rgbd" / "sevenscenes_kitchen"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
import open3d  # noqa: F401  (imports before measuring)
from labeller.track import TrackConfig, run
from labeller.formats.trajectory import Trajectory
from labeller.evaluate.trajectory import ate, rpe, tracked_fraction, longest_gap

scene, mode = Path(sys.argv[1]), sys.argv[2]
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ru0 = resource.getrusage(resource.RUSAGE_SELF)
res = run(TrackConfig(scene, mode=mode, force=True, resume=False, progress_bar=False))
ru1 = resource.getrusage(resource.RUSAGE_SELF)
peak_kb = ru1.ru_maxrss
cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
gt = Trajectory.read(scene / "gt" / "trajectory.txt")
a = ate(res.trajectory, gt) if len(res.trajectory) else None
r = rpe(res.trajectory, gt)
print("RESULT " + json.dumps({
    "n": res.n_frames, "tracked": tracked_fraction(res.trajectory, res.n_frames),
    "gap": longest_gap(res.trajectory, res.n_frames),
    "ate_mm": a.rmse_m * 1000 if a else None, "ate_max_mm": a.max_m * 1000 if a else None,
    "rpe_mm": r.trans_rmse_m * 1000, "rpe_deg": r.rot_rmse_deg,
    "fps": res.frames_per_second, "track_s": res.tracking_seconds, "total_s": res.seconds,
    "peak_mb": peak_kb / 1024, "base_mb": base_kb / 1024, "kf": res.n_keyframes,
    "loops": res.loop_closures, "fitness": res.mean_fitness,
    "cpu_ms": 1000 * cpu_s / res.n_frames}))
"""


def ensure_synth(work: Path, seed: int, frames: int) -> Path:
    from labeller.synth import SynthConfig, run

    out = work / f"synth_s{seed}_{frames}"
    if not (out / "gt" / "trajectory.txt").is_file():
        print(f"# generating {out.name} ({frames} frames, 640x480) ...", flush=True)
        t0 = time.perf_counter()
        run(SynthConfig(out, frames=frames, seed=seed, overwrite=True))
        print(f"#   {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def prefix_scene(src: Path, dest: Path, n: int) -> Path:
    """The first n frames of `src` as a scene (hard links), with its ground truth cut to n."""
    from labeller.formats.trajectory import Trajectory

    if (dest / "gt" / "trajectory.txt").is_file():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("rgb", "depth"):
        (tmp / sub).mkdir(parents=True)
        for f in sorted((src / sub).iterdir())[:n]:
            os.link(f, tmp / sub / f.name)
    shutil.copy(src / "camera.json", tmp / "camera.json")
    (tmp / "gt").mkdir()
    gt = Trajectory.read(src / "gt" / "trajectory.txt")
    Trajectory({t: T for t, T in gt.poses.items() if t < n}).write(tmp / "gt" / "trajectory.txt")
    os.replace(tmp, dest)
    return dest


def ensure_kitchen(work: Path) -> Path | None:
    if not SEVEN.is_dir():
        print(f"# 7-Scenes clip not found at {SEVEN}: skipped")
        return None
    out = work / "kitchen"
    if not (out / "gt" / "trajectory.txt").is_file():
        subprocess.run([sys.executable, "-m", "labeller.cli.main", "import", "7scenes", str(SEVEN),
                        str(out), "--overwrite"], check=True, cwd=ROOT)
    return out


def run_child(scene: Path, mode: str) -> dict:
    load0 = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", CHILD, str(scene), mode], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tracking {scene} ({mode}) failed:\n{p.stderr[-2000:]}")
    line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out["load"] = (load0 + os.getloadavg()[0]) / 2
    return out


def fmt(name: str, mode: str, r: dict) -> str:
    ate = "    n/a" if r["ate_mm"] is None else f"{r['ate_mm']:7.2f}"
    return (f"{name:<18} {mode:<9} {r['n']:>5} {r['tracked'] * 100:6.1f}% {r['gap']:>4} {ate} "
            f"{r['rpe_mm']:7.3f} {r['rpe_deg']:7.4f} {r['fps']:6.2f} {r['peak_mb']:7.0f} "
            f"{r['base_mb']:6.0f} {r['kf']:>4} {r['cpu_ms']:6.0f} {r['load']:5.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "datasets" / "out" / "bench_tracking",
                    help="where generated scenes are kept between runs")
    ap.add_argument("--quick", action="store_true", help="7-Scenes and one 300-frame scene only")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    scenes: list[tuple[str, Path]] = []
    kitchen = ensure_kitchen(args.work)
    if kitchen is not None:
        scenes.append(("7scenes kitchen", kitchen))
    long0 = None if args.quick else ensure_synth(args.work, 0, 1000)
    if long0 is not None:
        scenes.append(("synth seed0", prefix_scene(long0, args.work / "synth_s0_300", 300)))
    scenes.append(("synth seed1", ensure_synth(args.work, 1, 300)))
    if long0 is not None:
        scenes.append(("synth seed0 long", long0))

    print(f"# {os.cpu_count()} CPUs; load average (1 min) at start {os.getloadavg()[0]:.1f} "
          "(other work on the machine slows frames/s)")
    print(f"{'scene':<18} {'method':<9} {'frames':>5} {'tracked':>7} {'gap':>4} {'ATE mm':>7} "
          f"{'RPE mm':>7} {'RPE deg':>7} {'fps':>6} {'peakMB':>7} {'baseMB':>6} {'kf':>4} "
          f"{'cpu ms':>6} {'load':>5}")
    results: dict[tuple[str, str], dict] = {}
    for name, scene in scenes:
        for mode in ("full", "odometry"):
            if name.endswith("long") and mode == "odometry":
                continue  # the long run is about memory; odometry adds nothing there
            r = run_child(scene, mode)
            results[(name, mode)] = r
            print(fmt(name, "graph" if mode == "full" else "odometry", r), flush=True)
    print()
    for name, _ in scenes:
        f, o = results.get((name, "full")), results.get((name, "odometry"))
        if f and o and f["ate_mm"] and o["ate_mm"]:
            print(f"{name}: pose graph ATE / odometry ATE = {f['ate_mm'] / o['ate_mm']:.2f}; "
                  f"frames/s ratio {f['fps'] / o['fps']:.2f}")
    s, lg = results.get(("synth seed0", "full")), results.get(("synth seed0 long", "full"))
    if s and lg:
        print(f"memory: 1000 frames peak {lg['peak_mb']:.0f} MB vs 300 frames "
              f"{s['peak_mb']:.0f} MB "
              f"(ratio {lg['peak_mb'] / s['peak_mb']:.2f}; above imports: "
              f"{lg['peak_mb'] - lg['base_mb']:.0f} vs {s['peak_mb'] - s['base_mb']:.0f} MB)")
    print(f"# load average (1 min) at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
