"""Quaternion helpers, vectorised over leading axes; quaternions are (w, x, y, z).

The one home of quaternion arithmetic: the reward's orientation errors (:func:`sb3_mimic.reward.batch_errors`)
and the PD expert's joint errors use it.  Plain numpy, so both import it without importing anything else.
"""

from __future__ import annotations

import numpy as np


def _hamilton(aw, ax, ay, az, bw, bx, by, bz) -> tuple[np.ndarray, ...]:
    """The components (w, x, y, z) of the Hamilton product ``a * b``, from the components of ``a`` and ``b``."""
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b``."""
    return np.stack(_hamilton(*np.moveaxis(a, -1, 0), *np.moveaxis(b, -1, 0)), axis=-1)


def quat_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, pi]) of the rotation ``a^-1 b`` between unit quaternions, whatever their signs."""
    # conj(a) * b written out (the reward calls this every env step: no negated copies of a)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    w = aw * bw + ax * bx + ay * by + az * bz
    x = aw * bx - ax * bw - ay * bz + az * by
    y = aw * by + ax * bz - ay * bw - az * bx
    z = aw * bz - ax * by + ay * bx - az * bw
    return 2.0 * np.arctan2(np.sqrt(x * x + y * y + z * z), np.abs(w))


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` by the inverse of unit quaternions ``q``."""
    qv = np.concatenate([np.zeros((*v.shape[:-1], 1)), v], axis=-1)
    return quat_mul(quat_mul(quat_conj(q), qv), q)[..., 1:]


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of unit quaternions."""
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half > 1e-12, angle / np.maximum(sin_half, 1e-12), 2.0)
    return q[..., 1:] * scale


def quat_exp(rotvec: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation vector (the inverse of :func:`quat_log`)."""
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    half = 0.5 * angle
    scale = np.where(angle > 1e-12, np.sin(half) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([np.cos(half), rotvec * scale], axis=-1)


def rotvec_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation vector of ``q_current^-1 q_target`` in the current joint frame, both given as rotation vectors."""
    return quat_log(quat_mul(quat_conj(quat_exp(current)), quat_exp(target)))

