"""Registering depth into the colour camera: a synthetic tilted plane (edges within 1 px,
depth within quantisation) and a 7-Scenes-like unaligned pair from real frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labeller.cli.main import main as cli
from labeller.core.poses import axis_angle_to_matrix, inv_pose, make_pose
from labeller.formats.scene import Scene
from labeller.geometry.depth_registration import register_depth
from tests.helpers import SHARED_DATA

K_DEPTH = np.array([[290.0, 0, 161.3], [0, 291.0, 118.7], [0, 0, 1]])  # 320x240
K_COLOUR = np.array([[612.0, 0, 318.2], [0, 611.0, 243.9], [0, 0, 1]])  # 640x480
# The depth camera 2.5 cm left of the colour camera, turned by 2 degrees: like a D435.
T_COLOUR_DEPTH = make_pose(axis_angle_to_matrix([0.2, 1.0, 0.1], np.deg2rad(2.0)),
                           [-0.025, 0.0012, 0.0021])
# A rectangle on a tilted plane, in the depth camera's frame: z = Z0 + SLOPE * x,
# |x| <= HALF_W, |y| <= HALF_H (metres).
Z0, SLOPE, HALF_W, HALF_H = 0.9, 0.25, 0.22, 0.16


def _plane_hits(K: np.ndarray, size: tuple[int, int], T_cam_depth: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a camera (pose T_cam_depth of the depth frame in it), by intersecting
    each pixel's ray with the plane: (z in that camera, inside-the-rectangle mask, signed
    distance to the rectangle's border in pixels: > 0 outside, < 0 inside)."""
    w, h = size
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1)
    T_depth_cam = inv_pose(T_cam_depth)
    R, o = T_depth_cam[:3, :3], T_depth_cam[:3, 3]
    d = rays @ R.T  # ray directions in the depth frame
    # plane: z - SLOPE x = Z0  ->  (o + s d).z - SLOPE (o + s d).x = Z0
    s = (Z0 - o[2] + SLOPE * o[0]) / (d[..., 2] - SLOPE * d[..., 0])
    p = o + s[..., None] * d
    outside_m = np.maximum(np.abs(p[..., 0]) - HALF_W, np.abs(p[..., 1]) - HALF_H)
    gy, gx = np.gradient(outside_m)  # metres per pixel across the border, locally
    signed_px = outside_m / np.maximum(np.hypot(gx, gy), 1e-12)
    return s, (outside_m <= 0) & (s > 0), signed_px  # rays have z = 1: s is the camera's z


def plane_depth_image() -> np.ndarray:
    z, inside, _ = _plane_hits(K_DEPTH, (320, 240), np.eye(4))
    return np.where(inside, np.round(z * 1000), 0).astype(np.uint16)


def edge_errors_px(depth_mm: np.ndarray) -> tuple[float, float]:
    """(spill, missed) in px against the true rectangle seen by the colour camera (its
    border is sub-pixel, from the analytic plane): how far outside the border the
    farthest registered pixel centre lies, and how far inside it the deepest empty one."""
    _, _, signed_px = _plane_hits(K_COLOUR, (640, 480), T_COLOUR_DEPTH)
    got = depth_mm > 0
    return (float(signed_px[got].max(initial=0.0)), float((-signed_px[~got]).max(initial=0.0)))


