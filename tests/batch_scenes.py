"""Shared set-up of the `labeller batch` tests: three tiny synthetic scenes and a plan.

Scenes come from the real `labeller synth` (ground-truth trajectory and annotations), six
frames at 320x240 with four classes, so propagate and a small PROPS export run in a
second or two each.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

SCENE_NAMES = ("a", "b", "c")
CLASSES = ["cracker_box", "mug", "tomato_soup_can", "gelatin_box"]
FRAMES = 6

PLAN = """\
scenes = ["scenes/*"]
stages = ["propagate"]

[propagate]
overlays = 0

[[export]]
format = "props"
out = "out/props"
train-per-class = 4
test-per-class = 2
allow-short = true
no-cache = true          # crops_cache.h5 reuse is recorded in the manifest
test-scenes = ["b"]
"""

# Only the export, over scenes already labelled.
EXPORT_ONLY_PLAN = PLAN.replace('stages = ["propagate"]', "stages = []").replace(
    "[propagate]\noverlays = 0\n", "")

# The same export by hand (labeller export), as a user would type it.
EXPORT_ARGS = ["--format", "props", "--train-per-class", "4", "--test-per-class", "2",
               "--allow-short", "--no-cache", "--test-scenes", "b", "--quiet"]


def make_scenes(root: Path) -> Path:
    from labeller.synth import SynthConfig
    from labeller.synth import run as synth

    for i, name in enumerate(SCENE_NAMES):
        synth(SynthConfig(root / name, frames=FRAMES, seed=40 + i, with_annotations=True,
                          width=320, height=240, classes=list(CLASSES)))
    return root


def batch_root(pristine: Path, dest: Path) -> Path:
    """dest/plan.toml and a copy of the pristine scenes in dest/scenes."""
    shutil.copytree(pristine, dest / "scenes")
    (dest / "plan.toml").write_text(PLAN)
    return dest


def reset(root: Path) -> None:
    """Back to unlabelled scenes and no export (same paths: the manifest records them)."""
    for name in SCENE_NAMES:
        shutil.rmtree(root / "scenes" / name / "labels", ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)


def labels_content(scene: Path) -> dict[str, object]:
    """Every dataset and attribute of scene/labels/labels.h5, as bytes: what the labels
    say, without the HDF5 file's own bookkeeping (its root group records times)."""
    import h5py

    out: dict[str, object] = {}
    with h5py.File(scene / "labels" / "labels.h5", "r") as f:
        out["/"] = sorted((k, str(v)) for k, v in f.attrs.items())

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()].tobytes()
            out[name + "@"] = sorted((k, str(v)) for k, v in obj.attrs.items())

        f.visititems(visit)
    return out


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(root: Path) -> list[Path]:
    """What `labeller.core.fileio` names its temporaries: ``.NAME.<host>-p<pid>.*.tmp*``."""
    return [p for p in root.rglob(".*") if ".tmp" in p.name]


def rows(report) -> dict[str, tuple[str, int, str]]:
    """task key -> (status, retried, message)."""
    return {t.spec.key: (t.status, t.retried, t.message) for t in report.tasks}
