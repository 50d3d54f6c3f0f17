"""DeepMimic's imitation reward, as released with DeepMimic (not the simpler variant stated in the paper).

The reward compares two character states, the simulated one and the reference one (batches of them:
:func:`batch_errors` is the one implementation the env, the vector envs and the MPC use), through these features::

    pose_err = sum_j w_j * angle(q_ref_j * conj(q_sim_j))^2       (root rotation and every joint)
    vel_err  = sum_j w_j * |w_ref_j - w_sim_j|^2                  (root and joint angular velocities)
    ee_err   = mean over ankles and wrists of |p_ref - p_sim|^2   (root-relative, heading frame, z = height)
    root_err = |dp_root|^2 + 0.1 angle(dq_root)^2 + 0.01 |dv_root|^2 + 0.001 |dw_root|^2
    com_err  = 0.1 |dv_com|^2
    r = 0.5 exp(-2 pose_err) + 0.05 exp(-0.1 vel_err) + 0.15 exp(-40 ee_err)
        + 0.2 exp(-5 root_err) + 0.1 exp(-10 com_err)

with ``w_j`` DeepMimic's per-joint ``DiffWeight`` divided by their sum.  The weights add up to 1, so the
reward is 1 exactly at the reference state and lies in (0, 1].  Angular velocities are compared as MuJoCo's
``qvel`` holds them (each joint's local frame, the root's body frame) in both states; DeepMimic compares them in
parent/world frames, which differs only when the two orientations differ, and then only slightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from sb3_mimic.character import CharacterIndex
from sb3_mimic._jit import flat_rows, jit
from sb3_mimic.rotations import angle_between

#: Weight and error scale of each term, in the order of :data:`TERMS`.
TERMS: tuple[str, ...] = ("pose", "velocity", "end_effector", "root", "com")
WEIGHTS: dict[str, float] = {"pose": 0.5, "velocity": 0.05, "end_effector": 0.15, "root": 0.2, "com": 0.1}
SCALES: dict[str, float] = {"pose": 2.0, "velocity": 0.1, "end_effector": 40.0, "root": 5.0, "com": 10.0}


@dataclass
class PoseFeatures:
    """What the reward needs to know about one character state."""

    qpos: np.ndarray
    """(nq,) generalised positions."""
    qvel: np.ndarray
    """(nv,) generalised velocities."""
    end_effectors: np.ndarray
    """(4, 3) ankle and wrist positions relative to the root in its heading frame; z is the height above ground."""
    com_velocity: np.ndarray
    """(3,) centre-of-mass velocity, world frame."""


def imitation_errors(
    model: mujoco.MjModel, sim: PoseFeatures, ref: PoseFeatures, index: CharacterIndex
) -> tuple[float, float, float, float, float]:
    """The five unscaled errors ``(pose, velocity, end_effector, root, com)`` of one state pair (:func:`batch_errors`
    of a batch of one).  Orientation errors are angles: ``angle(q_sim^-1 q_ref)`` per ball or free joint, the angle
    difference per hinge."""
    errors = batch_errors(
        pose_weights(model, index), index, sim.qpos[None], ref.qpos[None], (ref.qvel - sim.qvel)[None],
        (ref.end_effectors - sim.end_effectors)[None], (ref.com_velocity - sim.com_velocity)[None],
    )[0]
    return tuple(float(e) for e in errors)


def reward_terms(errors: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    """DeepMimic's reward and its weighted terms from the five errors of :func:`imitation_errors`.

    :return: ``(reward, {"pose": ..., "velocity": ..., "end_effector": ..., "root": ..., "com": ...})``; the
        terms add up to the reward
    """
    reward, terms = batch_reward_terms(np.asarray(errors, dtype=np.float64)[None])
    return float(reward[0]), dict(zip(TERMS, terms[0].tolist(), strict=True))


def imitation_reward(
    model: mujoco.MjModel, sim: PoseFeatures, ref: PoseFeatures, index: CharacterIndex
) -> tuple[float, dict[str, float]]:
    """DeepMimic's reward and its weighted terms (which add up to it) between two feature sets.

    :return: ``(reward, {"pose": ..., "velocity": ..., "end_effector": ..., "root": ..., "com": ...})``
    """
    return reward_terms(imitation_errors(model, sim, ref, index))


def forward_kinematics(model: mujoco.MjModel, d: mujoco.MjData) -> None:
    """What the reward reads of a state set by hand (a reference pose): body poses, centre-of-mass velocities."""
    mujoco.mj_kinematics(model, d)
    mujoco.mj_comPos(model, d)
    mujoco.mj_comVel(model, d)
    mujoco.mj_subtreeVel(model, d)


def reward_features(
    model: mujoco.MjModel, d: mujoco.MjData, ee_ids: np.ndarray, out: PoseFeatures, kinematics: bool = True
) -> float:
    """Fill ``out`` (end effectors, centre-of-mass velocity) from ``d``.

    :param kinematics: run forward kinematics and velocities first (not needed right after ``mj_step1``)
    :return: the root's heading (rad)
    """
    if kinematics:
        forward_kinematics(model, d)
    else:
        mujoco.mj_subtreeVel(model, d)
    yaw = heading(d.xquat[1])
    out.end_effectors[:] = end_effectors(d.xpos[ee_ids], d.xpos[1], yaw)
    out.com_velocity[:] = d.subtree_linvel[1]
    return float(yaw)


@dataclass(frozen=True)
class PoseWeights:
    """The pose weights of :class:`~sb3_mimic.character.CharacterIndex` per orientation instead of per dof: an
    orientation's error is its angle whatever the axis, so its three dofs share one weight."""

    quat_qpos: np.ndarray
    """(9, 4) qpos addresses of the root quaternion and the ball joints' quaternions."""
    hinge_qpos: np.ndarray
    """(4,) qpos addresses of the hinges."""
    quat: np.ndarray
    """(2, 9) weights of each orientation's squared angle: pose error (row 0), root error (row 1)."""
    hinge: np.ndarray
    """(2, 4) the same for the hinges' squared angle differences."""
    root_position: np.ndarray
    """(3,) weights of the squared root position difference in the root error."""

    def kernel_arrays(self, index: CharacterIndex) -> tuple[np.ndarray, ...]:
        """The weight and address arrays :func:`errors_into` takes first, in its order."""
        return (self.quat, self.hinge, self.root_position, index.velocity_weights,
                np.ascontiguousarray(self.quat_qpos[:, 0]), self.hinge_qpos)


