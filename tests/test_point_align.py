"""Align by points (Qt-free): the rigid fit of clicked model points onto back-projected
frame points, its refusals, and the model view's orbit camera and ray-cast picking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from labeller.annotate.point_align import (
    MIN_OFF_LINE_SPREAD_M,
    ModelViewCamera,
    PointAlignError,
    model_caster,
    pick_model_point,
    render_model_view,
    scene_point_world,
    solve_point_alignment,
)
from labeller.core.camera import CameraIntrinsics
from labeller.core.errors import BadInput
from labeller.core.poses import (
    inv_pose,
    make_pose,
    rotation_error_deg,
    transform_points,
    translation_error_m,
)
from labeller.formats.models import load_model
from tests.helpers import SHARED_DATA

# Points spread over an object about 20 cm across (object frame, metres).
OBJECT_POINTS = np.array([[0.10, 0.02, 0.01], [-0.09, 0.05, -0.02], [0.01, -0.10, 0.04],
                          [0.02, 0.03, 0.09], [-0.03, -0.04, -0.08], [0.06, 0.08, -0.05]])
CRACKER_BOX = SHARED_DATA / "ycb_models" / "003_cracker_box" / "textured.obj"


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    R = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    return make_pose(R, rng.uniform(-1.0, 1.0, 3))


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_noiseless_pairs_recover_the_pose_exactly(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        T_gt = _random_pose(rng)
        fit = solve_point_alignment(OBJECT_POINTS[:n], transform_points(T_gt, OBJECT_POINTS[:n]))
        assert np.allclose(fit.T_world_obj, T_gt, atol=1e-9)
        assert fit.residuals_mm.shape == (n,) and fit.max_mm < 1e-6
        assert np.isclose(np.linalg.det(fit.T_world_obj[:3, :3]), 1.0)


def _kabsch(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """The least-squares rigid fit of P onto Q, independently (scipy's align_vectors)."""
    cp, cq = P.mean(0), Q.mean(0)
    R, _ = Rotation.align_vectors(Q - cq, P - cp)
    return make_pose(R.as_matrix(), cq - R.as_matrix() @ cp)


def test_noisy_pairs_give_the_least_squares_fit_within_1mm_half_degree():
    """2 mm of noise on every frame point (a click's error): the fit is the
    least-squares optimum (an independent Kabsch agrees), its residuals are the noise,
    and with 6 pairs spread over 30 cm it lands within 1 mm / 0.5° of the truth (at the
    points' centre, over 200 seeded trials: the median, and 1.5 mm / 0.8° for 9 in 10).

    That is what the noise allows, not more: the rotation error goes as noise / spread
    (over 20 cm the median is 0.55°) and the centre's as noise / sqrt(pairs) (3 pairs:
    about 1 mm and 1°)."""
    rng = np.random.default_rng(7)
    P = 1.5 * OBJECT_POINTS
    centre = P.mean(0)
    t_err, r_err = [], []
    for _ in range(200):
        T_gt = _random_pose(rng)
        noise = rng.normal(size=(6, 3))
        noise *= 0.002 / np.linalg.norm(noise, axis=1, keepdims=True)
        Q = transform_points(T_gt, P) + noise
        fit = solve_point_alignment(P, Q)
        assert np.allclose(fit.T_world_obj, _kabsch(P, Q), atol=1e-9)
        assert fit.max_mm < 4.0 and 0.5 < fit.rms_mm < 2.0
        # nothing fits better than the least-squares pose, not even the truth
        sq_gt = (np.linalg.norm(transform_points(T_gt, P) - Q, axis=1) ** 2).sum()
        assert (fit.residuals_mm ** 2).sum() / 1e6 <= sq_gt + 1e-12
        t_err.append(np.linalg.norm(transform_points(fit.T_world_obj, centre[None])
                                    - transform_points(T_gt, centre[None])) * 1000)
        r_err.append(rotation_error_deg(fit.T_world_obj, T_gt))
    assert np.median(t_err) < 1.0 and np.median(r_err) < 0.5
    assert np.percentile(t_err, 90) < 1.5 and np.percentile(r_err, 90) < 0.8


def test_mismatched_counts_are_refused():
    P = OBJECT_POINTS[:4]
    with pytest.raises(PointAlignError, match=r"4 model point\(s\) but 3 frame point\(s\)"):
        solve_point_alignment(P, P[:3])
    assert issubclass(PointAlignError, BadInput)


def test_fewer_than_three_pairs_are_refused():
    with pytest.raises(PointAlignError, match=r"2 point pair\(s\): at least 3 are needed"):
        solve_point_alignment(OBJECT_POINTS[:2], OBJECT_POINTS[:2])
    with pytest.raises(PointAlignError, match=r"0 point pair\(s\)"):
        solve_point_alignment([], [])


def test_collinear_points_are_refused_on_either_side():
    line = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.12, 0.0005, 0.0], [0.2, 0.0, 0.0]])
    good = OBJECT_POINTS[:4]
    with pytest.raises(PointAlignError, match="the model points lie on one line"):
        solve_point_alignment(line, good)
    with pytest.raises(PointAlignError, match="the frame points lie on one line"):
        solve_point_alignment(good, line)
    # all at one spot is the same problem
    with pytest.raises(PointAlignError, match="lie on one line"):
        solve_point_alignment(np.zeros((3, 3)), good[:3])
    # just off the line by more than the limit: accepted
    bent = line.copy()
    bent[1, 1] = 4 * MIN_OFF_LINE_SPREAD_M
    solve_point_alignment(bent, transform_points(make_pose(np.eye(3), [0, 0, 1]), bent))


