# ruff: noqa: F811 - the session fixture `labelled_scenes` is imported from test_export_props
"""`labeller export --format props-pose` and `--format bop`.

Each export is read back by a loader written here from the format's own description:
the DeepRob course's PROPSPoseDataset logic for PROPS-Pose, the BOP toolkit's
docs/bop_datasets_format.md for BOP, and compared with the labels.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli_main
from labeller.core.camera import CameraIntrinsics
from labeller.core.classes import BY_NAME, PROPS_CLASS_NAMES
from labeller.core.fileio import sha256_file
from labeller.core.poses import inv_pose
from labeller.export import ExportConfig, ExportWarning, run
from labeller.export.props_pose import frame_instances
from labeller.formats.bop import bop_obj_id, symmetries
from labeller.formats.labels import Labels
from labeller.formats.models import load_model, resolve_model_path
from labeller.formats.props_pose import MAX_INSTANCES, PROPS_POSE_K, PROPS_POSE_STORES_INVERSE
from labeller.formats.scene import Scene
from tests.helpers import SHARED_DATA, flag_labels
from tests.test_export_props import copy_scene, labelled_scenes, make_labelled_scene  # noqa: F401

YCB = SHARED_DATA / "ycb_models"


def export(fmt: str, out: Path, scenes, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress_bars", False)
    return run(ExportConfig(format=fmt, out=out, scenes=list(scenes), **kw))


@pytest.fixture(scope="session")
def course_camera_scenes(tmp_path_factory) -> list[Path]:
    """Two 640x480 scenes seen through the camera the course loader hard-codes."""
    import labeller.synth.world as synth_mod  # SynthWorld looks make_camera up there

    fx, fy, cx, cy = PROPS_POSE_K

    def course_camera(width: int = 640, height: int = 480) -> CameraIntrinsics:
        return CameraIntrinsics(width, height, fx, fy, cx, cy, 1000.0)

    root = tmp_path_factory.mktemp("course_cam")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth_mod, "make_camera", course_camera)
        return [
            make_labelled_scene(root / "cc_0", seed=30, frames=4, width=640, height=480,
                                classes=list(PROPS_CLASS_NAMES[:5])),
            make_labelled_scene(root / "cc_1", seed=31, frames=4, width=640, height=480,
                                classes=list(PROPS_CLASS_NAMES[5:]))]


# --- PROPS-Pose -----------------------------------------------------------------------
def course_pose_loader(root: Path, split: str) -> list[dict]:
    """PROPSPoseDataset.parse_dir + __getitem__ (course logic, no torch): per image the
    visible masks by label, the boxes and RTs = inv(stored pose), the projected centres
    with the hard-coded K."""
    K = np.array([[902.19, 0.0, 342.35], [0.0, 902.39, 252.23], [0.0, 0.0, 1.0]])
    data_dir = os.path.join(root, "PROPS-Pose-Dataset", split)
    rgb_path = os.path.join(data_dir, "rgb")
    mask_path = os.path.join(data_dir, "mask_visib")
    rgb_list = sorted(os.listdir(rgb_path))
    depth_list = sorted(os.listdir(os.path.join(data_dir, "depth")))
    mask_list = sorted(os.listdir(mask_path))
    scene_gt = json.load(open(os.path.join(data_dir, split + "_gt.json")))
    scene_gt_info = json.load(open(os.path.join(data_dir, split + "_gt_info.json")))
    assert len(rgb_list) == len(depth_list) == len(scene_gt) == len(scene_gt_info)
    id2label = {oid: i + 1 for i, oid in enumerate([1, 2, 3, 4, 5, 6, 8, 9, 14, 18])}
    out = []
    for rgb_file in rgb_list:
        idx = int(rgb_file.split(".png")[0])
        objs = scene_gt[str(idx)]
        infos = scene_gt_info[str(idx)]
        assert len(objs) <= 10
        items = []
        for obj_idx in range(len(objs)):
            assert f"{idx:06d}_{obj_idx:06d}.png" in mask_list
            if len(infos[obj_idx]["bbox_visib"]) == 0:
                continue
            RT = np.zeros((4, 4))
            RT[3, 3] = 1
            RT[:3, :3] = np.array(objs[obj_idx]["cam_R_m2c"]).reshape(3, 3)
            RT[:3, [3]] = np.array(objs[obj_idx]["cam_t_m2c"]).reshape(3, 1)
            RT = np.linalg.inv(RT)
            center_homo = K @ RT[:3, [3]]
            center = (center_homo[:2] / center_homo[2]).ravel()
            mask = cv2.imread(os.path.join(mask_path, f"{idx:06d}_{obj_idx:06d}.png"),
                              cv2.IMREAD_UNCHANGED).astype(bool)
            items.append({"label": id2label[objs[obj_idx]["obj_id"]], "RT": RT[:3],
                          "center": center, "mask": mask, "bbx": infos[obj_idx]["bbox_visib"],
                          "visib_fract": infos[obj_idx]["visib_fract"]})
        out.append({"idx": idx, "objs": items,
                    "rgb": cv2.imread(os.path.join(rgb_path, rgb_file))})
    return out


@pytest.fixture(scope="module")
def pose_dataset(course_camera_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pp") / "pp"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # the course camera: no warning
        export("props-pose", out, course_camera_scenes, test_scenes=["cc_1"], keep_flagged=True)
    return out


def test_props_pose_layout(pose_dataset):
    root = pose_dataset / "PROPS-Pose-Dataset"
    assert sorted(p.name for p in pose_dataset.iterdir()) == ["PROPS-Pose-Dataset", "manifest.json"]
    for split in ("train", "val"):
        d = root / split
        assert sorted(p.name for p in d.iterdir()) == sorted(
            ["rgb", "depth", "mask_visib", f"{split}_gt.json", f"{split}_gt_info.json"])
        assert not (d / f"{split}_camera.json").exists()  # the course's own camera
        rgb = sorted(p.name for p in (d / "rgb").iterdir())
        assert rgb == [f"{i:06d}.png" for i in range(4)]


def test_course_loader_centres_land_in_visible_masks(pose_dataset):
    checked = 0
    wrong_convention_hits = 0
    for split in ("train", "val"):
        for item in course_pose_loader(pose_dataset, split):
            for o in item["objs"]:
                if o["visib_fract"] < 0.95:
                    continue  # the centre of an occluded object may be hidden
                u, v = np.round(o["center"]).astype(int)
                m = cv2.dilate(o["mask"].astype(np.uint8), np.ones((5, 5), np.uint8))
                assert 0 <= u < 640 and 0 <= v < 480 and m[v, u], (split, item["idx"], o["label"])
                x, y, w, h = o["bbx"]
                assert x <= u < x + w + 2 and y <= v < y + h + 2
                checked += 1
                # the same test with the pose taken as stored (not inverted) fails
                RT_raw = inv_pose(np.vstack([o["RT"], [0, 0, 0, 1]]))
                c = np.array([[902.19, 0, 342.35], [0, 902.39, 252.23], [0, 0, 1]]) @ RT_raw[:3, 3]
                if c[2] > 0:
                    uu, vv = np.round(c[:2] / c[2]).astype(int)
                    wrong_convention_hits += int(0 <= uu < 640 and 0 <= vv < 480 and m[vv, uu])
    assert checked >= 10
    assert wrong_convention_hits < checked / 4


def test_props_pose_stores_the_inverse_pose_in_metres(pose_dataset, course_camera_scenes):
    assert PROPS_POSE_STORES_INVERSE
    man = json.loads((pose_dataset / "manifest.json").read_text())
    gt = json.loads((pose_dataset / "PROPS-Pose-Dataset/train/train_gt.json").read_text())
    for im, (scene_name, t) in man["image_sources"]["train"].items():
        scene = next(s for s in course_camera_scenes if s.name == scene_name)
        with Labels.open(scene / "labels" / "labels.h5") as lab:
            fl = lab.frame(t, masks=False)
            by_ycbv = {BY_NAME[o.class_name].ycbv_id: o for o in fl.objects}
        for e in gt[im]:
            T = np.eye(4)
            T[:3, :3] = np.reshape(e["cam_R_m2c"], (3, 3))
            T[:3, 3] = e["cam_t_m2c"]
            np.testing.assert_allclose(T, inv_pose(by_ycbv[e["obj_id"]].T_cam_obj), atol=1e-9)
            assert 0.2 < np.linalg.norm(T[:3, 3]) < 5  # metres


def test_props_pose_masks_boxes_and_ids(pose_dataset):
    for split in ("train", "val"):
        d = pose_dataset / "PROPS-Pose-Dataset" / split
        gt = json.loads((d / f"{split}_gt.json").read_text())
        info = json.loads((d / f"{split}_gt_info.json").read_text())
        for im, entries in gt.items():
            assert len(entries) <= MAX_INSTANCES
            for k, (e, inf) in enumerate(zip(entries, info[im], strict=True)):
                assert e["obj_id"] in (1, 2, 3, 4, 5, 6, 8, 9, 14, 18)
                m = cv2.imread(str(d / "mask_visib" / f"{int(im):06d}_{k:06d}.png"),
                               cv2.IMREAD_UNCHANGED)
                assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
                if inf["bbox_visib"] == []:
                    assert not m.any()
                else:
                    ys, xs = np.nonzero(m)
                    # w = x_max - x_min, as the BOP toolkit's misc.calc_2d_bbox
                    assert inf["bbox_visib"] == [int(xs.min()), int(ys.min()),
                                                 int(xs.max() - xs.min()),
                                                 int(ys.max() - ys.min())]
                    assert int((m > 0).sum()) == inf["px_count_visib"]


def test_props_pose_val_holds_whole_scenes(pose_dataset):
    man = json.loads((pose_dataset / "manifest.json").read_text())
    assert {s for s, _ in man["image_sources"]["train"].values()} == {"cc_0"}
    assert {s for s, _ in man["image_sources"]["val"].values()} == {"cc_1"}


@pytest.fixture(scope="module")
def other_camera_export(labelled_scenes, tmp_path_factory):
    """PROPS-Pose from the 320x240 synthetic camera; the library fills the missing models."""
    out = tmp_path_factory.mktemp("pp_other") / "pp"
    kw = {"models_dir": YCB} if YCB.is_dir() else {}
    with pytest.warns(ExportWarning) as rec:
        s = export("props-pose", out, labelled_scenes, test_scenes=["scene_c"], **kw)
    return out, s, [str(w.message) for w in rec]


@pytest.mark.skipif(not YCB.is_dir(), reason=f"YCB models not found at {YCB}")
def test_props_pose_models_and_attribution(other_camera_export, labelled_scenes):
    out, _, _ = other_camera_export
    model = out / "PROPS-Pose-Dataset" / "model"
    for c in BY_NAME.values():
        obj = model / f"{c.ycbv_id}_{c.name}" / "textured_simple.obj"
        assert obj.is_file(), obj
        m = load_model(obj)
        assert m.extent_m.max() < 0.5  # metres
    # the scenes' own (procedural) mug, converted to OBJ; YCB's sugar box copied with texture
    mug = load_model(model / "14_mug" / "textured_simple.obj")
    own = load_model(labelled_scenes[0] / "models" / "mug" / "mug.ply")
    np.testing.assert_allclose(mug.vertices.min(0), own.vertices.min(0), atol=1e-5)
    assert (model / "3_sugar_box" / "texture_map.png").is_file()
    assert ((model / "3_sugar_box" / "textured_simple.obj").read_bytes()
            == (YCB / "004_sugar_box" / "textured.obj").read_bytes())
    assert "CC BY 4.0" in (model / "ATTRIBUTION.txt").read_text()
    assert (model / "LICENSE.YCB.CC-BY-4.0.txt").is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert "ATTRIBUTION.txt" in man["attribution"]


def test_props_pose_other_camera_writes_its_k_and_warns_once(other_camera_export,
                                                            labelled_scenes):
    out, s, messages = other_camera_export
    assert len([m for m in messages if "camera the course loader hard-codes" in m]) == 1
    assert any("camera the course loader" in w for w in s.warnings)
    cam = Scene(labelled_scenes[0]).camera
    for split in ("train", "val"):
        d = out / "PROPS-Pose-Dataset" / split
        camera = json.loads((d / f"{split}_camera.json").read_text())
        gt = json.loads((d / f"{split}_gt.json").read_text())
        assert sorted(camera) == sorted(gt)
        for v in camera.values():
            np.testing.assert_allclose(np.reshape(v["cam_K"], (3, 3)), cam.K)
            assert (v["width"], v["height"]) == (320, 240)


def test_frame_with_more_than_ten_visible_objects_is_left_out():
    class Fake:
        object_classes = ["mug"] * 12
        px_count_image = np.array([[50] * 12, [50] * 10 + [0, 0], [50] * 12])
        px_count_visib = np.array([[40] * 12, [40] * 10 + [0, 0], [40] * 10 + [0, 0]])

    assert frame_instances(Fake, 0) is None          # 12 visible: cannot be written
    assert frame_instances(Fake, 1) == list(range(10))
    assert frame_instances(Fake, 2) == list(range(10))  # the 2 hidden ones are dropped


def test_props_pose_codec_round_trip(tmp_path):
    """gt_entry stores inv(T_cam_obj); read_gt inverts it back, as the course loader does."""
    from labeller.core.poses import axis_angle_to_matrix, make_pose
    from labeller.formats.bop import bop_json
    from labeller.formats.props_pose import gt_entry, read_gt

    T = make_pose(axis_angle_to_matrix([0.1, -0.2, 0.3], 0.4), [0.05, 0.02, 0.7])
    path = tmp_path / "train_gt.json"
    path.write_text(bop_json({"0": [gt_entry(4, T)], "3": []}))
    back = read_gt(path)
    assert sorted(back) == [0, 3] and back[3] == []
    (oid, T_back), = back[0]
    assert oid == 4 and np.allclose(T_back, T, atol=1e-12)
    assert np.allclose(json.loads(path.read_text())["0"][0]["cam_t_m2c"], inv_pose(T)[:3, 3])


# --- BOP ------------------------------------------------------------------------------------
def test_bop_codec_round_trip(tmp_path):
    """scene_camera.json / scene_gt.json written by the codec read back through it:
    T_world_cam via w2c in mm, T_cam_obj via m2c in mm, cam_K and depth_scale."""
    from labeller.core.poses import axis_angle_to_matrix, make_pose
    from labeller.formats import bop

    cam = CameraIntrinsics(640, 480, 612.5, 611.25, 321.75, 239.5, 4000.0)
    T_world_cam = make_pose(axis_angle_to_matrix([0.3, -0.1, 0.2], 2.0), [0.4, -0.25, 1.1])
    T_cam_obj = make_pose(axis_angle_to_matrix([-0.5, 0.8, 0.1], 1.2), [0.02, 0.03, 0.65])
    K = bop.intrinsics_K(cam)
    (tmp_path / bop.SCENE_CAMERA).write_text(bop.bop_json(
        {"7": bop.camera_entry(K, bop.depth_scale_mm(cam), T_world_cam)}))
    (tmp_path / bop.SCENE_GT).write_text(bop.bop_json({"7": [bop.gt_entry(5, T_cam_obj)]}))

    cams = bop.read_scene_json(tmp_path / bop.SCENE_CAMERA)
    assert cams is not None and list(cams) == ["7"]
    K_back, ds_mm = bop.read_intrinsics(cams["7"], "image 7")
    assert np.allclose(K_back, cam.K) and ds_mm == 0.25  # mm per depth unit
    assert bop.MM_PER_M / ds_mm == cam.depth_scale
    T_back = bop.read_camera_pose(cams["7"], "image 7")
    assert T_back is not None and np.allclose(T_back, T_world_cam, atol=1e-6)
    gts = bop.read_scene_json(tmp_path / bop.SCENE_GT)
    assert gts is not None
    oid, T_obj_back = bop.read_gt_object(gts["7"][0], "image 7, object 0")
    assert oid == 5 and np.allclose(T_obj_back, T_cam_obj, atol=1e-6)
    assert np.allclose(gts["7"][0]["cam_t_m2c"], T_cam_obj[:3, 3] * 1000.0)  # mm on disk
    assert bop.read_camera_pose({"cam_K": K}, "no pose") is None
    assert bop.read_scene_json(tmp_path / bop.SCENE_GT_INFO, required=False) is None
    # obj_id <-> class both ways for the PROPS classes
    ids = [bop.bop_obj_id(c, list(PROPS_CLASS_NAMES)) for c in PROPS_CLASS_NAMES]
    assert list(bop.bop_class_names(ids).values()) == list(PROPS_CLASS_NAMES)


def read_ply_ascii(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(vertex property names, vertex rows (V, P), faces (F, 3)) of an ASCII PLY."""
    lines = path.read_text().splitlines()
    end = lines.index("end_header")
    header = lines[:end]
    assert header[0] == "ply" and header[1] == "format ascii 1.0"
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    props = [h.split()[-1] for h in header if h.startswith("property") and "list" not in h]
    body = lines[end + 1:]
    verts = np.array([[float(x) for x in ln.split()] for ln in body[:nv]])
    faces = np.array([[int(x) for x in ln.split()] for ln in body[nv:nv + nf]])
    assert (faces[:, 0] == 3).all()
    return props, verts, faces[:, 1:]


