"""``sb3_mimic.experts.pd``: the PD expert's labels and the joint decoder."""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.experts import JointDecoder, PDExpert

WALK = "MimicHumanoidWalk-v0"
RIGHT_KNEE = 9  # action index: chest 0-2, neck 3-5, right hip 6-8, right knee 9
RIGHT_HIP = slice(6, 9)


@pytest.mark.parametrize("env_id", [WALK, "MimicHumanoidDanceA-v0"])
@pytest.mark.parametrize("lookahead", [1, 3])
def test_pd_target_label_is_the_future_reference_pose(env_id, lookahead):
    env = gymnasium.make(env_id)
    u = env.unwrapped
    expert = PDExpert.for_env(env, lookahead=lookahead)
    duration = u.clip.duration
    # the last time makes the target wrap past the clip's end; the one past the duration is in the second cycle
    for t in (0.0, 0.37, 0.5 * duration, duration - 0.5 * u.dt, duration + 0.21):
        obs, _ = env.reset(options={"start_time": t})
        label = expert.label(obs)[0]
        expected = u.pd_target_action(u.clip.sample(t + lookahead * u.dt)[0])
        np.testing.assert_allclose(label, expected, atol=1e-5)
        if lookahead == 3:  # three steps ahead is a different pose than one step ahead
            assert np.abs(label - u.pd_target_action(u.clip.sample(t + u.dt)[0])).max() > 1e-3
    env.close()


def test_pd_target_label_depends_only_on_phase(walk):
    u = walk.unwrapped
    expert = PDExpert.for_env(walk)
    rng = np.random.default_rng(0)
    for t in (0.2, 0.9):
        obs, _ = walk.reset(options={"start_time": t})
        label = expert.label(obs)
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        mujoco.mj_integratePos(u.model, qpos, np.r_[np.zeros(6), rng.normal(0, 0.3, u.model.nv - 6)], 1.0)
        perturbed = u.set_physics_state(qpos, qvel + rng.normal(0, 1.0, u.model.nv))
        assert perturbed[0] == obs[0] and np.abs(perturbed - obs).max() > 0.1
        np.testing.assert_array_equal(expert.label(perturbed), label)


@pytest.mark.parametrize("env_id", [WALK, "MimicHumanoidDanceA-v0"])
def test_joint_decoder_recovers_joint_angles_and_rates(env_id):
    env = gymnasium.make(env_id)
    u = env.unwrapped
    m = u.model
    decoder = JointDecoder(m)
    rng = np.random.default_rng(1)
    obs_batch, angles, rates = [], [], []
    env.reset(seed=3)
    diff = np.zeros(m.nv)
    for _ in range(5):
        obs, *_ = env.step(rng.uniform(-0.4, 0.4, 28).astype(np.float32))
        obs_batch.append(obs)
        mujoco.mj_differentiatePos(m, diff, 1.0, m.qpos0, u.data.qpos)
        angles.append(diff[u.index.action_dofs].copy())
        rates.append(u.data.qvel[u.index.action_dofs].copy())
    got_angles, got_rates = decoder.decode(np.array(obs_batch))
    assert got_angles.shape == got_rates.shape == (5, 28)
    assert np.abs(np.array(rates)).max() > 0.5  # the joints are really moving
    np.testing.assert_allclose(got_angles, np.array(angles), atol=1e-4)
    np.testing.assert_allclose(got_rates, np.array(rates), atol=1e-4)
    env.close()