def test_non_finite_points_are_refused():
    P = OBJECT_POINTS[:3].copy()
    P[1, 2] = np.nan
    with pytest.raises(PointAlignError, match="model point has NaN"):
        solve_point_alignment(P, OBJECT_POINTS[:3])


def test_frame_point_back_projects_through_the_depth_and_refuses_missing_depth():
    cam = CameraIntrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)
    depth = np.full((48, 64), 0.8, np.float32)
    depth[:, :20] = 0.0  # the sensor measured nothing on the left
    T_wc = make_pose(Rotation.from_euler("y", 30, degrees=True).as_matrix(), [0.1, 0, 0])
    p = scene_point_world(cam, T_wc, depth, 40, 10, frame=3)
    assert np.allclose(transform_points(inv_pose(T_wc), p[None])[0],
                       cam.backproject(40, 10, 0.8).reshape(3))
    with pytest.raises(PointAlignError,
                       match=r"pixel \(5, 10\) of frame 3 has no depth: click a point the "
                             r"sensor measured"):
        scene_point_world(cam, T_wc, depth, 5, 10, frame=3)
    with pytest.raises(PointAlignError, match=r"pixel \(70, 10\) is outside the 64x48 image"):
        scene_point_world(cam, T_wc, depth, 70, 10)


def test_model_view_picks_surface_points_of_a_real_mesh():
    """The model view of the YCB cracker box (../shared): a picked pixel gives a point on
    the mesh that projects back onto that pixel, at the rendered depth; orbiting turns
    the view about the model's centre; the shading shows the model on the background."""
    model = load_model(CRACKER_BOX)
    caster = model_caster(model)
    view = ModelViewCamera.facing(model, Rotation.from_euler("xy", [-30, 40], degrees=True)
                                  .as_matrix(), 160, 120)
    img = render_model_view(caster, view, (200, 40, 40))
    hit = img.depth > 0
    assert 0.15 < hit.mean() < 0.9  # the model fills a good part of the view
    assert len(np.unique(img.rgb[hit].reshape(-1, 3), axis=0)) > 3  # shaded faces
    assert (img.rgb[~hit] == img.rgb[0, 0]).all()
    vs, us = np.nonzero(hit)
    for k in range(0, len(us), max(len(us) // 7, 1)):
        u, v = int(us[k]), int(vs[k])
        p = pick_model_point(caster, view, u, v)
        assert p is not None
        uv, z = view.project(p[None])
        assert np.allclose(uv[0], (u, v), atol=1e-3) and abs(z[0] - img.depth[v, u]) < 1e-4
    assert pick_model_point(caster, view, 0, 0) is None  # the corner misses the model
    assert pick_model_point(caster, view, -1, 5) is None
    turned = view.orbit(90.0 / 0.5, 0.0)  # a drag of 180 px right: 90° about camera y
    c_before = transform_points(view.T_vcam_obj, view.centre_obj[None])[0]
    c_after = transform_points(turned.T_vcam_obj, turned.centre_obj[None])[0]
    assert np.allclose(c_before, c_after)  # it turns about the model's centre
    assert abs(rotation_error_deg(turned.T_vcam_obj, view.T_vcam_obj) - 90.0) < 1e-6
    closer = view.zoomed(2.0)
    assert np.isclose(closer.distance_m, view.distance_m / 2)
    assert translation_error_m(view.zoomed(1e6).T_vcam_obj, view.T_vcam_obj) > 0
