"""The full-size PROPS classification set end to end: synthetic scenes -> `labeller batch`
(propagate, then the props export) -> `labeller baseline`, measured.

    .venv/bin/python bench/props_full.py                    # 50,000 / 10,000 crops
    .venv/bin/python bench/props_full.py --scale 0.05 --frames 60 --vs   # a quick run

The published set is 5,000 training and 1,000 test crops per class; `--scale` multiplies
both. Every scene holds all ten PROPS classes (`labeller synth`, ground-truth trajectory
and annotations); the test scenes are other scenes than the training ones (whole scenes
held out, `test-scenes` in the plan). The scene counts come from the quota and an assumed
yield of --yield candidate crops per class and frame; when the export still reports too
few candidates, more scenes are added and the batch is rerun (it reuses what is done).

Printed: per stage (synth, propagate, export, baseline) wall time, CPU time and peak
memory, the scene count, crops/s, the baseline's table, and the projected time on N
machines like this one from the measured per-scene cost. `--vs` then labels the same
scenes again with `--executor ray` and prints its time against the local executor's
(on 2 cores no speed-up is expected: the figure is Ray's overhead) and whether the
exported files are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PER_CLASS_TRAIN, PER_CLASS_TEST = 5000, 1000
LABELLER = [sys.executable, "-m", "labeller"]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children_usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of this process's waited-for children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


def synth_scenes(root: Path, names: list[str], frames: int, width: int, height: int,
                 jobs: int) -> dict:
    """`labeller synth` for every missing scene, `jobs` at a time; the stage's figures."""
    from labeller.core.classes import PROPS_CLASS_NAMES

    todo = [n for n in names if not (root / n / "gt" / "annotations.json").is_file()]

    def one(name: str) -> None:
        seed = 1000 + names.index(name)
        subprocess.run([*LABELLER, "synth", str(root / name), "--frames", str(frames),
                        "--seed", str(seed), "--with-annotations", "--width", str(width),
                        "--height", str(height), "--overwrite", "--classes",
                        *PROPS_CLASS_NAMES], check=True, stdout=subprocess.DEVNULL)

    cpu0, _ = children_usage()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, todo))
    wall = time.perf_counter() - t0
    cpu1, peak = children_usage()
    return {"wall_s": wall, "cpu_s": cpu1 - cpu0, "peak_mib": peak, "scenes": len(todo)}


def write_plan(root: Path, train: list[str], test: list[str], scale: float, workers: int) -> Path:
    plan = root / "plan.toml"
    scenes = ", ".join(f'"scenes/{n}"' for n in train + test)
    plan.write_text(f"""\
# bench/props_full.py: every scene labelled, then the PROPS classification set over them
scenes = [{scenes}]
stages = ["propagate"]

[propagate]
overlays = 0

[[export]]
format = "props"
out = "out/props"
train-per-class = {round(PER_CLASS_TRAIN * scale)}
test-per-class = {round(PER_CLASS_TEST * scale)}
test-scenes = [{", ".join(f'"{n}"' for n in test)}]
workers = {workers}
no-cache = true
""")
    return plan


def run_batch(plan: Path, executor: str, cpus: int):
    from labeller.batch import BatchConfig, run

    t0 = time.perf_counter()
    report = run(BatchConfig(plan, executor=executor, cpus=cpus, progress_bar=False))
    return report, time.perf_counter() - t0


def stage_figures(outcomes) -> dict[str, dict]:
    """Per stage, from (stage, TaskOutcome) pairs: tasks, summed task wall and CPU
    seconds, the largest worker peak, the items made."""
    out: dict[str, dict] = {}
    for stage, o in outcomes:
        if o is None:
            continue
        s = out.setdefault(stage, {"tasks": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                          "peak_mib": 0.0, "count": 0, "max_task_s": 0.0})
        s["tasks"] += 1
        s["wall_s"] += o.wall_s
        s["cpu_s"] += o.cpu_s
        s["peak_mib"] = max(s["peak_mib"], o.peak_mib)
        s["count"] += o.count
        s["max_task_s"] = max(s["max_task_s"], o.wall_s)
    return out


