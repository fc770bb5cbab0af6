import numpy as np
import pytest

from labeller.core.poses import (
    add_error,
    adds_error,
    axis_angle_to_matrix,
    compose,
    inv_pose,
    make_pose,
    matrix_to_quat_wxyz,
    matrix_to_quat_xyzw,
    pose_from_tq_xyzw,
    pose_problem,
    quat_wxyz_to_matrix,
    quat_xyzw_to_matrix,
    rotation_error_deg,
    transform_points,
    translation_error_m,
)
from labeller.formats.trajectory import TimedTrajectory, Trajectory


def random_pose(rng):
    R = axis_angle_to_matrix(rng.normal(size=3), rng.uniform(-np.pi, np.pi))
    return make_pose(R, rng.normal(size=3))


def test_quaternion_orders_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        R = random_pose(rng)[:3, :3]
        np.testing.assert_allclose(quat_xyzw_to_matrix(matrix_to_quat_xyzw(R)), R, atol=1e-12)
        np.testing.assert_allclose(quat_wxyz_to_matrix(matrix_to_quat_wxyz(R)), R, atol=1e-12)


def test_quaternion_order_is_explicit():
    # 90 degrees about z: (qx, qy, qz, qw) = (0, 0, sin45, cos45)
    s = np.sqrt(0.5)
    Rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(quat_xyzw_to_matrix([0, 0, s, s]), Rz, atol=1e-12)
    np.testing.assert_allclose(quat_wxyz_to_matrix([s, 0, 0, s]), Rz, atol=1e-12)
    np.testing.assert_allclose(matrix_to_quat_xyzw(Rz), [0, 0, s, s], atol=1e-12)


def test_inverse_and_composition():
    rng = np.random.default_rng(1)
    A, B = random_pose(rng), random_pose(rng)
    np.testing.assert_allclose(compose(A, inv_pose(A)), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(inv_pose(compose(A, B)), compose(inv_pose(B), inv_pose(A)), atol=1e-12)
    p = rng.normal(size=(5, 3))
    np.testing.assert_allclose(transform_points(inv_pose(A), transform_points(A, p)), p, atol=1e-12)


@pytest.mark.parametrize("T, words", [
    (np.eye(3), "4x4"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.diag([2.0, 1, 1, 1]), "not rigid"),
    (np.diag([-1.0, 1, 1, 1]), "det"),
    (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), "last row"),
])
def test_pose_problems(T, words):
    assert words in pose_problem(T)


def test_errors():
    A = np.eye(4)
    B = make_pose(axis_angle_to_matrix([0, 0, 1], np.radians(30)), [0.03, 0.04, 0])
    assert rotation_error_deg(A, B) == pytest.approx(30)
    assert translation_error_m(A, B) == pytest.approx(0.05)
    pts = np.random.default_rng(0).normal(size=(200, 3)) * 0.05
    shift = make_pose(np.eye(3), [0.01, 0, 0])
    assert add_error(pts, shift, A) == pytest.approx(0.01)
    assert adds_error(pts, A, A) == pytest.approx(0.0)
    # ADD-S forgives a symmetric object's rotation about its axis; ADD does not.
    ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 3600, endpoint=False)),
                     np.sin(np.linspace(0, 2 * np.pi, 3600, endpoint=False)), np.zeros(3600)], 1) * 0.05
    rot = make_pose(axis_angle_to_matrix([0, 0, 1], 1.0), [0, 0, 0])
    assert adds_error(ring, rot, A) < 1e-4 < add_error(ring, rot, A)


def test_trajectory_round_trip_and_reanchor(tmp_path):
    rng = np.random.default_rng(2)
    poses = {t: random_pose(rng) for t in (3, 4, 7)}
    traj = Trajectory(poses)
    traj.write(tmp_path / "trajectory.txt")
    back = Trajectory.read(tmp_path / "trajectory.txt", n_frames=10)
    assert back.frame_ids == [3, 4, 7]
    for t in poses:
        np.testing.assert_allclose(back[t], poses[t], atol=1e-8)
    assert back.gaps(10) == [(0, 2), (5, 6), (8, 9)]
    re = back.reanchored()
    np.testing.assert_allclose(re[3], np.eye(4), atol=1e-12)
    # relative motion is unchanged by re-anchoring
    np.testing.assert_allclose(inv_pose(re[3]) @ re[7], inv_pose(back[3]) @ back[7], atol=1e-12)


def test_tum_timed_round_trip(tmp_path, shared_data):
    src = shared_data / "trajectories" / "groundtruth.txt"
    tt = TimedTrajectory.read_tum(src)
    n_lines = sum(1 for ln in src.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    assert len(tt.stamps) == n_lines > 600
    tt.write_tum(tmp_path / "t.txt")
    back = TimedTrajectory.read_tum(tmp_path / "t.txt")
    np.testing.assert_allclose(back.stamps, tt.stamps, atol=1e-6)
    np.testing.assert_allclose(back.poses, tt.poses, atol=1e-8)
    # first line of the source, by hand: position and quaternion order qx qy qz qw
    first = [float(x) for x in next(ln for ln in src.read_text().splitlines()
                                    if ln.strip() and not ln.startswith("#")).split()]
    i = int(np.argmin(np.abs(tt.stamps - first[0])))
    np.testing.assert_allclose(tt.poses[i], pose_from_tq_xyzw(first[1:4], first[4:8]), atol=1e-9)


def test_interpolate_pose_halfway_and_ends():
    from labeller.core.poses import axis_angle_to_matrix, interpolate_pose, make_pose

    T0 = make_pose(np.eye(3), [0.0, 0.0, 0.0])
    T1 = make_pose(axis_angle_to_matrix([0, 0, 1], np.radians(40)), [0.2, -0.4, 1.0])
    np.testing.assert_allclose(interpolate_pose(T0, T1, 0.0), T0, atol=1e-12)
    np.testing.assert_allclose(interpolate_pose(T0, T1, 1.0), T1, atol=1e-12)
    mid = interpolate_pose(T0, T1, 0.5)
    np.testing.assert_allclose(mid[:3, 3], [0.1, -0.2, 0.5], atol=1e-12)
    np.testing.assert_allclose(mid[:3, :3], axis_angle_to_matrix([0, 0, 1], np.radians(20)),
                               atol=1e-12)