def test_plane_registers_within_one_pixel_and_quantisation():
    d = plane_depth_image()
    reg = register_depth(d, K_DEPTH, K_COLOUR, (640, 480), T_COLOUR_DEPTH, 1000.0)
    assert reg.shape == (480, 640) and reg.dtype == np.uint16
    # Every depth sample lands on the colour pixel its 3D point projects to (computed
    # here independently): placement error <= 0.5 px, the rounding to a pixel centre.
    z_d, inside_d, _ = _plane_hits(K_DEPTH, (320, 240), np.eye(4))
    v, u = np.nonzero(inside_d)
    rays = np.stack([(u - K_DEPTH[0, 2]) / K_DEPTH[0, 0], (v - K_DEPTH[1, 2]) / K_DEPTH[1, 1],
                     np.ones(len(u))], -1) * (d[v, u] / 1000.0)[:, None]
    p_c = rays @ T_COLOUR_DEPTH[:3, :3].T + T_COLOUR_DEPTH[:3, 3]
    uc = K_COLOUR[0, 0] * p_c[:, 0] / p_c[:, 2] + K_COLOUR[0, 2]
    vc = K_COLOUR[1, 1] * p_c[:, 1] / p_c[:, 2] + K_COLOUR[1, 2]
    hit = reg[np.round(vc).astype(int), np.round(uc).astype(int)].astype(float)
    assert np.all(np.abs(hit - p_c[:, 2] * 1000) <= 1.0)
    # Edges: no registered pixel centre lies even half a pixel outside the true border
    # (registration error < 1 px); the deepest empty pixel inside it is less than one
    # depth-camera pixel (612/290 = 2.1 colour px) in: the depth camera measures nothing
    # nearer the border than its own sampling.
    spill, missed = edge_errors_px(reg)
    assert spill < 0.6
    assert missed < K_COLOUR[0, 0] / K_DEPTH[0, 0]
    z, inside, _ = _plane_hits(K_COLOUR, (640, 480), T_COLOUR_DEPTH)
    interior = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (reg[interior] > 0).mean() > 0.995  # dense although colour samples 2x finer
    err_mm = np.abs(reg[interior].astype(float) - z[interior] * 1000)
    # A depth pixel lands up to 0.5 colour px from the centre it is written at; on this
    # slope that is < 0.4 mm, plus 0.5 mm of rounding on each side.
    assert np.median(err_mm) < 0.6 and err_mm.max() <= 2.0
    # Without registration (the depth image as it is) the edges are tens of px off.
    naive = cv2.resize(d, (640, 480), interpolation=cv2.INTER_NEAREST)
    assert max(edge_errors_px(naive)) > 10


def test_nearer_surface_wins_and_holes_stay_holes():
    # A small near square in front of a far wall, shifted sideways: the z-buffer keeps
    # the near one; the wall behind its old place (seen only by the colour camera) is 0.
    d = np.full((240, 320), 2000, np.uint16)
    d[100:140, 140:180] = 600
    K = K_DEPTH
    T = make_pose(np.eye(3), [0.05, 0.0, 0.0])
    reg = register_depth(d, K, K, (320, 240), T, 1000.0)
    shift_near = K[0, 0] * 0.05 / 0.6  # px
    shift_far = K[0, 0] * 0.05 / 2.0
    c = int(round(160 + shift_near))
    assert reg[120, c] == 600
    # Where the colour camera sees the wall the square hid from the depth camera (left of
    # the square's new place), there is no measurement.
    gap = reg[120, int(140 + shift_far + 2): int(140 + shift_near - 2)]
    assert gap.size > 5 and np.all(gap == 0)
    assert reg[20, 20] == 2000


