"""Benchmark the colour check (flip QA) of `labeller propagate`: what it costs, what it catches.

    .venv/bin/python bench/colour_check.py [--frames N] [--flip-frames N] [--root DIR]

Speed: on a 640x480 synthetic scene with six procedural objects (what `bench/propagate.py`
measures; vertex-coloured models) and on one rendered from the YCB meshes (textured),
`labeller propagate` (one worker, no ICP) runs with `--no-colour-check` and with the
check, back to back in this process; printed: frames/s, CPU ms/frame (this process) and
the ratio check / no check (the peer run is the same propagate without the check).

Detection: on YCB-mesh synthetic scenes of two seeds, every object's label is turned 180
degrees about its symmetry (up) axis, the scene propagated again, and the colour states
counted over object-frames with visib_fract >= 0.3: flips flagged / decidable, correct
labels flagged / all. Scenes are generated once into --root (default
/tmp/labeller_bench_colour) and reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

YCB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ycb_models"


def load() -> str:
    return f"load avg {os.getloadavg()[0]:.1f}"


def make_scene(path: Path, frames: int, seed: int, models: Path | None) -> Path:
    from labeller.synth import SynthConfig, run

    if not (path / "trajectory.txt").is_file():
        run(SynthConfig(path, frames=frames, seed=seed, with_annotations=True,
                        models_dir=models, overwrite=True))
    return path


def propagate(scene: Path, models: Path | None, colour: bool) -> tuple[float, float, int]:
    """(wall s, CPU s, frames) of one run."""
    from labeller.propagate import PropagateConfig, run

    t, c = time.perf_counter(), time.process_time()
    s = run(PropagateConfig(scene=scene, models_dir=models, restart=True, max_overlays=0,
                            colour_check=colour))
    return time.perf_counter() - t, time.process_time() - c, s.computed_frames


def speed(name: str, scene: Path, models: Path | None) -> None:
    off = propagate(scene, models, False)
    on = propagate(scene, models, True)
    for label, (w, c, n) in (("no colour check", off), ("colour check   ", on)):
        print(f"{name:<11} {label}: {n / w:5.1f} frames/s, CPU {1000 * c / n:5.0f} ms/frame "
              f"({n} frames, {load()})")
    print(f"{name:<11} check / no check: {on[0] / off[0]:.2f}x wall, {on[1] / off[1]:.2f}x CPU")


def turn_labels(scene: Path, models: Path) -> None:
    from labeller.core.classes import BY_NAME
    from labeller.formats.annotations import AnnotationDocument
    from labeller.formats.models import resolve_model_path
    from labeller.geometry.colour_consistency import model_half_turns

    doc = AnnotationDocument.read(scene / "annotations.json")
    for o in doc.objects:
        cls = BY_NAME[o.class_name]
        turns = model_half_turns(resolve_model_path(o.model, scene, models), cls.symmetry_axis)
        axis = np.asarray(cls.symmetry_axis if cls.symmetry_axis is not None else (0, 0, 1.0))
        pick = [S for S in turns if np.allclose(S[:3, :3] @ axis, axis)] or list(turns)
        if pick:
            o.T_world_obj = o.T_world_obj @ pick[0]
    doc.write(scene / "annotations.json")


def detection(scene: Path, models: Path) -> tuple[int, int, int, int, int]:
    """(flips flagged, flips decidable, flips visible, correct flagged, correct visible)."""
    from labeller.formats.labels import COLOUR_FLAGGED, COLOUR_UNDECIDABLE, Labels

    work = scene.parent / (scene.name + "_turned")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(scene, work)
    propagate(work, models, True)
    with Labels.open(work / "labels" / "labels.h5") as L:
        vis = L.arrays["visib_fract"] >= 0.3
        ok_flagged = int((L.arrays["colour_state"][vis] == COLOUR_FLAGGED).sum())
        ok_n = int(vis.sum())
    turn_labels(work, models)
    propagate(work, models, True)
    with Labels.open(work / "labels" / "labels.h5") as L:
        vis = L.arrays["visib_fract"] >= 0.3
        st = L.arrays["colour_state"]
        dec = vis & (st != COLOUR_UNDECIDABLE)
        return (int((st[dec] == COLOUR_FLAGGED).sum()), int(dec.sum()), int(vis.sum()),
                ok_flagged, ok_n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100, help="frames of the speed scenes")
    ap.add_argument("--flip-frames", type=int, default=20, help="frames of the detection scenes")
    ap.add_argument("--root", type=Path, default=Path("/tmp/labeller_bench_colour"))
    a = ap.parse_args()
    if not YCB.is_dir():
        sys.exit(f"{YCB} not found (../shared/data beside the project)")
    a.root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs; {load()} at start")
    proc = make_scene(a.root / f"procedural{a.frames}", a.frames, 7, None)
    speed("procedural", proc, None)
    ycb = make_scene(a.root / f"ycb{a.frames}", a.frames, 7, YCB)
    speed("YCB meshes", ycb, YCB)
    for seed in (3, 5):
        scene = make_scene(a.root / f"ycb_seed{seed}_{a.flip_frames}", a.flip_frames, seed, YCB)
        hit, dec, vis, fl, n = detection(scene, YCB)
        print(f"seed {seed}: turned labels flagged {hit}/{dec} where decidable ({vis - dec} of "
              f"{vis} visible undecidable); correct labels flagged {fl}/{n} ({load()})")


if __name__ == "__main__":
    main()
