"""Peak memory of `labeller track` at two scene lengths: does it grow with the number of
frames?

    .venv/bin/python bench/track_memory.py [--frames 150 600] [--size 320x240] [--dir DIR]

Builds one synthetic scene per length (`labeller synth`, same seed; kept in --dir and
reused), tracks each in a fresh process (`--no-resume --force`, no progress bar) and
prints the peak resident set of each run (VmHWM), the peak while tracking alone (before
fusion), the growth between the two lengths per frame, and the ratio of the two peaks.
Linux only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

_TRACK = """
import json, sys, warnings
from pathlib import Path
import labeller.track.stage as stage
from labeller.track import TrackConfig, run
warnings.simplefilter("ignore")

def vm_hwm():
    # VmHWM, not getrusage: Linux carries ru_maxrss over an exec from the forking parent
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))

peaks = {}
real_fuse = stage.fuse
def fuse(*a, **k):
    peaks["tracking_kib"] = vm_hwm()
    return real_fuse(*a, **k)
stage.fuse = fuse
r = run(TrackConfig(scene=Path(sys.argv[1]), resume=False, force=True, progress_bar=False))
peaks["peak_kib"] = vm_hwm()
peaks["tracked"] = r.n_tracked
print(json.dumps(peaks))
"""


def build(root: Path, frames: int, width: int, height: int) -> Path:
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    scene = root / f"scene_{frames}_{width}x{height}"
    if not (scene / "camera.json").is_file():
        synth(SynthConfig(scene, frames=frames, seed=2, width=width, height=height))
    return scene


def peaks_kib(scene: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _TRACK, str(scene)], check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs=2, default=[150, 600])
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "labeller_track_memory")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    a.dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in a.frames:
        runs.append(peaks_kib(build(a.dir, n, w, h)))
        r = runs[-1]
        print(f"{n:5d} frames: peak RSS {r['peak_kib'] / 1024:.1f} MiB (tracking alone "
              f"{r['tracking_kib'] / 1024:.1f} MiB), {r['tracked']} tracked", flush=True)
    (n0, n1), (r0, r1) = a.frames, runs
    for key, what in (("tracking_kib", "tracking"), ("peak_kib", "whole run")):
        print(f"{what}: growth {(r1[key] - r0[key]) / (n1 - n0):.1f} KiB per frame; peak ratio "
              f"{r1[key] / r0[key]:.3f} ({n1} vs {n0} frames)")
    print(f"this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
