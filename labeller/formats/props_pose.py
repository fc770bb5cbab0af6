"""The PROPS-Pose format as the DeepRob course's PROPSPoseDataset loader reads it::

    PROPS-Pose-Dataset/{train,val}/rgb/{im:06d}.png
                                   depth/{im:06d}.png              millimetres
                                   mask_visib/{im:06d}_{inst:06d}.png
                                   {split}_gt.json                 cam_R_m2c, cam_t_m2c, obj_id
                                   {split}_gt_info.json            boxes, pixel counts
                                   {split}_camera.json             (only for another camera)
    PROPS-Pose-Dataset/model/{ycbv_id}_{name}/textured_simple.obj

The JSON files are keyed by str(image id) (`labeller.formats.bop.bop_json`). Poses: the
published files (written by ProgressLabeller) store the INVERSE of the model-to-camera
pose under the names cam_R_m2c / cam_t_m2c, i.e. inv(T_cam_obj) = T_obj_cam, in metres;
the course loader inverts what it reads (`RT = np.linalg.inv(RT)`) to get T_cam_obj back.
`gt_entry` writes what that loader expects and `read_gt` reads it back the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import FormatError
from labeller.core.fileio import read_json_object
from labeller.core.poses import inv_pose

DATASET_DIR = "PROPS-Pose-Dataset"
SPLITS = ("train", "val")
IMAGE_DIRS = ("rgb", "depth", "mask_visib")
MODEL_DIR = "model"
MODEL_FILE = "textured_simple.obj"
MAX_INSTANCES = 10  # the loader: assert(len(objs_dict) <= self.max_instance_num)

# See the module docstring: cam_R_m2c / cam_t_m2c hold inv(T_cam_obj).
PROPS_POSE_STORES_INVERSE = True

# The loader hard-codes the intrinsics and size of the camera the set was recorded with.
PROPS_POSE_K = (902.19, 902.39, 342.35, 252.23)  # fx, fy, cx, cy
PROPS_POSE_SIZE = (640, 480)  # width, height (its label array is 480 x 640)
K_TOLERANCE_PX = 0.01
# Depth PNGs of the published set are millimetres; other units are converted.
DEPTH_UNITS_PER_M = 1000.0


def image_file(im_id: int) -> str:
    """An rgb/ or depth/ file name."""
    return f"{im_id:06d}.png"


def mask_file(im_id: int, instance: int) -> str:
    """A mask_visib/ file name: the instance's index in the image's gt list."""
    return f"{im_id:06d}_{instance:06d}.png"


def gt_file(split: str) -> str:
    return f"{split}_gt.json"


def gt_info_file(split: str) -> str:
    return f"{split}_gt_info.json"


def camera_file(split: str) -> str:
    return f"{split}_camera.json"


def model_folder(ycbv_id: int, class_name: str) -> str:
    """model/<ycbv_id>_<name>, as the loader looks it up."""
    return f"{ycbv_id}_{class_name}"


def stored_pose(T_cam_obj: np.ndarray) -> np.ndarray:
    """The 4x4 written under cam_R_m2c / cam_t_m2c (see PROPS_POSE_STORES_INVERSE)."""
    return inv_pose(T_cam_obj) if PROPS_POSE_STORES_INVERSE else np.asarray(T_cam_obj)


def same_camera_as_loader(cam: CameraIntrinsics) -> bool:
    """True when `cam` is the camera the course loader hard-codes (within 0.01 px)."""
    fx, fy, cx, cy = PROPS_POSE_K
    return ((cam.width, cam.height) == PROPS_POSE_SIZE
            and all(abs(a - b) <= K_TOLERANCE_PX
                    for a, b in zip((cam.fx, cam.fy, cam.cx, cam.cy), (fx, fy, cx, cy), strict=True)))


def gt_entry(obj_id: int, T_cam_obj: np.ndarray) -> dict:
    """One instance of {split}_gt.json; T_cam_obj (4, 4) in metres, stored inverted."""
    T = stored_pose(T_cam_obj)
    return {"cam_R_m2c": [float(v) for v in T[:3, :3].reshape(-1)],
            "cam_t_m2c": [float(v) for v in T[:3, 3]],
            "obj_id": int(obj_id)}


def gt_info_entry(bbox_obj: Sequence[int], bbox_visib: Sequence[int], px_count_all: int,
                  px_count_valid: int, px_count_visib: int, visib_fract: float) -> dict:
    """One instance of {split}_gt_info.json; bbox_visib is [] when nothing is visible."""
    return {"bbox_obj": [int(v) for v in bbox_obj],
            "bbox_visib": [int(v) for v in bbox_visib] if px_count_visib > 0 else [],
            "px_count_all": int(px_count_all),
            "px_count_valid": int(px_count_valid),
            "px_count_visib": int(px_count_visib),
            "visib_fract": float(visib_fract)}


def camera_entry(cam: CameraIntrinsics) -> dict:
    """One image of {split}_camera.json: K (row-major, px), size and depth in mm."""
    return {"cam_K": [float(v) for v in cam.K.reshape(-1)],
            "width": cam.width, "height": cam.height,
            "depth_scale": 1.0}  # mm per depth unit, as BOP


def read_gt(path: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    """{split}_gt.json back as image id -> [(obj_id, T_cam_obj (4, 4) metres)], as the
    course loader does (it inverts the stored pose)."""
    d = read_json_object(path, "an object keyed by image id")
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    for key, objs in d.items():
        items = []
        for k, g in enumerate(objs):
            try:
                T = np.eye(4)
                T[:3, :3] = np.asarray(g["cam_R_m2c"], np.float64).reshape(3, 3)
                T[:3, 3] = np.asarray(g["cam_t_m2c"], np.float64).reshape(3)
                obj_id = int(g["obj_id"])
            except (KeyError, TypeError, ValueError):
                raise FormatError(f"{path}: image {key}, instance {k}",
                                  "expected cam_R_m2c (9), cam_t_m2c (3) and obj_id") from None
            items.append((obj_id, inv_pose(T) if PROPS_POSE_STORES_INVERSE else T))
        out[int(key)] = items
    return out