def pose_weights(model: mujoco.MjModel, index: CharacterIndex) -> PoseWeights:
    """:class:`PoseWeights` of ``model`` from the per-dof weights of ``index``."""
    dof_at = dict(zip(model.jnt_qposadr.tolist(), model.jnt_dofadr.tolist(), strict=True))
    root_dof = dof_at[int(index.quat_qpos[0, 0]) - 3] + 3  # the free joint's rotation follows its translation
    quat_dofs = [root_dof] + [dof_at[int(q)] for q in index.quat_qpos[1:, 0]]
    return PoseWeights(
        quat_qpos=index.quat_qpos, hinge_qpos=index.hinge_qpos, quat=index.position_weights[:, quat_dofs],
        hinge=index.position_weights[:, [dof_at[int(q)] for q in index.hinge_qpos]],
        root_position=index.position_weights[1, root_dof - 3 : root_dof],
    )


@jit
def errors_into(quat_weights, hinge_weights, root_weights, velocity_weights, quat_qpos, hinge_qpos, sim_qpos,
                ref_qpos, dv, dee, dcom, out):  # pragma: no cover - compiled
    """The five errors of one state pair into ``out`` (5,): what :func:`batch_errors` computes per row (a compiled
    function, which the batched simulation's step kernel calls too).

    :param quat_weights, hinge_weights, root_weights, quat_qpos, hinge_qpos: :class:`PoseWeights`' arrays, with
        ``quat_qpos`` each quaternion's first address
    :param velocity_weights: :attr:`~sb3_mimic.character.CharacterIndex.velocity_weights`
    """
    # orientation errors: the angle of q_sim^-1 q_ref per quaternion, angle differences per hinge
    pose_q = root_q = 0.0
    for j in range(len(quat_qpos)):
        a, b = sim_qpos[quat_qpos[j] :], ref_qpos[quat_qpos[j] :]
        angle = angle_between(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3])
        pose_q += angle * angle * quat_weights[0, j]
        root_q += angle * angle * quat_weights[1, j]
    pose_h = root_h = 0.0
    for j in range(len(hinge_qpos)):
        d = ref_qpos[hinge_qpos[j]] - sim_qpos[hinge_qpos[j]]
        pose_h += d * d * hinge_weights[0, j]
        root_h += d * d * hinge_weights[1, j]
    root_p = 0.0
    for k in range(3):
        d = ref_qpos[k] - sim_qpos[k]
        root_p += d * d * root_weights[k]
    vel = vel_root = 0.0
    for k in range(len(dv)):
        vel += dv[k] * dv[k] * velocity_weights[0, k]
        vel_root += dv[k] * dv[k] * velocity_weights[1, k]
    ee = 0.0
    for k in range(dee.shape[0]):
        for i in range(3):
            ee += dee[k, i] * dee[k, i]
    out[0] = pose_q + pose_h
    out[1] = vel
    out[2] = ee / dee.shape[0]
    out[3] = root_q + root_h + root_p + vel_root
    out[4] = 0.1 * (dcom[0] * dcom[0] + dcom[1] * dcom[1] + dcom[2] * dcom[2])


