"""Builders and checks shared by the reliability tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, SHARED_DATA

SEVEN_SCENES = SHARED_DATA / "rgbd" / "sevenscenes_kitchen"


def mini_7scenes(root: Path, n: int) -> Path:
    """A 7-Scenes folder of the real clip's first `n` frames (seq-01/ and intrinsics)."""
    if not SEVEN_SCENES.is_dir():
        pytest.skip(f"real data not found at {SEVEN_SCENES}")
    seq = root / "seq-01"
    seq.mkdir(parents=True)
    for t in range(n):
        for kind in ("color.jpg", "depth.png", "pose.txt"):
            shutil.copy(SEVEN_SCENES / f"frames/frame-{t:06d}.{kind}", seq / f"frame-{t:06d}.{kind}")
    shutil.copy(SEVEN_SCENES / "camera-intrinsics.txt", root / "camera-intrinsics.txt")
    return root


def leftovers(folder: Path, keep: str) -> list[str]:
    """Names in `folder` other than `keep`: temporaries and moved-aside folders."""
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def run_python(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` from the project root, output captured."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
