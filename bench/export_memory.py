"""Peak memory of `labeller export --format props` at two scene lengths: does it grow with
the number of frames?

    .venv/bin/python bench/export_memory.py [--frames 40 160] [--size 160x120] [--dir DIR]

Builds one synthetic scene per length (`labeller synth` with annotations, then
`labeller propagate`; kept in --dir and reused), exports each in a fresh process with the
crop cache off and one worker, and prints the peak resident set of each export (VmHWM),
the growth between them per frame, and the ratio of the two peaks. Linux only.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

_EXPORT = """
import sys, warnings
from pathlib import Path
from labeller.export import ExportConfig, run
warnings.simplefilter("ignore")
run(ExportConfig(format="props", out=Path(sys.argv[2]), scenes=[Path(sys.argv[1])],
                 train_per_class=20, test_per_class=5, allow_short=True, cache=False,
                 workers=1, progress_bars=False))
# VmHWM, not getrusage: Linux carries ru_maxrss over an exec from the forking parent
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def build(root: Path, frames: int, width: int, height: int) -> Path:
    from labeller.propagate import PropagateConfig
    from labeller.propagate import run as propagate
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    scene = root / f"scene_{frames}_{width}x{height}"
    if not (scene / "labels" / "labels.h5").is_file():
        if not scene.exists():
            synth(SynthConfig(scene, frames=frames, seed=5, with_annotations=True, width=width,
                              height=height))
        propagate(PropagateConfig(scene=scene))
    return scene


def peak_kib(scene: Path, out: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", _EXPORT, str(scene), str(out)], check=True,
                          capture_output=True, text=True)
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs=2, default=[40, 160])
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "labeller_export_memory")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    a.dir.mkdir(parents=True, exist_ok=True)
    peaks = []
    for n in a.frames:
        scene = build(a.dir, n, w, h)
        with tempfile.TemporaryDirectory(dir=a.dir) as d:
            peaks.append(peak_kib(scene, Path(d) / "out"))
        print(f"{n:5d} frames: peak RSS {peaks[-1] / 1024:.1f} MiB", flush=True)
    (n0, n1), (p0, p1) = a.frames, peaks
    print(f"growth {(p1 - p0) / (n1 - n0):.1f} KiB per frame; peak ratio {p1 / p0:.3f} "
          f"({n1} vs {n0} frames); this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
