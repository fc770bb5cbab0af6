"""BOP results CSV and PoseCNN .mat codecs: round trips, the real PoseCNN files, bad rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeller.core.errors import FormatError
from labeller.core.poses import axis_angle_to_matrix, make_pose, quat_wxyz_to_matrix
from labeller.formats.bop_results import (
    PoseEstimate,
    format_bop_results,
    parse_bop_results,
    read_bop_results,
    write_bop_results,
)
from labeller.formats.posecnn_results import (
    posecnn_class_to_ycbv_id,
    read_posecnn_dir,
    read_posecnn_mat,
)
from tests.helpers import POSECNN


def _pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_pose(axis_angle_to_matrix(rng.normal(size=3), rng.uniform(0, np.pi)),
                     rng.uniform(-0.3, 0.3, 3) + [0, 0, 0.8])


def test_bop_csv_round_trip_keeps_poses_in_metres(tmp_path):
    est = [PoseEstimate(t, oid, 0.5 + 0.1 * t, _pose(t), scene_id=3, time_s=0.25)
           for t, oid in [(0, 1), (4, 14), (7, 18)]]
    path = tmp_path / "r.csv"
    write_bop_results(path, est)
    text = path.read_text()
    assert text.splitlines()[0] == "scene_id,im_id,obj_id,score,R,t,time"
    # t is written in millimetres
    assert f"{est[0].T_cam_obj[2, 3] * 1000:.5f}" in text.splitlines()[1]
    back = read_bop_results(path)
    assert [(e.frame_id, e.obj_id, e.scene_id) for e in back] == [(0, 1, 3), (4, 14, 3), (7, 18, 3)]
    for a, b in zip(est, back, strict=True):
        np.testing.assert_allclose(b.T_cam_obj, a.T_cam_obj, atol=1e-7)
        assert b.score == pytest.approx(a.score) and b.time_s == pytest.approx(0.25)
    assert back[1].where == f"{path}: line 3"


def test_bop_csv_without_header_and_toolkit_rounding(tmp_path):
    # The BOP toolkit writes R and t with few decimals; that is still a rotation.
    R = np.round(_pose(1)[:3, :3], 4)
    line = f"1,2,5,0.9,{' '.join(map(str, R.reshape(-1)))},10.0 -20.0 700.0,-1\n"
    (e,) = parse_bop_results(line, "x.csv")
    np.testing.assert_allclose(e.T_cam_obj[:3, 3], [0.01, -0.02, 0.7])
    assert abs(np.linalg.det(e.T_cam_obj[:3, :3]) - 1) < 1e-9


@pytest.mark.parametrize("text, message", [
    ("", "x.csv: holds no estimates (empty file)"),
    ("scene_id,im_id,obj_id,score,R,t,time\n", "x.csv: holds no estimates (empty file)"),
    ("1,2,5,0.9,1 0 0 0 1 0 0 0 1,1 2 3\n", "x.csv: line 1: expected 7 comma-separated columns"),
    ("1,2,5,0.9,1 0 0 0 1 0 0 0,1 2 3,-1\n", "x.csv: line 1: R must have 9 numbers"),
    ("h\n1,2,5,0.9,1.2 0 0 0 1 0 0 0 1,1 2 3,-1\n", "x.csv: line 2: R is not a rotation matrix"),
    ("1,2,5,0.9,1 0 0 0 1 0 0 0 -1,1 2 3,-1\n", "x.csv: line 1: R is not a rotation matrix"),
    ("1,-2,5,0.9,1 0 0 0 1 0 0 0 1,1 2 3,-1\n", "x.csv: line 1: im_id must be >= 0"),
    ("1,two,5,0.9,1 0 0 0 1 0 0 0 1,1 2 3,-1\n", "x.csv: line 1: im_id must be an integer"),
    ("1,2,5,0.9,1 0 0 0 1 0 0 0 1,1 nan 3,-1\n", "x.csv: line 1: t has NaN"),
])
def test_bop_csv_bad_rows_name_file_and_line(text, message):
    with pytest.raises(FormatError) as exc:
        parse_bop_results(text.replace("h\n", "scene_id,im_id,obj_id,score,R,t,time\n"), "x.csv")
    assert str(exc.value).startswith(message), str(exc.value)
    assert "\n" not in str(exc.value)


def test_format_is_the_toolkits_column_order():
    e = PoseEstimate(12, 14, 0.75, np.eye(4), scene_id=2)
    line = format_bop_results([e]).splitlines()[1].split(",")
    assert line[:4] == ["2", "12", "14", "0.750000"] and len(line) == 7


def test_posecnn_class_index_mapping():
    # PoseCNN's classes are YCB-V 0..18, 20, 21: index 19 is the extra large clamp (20).
    assert [posecnn_class_to_ycbv_id(i) for i in (1, 14, 18, 19, 20)] == [1, 14, 18, 20, 21]


@pytest.fixture
def posecnn():
    if not POSECNN.is_dir():
        pytest.skip(f"real data not found at {POSECNN}")
    return POSECNN


def test_real_posecnn_mat_agrees_with_the_named_json(posecnn):
    """The .mat reader (quaternion order wxyz, metres, class ids) against the 3x3 rotations
    and names of posecnn_results_named.json, written independently from the same files."""
    named = json.loads((posecnn / "posecnn_results_named.json").read_text())["frames"]
    from labeller.formats.bop_results import YCBV_OBJECTS

    est = read_posecnn_dir(posecnn / "posecnn_results")
    assert sorted({e.frame_id for e in est}) == [0, 1, 2, 3]
    for e in est:
        frame = named[f"{e.frame_id:06d}"]
        row = int(e.where.rsplit(" ", 1)[1])
        o = frame[row]
        assert YCBV_OBJECTS[e.obj_id] == o["ycb_name"]
        np.testing.assert_allclose(e.T_cam_obj[:3, :3], np.reshape(o["R_rowmajor"], (3, 3)), atol=2e-5)
        np.testing.assert_allclose(e.T_cam_obj[:3, 3], o["t_m"], atol=2e-6)
        assert e.score == pytest.approx(o["score"], abs=1e-4)
        np.testing.assert_allclose(e.T_cam_obj[:3, :3], quat_wxyz_to_matrix(o["q_wxyz"]), atol=1e-4)


def test_posecnn_mat_without_poses_refined(tmp_path):
    import scipy.io

    p = tmp_path / "000002-color.png.mat"
    scipy.io.savemat(p, {"poses": np.zeros((1, 7)), "rois": np.zeros((1, 7))})
    with pytest.raises(FormatError) as exc:
        read_posecnn_mat(p)
    assert str(exc.value).startswith(f"{p}: no 'poses_refined' array")


def test_posecnn_mat_bad_quaternion_names_row(tmp_path):
    import scipy.io

    p = tmp_path / "000002-color.png.mat"
    poses = np.array([[1, 0, 0, 0, 0, 0, 0.5], [2, 0, 0, 0, 0, 0, 0.5]], float)
    rois = np.array([[0, 14, 0, 0, 10, 10, 0.9]] * 2, float)
    scipy.io.savemat(p, {"poses_refined": poses, "rois": rois})
    with pytest.raises(FormatError) as exc:
        read_posecnn_mat(p)
    assert str(exc.value).startswith(f"{p}: row 1: quaternion qw qx qy qz is not unit length")


@pytest.mark.parametrize("cls", [0, 21])
def test_posecnn_mat_class_index_outside_its_classes_names_row(tmp_path, cls):
    import scipy.io

    p = tmp_path / "000002-color.png.mat"
    poses = np.array([[1, 0, 0, 0, 0, 0, 0.5]], float)
    rois = np.array([[0, cls, 0, 0, 10, 10, 0.9]], float)
    scipy.io.savemat(p, {"poses_refined": poses, "rois": rois})
    with pytest.raises(FormatError) as exc:
        read_posecnn_mat(p)
    assert str(exc.value) == (f"{p}: row 0: rois class index must be in 1..20 (0 is background), "
                              f"got {cls}")
