"""How our BOP `mask_visib` compares with the BOP toolkit's bop19 rule and with the truth.
Prints figures (docs/export.md, "What the BOP toolkit reads"); not part of the test run.

    .venv/bin/python bench/bop_mask_visib.py OUT [--frames 20] [--seed 3]

A synthetic 320x240 scene (`labeller synth`, with its noise-free `gt/masks`) is labelled
(`labeller propagate`) and exported (`--format bop`) into OUT; the BOP toolkit's own
`calc_gt_masks.py` (../shared/readers/bop_toolkit, run as tests/readers_bop.py runs it)
recomputes the visible masks of a copy with its bop19 rule. Per instance in view: IoU of
ours with bop19's, and of each with the truth; the pixels where they differ, split by
whether the sensor had depth there.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeller.export import ExportConfig  # noqa: E402
from labeller.export import run as export  # noqa: E402
from labeller.formats.labels import Labels  # noqa: E402
from labeller.propagate import PropagateConfig  # noqa: E402
from labeller.propagate import run as propagate  # noqa: E402
from labeller.synth import SynthConfig  # noqa: E402
from labeller.synth import run as synth  # noqa: E402
from tests.readers_bop import run_script, toolkit_on  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    if a.out.exists():
        shutil.rmtree(a.out)
    scene = a.out / "scene"
    synth(SynthConfig(scene, frames=a.frames, seed=a.seed, with_annotations=True,
                      width=320, height=240))
    propagate(PropagateConfig(scene=scene))
    export(ExportConfig(format="bop", out=a.out / "ours" / "ycbv", scenes=[scene],
                        progress_bars=False))
    theirs = a.out / "toolkit"
    shutil.copytree(a.out / "ours", theirs)
    with toolkit_on(theirs):
        run_script("calc_gt_masks.py", ["--dataset=ycbv", "--dataset_split=test",
                                        f"--datasets_path={theirs}"])
    with Labels.open(scene / "labels" / "labels.h5") as lab:
        ids = [o.id for o in lab.objects]
    ours_dir = a.out / "ours/ycbv/test/000001/mask_visib"
    their_dir = theirs / "ycbv/test/000001/mask_visib"
    n = n_diff = no_depth = with_depth = ours_only = 0
    i_ot, i_ot_diff, i_o, i_t = [], [], [], []
    for t in range(a.frames):
        truth = cv2.imread(str(scene / "gt" / "masks" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(scene / "depth" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        for k, iid in enumerate(ids):
            name = f"{t:06d}_{k:06d}.png"
            o = cv2.imread(str(ours_dir / name), cv2.IMREAD_UNCHANGED) > 0
            b = cv2.imread(str(their_dir / name), cv2.IMREAD_UNCHANGED) > 0
            tr = truth == iid
            if not (o.any() or b.any() or tr.any()):
                continue
            n += 1
            i_ot.append(iou(o, b))
            i_o.append(iou(o, tr))
            i_t.append(iou(b, tr))
            if (o != b).any():
                n_diff += 1
                i_ot_diff.append(i_ot[-1])
                extra = b & ~o
                no_depth += int((extra & (depth == 0)).sum())
                with_depth += int((extra & (depth > 0)).sum())
                ours_only += int((o & ~b).sum())
    print(f"synth seed {a.seed}, {a.frames} frames, {len(ids)} objects: {n} instances in view, "
          f"{n_diff} with a visible mask that differs from bop19's")
    print(f"IoU ours vs bop19: mean {np.mean(i_ot):.4f}, over those that differ "
          f"{np.mean(i_ot_diff) if i_ot_diff else 1.0:.4f}, min {min(i_ot):.4f}")
    print(f"IoU vs truth: ours mean {np.mean(i_o):.6f} (min {min(i_o):.4f}); "
          f"bop19 mean {np.mean(i_t):.6f} (min {min(i_t):.4f})")
    print(f"differing pixels: visible to bop19 only, no sensor depth {no_depth}; visible to "
          f"bop19 only, sensor depth present {with_depth}; visible to us only {ours_only}")


if __name__ == "__main__":
    main()
