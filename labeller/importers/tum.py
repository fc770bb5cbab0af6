"""Import a TUM RGB-D sequence (`labeller import tum SRC SCENE`).

SRC is a TUM RGB-D sequence folder: ``rgb.txt`` and ``depth.txt`` (lines ``timestamp
path``, '#' comments), the images they name (8-bit RGB PNGs; uint16 depth PNGs,
depth ÷ 5000), and optionally ``groundtruth.txt`` (``timestamp tx ty tz qx qy qz qw``,
T_world_cam). Each colour frame is paired with the depth frame nearest in time, at most
20 ms apart (as TUM's associate.py does: closest pairs first, each image used once);
frames are numbered 0..N-1 by colour timestamp, and ``timestamps.txt`` keeps each
frame's colour timestamp. The ground truth is interpolated onto the colour timestamps
(linear in position, slerp in rotation) and written re-anchored as ``gt/trajectory.txt``;
frames outside the ground truth's time span, or in a gap of it, get no ground truth.

Intrinsics: ``--intrinsics fx fy cx cy``, else the published values of the Freiburg
camera named in the folder name (``freiburg1/2/3`` or ``fr1/2/3``), else TUM's ROS
default 525 525 319.5 239.5. Lens distortion (fr1, fr2) is not modelled.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.fileio import read_image
from labeller.core.poses import interpolate_pose
from labeller.core.progress import ProgressFn, bar, check_progress
from labeller.formats.trajectory import TimedTrajectory, Trajectory
from labeller.importers.writer import ImportResult, scene_writer

TUM_DEPTH_SCALE = 5000.0  # TUM depth PNG units per metre
MAX_ASSOC_DT_S = 0.02  # colour/depth pairs further apart in time are not the same instant
# Ground truth comes at 100 Hz; a bracket wider than this is a gap in the motion capture,
# where interpolating would invent a pose.
MAX_GT_GAP_S = 0.1
# Published intrinsics of the TUM RGB-D cameras
# (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats).
TUM_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
TUM_DEFAULT_K = (525.0, 525.0, 319.5, 239.5)


def read_list(path: Path) -> list[tuple[float, Path, int]]:
    """(timestamp, file path, line number) of a TUM rgb.txt / depth.txt, in file order.

    Raises BadInput naming the file (and line) when it is missing or malformed.
    """
    if not path.is_file():
        raise BadInput(path, "missing (a TUM RGB-D sequence folder has rgb.txt and depth.txt)")
    out = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) != 2:
            raise BadInput(f"{path}:{lineno}",
                           f"expected 'timestamp filename', got {len(parts)} fields")
        try:
            stamp = float(parts[0])
        except ValueError:
            raise BadInput(f"{path}:{lineno}", f"timestamp '{parts[0]}' is not a number") from None
        if not np.isfinite(stamp):
            raise BadInput(f"{path}:{lineno}", f"timestamp '{parts[0]}' is not finite")
        out.append((stamp, path.parent / parts[1], lineno))
    if not out:
        raise BadInput(path, "lists no images")
    return out


def check_listed_files(entries: list[tuple[float, Path, int]], list_path: Path) -> None:
    missing = [(f, n) for _, f, n in entries if not f.is_file()]
    if missing:
        f, n = missing[0]
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise BadInput(f"{list_path}:{n}", f"names {f.relative_to(list_path.parent)}, which does "
                                           f"not exist{more}")


def associate(rgb_stamps: np.ndarray, depth_stamps: np.ndarray, max_dt: float = MAX_ASSOC_DT_S
              ) -> list[tuple[int, int]]:
    """Pairs (rgb index, depth index), closest in time first, each index used once.

    Only pairs at most `max_dt` seconds apart; returned sorted by rgb timestamp.
    """
    cand = []
    order_d = np.argsort(depth_stamps)
    ds = depth_stamps[order_d]
    for i, s in enumerate(rgb_stamps):
        lo = np.searchsorted(ds, s - max_dt, side="left")
        hi = np.searchsorted(ds, s + max_dt, side="right")
        for k in range(lo, hi):
            cand.append((abs(ds[k] - s), i, int(order_d[k])))
    cand.sort()
    used_r: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for _, i, j in cand:
        if i in used_r or j in used_d:
            continue
        used_r.add(i)
        used_d.add(j)
        pairs.append((i, j))
    pairs.sort(key=lambda p: (rgb_stamps[p[0]], p[0]))
    return pairs


def interpolate_poses(gt: TimedTrajectory, stamps: np.ndarray, max_gap: float = MAX_GT_GAP_S
                      ) -> dict[int, np.ndarray]:
    """T_world_cam at each query time (index -> 4x4), where the ground truth brackets it.

    Linear in translation, slerp in rotation; queries outside the ground truth's span or
    inside a gap wider than `max_gap` seconds are left out.
    """
    out: dict[int, np.ndarray] = {}
    if len(gt.stamps) == 0:
        return out
    for i, s in enumerate(stamps):
        k = int(np.searchsorted(gt.stamps, s, side="left"))
        if k < len(gt.stamps) and gt.stamps[k] == s:
            out[i] = gt.poses[k].copy()
            continue
        if k == 0 or k >= len(gt.stamps):
            continue
        s0, s1 = gt.stamps[k - 1], gt.stamps[k]
        if s1 - s0 > max_gap:
            continue
        a = (s - s0) / (s1 - s0)
        out[i] = interpolate_pose(gt.poses[k - 1], gt.poses[k], float(a))
    return out


def tum_intrinsics_for(src: Path) -> tuple[tuple[float, float, float, float], str]:
    """Intrinsics guessed from the sequence folder's name, and where they came from."""
    name = src.resolve().name.lower()
    for key, k in TUM_INTRINSICS.items():
        short = "fr" + key[-1]
        if key in name or re.search(rf"(^|[^a-z]){short}([^0-9]|$)", name):
            return k, f"TUM {key} (from the folder name)"
    return TUM_DEFAULT_K, "TUM's ROS default (folder name names no freiburg camera)"


