"""DeepMimic's imitation reward, as released with DeepMimic (not the simpler variant stated in the paper).

The reward compares two character states, the simulated one and the reference one, through the features of
:class:`PoseFeatures`::

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
    model: mujoco.MjModel, sim: PoseFeatures, ref: PoseFeatures, index: CharacterIndex, scratch: np.ndarray | None = None
) -> tuple[float, float, float, float, float]:
    """The five unscaled errors ``(pose, velocity, end_effector, root, com)``.

    Orientation errors come from one ``mj_differentiatePos`` call: for a ball or free joint, the norm of its
    angular part is ``angle(q_ref * conj(q_sim))``; for a hinge it is the angle difference.

    :param scratch: optional (nv,) work array
    """
    dq = np.empty(model.nv) if scratch is None else scratch
    # ref - sim: world-frame position difference for the root, rotation vectors (rad) for every joint
    mujoco.mj_differentiatePos(model, dq, 1.0, sim.qpos, ref.qpos)
    dv = ref.qvel - sim.qvel
    pose_err, root_pos_err = index.position_weights @ (dq * dq)
    vel_err, root_vel_err = index.velocity_weights @ (dv * dv)
    dee = ref.end_effectors - sim.end_effectors
    ee_err = float(np.vdot(dee, dee)) / len(dee)
    dcom = ref.com_velocity - sim.com_velocity
    com_err = 0.1 * float(np.vdot(dcom, dcom))
    return float(pose_err), float(vel_err), ee_err, float(root_pos_err + root_vel_err), com_err


def reward_terms(errors: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    """DeepMimic's reward and its weighted terms from the five errors of :func:`imitation_errors`.

    :return: ``(reward, {"pose": ..., "velocity": ..., "end_effector": ..., "root": ..., "com": ...})``; the
        terms add up to the reward
    """
    terms = {t: WEIGHTS[t] * math.exp(-SCALES[t] * e) for t, e in zip(TERMS, errors, strict=True)}
    return sum(terms.values()), terms


def imitation_reward(
    model: mujoco.MjModel, sim: PoseFeatures, ref: PoseFeatures, index: CharacterIndex
) -> tuple[float, dict[str, float]]:
    """DeepMimic's reward and its weighted terms (which add up to it) between two feature sets.

    :return: ``(reward, {"pose": ..., "velocity": ..., "end_effector": ..., "root": ..., "com": ...})``
    """
    return reward_terms(imitation_errors(model, sim, ref, index))


def reward_features(
    model: mujoco.MjModel, d: mujoco.MjData, ee_ids: np.ndarray, out: PoseFeatures, kinematics: bool = True
) -> tuple[float, np.ndarray]:
    """Fill ``out`` (end effectors, centre-of-mass velocity) from ``d``.

    :param kinematics: run forward kinematics and velocities first (not needed right after ``mj_step1``)
    :return: the root's heading (rad) and the world-to-heading-frame matrix ``rot`` (``v_heading = v @ rot``)
    """
    if kinematics:
        mujoco.mj_kinematics(model, d)
        mujoco.mj_comPos(model, d)
        mujoco.mj_comVel(model, d)
    mujoco.mj_subtreeVel(model, d)
    xmat = d.xmat[1]
    heading = math.atan2(xmat[3], xmat[0])
    c, s = math.cos(heading), math.sin(heading)
    rot = np.array(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)))
    xpos = d.xpos
    ee = out.end_effectors
    np.matmul(xpos[ee_ids] - xpos[1], rot, out=ee)
    ee[:, 2] = xpos[ee_ids, 2]  # height above the floor
    out.com_velocity[:] = d.subtree_linvel[1]
    return heading, rot


def batch_errors(
    index: CharacterIndex, dq: np.ndarray, dv: np.ndarray, dee: np.ndarray, dcom: np.ndarray
) -> np.ndarray:
    """The five unscaled errors of N state pairs, (N, 5) in :data:`TERMS` order (:func:`imitation_errors` of each).

    :param dq: (N, nv) ``mj_differentiatePos(sim.qpos -> ref.qpos)``: world-frame root position difference and a
        rotation vector (rad) per orientation
    :param dv: (N, nv) ``ref.qvel - sim.qvel``
    :param dee: (N, 4, 3) reference minus simulated end effectors (:class:`PoseFeatures`' frame)
    :param dcom: (N, 3) reference minus simulated centre-of-mass velocity
    """
    pose = (dq * dq) @ index.position_weights.T  # (N, 2): pose error, position part of the root error
    vel = (dv * dv) @ index.velocity_weights.T  # (N, 2): velocity error, velocity part of the root error
    ee = np.einsum("nij,nij->n", dee, dee) / dee.shape[1]
    com = 0.1 * np.einsum("ni,ni->n", dcom, dcom)
    return np.stack((pose[:, 0], vel[:, 0], ee, pose[:, 1] + vel[:, 1], com), axis=1)


_WEIGHT_ROW = np.array([WEIGHTS[t] for t in TERMS])
_SCALE_ROW = np.array([SCALES[t] for t in TERMS])


def batch_reward_terms(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rewards (N,) and weighted terms (N, 5) of the errors of :func:`batch_errors` (what :func:`reward_terms`
    gives per row)."""
    terms = _WEIGHT_ROW * np.exp(-_SCALE_ROW * errors)
    return terms.sum(axis=1), terms