def test_torque_label_is_the_clipped_pd_rule():
    env = gymnasium.make(WALK, action_mode="torque")
    u = env.unwrapped
    m = u.model
    expert = PDExpert.for_env(env, lookahead=1, kp=1.0, kd=0.1)
    t = 0.4
    obs, _ = env.reset(options={"start_time": t})
    assert np.abs(expert.label(obs)).max() <= 1.0
    stiff = PDExpert.for_env(env, kp=100.0)
    saturated = stiff.label(obs)
    assert np.abs(saturated).max() <= 1.0 and np.isclose(np.abs(saturated), 1.0).any()

    target, _ = u.clip.sample(t + u.dt)
    zero_vel = np.zeros(m.nv)
    # at the target pose and at rest there is nothing to correct
    np.testing.assert_allclose(expert.label(u.set_physics_state(target, zero_vel))[0], 0.0, atol=1e-4)

    knee = m.joint("right_knee")
    bent = target.copy()
    bent[knee.qposadr[0]] -= 0.1  # knee 0.1 rad short of its target: push it forward
    label = expert.label(u.set_physics_state(bent, zero_vel))[0]
    assert label[RIGHT_KNEE] == pytest.approx(0.1, abs=1e-4)
    np.testing.assert_allclose(np.delete(label, RIGHT_KNEE), 0.0, atol=1e-4)

    moving = zero_vel.copy()
    moving[knee.dofadr[0]] = 1.0  # on target but moving forward at 1 rad/s: kd brakes it
    label = expert.label(u.set_physics_state(target, moving))[0]
    assert label[RIGHT_KNEE] == pytest.approx(-0.1, abs=1e-4)

    hip = m.joint("right_hip")
    delta = np.array([0.05, -0.08, 0.03])
    rotated = target.copy()
    step = np.zeros(m.nv)
    step[hip.dofadr[0] : hip.dofadr[0] + 3] = delta  # q = q_target * exp(delta): the error is -delta
    mujoco.mj_integratePos(m, rotated, step, 1.0)
    label = expert.label(u.set_physics_state(rotated, zero_vel))[0]
    np.testing.assert_allclose(label[RIGHT_HIP], -delta, atol=1e-4)
    env.close()


def test_expert_predict_on_a_batch_and_on_a_vec_env(walk):
    expert = PDExpert.for_env(walk)
    obs = np.stack([walk.reset(options={"start_time": t})[0] for t in (0.1, 0.5, 0.8, 1.1)])
    actions, state = expert.predict(obs, deterministic=True)
    assert actions.shape == (4, 28) and state is None
    np.testing.assert_allclose(actions, expert.label(obs), atol=1e-7)
    assert np.abs(actions[0] - actions[1]).max() > 1e-3
    vec = DummyVecEnv([lambda: gymnasium.make(WALK)])
    vec_expert = PDExpert.for_env(vec)
    np.testing.assert_allclose(vec_expert.predict(obs, deterministic=True)[0], actions, atol=1e-7)
    with pytest.raises(TypeError, match="MimicHumanoidEnv"):
        PDExpert.for_env(gymnasium.make("Pendulum-v1"))


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"lookahead": 0}, "lookahead"), ({"lookahead": 1.5}, "lookahead"),
                            ({"action_mode": "velocity"}, "action_mode")]
)
def test_expert_rejects_bad_arguments(walk, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PDExpert("walk", walk.observation_space, walk.action_space, **kwargs)


def test_pd_targets_use_the_envs_own_action_encoding(walk):
    u = walk.unwrapped
    expert = PDExpert.for_env(walk)
    obs, _ = walk.reset(options={"start_time": 0.4})
    qpos, _ = u.clip.sample(expert.target_time(obs[0]))
    np.testing.assert_array_equal(expert.label(obs)[0], u.pd_target_action(qpos))


def test_the_torque_rules_default_gains_are_the_servos():
    from sb3_mimic.experts.pd import servo_gains

    env = gymnasium.make(WALK, action_mode="torque")
    expert = PDExpert.for_env(env)
    gains = servo_gains(env.unwrapped.model, env.unwrapped.index)
    # DeepMimic's humanoid3d_ctrl: chest kp 1000 N m/rad with a 200 N m limit, knees 500 with 150
    np.testing.assert_allclose(gains[0:3], 1000 / 200)
    assert gains[RIGHT_KNEE] == pytest.approx(500 / 150)
    assert expert.kd == 0.0 and np.array_equal(expert.kp, gains)