def import_tum(src: str | Path, dest: str | Path, *, link: bool = False, overwrite: bool = False,
               intrinsics: tuple[float, float, float, float] | None = None,
               progress: ProgressFn | None = None) -> ImportResult:
    """Convert a TUM RGB-D sequence folder into a scene at `dest` (see the module doc).

    Raises BadInput for a missing list, a malformed line, a listed file that does not
    exist, or frames that cannot be read; `dest` is written all at once or not at all.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise BadInput(src, "not a directory (expected a TUM RGB-D sequence folder)")
    rgb_list, depth_list = src / "rgb.txt", src / "depth.txt"
    rgb_entries = read_list(rgb_list)
    depth_entries = read_list(depth_list)
    check_listed_files(rgb_entries, rgb_list)
    check_listed_files(depth_entries, depth_list)
    warnings: list[str] = []

    rgb_stamps = np.array([e[0] for e in rgb_entries])
    depth_stamps = np.array([e[0] for e in depth_entries])
    pairs = associate(rgb_stamps, depth_stamps)
    if not pairs:
        raise BadInput(src, "no colour frame has a depth frame within "
                            f"{MAX_ASSOC_DT_S * 1000:.0f} ms (rgb.txt and depth.txt timestamps "
                            "do not overlap)")
    if len(pairs) < len(rgb_entries):
        warnings.append(f"{rgb_list}: {len(rgb_entries) - len(pairs)} of {len(rgb_entries)} colour "
                        f"frames have no depth frame within {MAX_ASSOC_DT_S * 1000:.0f} ms; "
                        "left out")

    if intrinsics is not None:
        k, k_source = tuple(float(v) for v in intrinsics), "--intrinsics"
    else:
        k, k_source = tum_intrinsics_for(src)
    fx, fy, cx, cy = k

    frame_stamps = np.array([rgb_stamps[i] for i, _ in pairs])
    gt_path = src / "groundtruth.txt"
    gt_poses: dict[int, np.ndarray] = {}
    if gt_path.is_file():
        gt = TimedTrajectory.read_tum(gt_path)
        gt_poses = interpolate_poses(gt, frame_stamps)
        if not gt_poses:
            warnings.append(f"{gt_path}: covers none of the frames' timestamps; gt/trajectory.txt "
                            "not written")
        elif len(gt_poses) < len(pairs):
            warnings.append(f"{gt_path}: {len(pairs) - len(gt_poses)} of {len(pairs)} frames fall "
                            "outside the ground truth (or in a gap of it); they have no gt pose")

    with scene_writer(dest, overwrite=overwrite, link=link) as w:
        with bar(len(pairs), "import tum") as frames_bar:
            for t, (i, j) in enumerate(pairs):
                rgb_path, depth_path = rgb_entries[i][1], depth_entries[j][1]
                depth = read_image(depth_path)
                w.check_frame(rgb_path, depth, depth_path)
                w.add_rgb(t, rgb_path)
                w.add_depth_file(t, depth_path)
                frames_bar.update(1)
                check_progress(progress, t + 1, len(pairs),
                               f"{dest}: import cancelled; nothing written")
        size = w.frame_size
        assert size is not None
        w.write_camera(CameraIntrinsics(size[0], size[1], fx, fy, cx, cy, TUM_DEPTH_SCALE))
        w.write_timestamps({t: float(s) for t, s in enumerate(frame_stamps)})
        has_gt = w.write_gt_trajectory(Trajectory(gt_poses))
        result = ImportResult(dest, len(pairs), has_gt_trajectory=has_gt, has_timestamps=True,
                              n_linked=w.n_linked, n_copied=w.n_copied, n_rewritten=w.n_rewritten,
                              warnings=warnings + w.warnings,
                              notes=[f"intrinsics: {fx:g} {fy:g} {cx:g} {cy:g} ({k_source})",
                                     f"depth ÷ {TUM_DEPTH_SCALE:g}"])
    return result
