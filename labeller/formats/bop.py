"""The BOP scene format (the BOP toolkit's docs/bop_datasets_format.md): layout, units, JSON.

One codec for both directions: `labeller export --format bop` writes through it and
`labeller import bop` reads through it. A BOP dataset::

    camera.json                              the dataset's camera (`dataset_camera_text`)
    models/obj_{obj_id:06d}.ply              mesh in millimetres (`ply_mm_text`)
    models/models_info.json                  diameter, min_x.., size_x.. (mm), symmetries
    {split}/{scene_id:06d}/rgb/{im_id:06d}.png|jpg
                           depth/{im_id:06d}.png
                           mask/{im_id:06d}_{gt:06d}.png        object alone, 0/255
                           mask_visib/{im_id:06d}_{gt:06d}.png  visible part, 0/255
                           scene_camera.json   per image: cam_K (3x3 row-major, px),
                                               depth_scale (mm per depth unit),
                                               cam_R_w2c (3x3 row-major), cam_t_w2c (mm)
                           scene_gt.json       per image, per object: obj_id,
                                               cam_R_m2c (row-major), cam_t_m2c (mm)
                           scene_gt_info.json  bbox_obj, bbox_visib [x, y, w, h] px,
                                               px_count_all/valid/visib, visib_fract
    test_targets_bop19.json                  (test splits) instances to evaluate

The JSON files are keyed by str(image id). Our poses are 4x4 in metres: BOP's w2c is
T_cam_world = inv(T_world_cam), its m2c is T_cam_obj; translations convert m <-> mm
here and nowhere else. obj_id: the YCB-Video id for the ten PROPS classes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BOP_OTHER_ID_BASE, BY_NAME, BY_YCBV_ID
from labeller.core.errors import BadInput, FormatError
from labeller.core.fileio import read_json_object
from labeller.core.poses import inv_pose, rigid_or_none

MM_PER_M = 1000.0  # BOP files are in millimetres; our scenes and labels in metres

DATASET_CAMERA = "camera.json"
MODELS_DIR = "models"
MODELS_INFO = "models_info.json"
SCENE_CAMERA = "scene_camera.json"
SCENE_GT = "scene_gt.json"
SCENE_GT_INFO = "scene_gt_info.json"
TEST_TARGETS = "test_targets_bop19.json"
IMAGE_DIRS = ("rgb", "depth", "mask", "mask_visib")
# rgb/ and depth/ images are named by image id
IMAGE_FILE_RE = re.compile(r"^(\d+)\.(png|jpg|jpeg|tif)$", re.IGNORECASE)
# bop19 test targets: instances at least this visible (BOP's own choice for its targets).
TARGET_MIN_VISIB = 0.1


# --------------------------------------------------------------------------------------
# Layout and ids
# --------------------------------------------------------------------------------------
def scene_dir(split: str, scene_id: int) -> str:
    """The folder of one scene, relative to the dataset root: ``{split}/{scene_id:06d}``."""
    return f"{split}/{scene_id:06d}"


def image_file(im_id: int, ext: str = ".png") -> str:
    """An rgb/ or depth/ file name: ``{im_id:06d}{ext}``."""
    return f"{im_id:06d}{ext}"


def mask_file(im_id: int, gt_index: int) -> str:
    """A mask/ or mask_visib/ file name: ``{im_id:06d}_{gt_index:06d}.png``."""
    return f"{im_id:06d}_{gt_index:06d}.png"


def model_file(obj_id: int) -> str:
    """A models/ file name: ``obj_{obj_id:06d}.ply``."""
    return f"obj_{obj_id:06d}.ply"


def bop_obj_id(class_name: str, class_names: list[str]) -> int:
    """YCB-Video id for a PROPS class, else 100 + its index in the export's class table."""
    if class_name in BY_NAME:
        return BY_NAME[class_name].ycbv_id
    return BOP_OTHER_ID_BASE + class_names.index(class_name)


def bop_class_names(obj_ids: list[int]) -> dict[int, str]:
    """obj_id -> class: PROPS names when every id is a PROPS YCB-V id, else obj_{id:06d}."""
    if obj_ids and all(i in BY_YCBV_ID for i in obj_ids):
        return {i: BY_YCBV_ID[i].name for i in obj_ids}
    return {i: f"obj_{i:06d}" for i in obj_ids}


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def bop_json(d: dict) -> str:
    """JSON like the BOP toolkit's save_json: one line per image key, keys in id order."""
    items = sorted(d.items(), key=lambda kv: int(kv[0]))
    lines = [f'  "{k}": {json.dumps(v, sort_keys=True)}' for k, v in items]
    return "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"


def round_list(a: Any, nd: int = 8) -> list[float]:
    """`a` flattened (row-major) to floats rounded to `nd` decimals, never -0.0."""
    return [round(float(x), nd) + 0.0 for x in np.asarray(a).reshape(-1)]