def read_bop(root: Path, split: str = "test") -> dict:
    """A BOP dataset read as docs/bop_datasets_format.md describes it:
    {scene_id: {im_id: {"K", "depth_scale", "T_c_w" (mm), "gt": [{"obj_id", "T_c_m" (mm),
    info..., "mask", "mask_visib"}], "rgb": path, "depth": path}}}."""
    out = {}
    for sd in sorted((root / split).iterdir()):
        scene_id = int(sd.name)
        cams = json.loads((sd / "scene_camera.json").read_text())
        gts = json.loads((sd / "scene_gt.json").read_text())
        infos = json.loads((sd / "scene_gt_info.json").read_text())
        assert set(cams) == set(gts) == set(infos)
        scene = {}
        for key in cams:
            im = int(key)
            c = cams[key]
            T_c_w = np.eye(4)
            T_c_w[:3, :3] = np.array(c["cam_R_w2c"]).reshape(3, 3)
            T_c_w[:3, 3] = c["cam_t_w2c"]
            rgb = [p for p in (sd / "rgb").glob(f"{im:06d}.*")]
            assert len(rgb) == 1
            gt = []
            for k, (g, inf) in enumerate(zip(gts[key], infos[key], strict=True)):
                T = np.eye(4)
                T[:3, :3] = np.array(g["cam_R_m2c"]).reshape(3, 3)  # row-wise
                T[:3, 3] = g["cam_t_m2c"]
                mask = cv2.imread(str(sd / "mask" / f"{im:06d}_{k:06d}.png"), cv2.IMREAD_UNCHANGED)
                mv = cv2.imread(str(sd / "mask_visib" / f"{im:06d}_{k:06d}.png"),
                                cv2.IMREAD_UNCHANGED)
                gt.append({"obj_id": g["obj_id"], "T_c_m": T, **inf, "mask": mask > 0,
                           "mask_visib": mv > 0})
            scene[im] = {"K": np.array(c["cam_K"]).reshape(3, 3), "depth_scale": c["depth_scale"],
                         "T_c_w": T_c_w, "gt": gt, "rgb": rgb[0],
                         "depth": sd / "depth" / f"{im:06d}.png"}
        out[scene_id] = scene
    return out


