"""The env's actions: what a normalised action means, and the encoding of a pose as the action that targets it.

In ``pd_target`` mode the PD servos of the 12 actuated joints target ``ACTION_SCALE * a``: the exponential map
(rad, joint frame) of each ball joint's rotation and each hinge's angle, in DeepMimic's joint order
(:data:`sb3_mimic.character.JOINTS`).  In ``residual`` mode they target the reference pose one control step ahead
plus ``RESIDUAL_SCALE * ACTION_SCALE * a``, so ``a = 0`` is plain PD tracking of the clip and a policy learns only
the corrections that balance.  Every expert, the env and the MPC encode poses through this module.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sb3_mimic import character

ACTION_MODES = ("pd_target", "residual", "torque")
#: Action components of each actuated joint, DeepMimic order: 3 per ball joint (exp-map / torque), 1 per hinge.
JOINT_WIDTHS = tuple(3 if kind == "ball" else 1 for _, kind in character.JOINTS)
_STARTS = np.cumsum((0, *JOINT_WIDTHS))
#: (8, 3) the action components of each ball joint.
BALL_ACTIONS = np.array([range(_STARTS[j], _STARTS[j] + 3) for j, (_, kind) in enumerate(character.JOINTS) if kind == "ball"])
BALL_ACTIONS.flags.writeable = False
#: PD targets are ``ACTION_SCALE * action``: every exp-map component and hinge angle spans [-pi, pi] rad.
ACTION_SCALE = math.pi
#: ``residual`` actions move the PD target off the next reference pose by ``RESIDUAL_SCALE * ACTION_SCALE * a``:
#: up to pi / 4 rad per component.
RESIDUAL_SCALE = 0.25


def joint_angles(
    model: mujoco.MjModel, qpos: np.ndarray, index: character.CharacterIndex, out: np.ndarray | None = None
) -> np.ndarray:
    """Joint angles of a full ``qpos`` in action layout, radians (float64, shape (28,)): the rotation vector of
    each ball joint and the angle of each hinge, relative to the model's neutral pose ``qpos0``.

    :param out: optional (nv,) work array
    """
    diff = np.zeros(model.nv) if out is None else out
    mujoco.mj_differentiatePos(model, diff, 1.0, model.qpos0, qpos)
    return diff[index.action_dofs]


def pd_target_action(model: mujoco.MjModel, qpos: np.ndarray, index: character.CharacterIndex | None = None) -> np.ndarray:
    """Encode the joint angles of a full ``qpos`` as the normalised ``pd_target`` action that targets them (float32).

    The result may exceed [-1, 1] for poses beyond pi rad per component; the env clips it.
    """
    index = index or character.character_index(model)
    return (joint_angles(model, qpos, index) / ACTION_SCALE).astype(np.float32)


def residual_action(targets: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The ``residual`` action that puts the PD targets at ``targets`` (rad, action layout) when the next reference
    pose has joint angles ``reference`` (rad): ``(targets - reference) / (RESIDUAL_SCALE * ACTION_SCALE)``, float32.

    The result may exceed [-1, 1] for targets more than pi / 4 rad off the reference; the env clips it.
    """
    return ((np.asarray(targets) - np.asarray(reference)) / (RESIDUAL_SCALE * ACTION_SCALE)).astype(np.float32)