def _seven_scenes_unaligned(root: Path, ids=(0, 1, 45)) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 7-Scenes-like folder from real kitchen frames, whose depth is seen by a depth
    camera at a known offset from the colour camera: the real depth is re-rendered into
    that camera (half resolution), then the importer must bring it back."""
    frames = SHARED_DATA / "rgbd/sevenscenes_kitchen/frames"
    if not frames.is_dir():
        pytest.skip(f"real data not found at {frames}")
    seq = root / "seq-01"
    seq.mkdir(parents=True)
    K_c = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]])
    K_d = np.array([[292.5, 0, 159.75], [0, 292.5, 119.75], [0, 0, 1]])
    T_c_d = make_pose(axis_angle_to_matrix([0, 1, 0], np.deg2rad(1.5)), [-0.03, 0.002, 0.0])
    for t in ids:
        stem = f"frame-{t:06d}"
        shutil.copy(frames / f"{stem}.color.jpg", seq / f"{stem}.color.jpg")
        shutil.copy(frames / f"{stem}.pose.txt", seq / f"{stem}.pose.txt")
        real = cv2.imread(str(frames / f"{stem}.depth.png"), cv2.IMREAD_UNCHANGED)
        real = np.where(real == 65535, 0, real).astype(np.uint16)
        in_depth_cam = register_depth(real, K_c, K_d, (320, 240), inv_pose(T_c_d), 1000.0)
        cv2.imwrite(str(seq / f"{stem}.depth.png"), in_depth_cam)
    np.savetxt(root / "camera-intrinsics.txt", K_c)
    np.savetxt(root / "depth-intrinsics.txt", K_d)
    np.savetxt(root / "depth-to-color-extrinsics.txt", T_c_d)
    return root, K_c, T_c_d


def test_7scenes_unaligned_pair_is_registered_at_import(tmp_path, capsys):
    src, K_c, T_c_d = _seven_scenes_unaligned(tmp_path / "kitchen")
    dest = tmp_path / "scene"
    assert cli(["import", "7scenes", str(src), str(dest)]) == 0
    out = capsys.readouterr().out
    assert "depth registered into the colour camera at import" in out
    scene = Scene(dest)
    assert scene.depth_raw(0).shape == (480, 640)
    real = cv2.imread(str(SHARED_DATA / "rgbd/sevenscenes_kitchen/frames/frame-000001.depth.png"),
                      cv2.IMREAD_UNCHANGED).astype(float)
    got = scene.depth_raw(1).astype(float)
    real = np.where(real == 65535, 0, real)

    def agreement(depth: np.ndarray) -> tuple[float, float]:
        """(median |error| mm, fraction within 10 mm) against the real depth."""
        both = (depth > 0) & (real > 0)
        assert both.mean() > 0.6
        e = np.abs(depth.astype(float) - real)[both]
        return float(np.median(e)), float(np.mean(e <= 10))

    # The floor: the same round trip through the half-resolution camera with no offset
    # (only resampling: the z-buffer keeps the nearest of 4 pixels on the way there).
    K_d = np.loadtxt(src / "depth-intrinsics.txt")
    same_place = register_depth(register_depth(real.astype(np.uint16), K_c, K_d, (320, 240),
                                               np.eye(4), 1000.0), K_d, K_c, (640, 480),
                                np.eye(4), 1000.0)
    med_floor, within_floor = agreement(same_place)
    med, within = agreement(got)
    assert med <= 3.0 and within >= within_floor - 0.05
    # Not registering (the depth image stretched to colour size) is far off.
    stretched = cv2.resize(cv2.imread(str(src / "seq-01/frame-000001.depth.png"),
                                      cv2.IMREAD_UNCHANGED), (640, 480),
                           interpolation=cv2.INTER_NEAREST)
    med_raw, within_raw = agreement(stretched)
    assert med_raw > 3 * max(med, 1.0) and within_raw < within - 0.2
    # The poses were the depth camera's: now they are the colour camera's.
    gt = scene.gt_trajectory()
    T_w_d = [np.loadtxt(src / "seq-01" / f"frame-{t:06d}.pose.txt") for t in (0, 45)]
    want = inv_pose(T_w_d[0] @ inv_pose(T_c_d)) @ (T_w_d[1] @ inv_pose(T_c_d))
    np.testing.assert_allclose(gt[2], want, atol=5e-4)  # KinectFusion R off by ~1e-4
    depth_cam_motion = inv_pose(T_w_d[0]) @ T_w_d[1]
    assert np.abs(depth_cam_motion - want).max() > 2e-3  # the conversion mattered (4x atol)
    assert cli(["info", str(dest)]) == 0
    assert "depth registered into the colour camera at import" in capsys.readouterr().out


def test_7scenes_no_register_and_half_calibration(tmp_path, capsys):
    src, _, _ = _seven_scenes_unaligned(tmp_path / "kitchen", ids=(0,))
    assert cli(["import", "7scenes", str(src), str(tmp_path / "s1"), "--no-register"]) == 2
    assert "depth size 320x240 differs from frame-000000.color.jpg's 640x480" in \
        capsys.readouterr().err
    (src / "depth-to-color-extrinsics.txt").unlink()
    assert cli(["import", "7scenes", str(src), str(tmp_path / "s2")]) == 2
    assert ("depth-intrinsics.txt: needs depth-to-color-extrinsics.txt beside it to register "
            "depth") in capsys.readouterr().err
    (src / "depth-to-color-extrinsics.txt").write_text("1 0 0\n0 1 0\n")
    assert cli(["import", "7scenes", str(src), str(tmp_path / "s3")]) == 2
    assert "expected a 4x4 matrix (T_color_depth)" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("s1", "s2", "s3"))


def _depth_edge_to_colour_edge_px(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per pixel on the near side of a depth discontinuity (neighbours > 10 % apart), the
    distance (px) to the nearest colour edge (Canny): small where depth and colour agree
    on where an object's outline is."""
    grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY), (5, 5), 1.2)
    not_edge = (cv2.Canny(grey, 40, 120) == 0).astype(np.uint8)
    dist = cv2.distanceTransform(not_edge, cv2.DIST_L2, 5)
    d = depth.astype(np.float32)
    near = np.zeros(d.shape, bool)
    for a, b in ((np.s_[:, 1:], np.s_[:, :-1]), (np.s_[1:, :], np.s_[:-1, :])):
        za, zb = d[a], d[b]
        jump = (za > 0) & (zb > 0) & (np.abs(za - zb) > 0.1 * np.minimum(za, zb))
        near[a] |= jump & (za < zb)
        near[b] |= jump & (zb <= za)
    return dist[near]