@pytest.fixture(scope="module")
def bop_dataset(labelled_scenes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bop") / "bop"
    export("bop", out, labelled_scenes[:2], workers=2)
    return out


def test_bop_reads_back_as_the_labels(bop_dataset, labelled_scenes):
    data = read_bop(bop_dataset)
    assert sorted(data) == [1, 2]  # scene ids in command-line order
    n_checked = 0
    for scene_id, scene_dir in ((1, labelled_scenes[0]), (2, labelled_scenes[1])):
        scene = Scene(scene_dir)
        with Labels.open(scene.paths.labels) as lab:
            assert sorted(data[scene_id]) == lab.frame_ids.tolist()  # image id = frame id
            for im, d in data[scene_id].items():
                fl = lab.frame(im)
                np.testing.assert_allclose(d["K"], scene.camera.K, atol=1e-6)
                T_c_w = inv_pose(fl.T_world_cam)
                np.testing.assert_allclose(d["T_c_w"][:3, :3], T_c_w[:3, :3], atol=1e-7)
                np.testing.assert_allclose(d["T_c_w"][:3, 3], T_c_w[:3, 3] * 1000, atol=1e-4)
                assert d["rgb"].read_bytes() == scene.rgb_file(im).read_bytes()
                assert d["depth"].read_bytes() == scene.depth_file(im).read_bytes()
                depth_mm = cv2.imread(str(d["depth"]), cv2.IMREAD_UNCHANGED) * d["depth_scale"]
                np.testing.assert_allclose(depth_mm, scene.depth(im) * 1000, atol=1e-3)
                assert len(d["gt"]) == len(fl.objects)
                for k, (g, o) in enumerate(zip(d["gt"], fl.objects, strict=True)):
                    assert g["obj_id"] == BY_NAME[o.class_name].ycbv_id
                    np.testing.assert_allclose(g["T_c_m"][:3, :3], o.T_cam_obj[:3, :3], atol=1e-7)
                    np.testing.assert_allclose(g["T_c_m"][:3, 3], o.T_cam_obj[:3, 3] * 1000,
                                               atol=1e-4)
                    assert np.array_equal(g["mask"], fl.mask_full(k))
                    assert np.array_equal(g["mask_visib"], fl.mask_visib == o.id)
                    assert g["bbox_obj"] == o.bbox_obj and g["bbox_visib"] == o.bbox_visib
                    assert g["px_count_visib"] == int(g["mask_visib"].sum()) == o.px_count_visib
                    # the whole silhouette, also outside the image (the toolkit's 3x canvas)
                    assert g["px_count_all"] == o.px_count_all >= int(g["mask"].sum())
                    assert g["px_count_valid"] == o.px_count_valid
                    assert g["visib_fract"] == pytest.approx(o.visib_fract, abs=1e-6)
                    n_checked += 1
    assert n_checked == 2 * 16 * 4


def test_bop_world_and_model_poses_agree_with_projection(bop_dataset, labelled_scenes):
    """P_m2i = K [R_m2c, t_m2c] puts the model onto its mask (spec's definition, mm)."""
    _, verts, _ = read_ply_ascii(bop_dataset / "models" / "obj_000002.ply")  # cracker box
    pts_mm = verts[:, :3]
    data = read_bop(bop_dataset)
    hits = []
    for d in data[1].values():
        for g in d["gt"]:
            if g["obj_id"] != 2 or g["visib_fract"] < 0.95:
                continue
            p = (d["K"] @ (g["T_c_m"][:3, :3] @ pts_mm.T + g["T_c_m"][:3, 3:])).T
            uv = np.round(p[:, :2] / p[:, 2:]).astype(int)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < 320) & (uv[:, 1] >= 0) & (uv[:, 1] < 240)
            m = cv2.dilate(g["mask"].astype(np.uint8), np.ones((3, 3), np.uint8))
            hits.append(m[uv[inside, 1], uv[inside, 0]].mean())
    assert len(hits) >= 10 and min(hits) > 0.99


