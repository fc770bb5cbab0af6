"""PoseCNN's own results: one MATLAB `.mat` per image (NVlabs/PoseCNN-PyTorch demo output).

Fields read (scipy.io.loadmat):

- ``poses_refined`` (N, 7): ``qw qx qy qz tx ty tz`` per detection, the pose after
  PoseCNN's depth refinement, T_cam_obj with t in metres;
- ``rois`` (N, 7): ``batch, class, x1, y1, x2, y2, score``; `class` indexes PoseCNN's
  training classes (`POSECNN_CLASSES`; 0 = background).

The frame id is the number the file name starts with (``000042-color.png.mat`` -> 42).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from labeller.core.errors import FormatError
from labeller.core.poses import make_pose, quat_wxyz_to_matrix, rigid_or_none
from labeller.formats.bop_results import YCBV_OBJECTS, PoseEstimate

POSECNN_SUFFIX = ".mat"
_FRAME_RE = re.compile(r"^(\d+)")
# PoseCNN-PyTorch trains on the YCB-Video objects in id order without the large clamp
# (its cfg.TRAIN.CLASSES leaves that one out); class index k >= 1 is the k-th of these.
POSECNN_CLASSES: tuple[int, ...] = tuple(
    oid for oid, name in sorted(YCBV_OBJECTS.items()) if name != "051_large_clamp")


def posecnn_class_to_ycbv_id(class_index: int) -> int:
    """YCB-V object id of a PoseCNN class index (1..len(POSECNN_CLASSES)); ValueError
    outside that range."""
    if not 1 <= class_index <= len(POSECNN_CLASSES):
        raise ValueError(f"PoseCNN class index {class_index} is outside 1..{len(POSECNN_CLASSES)}")
    return POSECNN_CLASSES[class_index - 1]


def frame_id_of(path: str | os.PathLike) -> int:
    """The frame id a PoseCNN result file belongs to, from its name."""
    m = _FRAME_RE.match(Path(path).name)
    if m is None:
        raise FormatError(path, "name must start with the frame number (like 000042-color.png.mat)")
    return int(m.group(1))


def read_posecnn_mat(path: str | os.PathLike, frame_id: int | None = None) -> list[PoseEstimate]:
    """The detections of one PoseCNN `.mat` (T_cam_obj in metres).

    frame_id: the frame it belongs to (default: from the file name). A detection's
    `where` names the file and its 0-based row in `poses_refined`.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "file not found")
    try:
        mat = scipy.io.loadmat(str(path))
    except (ValueError, OSError, TypeError) as exc:
        raise FormatError(path, f"not a readable MATLAB .mat file ({exc})") from None
    if frame_id is None:
        frame_id = frame_id_of(path)
    if "poses_refined" not in mat:
        have = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "nothing"
        raise FormatError(path, f"no 'poses_refined' array (PoseCNN results; the file holds {have})")
    if "rois" not in mat:
        raise FormatError(path, "no 'rois' array (PoseCNN results: class and score per detection)")
    poses = np.asarray(mat["poses_refined"], dtype=np.float64)
    rois = np.asarray(mat["rois"], dtype=np.float64)
    if poses.size == 0:
        raise FormatError(path, "holds no estimates (poses_refined is empty)")
    if poses.ndim != 2 or poses.shape[1] != 7:
        raise FormatError(path, f"poses_refined must be N x 7 (qw qx qy qz tx ty tz), got {poses.shape}")
    if rois.ndim != 2 or rois.shape[1] < 7 or len(rois) != len(poses):
        raise FormatError(path, f"rois must be N x 7 with one row per pose ({len(poses)}), got {rois.shape}")
    out: list[PoseEstimate] = []
    for i, (p, r) in enumerate(zip(poses, rois, strict=True)):
        where = f"{path}: row {i}"
        if not np.all(np.isfinite(p)):
            raise FormatError(where, "poses_refined has NaN or infinite entries")
        q = p[:4]
        n = float(np.linalg.norm(q))
        if abs(n - 1.0) > 1e-2:
            raise FormatError(where, f"quaternion qw qx qy qz is not unit length (|q| = {n:.4f})")
        T, problem = rigid_or_none(make_pose(quat_wxyz_to_matrix(q / n), p[4:7]))
        if T is None:
            raise FormatError(where, f"pose is not rigid: {problem}")
        cls = int(round(r[1]))
        if not 1 <= cls <= len(POSECNN_CLASSES):
            raise FormatError(where, f"rois class index must be in 1..{len(POSECNN_CLASSES)} "
                                     f"(0 is background), got {cls}")
        out.append(PoseEstimate(int(frame_id), posecnn_class_to_ycbv_id(cls), float(r[6]), T, where))
    return out


def read_posecnn_dir(folder: str | os.PathLike) -> list[PoseEstimate]:
    """Every `*.mat` in a folder of PoseCNN results, frame ids from the file names."""
    folder = Path(folder)
    files = sorted(f for f in folder.iterdir() if f.suffix == POSECNN_SUFFIX)
    if not files:
        raise FormatError(folder, "holds no PoseCNN .mat files")
    out: list[PoseEstimate] = []
    for f in files:
        out.extend(read_posecnn_mat(f))
    return out
