"""``sb3_mimic.envs.actions``: what an action means (the pose-to-action encoding and residual actions)."""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic import character


def test_a_zero_residual_action_tracks_the_next_reference_pose_as_the_pd_expert_does():
    """``residual`` actions are offsets from the reference pose one control step ahead, by pi/4 per unit: a = 0 is
    the PD expert's plain tracking, and any action a equals the pd_target action reference/pi + a/4."""
    from sb3_mimic.envs.actions import RESIDUAL_SCALE
    from sb3_mimic.experts import PDExpert

    residual = gymnasium.make("MimicHumanoidWalk-v0", action_mode="residual")
    absolute = gymnasium.make("MimicHumanoidWalk-v0")
    expert = PDExpert.for_env(absolute)
    obs_r, _ = residual.reset(seed=5)
    obs_a, _ = absolute.reset(seed=5)
    assert np.abs(PDExpert.for_env(residual).label(obs_r)).max() < 1e-5  # the expert's residual label: none
    offsets = np.random.default_rng(0).uniform(-0.3, 0.3, (15, 28)).astype(np.float32)
    for k in range(15):
        tracked = expert.label(obs_a)[0]  # the next reference pose as a pd_target action
        obs_a, reward_a, *_ = absolute.step(np.clip(tracked + RESIDUAL_SCALE * offsets[k], -1, 1))
        obs_r, reward_r, *_ = residual.step(offsets[k])
        np.testing.assert_allclose(obs_r, obs_a, atol=2e-5)
        assert reward_r == pytest.approx(reward_a, abs=1e-5)
    residual.close()
    absolute.close()



def test_an_action_is_the_joint_angles_from_the_neutral_pose_over_pi():
    """``pd_target`` actions: a ball joint's rotation vector and a hinge's angle from ``qpos0``, divided by pi, in
    the joints' order (chest 0-2, neck 3-5, right hip 6-8, right knee 9); ``residual_action`` the offset from the
    reference's angles over pi/4."""
    from sb3_mimic.envs.actions import ACTION_MODES, pd_target_action, residual_action

    model = character.load_model()
    assert pd_target_action(model, model.qpos0).tolist() == [0.0] * 28 and ACTION_MODES[0] == "pd_target"
    qpos = model.qpos0.copy()
    qpos[model.joint("right_knee").qposadr[0]] = -0.7
    rotvec = np.array([0.2, -0.1, 0.3])
    mujoco.mju_axisAngle2Quat(qpos[model.joint("chest").qposadr[0]:][:4], rotvec / np.linalg.norm(rotvec),
                              np.linalg.norm(rotvec))
    action = pd_target_action(model, qpos)
    assert action.dtype == np.float32 and action[9] == pytest.approx(-0.7 / np.pi, abs=1e-7)
    np.testing.assert_allclose(action[0:3], rotvec / np.pi, atol=1e-7)
    assert np.count_nonzero(action) == 4  # nothing else moved
    targets, reference = np.full(28, 0.5), np.full(28, 0.3)
    np.testing.assert_allclose(residual_action(targets, reference), 0.2 / (np.pi / 4), rtol=1e-6)