@jit
def _batch_errors(qw, hw, rw, vw, quat_qpos, hinge_qpos, sim_qpos, ref_qpos, dv, dee, dcom, out):  # pragma: no cover
    for i in range(len(out)):
        errors_into(qw, hw, rw, vw, quat_qpos, hinge_qpos, sim_qpos[i], ref_qpos[i], dv[i], dee[i], dcom[i], out[i])


def batch_errors(
    weights: PoseWeights, index: CharacterIndex, sim_qpos: np.ndarray, ref_qpos: np.ndarray, dv: np.ndarray,
    dee: np.ndarray, dcom: np.ndarray,
) -> np.ndarray:
    """The five unscaled errors, (..., 5) in :data:`TERMS` order, of any batch of state pairs (leading axes
    broadcast): the one implementation of the reward's errors (:func:`errors_into`), which the env, the vector envs
    and the MPC use.

    :param sim_qpos, ref_qpos: (..., nq) simulated and reference positions
    :param dv: (..., nv) ``ref.qvel - sim.qvel``
    :param dee: (..., 4, 3) reference minus simulated end effectors (:func:`end_effectors`)
    :param dcom: (..., 3) reference minus simulated centre-of-mass velocity
    """
    lead, (sim_qpos, ref_qpos, dv, dee, dcom) = flat_rows((sim_qpos, ref_qpos, dv, dee, dcom), (1, 1, 1, 2, 1))
    nq, nv = int(weights.quat_qpos.max()) + 1, index.velocity_weights.shape[1]
    if sim_qpos.shape[1] < nq or ref_qpos.shape[1] != sim_qpos.shape[1] or dv.shape[1] != nv or dee.shape[2] != 3 \
            or dcom.shape[1] != 3:
        raise ValueError(f"batch_errors needs (..., nq >= {nq}) positions, (..., {nv}) velocity differences, (..., K, 3) "
                         f"end-effector and (..., 3) centre-of-mass differences; got {sim_qpos.shape[1:]}, "
                         f"{ref_qpos.shape[1:]}, {dv.shape[1:]}, {dee.shape[1:]}, {dcom.shape[1:]}")
    out = np.empty((len(sim_qpos), len(TERMS)))
    _batch_errors(*weights.kernel_arrays(index), sim_qpos, ref_qpos, dv, dee, dcom, out)
    return out.reshape(*lead, len(TERMS))


@jit
def heading_of(w, x, y, z):  # pragma: no cover - compiled
    """:func:`heading` of one root orientation, from its components (a compiled function, which the batched
    simulation's step kernel calls too)."""
    # the root's x axis (f) in world coordinates: a column of the rotation matrix
    fx, fy, fz = 1.0 - 2.0 * (y * y + z * z), 2.0 * (w * z + x * y), 2.0 * (x * z - w * y)
    t = (abs(fz) - _SIN_45) / (1.0 - _SIN_45)
    if t <= 0.0:  # up to 45 degrees from horizontal: DeepMimic's heading (r = 0)
        return math.atan2(fy, fx)
    t = min(t, 1.0)
    lx, ly = 2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z)  # the root's y axis (l)
    r = t * t * (3.0 - 2.0 * t)
    return math.atan2(fy - r * lx, fx + r * ly)