def test_bop_models_in_mm_with_info_and_symmetries(bop_dataset, labelled_scenes):
    info = json.loads((bop_dataset / "models" / "models_info.json").read_text())
    assert sorted(int(k) for k in info) == sorted(BY_NAME[c].ycbv_id for c in
                                                  ["cracker_box", "tomato_soup_can", "mug",
                                                   "gelatin_box"])
    for cls in ("cracker_box", "tomato_soup_can", "mug", "gelatin_box"):
        oid = BY_NAME[cls].ycbv_id
        props, verts, faces = read_ply_ascii(bop_dataset / "models" / f"obj_{oid:06d}.ply")
        assert props[:6] == ["x", "y", "z", "nx", "ny", "nz"]
        src = load_model(resolve_model_path(f"models/{cls}/{cls}.ply", labelled_scenes[0]))
        np.testing.assert_allclose(verts[:, :3].min(0), src.vertices.min(0) * 1000, atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(verts[:, 3:6], axis=1), 1.0, atol=1e-3)
        i = info[str(oid)]
        np.testing.assert_allclose([i["size_x"], i["size_y"], i["size_z"]],
                                   src.extent_m * 1000, atol=1e-3)
        np.testing.assert_allclose([i["min_x"], i["min_y"], i["min_z"]],
                                   src.vertices.min(0) * 1000, atol=1e-3)
        d = np.sqrt(((verts[:, None, :3] - verts[None, :, :3]) ** 2).sum(-1)).max()
        assert i["diameter"] == pytest.approx(d, abs=1e-2)
    # the BOP ycbv table: a soup can's label breaks its shape symmetry
    for oid in ("2", "4", "8", "14"):
        assert "symmetries_continuous" not in info[oid] and "symmetries_discrete" not in info[oid]