def test_7scenes_kinect_defaults_put_depth_edges_on_colour_edges(tmp_path, capsys):
    # A tracker-independent check of the Kinect v1 default calibration on real 7-Scenes
    # frames: registered, depth outlines lie on the colour outlines; with the depth
    # camera's K used for colour (--no-register) they lie several pixels off.
    src = SHARED_DATA / "rgbd/sevenscenes_kitchen"
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    seq = tmp_path / "kitchen" / "seq-01"
    seq.mkdir(parents=True)
    ids = (0, 20, 40, 59)
    for i, t in enumerate(ids):
        for kind in ("color.jpg", "depth.png", "pose.txt"):
            shutil.copy(src / f"frames/frame-{t:06d}.{kind}", seq / f"frame-{i:06d}.{kind}")
    shutil.copy(src / "camera-intrinsics.txt", seq.parent / "camera-intrinsics.txt")
    # The same K, colour and depth cameras in one place: the 2.5 cm baseline matters.
    no_baseline = tmp_path / "no_baseline"
    shutil.copytree(seq.parent, no_baseline)
    np.savetxt(no_baseline / "camera-intrinsics.txt", [[525.0, 0, 319.5], [0, 525.0, 239.5],
                                                       [0, 0, 1]])
    shutil.copy(src / "camera-intrinsics.txt", no_baseline / "depth-intrinsics.txt")
    np.savetxt(no_baseline / "depth-to-color-extrinsics.txt", np.eye(4))
    near = {}
    for name, folder, args in (("registered", seq.parent, []),
                               ("unregistered", seq.parent, ["--no-register"]),
                               ("no baseline", no_baseline, [])):
        assert cli(["import", "7scenes", str(folder), str(tmp_path / name), *args]) == 0
        scene = Scene(tmp_path / name)
        d = np.concatenate([_depth_edge_to_colour_edge_px(scene.rgb(i)[..., ::-1],
                                                          scene.depth_raw(i))
                            for i in range(len(ids))])
        assert d.size > 2000
        near[name] = float(np.mean(d <= 2.0)), float(np.median(d))
    capsys.readouterr()
    # Measured: within 2 px 43 % / 32 % / 15 %, median 3.0 / 4.4 / 9.8 px.
    (reg_within, reg_median), (raw_within, raw_median), (flat_within, flat_median) = \
        near["registered"], near["unregistered"], near["no baseline"]
    assert reg_within > max(2 * raw_within, flat_within + 0.05), near
    assert reg_median < flat_median < raw_median and raw_median > 6.0, near