def dataset_camera_text(cam: CameraIntrinsics) -> str:
    """The dataset's camera.json: intrinsics in pixels, depth_scale in mm per depth unit."""
    return json.dumps({"cx": cam.cx, "cy": cam.cy, "depth_scale": MM_PER_M / cam.depth_scale,
                       "fx": cam.fx, "fy": cam.fy, "height": cam.height, "width": cam.width},
                      indent=2) + "\n"


def camera_entry(K: list[float], depth_scale_mm: float, T_world_cam: np.ndarray) -> dict:
    """One image's scene_camera.json entry.

    K: `intrinsics_K(cam)`; depth_scale_mm: `depth_scale_mm(cam)`; T_world_cam: (4, 4)
    camera pose in metres, written as BOP's w2c (its inverse, translation in mm).
    """
    T_cam_world = inv_pose(T_world_cam)  # BOP's w2c
    return {"cam_K": K, "depth_scale": depth_scale_mm,
            "cam_R_w2c": round_list(T_cam_world[:3, :3]),
            "cam_t_w2c": round_list(T_cam_world[:3, 3] * MM_PER_M, 6)}


def intrinsics_K(cam: CameraIntrinsics) -> list[float]:
    """cam_K: the 3x3 intrinsic matrix row-major, pixels, 6 decimals."""
    return round_list(cam.K, 6)


def depth_scale_mm(cam: CameraIntrinsics) -> float:
    """BOP's depth_scale: millimetres per depth unit (our camera.json: units per metre)."""
    return MM_PER_M / cam.depth_scale


def gt_entry(obj_id: int, T_cam_obj: np.ndarray) -> dict:
    """One object's scene_gt.json entry; T_cam_obj (4, 4) in metres, cam_t_m2c in mm."""
    T = T_cam_obj
    return {"obj_id": int(obj_id), "cam_R_m2c": round_list(T[:3, :3]),
            "cam_t_m2c": round_list(T[:3, 3] * MM_PER_M, 6)}


def gt_info_entry(bbox_obj: Sequence[int], bbox_visib: Sequence[int], px_count_all: int,
                  px_count_valid: int, px_count_visib: int, visib_fract: float) -> dict:
    """One object's scene_gt_info.json entry (boxes [x, y, w, h] px, [-1]*4 when empty)."""
    return {"bbox_obj": [int(v) for v in bbox_obj],
            "bbox_visib": [int(v) for v in bbox_visib],
            "px_count_all": int(px_count_all), "px_count_valid": int(px_count_valid),
            "px_count_visib": int(px_count_visib), "visib_fract": round(float(visib_fract), 6)}


def frame_targets(scene_id: int, im_id: int, obj_ids: Sequence[int],
                  visib_fract: Sequence[float]) -> list[dict]:
    """test_targets_bop19 entries of one image: instances per obj_id with visib_fract >=
    TARGET_MIN_VISIB, in obj_id order."""
    per_obj: dict[int, int] = {}
    for k, oid in enumerate(obj_ids):
        if visib_fract[k] >= TARGET_MIN_VISIB:
            per_obj[oid] = per_obj.get(oid, 0) + 1
    return [{"im_id": int(im_id), "inst_count": c, "obj_id": o, "scene_id": scene_id}
            for o, c in sorted(per_obj.items())]


def test_targets_text(targets: list[dict]) -> str:
    """test_targets_bop19.json: one target per line."""
    return "[\n" + ",\n".join("  " + json.dumps(t, sort_keys=True) for t in targets) + "\n]\n"


def symmetries(class_name: str, vertices_mm: np.ndarray) -> dict:
    """models_info symmetry fields from the per-class table (labeller.core.classes).

    A class with a `symmetry_axis` (the cans about z, the marker about y) turns freely
    about that axis, through the centre of the model's bounding box: BOP's
    `symmetries_continuous` [{"axis": [x, y, z], "offset": [x, y, z] mm}]. No class has
    a discrete symmetry once its texture is taken into account. vertices_mm: (V, 3).
    """
    cls = BY_NAME.get(class_name)
    if cls is None or cls.symmetry_axis is None:
        return {}
    axis = np.asarray(cls.symmetry_axis, np.float64)
    centre = (vertices_mm.min(0) + vertices_mm.max(0)) / 2.0
    offset = centre - axis * float(centre @ axis)  # the point of the axis nearest the origin
    return {"symmetries_continuous": [{"axis": axis.tolist(),
                                       "offset": [round(float(v), 6) for v in offset]}]}


def model_info(class_name: str, vertices_m: np.ndarray, diameter_m: float) -> dict:
    """One models_info.json entry: diameter, bounding box (mm) and symmetries.

    vertices_m: (V, 3) in the model frame, metres.
    """
    v = vertices_m * MM_PER_M
    lo, hi = v.min(0), v.max(0)
    info = {"diameter": round(diameter_m * MM_PER_M, 6),
            "min_x": round(float(lo[0]), 6), "min_y": round(float(lo[1]), 6),
            "min_z": round(float(lo[2]), 6), "size_x": round(float(hi[0] - lo[0]), 6),
            "size_y": round(float(hi[1] - lo[1]), 6), "size_z": round(float(hi[2] - lo[2]), 6)}
    info.update(symmetries(class_name, v))
    return info