def test_bop_symmetry_table_and_obj_ids():
    box = np.array([[-1, -1, 0], [1, 1, 2.0]])
    # appearance (BOP ycbv models_info.json): only the master chef can and the marker
    assert symmetries("tuna_fish_can", box) == {}
    assert symmetries("tomato_soup_can", box) == {}
    half_z = symmetries("master_chef_can", np.array([[0, 0, 0], [2, 4, 10.0]]))
    # 180 degrees about z through the box centre (1, 2): x -> 2 - x, y -> 4 - y
    assert half_z == {"symmetries_discrete": [[-1.0, 0.0, 0.0, 2.0, 0.0, -1.0, 0.0, 4.0,
                                               0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]]}
    half_y = symmetries("large_marker", box)["symmetries_discrete"][0]
    np.testing.assert_allclose(np.reshape(half_y, (4, 4))[:3, :3], np.diag([-1.0, 1.0, -1.0]))
    # shape only (--geometric-symmetries): the cans and the marker turn freely
    assert symmetries("tuna_fish_can", box, geometric=True) == {
        "symmetries_continuous": [{"axis": [0.0, 0.0, 1.0], "offset": [0.0, 0.0, 0.0]}]}
    off = symmetries("master_chef_can", np.array([[0, 0, 0], [2, 4, 10.0]]), geometric=True)
    assert off["symmetries_continuous"][0]["offset"] == [1.0, 2.0, 0.0]  # axis through the box centre
    assert symmetries("cracker_box", np.zeros((2, 3))) == {}
    assert symmetries("cracker_box", np.zeros((2, 3)), geometric=True) == {}
    names = [*PROPS_CLASS_NAMES, "drill", "widget"]
    assert [bop_obj_id(c, names) for c in PROPS_CLASS_NAMES] == [1, 2, 3, 4, 5, 6, 8, 9, 14, 18]
    assert bop_obj_id("drill", names) == 110 and bop_obj_id("widget", names) == 111


