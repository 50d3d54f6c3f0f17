"""The PD expert that turns mocap into demonstrations: it targets the reference pose a few steps ahead.

It reads everything it needs from the env's observation (phase, and in torque mode the joint angles and rates,
which :class:`JointDecoder` recovers from the body orientations and angular velocities), so a batch of
observations from any vectorised env can be labelled.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import torch as th

from sb3_mimic import _imitation  # noqa: F401  (clear error if imitation is missing)
from sb3_mimic import character
from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, BALL_ACTIONS, JOINT_WIDTHS, joint_angles, residual_action
from sb3_mimic.envs.batched import OBSERVATION_STRUCTURE
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
from sb3_mimic.rotations import quat_conj, quat_log, quat_mul, rotate_inverse, rotvec_error
from sb3_mimic.motion import MotionClip, load_clip
from imitation.policies.base import NonTrainablePolicy

_N = len(character.BODIES)
_QUAT_START = OBSERVATION_STRUCTURE["phase"] + OBSERVATION_STRUCTURE["root_height"] + OBSERVATION_STRUCTURE["body_positions"]
_ANGVEL_START = _QUAT_START + OBSERVATION_STRUCTURE["body_rotations"] + OBSERVATION_STRUCTURE["body_linear_velocities"]


class JointDecoder:
    """Recovers joint angles and rates of the 12 actuated joints from :class:`MimicHumanoidEnv` observations.

    Relative orientations and angular velocities do not depend on the frame they are expressed in, so the
    heading-frame body orientations and angular velocities of the observation determine every joint.
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        self.parent = np.array([model.body_parentid[model.body(b).id] - 1 for b in character.BODIES])
        self.bodies = [character.BODIES.index(name) for name, _ in character.JOINTS]
        self.kinds = [kind for _, kind in character.JOINTS]

    def decode(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint angles and rates in action layout, both of shape (batch, 28).

        Ball joints give their rotation vector (exp-map, rad) and local angular velocity (rad/s), hinges
        their angle (rad) and rate (rad/s).
        """
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        quats = obs[:, _QUAT_START : _QUAT_START + 4 * _N].reshape(-1, _N, 4)
        angvel = obs[:, _ANGVEL_START : _ANGVEL_START + 3 * _N].reshape(-1, _N, 3)
        child = quats[:, self.bodies]
        parent = quats[:, self.parent[self.bodies]]
        local = quat_mul(quat_conj(parent), child)  # (batch, 12, 4)
        rel_w = rotate_inverse(child, angvel[:, self.bodies] - angvel[:, self.parent[self.bodies]])
        angles, rates = [], []
        for j, kind in enumerate(self.kinds):
            if kind == "ball":
                angles.append(quat_log(local[:, j]))
                rates.append(rel_w[:, j])
            else:  # hinge about the body's -y axis
                angles.append(2.0 * np.arctan2(-local[:, j, 2], local[:, j, 0])[:, None])
                rates.append(-rel_w[:, j, 1:2])
        return np.concatenate(angles, axis=1), np.concatenate(rates, axis=1)


class PDExpert(NonTrainablePolicy):
    """The mocap PD expert of the SFT guide.

    - ``action_mode="pd_target"``: the PD target is the reference pose ``lookahead`` control steps ahead of the
      observed phase, encoded as the env's normalised action.
    - ``action_mode="residual"``: the same PD target, encoded as the offset from the reference pose one control step
      ahead (the env's residual base): 0 with ``lookahead=1``.
    - ``action_mode="torque"``: ``clip(kp * (q_target - q) - kd * qdot, -1, 1)`` in normalised torque units,
      with ``q`` and ``qdot`` decoded from the observation (ball joints: rotation-vector error). By default ``kp``
      is each joint's servo gain (DeepMimic's kp) over its torque limit and ``kd`` is 0, because torque mode keeps
      the joints' damping (DeepMimic's kd) in the physics: the rule is the PD servo, held for a control step.

    :param clip: the clip the env imitates (a :class:`MotionClip`, or a name or path for :func:`load_clip`)
    :param observation_space: the env's observation space
    :param action_space: the env's action space
    :param action_mode: the env's action mode
    :param lookahead: control steps ahead of the current phase to target (>= 1)
    :param control_dt: the env's control step, seconds
    :param kp: proportional gain of the torque rule, normalised torque per radian: one number, or ``None`` (default)
        for the servo gains
    :param kd: derivative gain of the torque rule, normalised torque per rad/s (default 0: the model damps)
    """

    def __init__(
        self,
        clip: MotionClip | str,
        observation_space: gym.Space,
        action_space: gym.Space,
        action_mode: str = "pd_target",
        lookahead: int = 1,
        control_dt: float = 1.0 / 30.0,
        kp: float | None = None,
        kd: float = 0.0,
    ) -> None:
        super().__init__(observation_space, action_space)
        if action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
        if int(lookahead) != lookahead or lookahead < 1:
            raise ValueError(f"lookahead must be a whole number of control steps >= 1, got {lookahead!r}")
        if control_dt <= 0:
            raise ValueError(f"control_dt must be positive, got {control_dt!r}")
        self.clip = load_clip(clip)
        self.action_mode = action_mode
        self.lookahead = int(lookahead)
        self.control_dt = float(control_dt)
        self._model = character.load_model()
        self._index = character.character_index(self._model)
        self.kp = servo_gains(self._model, self._index) if kp is None else float(kp)
        """Proportional gain per action component (or one for all), normalised torque per radian."""
        self.kd = float(kd)
        self._decoder = JointDecoder(self._model)
        self._diff = np.zeros(self._model.nv)

    @classmethod
    def for_env(cls, env: gym.Env, **kwargs) -> PDExpert:
        """Build the expert for a (possibly wrapped or vectorised) :class:`MimicHumanoidEnv`."""
        base = env.get_attr("unwrapped")[0] if hasattr(env, "get_attr") else env.unwrapped
        if not isinstance(base, MimicHumanoidEnv):
            raise TypeError(f"PDExpert needs a MimicHumanoidEnv, got {type(base).__name__}")
        return cls(
            base.clip, env.observation_space, env.action_space, action_mode=base.action_mode, control_dt=base.dt,
            **kwargs,
        )

    def target_time(self, phase: float) -> float:
        """Clip time targeted from an observed phase."""
        return float(phase) * self.clip.duration + self.lookahead * self.control_dt

    def target_angles(self, phase: float) -> np.ndarray:
        """Joint angles (rad, action layout: exp-maps and hinge angles) of the reference at the target time."""
        return self._angles_at(self.target_time(phase))

    def _angles_at(self, t: float) -> np.ndarray:
        qpos, _ = self.clip.sample(t)
        return joint_angles(self._model, qpos, self._index, out=self._diff)

    def label(self, obs: np.ndarray) -> np.ndarray:
        """Expert actions for a batch of observations, shape (batch, 28), float32."""
        obs = np.atleast_2d(np.asarray(obs))
        targets = np.stack([self.target_angles(p) for p in obs[:, 0]])
        if self.action_mode == "pd_target":
            return (targets / ACTION_SCALE).astype(np.float32)
        if self.action_mode == "residual":
            base = np.stack([self._angles_at(p * self.clip.duration + self.control_dt) for p in obs[:, 0]])
            return residual_action(targets, base)
        angles, rates = self._decoder.decode(obs)
        error = targets - angles
        for ball in BALL_ACTIONS:  # ball joints: rotation-vector error log(q^-1 q_target), not exp-map difference
            error[:, ball] = rotvec_error(angles[:, ball], targets[:, ball])
        return np.clip(self.kp * error - self.kd * rates, -1.0, 1.0).astype(np.float32)

    def _choose_action(self, obs: np.ndarray) -> np.ndarray:
        return self.label(obs)[0]

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return th.as_tensor(self.label(observation.detach().cpu().numpy()), device=self.device)


def servo_gains(model: mujoco.MjModel, index: character.CharacterIndex) -> np.ndarray:
    """(28,) each action component's PD servo gain (the actuator's kp, N m/rad) over its torque limit: the gain of a
    torque-mode PD rule in normalised torque per radian."""
    gains = np.repeat([model.actuator(name).gainprm[0] for name, _ in character.JOINTS], JOINT_WIDTHS)
    return gains / index.torque_limits