def ply_mm_text(vertices_m: np.ndarray, normals: np.ndarray, triangles: np.ndarray,
                colors: np.ndarray | None, comment: str) -> str:
    """A model as BOP wants it: ASCII PLY in millimetres with vertex normals (and colours
    when given). vertices_m, normals: (V, 3) model frame, metres; triangles: (F, 3);
    colors: (V, 3) uint8 or None."""
    v = vertices_m * MM_PER_M
    header = ["ply", "format ascii 1.0", f"comment {comment}", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z",
              "property float nx", "property float ny", "property float nz"]
    cols = [v, normals]
    fmt = ["%.6f"] * 6
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        cols.append(colors.astype(np.float64))
        fmt += ["%d"] * 3
    header += [f"element face {len(triangles)}", "property list uchar int vertex_indices",
               "end_header"]
    buf = io.StringIO()
    buf.write("\n".join(header) + "\n")
    np.savetxt(buf, np.hstack(cols), fmt=" ".join(fmt))
    faces = np.hstack([np.full((len(triangles), 1), 3), triangles])
    np.savetxt(buf, faces, fmt="%d")
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# Reading (every problem is a FormatError naming the file, the image and the key)
# --------------------------------------------------------------------------------------
def read_scene_json(path: Path, required: bool = True) -> dict | None:
    """A scene_*.json as a dict keyed by image id; None when absent and not `required`."""
    if not path.is_file():
        if required:
            raise BadInput(path, "missing (a BOP scene folder has scene_camera.json, rgb/, depth/)")
        return None
    return read_json_object(path, "an object keyed by image id")


def read_matrix(entry: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """entry[key] as a finite float64 array of `shape`."""
    try:
        a = np.asarray(entry[key], dtype=np.float64).reshape(shape)
    except KeyError:
        raise FormatError(where, f"no '{key}'") from None
    except (ValueError, TypeError):
        raise FormatError(where, f"'{key}' must be {int(np.prod(shape))} numbers") from None
    if not np.all(np.isfinite(a)):
        raise FormatError(where, f"'{key}' has NaN or infinite values")
    return a


def pose_from_mm(R: np.ndarray, t_mm: np.ndarray, where: str) -> np.ndarray:
    """4x4 rigid pose in metres from a BOP rotation (3, 3) and a translation (3,) in mm."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t_mm / MM_PER_M
    out, problem = rigid_or_none(T)
    if out is None:
        raise FormatError(where, problem)
    return out


def read_intrinsics(entry: Any, where: str) -> tuple[np.ndarray, float]:
    """(K (3, 3) px, depth_scale in mm per depth unit) of a scene_camera.json entry."""
    if not isinstance(entry, dict):
        raise FormatError(where, "entry must be an object")
    K = read_matrix(entry, "cam_K", (3, 3), where)
    if "depth_scale" not in entry:
        raise FormatError(where, "no 'depth_scale' (mm per depth unit)")
    try:
        ds = float(entry["depth_scale"])
    except (TypeError, ValueError):
        raise FormatError(where, "'depth_scale' must be a number") from None
    if not ds > 0:
        raise FormatError(where, f"'depth_scale' must be > 0, got {ds}")
    return K, ds


def read_camera_pose(entry: dict, where: str) -> np.ndarray | None:
    """T_world_cam (4, 4, metres) from a scene_camera.json entry's cam_R_w2c / cam_t_w2c,
    or None when the entry has neither."""
    if "cam_R_w2c" not in entry and "cam_t_w2c" not in entry:
        return None
    R = read_matrix(entry, "cam_R_w2c", (3, 3), where)
    t_mm = read_matrix(entry, "cam_t_w2c", (3,), where)
    return inv_pose(pose_from_mm(R, t_mm, where))


def read_gt_object(g: Any, where: str) -> tuple[int, np.ndarray]:
    """(obj_id, T_cam_obj (4, 4) metres) of one scene_gt.json object."""
    if not isinstance(g, dict) or "obj_id" not in g:
        raise FormatError(where, "expected an object with 'obj_id'")
    T_cam_obj = pose_from_mm(read_matrix(g, "cam_R_m2c", (3, 3), where),
                             read_matrix(g, "cam_t_m2c", (3,), where), where)
    try:
        obj_id = int(g["obj_id"])
    except (TypeError, ValueError):
        raise FormatError(where, "'obj_id' must be an integer") from None
    return obj_id, T_cam_obj


def convert_model_mm_to_m(src: Path, dest: Path) -> None:
    """Write the BOP model `src` (mm) scaled to metres as PLY `dest` (vertex colours kept)."""
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(src)
    if len(mesh.vertices) == 0 or len(mesh.triangles) == 0:
        raise BadInput(src, "not a readable triangle mesh")
    mesh.scale(1.0 / MM_PER_M, center=(0.0, 0.0, 0.0))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_triangle_mesh(dest, mesh, write_ascii=False):
        raise OSError(f"{dest}: Open3D could not write the model")
