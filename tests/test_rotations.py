"""``sb3_mimic.rotations``: the quaternion helpers of the reward and the PD expert, against MuJoCo's own."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sb3_mimic.rotations import quat_angle_between, quat_conj, quat_exp, quat_log, quat_mul, rotate_inverse, rotvec_error


@pytest.fixture
def quats():
    """(2, 5, 4) random unit quaternions, either sign."""
    q = np.random.default_rng(0).normal(size=(2, 5, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _mj(fn, *arrays, size=4):
    """MuJoCo's ``fn(out, *inputs)`` over the leading axes."""
    lead = arrays[0].shape[:-1]
    out = np.empty((*lead, size))
    for i in np.ndindex(lead):
        fn(out[i], *(a[i] for a in arrays))
    return out


def test_product_and_conjugate_are_mujocos(quats):
    a, b = quats[0], quats[1]
    np.testing.assert_allclose(quat_mul(a, b), _mj(mujoco.mju_mulQuat, a, b), atol=1e-15)
    np.testing.assert_allclose(quat_conj(a), _mj(mujoco.mju_negQuat, a), atol=0)
    np.testing.assert_allclose(quat_mul(quat_conj(a), a), np.tile([1.0, 0, 0, 0], (5, 1)), atol=1e-15)


def test_rotate_inverse_undoes_mujocos_rotation(quats):
    v = np.random.default_rng(1).normal(size=(5, 3))
    rotated = _mj(mujoco.mju_rotVecQuat, v, quats[0], size=3)
    np.testing.assert_allclose(rotate_inverse(quats[0], rotated), v, atol=1e-14)


def test_log_and_exp_are_mujocos_rotation_vector(quats):
    q = quats[0]
    rotvec = _mj(lambda out, quat: mujoco.mju_quat2Vel(out, quat, 1.0), q, size=3)
    assert (q[..., 0] < 0).any()  # quaternions with w < 0 too: both take the short way round
    np.testing.assert_allclose(quat_log(q), rotvec, atol=1e-12)
    assert (np.linalg.norm(quat_log(q), axis=-1) <= np.pi + 1e-12).all()
    same = quat_exp(quat_log(q)) * np.sign(q[..., :1])  # q and -q are one rotation
    np.testing.assert_allclose(same, q, atol=1e-12)
    np.testing.assert_array_equal(quat_log(np.array([1.0, 0, 0, 0])), np.zeros(3))
    np.testing.assert_array_equal(quat_exp(np.zeros(3)), [1.0, 0, 0, 0])


def test_angle_between_is_the_geodesic_angle_mujoco_measures(quats):
    a, b = quats[0], quats[1]
    diff = _mj(lambda out, qa, qb: mujoco.mju_subQuat(out, qb, qa), a, b, size=3)  # rotation vector of a^-1 b
    np.testing.assert_allclose(quat_angle_between(a, b), np.linalg.norm(diff, axis=-1), atol=1e-12)
    np.testing.assert_allclose(quat_angle_between(a, -b), quat_angle_between(a, b), atol=0)  # either sign
    half_turn = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # 90 degrees about z
    assert quat_angle_between(np.array([1.0, 0, 0, 0]), half_turn) == pytest.approx(np.pi / 2, abs=1e-15)
    assert quat_angle_between(a, a).max() < 1e-7


def test_rotvec_error_is_the_rotation_from_current_to_target():
    current, target = np.array([0.3, -0.2, 0.1]), np.array([-0.4, 0.5, 0.2])
    q = quat_exp(current)
    # applied in the current frame, the error takes current to target
    np.testing.assert_allclose(quat_mul(q, quat_exp(rotvec_error(current, target))), quat_exp(target), atol=1e-14)