def test_bop_files_camera_targets_and_manifest(bop_dataset, labelled_scenes):
    cam = json.loads((bop_dataset / "camera.json").read_text())
    c = Scene(labelled_scenes[0]).camera
    assert cam == {"cx": c.cx, "cy": c.cy, "depth_scale": 1.0, "fx": c.fx, "fy": c.fy,
                   "height": c.height, "width": c.width}
    targets = json.loads((bop_dataset / "test_targets_bop19.json").read_text())
    assert {t["scene_id"] for t in targets} == {1, 2}
    assert set(targets[0]) == {"im_id", "inst_count", "obj_id", "scene_id"}
    man = json.loads((bop_dataset / "manifest.json").read_text())
    assert man["export_format"] == "bop"
    files = [p for p in bop_dataset.rglob("*") if p.is_file() and p.name != "manifest.json"]
    assert len(man["files"]) == len(files)
    for p in files[:: max(1, len(files) // 50)]:
        assert man["files"][p.relative_to(bop_dataset).as_posix()] == sha256_file(p)


def test_bop_split_option_and_flagged_frames(labelled_scenes, tmp_path, capsys):
    scene = copy_scene(labelled_scenes[0], tmp_path / "scene_a")
    flag_labels(scene / "labels" / "labels.h5", [(2, 1), (5, 0)])
    export("bop", tmp_path / "b1", [scene], split="val")
    ims = sorted(int(p.stem) for p in (tmp_path / "b1" / "val" / "000001" / "rgb").iterdir())
    assert ims == [t for t in range(16) if t not in (2, 5)]
    assert not (tmp_path / "b1" / "test_targets_bop19.json").exists()
    export("bop", tmp_path / "b2", [scene], keep_flagged=True)
    assert len(list((tmp_path / "b2" / "test" / "000001" / "rgb").iterdir())) == 16
    rc = cli_main(["export", "--format", "bop", "--out", str(tmp_path / "b3"), str(scene),
                   "--split", "training", "--quiet"])
    assert rc == 2
    assert "labeller export: error: --split: must be train, val or test" in capsys.readouterr().err
    rc = cli_main(["export", "--format", "bop", "--out", str(tmp_path / "b3"), str(scene),
                   "--test-scenes", "scene_a", "--quiet"])
    assert rc == 2
    assert "--test-scenes: BOP puts every scene in one split" in capsys.readouterr().err


def test_bop_cli_and_existing_output(labelled_scenes, bop_dataset, capsys):
    from tests.helpers import snapshot

    before = snapshot(bop_dataset)
    rc = cli_main(["export", "--format", "bop", "--out", str(bop_dataset),
                   str(labelled_scenes[0]), "--quiet"])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert snapshot(bop_dataset) == before


def test_bop_other_class_and_ycb_model_attribution(labelled_scenes, tmp_path):
    """A class outside PROPS gets 100 + its index; a YCB mesh brings its licence along
    (annotations edited, propagated again)."""
    from labeller.formats.annotations import AnnotationDocument
    from labeller.propagate import PropagateConfig
    from labeller.propagate import run as propagate

    scene = copy_scene(labelled_scenes[0], tmp_path / "s")
    doc = AnnotationDocument.read(scene / "annotations.json")
    doc.classes = [*doc.classes, "widget"]
    doc.objects[0].class_name = "widget"
    use_ycb = YCB.is_dir()
    if use_ycb:
        soup = next(o for o in doc.objects if o.class_name == "tomato_soup_can")
        soup.model = "005_tomato_soup_can/textured.obj"
    doc.write(scene / "annotations.json")
    shutil.rmtree(scene / "labels")
    models = YCB if use_ycb else None
    propagate(PropagateConfig(scene=scene, models_dir=models))
    out = tmp_path / "b"
    export("bop", out, [scene], models_dir=models)
    gt = json.loads((out / "test" / "000001" / "scene_gt.json").read_text())
    assert {g["obj_id"] for g in gt["0"]} == {110, 4, 14, 8}
    assert (out / "models" / "obj_000110.ply").is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert man["obj_ids"]["widget"] == 110
    if use_ycb:
        assert "CC BY 4.0" in (out / "ATTRIBUTION.txt").read_text()
        assert "ATTRIBUTION.txt" in man["attribution"]
        _, verts, _ = read_ply_ascii(out / "models" / "obj_000004.ply")
        ycb = load_model(YCB / "005_tomato_soup_can" / "textured.obj")
        np.testing.assert_allclose(verts[:, :3].max(0), ycb.vertices.max(0) * 1000, atol=1e-2)
    else:
        assert not (out / "ATTRIBUTION.txt").exists()


def test_props_pose_depth_in_other_units_is_converted_to_mm(labelled_scenes, tmp_path):
    scene = copy_scene(labelled_scenes[0], tmp_path / "scene_a")
    cam = json.loads((scene / "camera.json").read_text())
    cam["depth_scale"] = 10000.0  # 0.1 mm units
    (scene / "camera.json").write_text(json.dumps(cam))
    for p in sorted((scene / "depth").iterdir()):
        d = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        p.unlink()  # break the hard link / copy before rewriting
        cv2.imwrite(str(p), (d.astype(np.uint32) * 10).clip(0, 65535).astype(np.uint16))
    other = copy_scene(labelled_scenes[1], tmp_path / "scene_b")
    out = tmp_path / "pp"
    with pytest.warns(ExportWarning):
        export("props-pose", out, [scene, other], test_scenes=["scene_b"])
    man = json.loads((out / "manifest.json").read_text())
    for im, (name, t) in man["image_sources"]["train"].items():
        assert name == "scene_a"
        mm = cv2.imread(str(out / f"PROPS-Pose-Dataset/train/depth/{int(im):06d}.png"),
                        cv2.IMREAD_UNCHANGED)
        orig = cv2.imread(str(labelled_scenes[0] / "depth" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert mm.dtype == np.uint16 and np.array_equal(mm, orig)
