"""Benchmark `labeller propagate`: frames/s and peak memory, 640x480, 6 objects.

    .venv/bin/python bench/propagate.py [--scene DIR] [--icp-frames N] [--skip-icp]

Generates (once, then reused) a 1,000-frame synthetic scene with annotations in
/tmp/labeller_bench_propagate/ and a 300-frame scene hard-linked from its first frames;
then runs each configuration in a fresh subprocess (so peak memory is its own):
refine none / icp x 1 / 2 workers on 1,000 frames, refine none on 300 frames (memory
flat in the frame count?). Also measured in the same run: the naive peer (full-frame
casts of every object alone plus one combined cast, per frame) and reading one frame
of labels back.

frames/s = labelled frames / wall time of `run()` (worker start-up included).
CPU ms/frame = CPU time (user + system, main process and workers) / frames: on a shared,
loaded machine the wall-clock rate shows our share of it, the CPU time what a frame
costs; 2000 / (CPU ms/frame) is then the rate two idle cores could reach (an estimate).
Peak RSS: of the main process, and of the largest worker process.
The machine is shared: the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("/tmp/labeller_bench_propagate")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_scene(path: Path, frames: int) -> None:
    from labeller.synth import SynthConfig, run

    t = time.perf_counter()
    print(f"generating {frames}-frame synthetic scene in {path} (once) ...", flush=True)
    run(SynthConfig(out=path, frames=frames, seed=7, with_annotations=True))
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)


def make_prefix_scene(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` frames of `src`, hard-linked (no copies), with its own trajectory."""
    from labeller.core.fileio import sha256_file
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.trajectory import Trajectory

    if dst.exists():
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("rgb", "depth"):
        (tmp / d).mkdir(parents=True)
        for t in range(frames):
            os.link(src / d / f"{t:06d}.png", tmp / d / f"{t:06d}.png")
    shutil.copyfile(src / "camera.json", tmp / "camera.json")
    shutil.copytree(src / "models", tmp / "models")
    traj = Trajectory.read(src / "trajectory.txt")
    Trajectory({t: traj[t] for t in range(frames)}).write(tmp / "trajectory.txt")
    doc = AnnotationDocument.read(src / "annotations.json")
    doc.trajectory_sha256 = sha256_file(tmp / "trajectory.txt")
    doc.write(tmp / "annotations.json")
    os.replace(tmp, dst)


def child(cfg: dict) -> None:
    """One measured configuration (runs in its own process)."""
    from labeller.propagate import PropagateConfig, run

    scene = Path(cfg["scene"])
    load0 = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = r0.ru_utime + r0.ru_stime  # interpreter start-up and imports so far
    t = time.perf_counter()
    s = run(PropagateConfig(scene=scene, refine=cfg["refine"], workers=cfg["workers"], restart=True,
                            max_overlays=0))
    wall = time.perf_counter() - t
    ru_self = resource.getrusage(resource.RUSAGE_SELF)
    ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me, kids = ru_self.ru_maxrss / 1024, ru_kids.ru_maxrss / 1024
    cpu = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime - cpu0
    out = {"frames": s.computed_frames, "wall_s": wall, "fps": s.computed_frames / wall,
           "rss_main_mb": me, "rss_worker_mb": kids if cfg["workers"] > 1 else None,
           "load": (load0 + os.getloadavg()[0]) / 2,
           "size_mb": (scene / "labels" / "labels.h5").stat().st_size / 1e6,
           "cpu_ms_per_frame": cpu / max(s.computed_frames, 1) * 1000}
    print("RESULT " + json.dumps(out))


def measure(scene: Path, refine: str, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps({"scene": str(scene), "refine": refine,
                                                            "workers": workers})]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed:\n{p.stdout}\n{p.stderr}")


