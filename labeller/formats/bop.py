"""The BOP scene format (the BOP toolkit's docs/bop_datasets_format.md): layout, units, JSON.

One codec for both directions: `labeller export --format bop` writes through it and
`labeller import bop` reads through it. A BOP dataset::

    camera.json                              the dataset's camera (`dataset_camera_text`)
    models/obj_{obj_id:06d}.ply              mesh in millimetres (`ply_mm_text`)
    models/models_info.json                  diameter, min_x.., size_x.. (mm), symmetries
    models_eval/                             the models the toolkit's evaluation reads
                                             (eval_bop19_pose): same files, own models_info
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
# The BOP toolkit evaluates against models_eval/ (its eval scripts read
# models_eval/models_info.json); BOP datasets ship decimated meshes there, we the same ones.
MODELS_EVAL_DIR = "models_eval"
MODELS_INFO = "models_info.json"
SCENE_CAMERA = "scene_camera.json"
SCENE_GT = "scene_gt.json"
SCENE_GT_INFO = "scene_gt_info.json"
TEST_TARGETS = "test_targets_bop19.json"
# Written into a scene by `labeller import bop`: the BOP image id of every frame, so that
# `labeller export --format bop` gives the images their original ids back.
IMAGE_IDS_FILE = "bop_image_ids.txt"
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


def _turn_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """(3, 3) rotation by `angle_deg` about the unit `axis` (Rodrigues)."""
    a = np.radians(angle_deg)
    x, y, z = axis
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(a) * K + (1.0 - np.cos(a)) * (K @ K)


def symmetries(class_name: str, vertices_mm: np.ndarray, geometric: bool = False) -> dict:
    """models_info symmetry fields from the per-class table (labeller.core.classes).

    By default the symmetries of the textured object, as the BOP ycbv models_info.json
    declares them (`appearance_turns`: the master chef can and the marker turn 180
    degrees about their axis; a printed label breaks the other cans' shape symmetry):
    BOP's `symmetries_discrete`, each a 4x4 row-major [R t; 0 1] with t in mm, the axis
    through the centre of the model's bounding box. With `geometric` the shape-only
    table instead: a class with a `symmetry_axis` (the cans about z, the marker about y)
    turns freely about it: `symmetries_continuous` [{"axis": [x, y, z], "offset":
    [x, y, z] mm}]. vertices_mm: (V, 3) model frame, mm.
    """
    cls = BY_NAME.get(class_name)
    if cls is None:
        return {}
    centre = (vertices_mm.min(0) + vertices_mm.max(0)) / 2.0
    if geometric:
        if cls.symmetry_axis is None:
            return {}
        axis = np.asarray(cls.symmetry_axis, np.float64)
        offset = centre - axis * float(centre @ axis)  # the point of the axis nearest the origin
        return {"symmetries_continuous": [{"axis": axis.tolist(),
                                           "offset": [round(float(v), 6) for v in offset]}]}
    if not cls.appearance_turns:
        return {}
    out = []
    for turn_axis, angle_deg in cls.appearance_turns:
        T = np.eye(4)
        T[:3, :3] = _turn_matrix(np.asarray(turn_axis, np.float64), angle_deg)
        T[:3, 3] = centre - T[:3, :3] @ centre  # turn about the axis through the centre
        out.append([round(float(v), 6) + 0.0 for v in T.reshape(-1)])
    return {"symmetries_discrete": out}


def model_info(class_name: str, vertices_m: np.ndarray, diameter_m: float,
               geometric_symmetries: bool = False) -> dict:
    """One models_info.json entry: diameter, bounding box (mm) and symmetries
    (`symmetries`; `geometric_symmetries` picks the shape-only table).

    vertices_m: (V, 3) in the model frame, metres.
    """
    v = vertices_m * MM_PER_M
    lo, hi = v.min(0), v.max(0)
    info = {"diameter": round(diameter_m * MM_PER_M, 6),
            "min_x": round(float(lo[0]), 6), "min_y": round(float(lo[1]), 6),
            "min_z": round(float(lo[2]), 6), "size_x": round(float(hi[0] - lo[0]), 6),
            "size_y": round(float(hi[1] - lo[1]), 6), "size_z": round(float(hi[2] - lo[2]), 6)}
    info.update(symmetries(class_name, v, geometric_symmetries))
    return info


def image_ids_text(image_ids: dict[int, int]) -> str:
    """bop_image_ids.txt: "frame_id image_id" per line, frame order."""
    lines = ["# frame_id bop_image_id (labeller import bop)"]
    lines += [f"{t} {image_ids[t]}" for t in sorted(image_ids)]
    return "\n".join(lines) + "\n"


def read_image_ids(path: Path) -> dict[int, int] | None:
    """frame id -> BOP image id from a scene's bop_image_ids.txt; None when absent.

    Raises FormatError naming the line when a line is not two integers >= 0, or when a
    frame or an image id repeats.
    """
    if not path.is_file():
        return None
    out: dict[int, int] = {}
    seen: set[int] = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            t, im = (int(p) for p in parts) if len(parts) == 2 else (-1, -1)
        except ValueError:
            t, im = -1, -1
        if t < 0 or im < 0:
            raise FormatError(f"{path}: line {n}", f"expected 'frame_id image_id' (two "
                                                   f"integers >= 0), got {line!r}")
        if t in out or im in seen:
            raise FormatError(f"{path}: line {n}", f"frame {t} or image id {im} repeats")
        out[t] = im
        seen.add(im)
    return out


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

    from labeller.formats.models import check_model_file

    check_model_file(src)  # a crafted PLY must not reach Open3D's reader
    mesh = o3d.io.read_triangle_mesh(src)
    if len(mesh.vertices) == 0 or len(mesh.triangles) == 0:
        raise BadInput(src, "not a readable triangle mesh")
    mesh.scale(1.0 / MM_PER_M, center=(0.0, 0.0, 0.0))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_triangle_mesh(dest, mesh, write_ascii=False):
        raise OSError(f"{dest}: Open3D could not write the model")
