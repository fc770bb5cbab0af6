"""Benchmark `labeller export --format props-detection` and `--format coco` against
`--format props-pose` (the peer: the same frames, which it copies with their depth and
one mask file per instance), 1 vs N workers: images per second and the ratio to the peer.

    .venv/bin/python bench/export_instances.py                  # builds the scenes once
    .venv/bin/python bench/export_instances.py --frames 60 --copies 2 --workers 1 2

Scenes as in bench/export.py (one synthetic 640x480 scene with all ten PROPS classes,
labelled by `labeller propagate`, hard-linked into --copies scenes; kept in --dir and
reused). The first copy is held out (val), the others are train. Peak memory is the
largest resident set of this process and its workers together.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.export import PeakMemory, build_scenes  # noqa: E402

FORMATS = ("props-pose", "props-detection", "coco")


def measure(fmt: str, scenes: list[Path], workers: int, out_root: Path) -> dict:
    import warnings

    from labeller.export import ExportConfig, ExportWarning, run

    cfg = ExportConfig(format=fmt, out=out_root / f"{fmt}_{workers}", scenes=scenes,
                       test_scenes=[scenes[0].name], workers=workers, progress_bars=False,
                       keep_flagged=True)
    t = time.perf_counter()
    with PeakMemory() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)  # e.g. models missing for props-pose
        s = run(cfg)
    seconds = time.perf_counter() - t
    images = s.counts["train"]["images"] + s.counts["val"]["images"]
    return {"seconds": seconds, "images": images, "peak_mb": mem.peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "labeller_bench_export")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    scenes = build_scenes(args.dir, args.frames, max(2, args.copies))
    print(f"scenes: {len(scenes)} x {args.frames} frames 640x480, 10 objects; cores: "
          f"{len(os.sched_getaffinity(0))}")
    print(f"{'format':<16} {'workers':>7} {'images':>7} {'s':>7} {'images/s':>9} "
          f"{'vs props-pose':>13} {'peak MB':>8} {'load':>5}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for w in args.workers:
            peer = None
            for fmt in FORMATS:
                r = measure(fmt, scenes, w, Path(tmp))
                rate = r["images"] / r["seconds"]
                peer = peer or rate
                print(f"{fmt:<16} {w:>7} {r['images']:>7} {r['seconds']:>7.1f} {rate:>9.1f} "
                      f"{rate / peer:>13.2f} {r['peak_mb']:>8.0f} {os.getloadavg()[0]:>5.1f}",
                      flush=True)
    print("(vs props-pose: images/s over props-pose's at the same workers, > 1 is faster; "
          "load: the 1-minute load average after the run, other work included)")


if __name__ == "__main__":
    main()