def more_scenes(shortfall: str, n_train: int, n_test: int) -> tuple[int, int]:
    """Scene counts that should cover the export's shortfall ("CLASS SPLIT avail/req"),
    from the worst class of each split, with 15 % to spare."""
    worst = {"train": 1.0, "test": 1.0}
    for _cls, split, avail, req in re.findall(r"(\w+) (train|test) (\d+)/(\d+)", shortfall):
        worst[split] = max(worst[split], int(req) / max(int(avail), 1))
    grow = {k: (v * 1.15 if v > 1 else 1.0) for k, v in worst.items()}
    return math.ceil(n_train * grow["train"]), math.ceil(n_test * grow["test"])


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the published 5,000 / 1,000 crops per class")
    ap.add_argument("--frames", type=int, default=300, help="frames per scene")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--yield", dest="yield_", type=float, default=0.4,
                    help="assumed candidate crops per class and frame (sizes the scene count)")
    ap.add_argument("--cpus", type=int, default=None, help="default: all this process may use")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/labeller_props_full"),
                    help="work folder (scenes are kept and reused)")
    ap.add_argument("--vs", action="store_true", help="then time --executor ray against local")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()

    from labeller.core.pool import available_cpus

    cpus = args.cpus or available_cpus()
    root = args.dir / f"scale{args.scale:g}_f{args.frames}_{args.width}x{args.height}"
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    per_scene = args.frames * args.yield_  # candidates per class and scene
    n_train = max(1, math.ceil(PER_CLASS_TRAIN * args.scale / per_scene))
    n_test = max(1, math.ceil(PER_CLASS_TEST * args.scale / per_scene))
    print(f"PROPS full set at scale {args.scale:g}: {round(PER_CLASS_TRAIN * args.scale):,} "
          f"train / {round(PER_CLASS_TEST * args.scale):,} test crops per class; "
          f"{args.frames} frames {args.width}x{args.height} per scene, {cpus} CPUs, "
          f"load {loadavg()}", flush=True)

    synth_total = {"wall_s": 0.0, "cpu_s": 0.0, "peak_mib": 0.0, "scenes": 0}
    batch_wall = 0.0
    report = None
    labelled: dict[str, object] = {}  # scene -> the outcome of the round that labelled it
    for _round in range(4):
        train = [f"train_{i:03d}" for i in range(n_train)]
        test = [f"test_{i:03d}" for i in range(n_test)]
        print(f"scenes: {n_train} train + {n_test} test", flush=True)
        s = synth_scenes(root / "scenes", train + test, args.frames, args.width, args.height,
                         cpus)
        for k in ("wall_s", "cpu_s", "scenes"):
            synth_total[k] += s[k]
        synth_total["peak_mib"] = max(synth_total["peak_mib"], s["peak_mib"])
        plan = write_plan(root, train, test, args.scale, cpus)
        shutil.rmtree(root / "out", ignore_errors=True)
        report, wall = run_batch(plan, "local", cpus)
        batch_wall += wall
        for t in report.tasks:
            if t.spec.stage == "propagate" and t.status == "done":
                labelled[t.spec.label] = t.outcome
        if report.all_ok:
            break
        failed = report.failed
        print(report.format())
        if not all("too few" in t.message or "has no crops" in t.message for t in failed):
            print("batch failed (not a shortfall)", file=sys.stderr)
            return 1
        n_train, n_test = more_scenes(failed[0].message, n_train, n_test)
    else:
        print("still short after 4 rounds", file=sys.stderr)
        return 1
    assert report is not None
    print(report.format())
    reused_any = any(t.status == "reused" for t in report.tasks)
    exp = stage_figures((t.spec.stage, t.outcome) for t in report.tasks)["export"]
    # propagate: every scene's labelling, whichever round did it (later rounds reuse)
    prop = stage_figures(("propagate", o) for o in labelled.values())["propagate"]
    n_scenes = len(report.plan.scenes)
    crops = exp["count"]

    print(f"\n== figures (load {loadavg()}; CPU = the stage's processes, summed over tasks)")
    print(f"{'stage':<10} {'tasks':>5} {'wall s':>9} {'CPU s':>9} {'peak MiB':>9}")
    print(f"{'synth':<10} {synth_total['scenes']:>5} {synth_total['wall_s']:>9.1f} "
          f"{synth_total['cpu_s']:>9.1f} {synth_total['peak_mib']:>9.0f}   "
          f"({cpus} at a time; 0 tasks = scenes reused from {root / 'scenes'})")
    print(f"{'propagate':<10} {prop['tasks']:>5} {prop['wall_s']:>9.1f} {prop['cpu_s']:>9.1f} "
          f"{prop['peak_mib']:>9.0f}   (summed task wall; batch wall below)")
    print(f"{'export':<10} {exp['tasks']:>5} {exp['wall_s']:>9.1f} {exp['cpu_s']:>9.1f} "
          f"{exp['peak_mib']:>9.0f}   {crops:,} crops, {crops / max(exp['wall_s'], 1e-9):,.0f} "
          f"crops/s with {cpus} workers")
    print(f"batch (labeller batch, local, {cpus} CPUs): {batch_wall:.1f} s wall for "
          f"{n_scenes} scenes ({n_train} train, {n_test} test)")

    baseline_wall = 0.0
    if not args.skip_baseline:
        cpu0, _ = children_usage()
        t0 = time.perf_counter()
        res = subprocess.run([*LABELLER, "baseline", str(root / "out" / "props"), "--model",
                              "all", "--no-progress", "--out", str(root / "baseline")],
                             capture_output=True, text=True)
        baseline_wall = time.perf_counter() - t0
        cpu1, peak = children_usage()
        print(f"\n== labeller baseline (load {loadavg()}): {baseline_wall:.1f} s wall, "
              f"{cpu1 - cpu0:.1f} s CPU, peak {peak:.0f} MiB (largest child so far)")
        print(res.stdout.rstrip())
        if res.returncode != 0:
            print(res.stderr.rstrip(), file=sys.stderr)
            return 1

    # Projection: the scene tasks spread over N machines like this one (cpus slots each);
    # the export and the baseline run on one machine after them.
    per_scene_s = prop["wall_s"] / max(prop["tasks"], 1)
    synth_per_scene_s = synth_total["wall_s"] * cpus / max(synth_total["scenes"], 1) \
        if synth_total["scenes"] else float("nan")
    print(f"\n== projection from the measured per-scene cost: propagate "
          f"{per_scene_s:.1f} s per scene-task (synth {synth_per_scene_s:.1f} s per scene "
          f"and CPU slot), export {exp['wall_s']:.1f} s, baseline {baseline_wall:.1f} s")
    full_scenes = math.ceil(n_scenes / args.scale)
    # The export is linear in crops; the baseline is not (kNN is train x test), so it is
    # added as measured for this run only.
    # Two per-scene costs: the wall time measured (as loaded as this machine was) and the
    # CPU time (what a scene costs an idle core; the steadier figure on a shared machine).
    per_scene_cpu_s = prop["cpu_s"] / max(prop["tasks"], 1)
    print(f"  (propagate CPU {per_scene_cpu_s:.1f} s per scene-task; export CPU "
          f"{exp['cpu_s']:.1f} s)")
    for label, scenes, tail, note in (
            ("this run", n_scenes, exp["wall_s"] + baseline_wall, "scenes + export + baseline"),
            ("scale 1", full_scenes, exp["wall_s"] / args.scale,
             "scenes + export scaled linearly; baseline not included")):
        for cost_name, cost in (("wall", per_scene_s), ("CPU", per_scene_cpu_s)):
            cells = []
            for n in (1, 2, 4, 8, 16):
                waves = math.ceil(scenes / (n * cpus))
                cells.append(f"N={n}: {waves * cost + tail:,.0f} s")
            print(f"  {label} ({scenes} scenes; {note}; per-scene {cost_name}): "
                  + ", ".join(cells))

    if args.vs:
        local_hashes = tree_hashes(root / "out")
        local_wall = batch_wall if _round == 0 and not reused_any else None
        if local_wall is None:  # earlier rounds' or runs' work was reused: time it again
            for n in report.plan.scenes:
                shutil.rmtree(n / "labels", ignore_errors=True)
            shutil.rmtree(root / "out", ignore_errors=True)
            _, local_wall = run_batch(plan, "local", cpus)
            local_hashes = tree_hashes(root / "out")
        for n in report.plan.scenes:
            shutil.rmtree(n / "labels", ignore_errors=True)
        shutil.rmtree(root / "out", ignore_errors=True)
        ray_report, ray_wall = run_batch(plan, "ray", cpus)
        same = tree_hashes(root / "out")
        differ = sorted(k for k in set(same) | set(local_hashes)
                        if same.get(k) != local_hashes.get(k))
        print(f"\n== --executor ray vs local, same plan from unlabelled scenes "
              f"(load {loadavg()}): ray {ray_wall:.1f} s, local {local_wall:.1f} s, "
              f"ratio {ray_wall / local_wall:.2f} (Ray start-up included; "
              f"{'all ok' if ray_report.all_ok else 'FAILED'})")
        print(f"  exported files identical: {len(same) - len(differ)} of {len(same)}"
              + (f"; differing: {', '.join(differ)}" if differ else ""))
    print(json.dumps({"scale": args.scale, "scenes": n_scenes, "crops": crops,
                      "batch_wall_s": round(batch_wall, 1), "load": loadavg()}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