@jit
def _headings(q, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        out[i] = heading_of(q[i, 0], q[i, 1], q[i, 2], q[i, 3])


def heading(root_quat: np.ndarray) -> np.ndarray:
    """The root's heading (rad about z): DeepMimic's, the direction of the root's x axis projected on the floor,
    kept meaningful when that axis turns vertical (roll, crawl, getups, backflip).

    The projection of the x axis shrinks to nothing as the axis turns vertical, and its direction then swings
    (by 180 degrees when the axis passes through vertical), so that nearby states get very different headings.
    When the x axis is within 45 degrees of horizontal (``|x_z| <= sin 45``) the heading is DeepMimic's,
    bit for bit.  Beyond that, the floor direction of the root's sagittal plane (``y x z_world``, the horizontal
    direction perpendicular to the root's lateral y axis, whose length ``sqrt(1 - y_z^2)`` is at least 0.7 there
    because y is then near horizontal) is added to the projection with a weight that rises smoothly
    (``smoothstep``) from 0 at 45 degrees to 1 at vertical::

        heading = atan2(f_y - r l_x, f_x + r l_y),  r = smoothstep((|f_z| - sin 45) / (1 - sin 45))

    with ``f`` and ``l`` the root's x and y axes in the world.  Where the x axis is near horizontal both
    directions agree; with x vertical the sagittal direction is all that is left and it is well defined (the
    direction the root's z axis points along the floor when x points down, the opposite when x points up).  So the
    heading is continuous when the x axis passes through vertical, and turns with the world:
    ``heading(R_z(a) q) = heading(q) + a``.

    No heading that turns with the world can be continuous over every orientation (a full turn about z is not
    contractible in SO(3)).  This one jumps by 180 degrees where the two directions cancel: the root pitched 31
    degrees past vertical (x about 59 degrees from horizontal, z below horizontal) without roll, where a forward
    roll or a backflip switches from facing forward to DeepMimic's backward heading of an upside-down root.
    DeepMimic's jumps with the x axis vertical, where crawl, the getups and roll spend time.

    :param root_quat: (..., 4) root orientations (w, x, y, z), unit quaternions
    :return: (...) headings in [-pi, pi]
    """
    lead, (q,) = flat_rows((root_quat,), (1,))
    out = np.empty(len(q))
    _headings(q, out)
    return out.reshape(lead)[()]


@jit
def end_effectors_into(points, ids, root, c, s, out):  # pragma: no cover - compiled
    """:func:`end_effectors` of one state into ``out`` (K, 3), from world positions ``points[ids]``, the root
    position and the cosine and sine of its heading (a compiled function, which the step kernel calls too)."""
    for k in range(len(ids)):
        p = points[ids[k]]
        rx, ry = p[0] - root[0], p[1] - root[1]
        out[k, 0] = c * rx + s * ry
        out[k, 1] = c * ry - s * rx
        out[k, 2] = p[2]


@jit
def _end_effectors(points, root, yaw, out):  # pragma: no cover - compiled
    ids = np.arange(points.shape[1])
    for i in range(len(out)):
        end_effectors_into(points[i], ids, root[i], math.cos(yaw[i]), math.sin(yaw[i]), out[i])


def end_effectors(ee_world: np.ndarray, root: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(..., 4, 3) ankle and wrist positions relative to the root in its heading frame; z is the height above the
    floor.

    :param ee_world: (..., 4, 3) world positions; :param root: (..., 3) root position; :param yaw: (...) heading
    """
    lead, (points, root, yaw) = flat_rows((ee_world, root, yaw), (2, 1, 0))
    out = np.empty_like(points)
    _end_effectors(points, root, yaw, out)
    return out.reshape(*lead, *points.shape[1:])


_WEIGHT_ROW = np.array([WEIGHTS[t] for t in TERMS])
_SCALE_ROW = np.array([SCALES[t] for t in TERMS])
_SIN_45 = math.sqrt(0.5)


@jit
def reward_into(errors, terms):  # pragma: no cover - compiled
    """The reward of one row of errors (5,), its weighted terms into ``terms`` (5,) (a compiled function, which the
    step kernel calls too)."""
    total = 0.0
    for k in range(len(errors)):
        terms[k] = _WEIGHT_ROW[k] * math.exp(-_SCALE_ROW[k] * errors[k])
        total += terms[k]
    return total


@jit
def _batch_rewards(errors, terms, rewards):  # pragma: no cover - compiled
    for i in range(len(rewards)):
        rewards[i] = reward_into(errors[i], terms[i])


def batch_reward_terms(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rewards (N,) and weighted terms (N, 5) of the errors of :func:`batch_errors` (what :func:`reward_terms`
    gives per row)."""
    errors = np.ascontiguousarray(errors, dtype=np.float64)
    terms, rewards = np.empty_like(errors), np.empty(len(errors))
    _batch_rewards(errors, terms, rewards)
    return rewards, terms
