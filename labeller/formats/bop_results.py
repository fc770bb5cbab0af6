"""BOP results CSV: the per-image pose estimates every BOP-benchmark estimator writes.

Format (bop_toolkit ``inout.save_bop_results``)::

    scene_id,im_id,obj_id,score,R,t,time
    1,0,14,0.93,r11 r12 r13 r21 r22 r23 r31 r32 r33,tx ty tz,0.12

R is row-major (9 numbers separated by spaces), t in millimetres (3 numbers), both the
model-to-camera transform `T_cam_obj`; `time` is seconds per image (-1 when unknown).
The header line is optional. Inside labeller every estimate is a `PoseEstimate` with
`T_cam_obj` in metres: this module is the one place that converts mm <-> m for it.

Also here: the names of the 21 YCB-Video (BOP ycbv) objects, so that estimates of
YCB-V objects outside the ten PROPS classes are recognised (and skipped) rather than
taken as unknown ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
from labeller.core.fileio import atomic_write_text
from labeller.core.poses import rigid_or_none

BOP_RESULTS_HEADER = "scene_id,im_id,obj_id,score,R,t,time"
MM_PER_M = 1000.0

# BOP ycbv object ids -> YCB codes and names (the ten PROPS classes are 1-6, 8, 9, 14, 18).
YCBV_OBJECTS: dict[int, str] = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box",
    4: "005_tomato_soup_can", 5: "006_mustard_bottle", 6: "007_tuna_fish_can",
    7: "008_pudding_box", 8: "009_gelatin_box", 9: "010_potted_meat_can", 10: "011_banana",
    11: "019_pitcher_base", 12: "021_bleach_cleanser", 13: "024_bowl", 14: "025_mug",
    15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors", 18: "040_large_marker",
    19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}


@dataclass(frozen=True)
class PoseEstimate:
    """One estimator detection: object `obj_id` seen in frame `frame_id` at T_cam_obj.

    T_cam_obj: (4, 4) float64, metres (model frame -> OpenCV camera frame).
    score: the estimator's confidence (higher is better). where: its file and row, for
    messages ("results.csv: line 5", or "x.mat: row 0" for a PoseCNN array).
    """

    frame_id: int
    obj_id: int
    score: float
    T_cam_obj: np.ndarray
    where: str = ""
    scene_id: int = 0
    time_s: float = -1.0


def _numbers(text: str, n: int, what: str, where: str) -> list[float]:
    parts = text.split()
    if len(parts) != n:
        raise FormatError(where, f"{what} must have {n} numbers separated by spaces, got {len(parts)}")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise FormatError(where, f"{what} is not a list of numbers: {text.strip()!r}") from None
    if not all(np.isfinite(vals)):
        raise FormatError(where, f"{what} has NaN or infinite entries")
    return vals


def _int(text: str, what: str, where: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FormatError(where, f"{what} must be an integer, got {text.strip()!r}") from None


def parse_bop_results(text: str, path: str | os.PathLike) -> list[PoseEstimate]:
    """Estimates of a BOP results CSV's text; FormatError naming `path` and the line."""
    out: list[PoseEstimate] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.strip().replace(" ", "").startswith("scene_id,"):
            continue
        where = f"{os.fspath(path)}: line {lineno}"
        cols = line.split(",")
        if len(cols) != 7:
            raise FormatError(where, f"expected 7 comma-separated columns ({BOP_RESULTS_HEADER}), "
                                     f"got {len(cols)}")
        scene_id = _int(cols[0], "scene_id", where)
        im_id = _int(cols[1], "im_id", where)
        obj_id = _int(cols[2], "obj_id", where)
        if im_id < 0:
            raise FormatError(where, f"im_id must be >= 0, got {im_id}")
        try:
            score = float(cols[3])
            time_s = float(cols[6])
        except ValueError:
            raise FormatError(where, "score and time must be numbers") from None
        if not np.isfinite(score):
            raise FormatError(where, f"score must be finite, got {cols[3].strip()}")
        R = np.array(_numbers(cols[4], 9, "R", where)).reshape(3, 3)
        t_mm = np.array(_numbers(cols[5], 3, "t", where))
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = t_mm / MM_PER_M
        T_ok, problem = rigid_or_none(T)
        if T_ok is None:
            raise FormatError(where, f"R is not a rotation matrix: {problem}")
        out.append(PoseEstimate(im_id, obj_id, score, T_ok, where, scene_id, time_s))
    if not out:
        raise FormatError(path, "holds no estimates (empty file)")
    return out


def read_bop_results(path: str | os.PathLike) -> list[PoseEstimate]:
    """Read a BOP results CSV (t in mm in the file, metres in the result)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "file not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise FormatError(path, "not a text file (expected a BOP results CSV)") from None
    return parse_bop_results(text, path)


def format_bop_results(estimates: Sequence[PoseEstimate]) -> str:
    """The CSV text of `estimates` (header line first; t written in mm)."""
    lines = [BOP_RESULTS_HEADER]
    for e in estimates:
        T = np.asarray(e.T_cam_obj, np.float64)
        R = " ".join(f"{v:.8f}" for v in T[:3, :3].reshape(-1))
        t = " ".join(f"{v:.5f}" for v in T[:3, 3] * MM_PER_M)
        lines.append(f"{e.scene_id},{e.frame_id},{e.obj_id},{e.score:.6f},{R},{t},{e.time_s:g}")
    return "\n".join(lines) + "\n"


def write_bop_results(path: str | os.PathLike, estimates: Sequence[PoseEstimate]) -> None:
    """Write a BOP results CSV atomically (temporary file, then rename)."""
    atomic_write_text(path, format_bop_results(estimates))
