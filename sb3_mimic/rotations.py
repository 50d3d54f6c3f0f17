"""Quaternion helpers, vectorised over leading axes; quaternions are (w, x, y, z).

The one home of quaternion arithmetic: the reward's orientation errors (:func:`sb3_mimic.reward.batch_errors`)
and the PD expert's joint errors use it.  Plain numpy, and one compiled scalar function (:func:`angle_between`)
that the reward's kernel calls.
"""

from __future__ import annotations

import math

import numpy as np

from sb3_mimic._jit import flat_rows, jit


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


@jit
def angle_between(aw, ax, ay, az, bw, bx, by, bz):  # pragma: no cover - compiled
    """The angle of :func:`quat_angle_between` for one pair, from the components (a compiled scalar function, which
    the reward's kernel calls too)."""
    # conj(a) * b written out
    w = aw * bw + ax * bx + ay * by + az * bz
    x = aw * bx - ax * bw - ay * bz + az * by
    y = aw * by + ax * bz - ay * bw - az * bx
    z = aw * bz - ax * by + ay * bx - az * bw
    return 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), abs(w))


@jit
def _angles_between(a, b, out):  # pragma: no cover - compiled
    for i in range(a.shape[0]):
        out[i] = angle_between(a[i, 0], a[i, 1], a[i, 2], a[i, 3], b[i, 0], b[i, 1], b[i, 2], b[i, 3])


def quat_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, pi]) of the rotation ``a^-1 b`` between unit quaternions, whatever their signs (leading
    axes broadcast)."""
    lead, (a, b) = flat_rows((a, b), (1, 1))
    out = np.empty(len(a))
    _angles_between(a, b, out)
    return out.reshape(lead)[()]


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