def naive_peer(scene: Path, n: int = 30) -> tuple[float, float, float, float]:
    """Per frame, in this process, interleaved frame by frame so both see the same load:
    (ours wall ms, naive wall ms, ours CPU ms, naive CPU ms). Ours = FrameLabeller.label
    (everything, masks compressed); naive = read the depth, cast the full frame with all
    objects together and once per object alone (what the labels need, without ROIs)."""
    import numpy as np

    from labeller.propagate import FrameLabeller, PropagateConfig, prepare

    prep = prepare(PropagateConfig(scene=scene))
    fl = FrameLabeller(prep.job)
    cam = fl.camera
    rows = range(0, min(n, len(prep.frame_ids)))
    fl.label(0, prep.frame_ids[0], prep.T_world_cam[0])  # warm up
    wall = [0.0, 0.0]
    cpu = [0.0, 0.0]
    for r in rows:
        Twc = prep.T_world_cam[r]
        w0, c0 = time.perf_counter(), time.process_time()
        fl.label(r, prep.frame_ids[r], Twc)
        w1, c1 = time.perf_counter(), time.process_time()
        fl.scene.depth(prep.frame_ids[r])
        fl.renderer.render(cam, Twc)
        for i in fl.ids:
            np.count_nonzero(fl.renderer.render(cam, Twc, only=i).depth)
        w2, c2 = time.perf_counter(), time.process_time()
        wall[0] += w1 - w0
        wall[1] += w2 - w1
        cpu[0] += c1 - c0
        cpu[1] += c2 - c1
    k = 1000 / len(rows)
    return wall[0] * k, wall[1] * k, cpu[0] * k, cpu[1] * k


def read_speed(scene: Path, n: int = 200) -> float:
    import numpy as np

    from labeller.formats.labels import Labels

    t0 = time.perf_counter()
    with Labels.open(scene / "labels" / "labels.h5") as L:
        open_ms = (time.perf_counter() - t0) * 1000
        ids = np.random.default_rng(0).choice(L.frame_ids, size=min(n, len(L.frame_ids)), replace=False)
        t = time.perf_counter()
        for fid in ids:
            L.frame(int(fid))
        per = (time.perf_counter() - t) / len(ids) * 1000
    print(f"read back: Labels.open {open_ms:.0f} ms, then {per:.2f} ms per frame "
          f"(poses, boxes, counts, scores + the visible mask), {len(ids)} random frames")
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path, default=ROOT / "scene1000")
    ap.add_argument("--skip-icp", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    big = args.scene
    if not big.exists():
        make_scene(big, 1000)
    small = big.with_name(big.name + "_first300")
    make_prefix_scene(big, small, 300)
    print(f"machine: {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    ours, naive, ours_cpu, naive_cpu = naive_peer(big)
    print(f"per frame, one process, 30 frames interleaved: ours {ours:.0f} ms ({ours_cpu:.0f} ms CPU); "
          f"naive full-frame casts (combined + each object alone) {naive:.0f} ms ({naive_cpu:.0f} ms CPU) "
          f"-> {naive / ours:.1f}x wall, {naive_cpu / ours_cpu:.1f}x CPU")
    rows = []
    configs = [("none", 1, big), ("none", 2, big), ("none", 2, small)]
    if not args.skip_icp:
        configs += [("icp", 1, big), ("icp", 2, big)]
    for refine, workers, scene in configs:
        r = measure(scene, refine, workers)
        rows.append((refine, workers, r))
        wk = "-" if r["rss_worker_mb"] is None else f"{r['rss_worker_mb']:.0f}"
        print(f"refine {refine:<4} workers {workers} frames {r['frames']:>5}: {r['fps']:6.1f} frames/s "
              f"({r['wall_s']:.0f} s, load avg {r['load']:.1f}); CPU {r['cpu_ms_per_frame']:.0f} ms/frame "
              f"-> {2000 / r['cpu_ms_per_frame']:.1f} frames/s if 2 idle cores were all ours; "
              f"peak RSS main {r['rss_main_mb']:.0f} MB, worker {wk} MB; labels.h5 "
              f"{r['size_mb']:.1f} MB", flush=True)
    read_speed(big)


if __name__ == "__main__":
    main()
