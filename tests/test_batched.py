"""``sb3_mimic.envs.batched``: the batched simulation's observation (through the env, a batch of one) and its
argument checks.  That the batch steps as the single env does is tested with the vector envs (test_vec_env.py)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sb3_mimic import character
from sb3_mimic.envs import CharacterBatch, MimicHumanoidEnv, MimicHumanoidVectorEnv


def test_observation_against_independent_computation(walk):
    obs, _ = walk.reset(options={"start_time": 0.6})
    obs, *_ = walk.step(walk.action_space.sample() * 0.1)
    u = walk.unwrapped
    m, d = u.model, u.data
    root = m.body("root").id
    forward = d.xmat[root].reshape(3, 3)[:, 0]
    heading = np.arctan2(forward[1], forward[0])
    c, s = np.cos(heading), np.sin(heading)
    to_heading = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    n = 15
    assert obs[0] == pytest.approx(u.clip.phase(u.time), abs=1e-6)
    assert obs[1] == pytest.approx(d.xpos[root, 2], abs=1e-6)
    for i, name in enumerate(character.BODIES):
        b = m.body(name).id
        pos = to_heading @ (d.xpos[b] - d.xpos[root])
        np.testing.assert_allclose(obs[2 + 3 * i : 5 + 3 * i], pos, atol=1e-5)
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, b, vel, 0)  # body frame origin, world axes
        np.testing.assert_allclose(obs[2 + 7 * n + 3 * i : 5 + 7 * n + 3 * i], to_heading @ vel[3:], atol=1e-4)
        np.testing.assert_allclose(obs[2 + 10 * n + 3 * i : 5 + 10 * n + 3 * i], to_heading @ vel[:3], atol=1e-4)
        quat = obs[2 + 3 * n + 4 * i : 6 + 3 * n + 4 * i]
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat.astype(np.float64))
        np.testing.assert_allclose(mat.reshape(3, 3), to_heading @ d.xmat[b].reshape(3, 3), atol=1e-5)
        assert quat[0] >= 0



def test_observation_is_heading_invariant():
    env = MimicHumanoidEnv(motion="walk")
    obs, _ = env.reset(options={"start_time": 0.4})
    m, d = env.model, env.data
    turn = np.array([np.cos(0.35), 0, 0, np.sin(0.35)])  # 0.7 rad about z
    quat = d.qpos[3:7].copy()
    mujoco.mju_mulQuat(d.qpos[3:7], turn, quat)
    d.qpos[0:2] = [5.0, -2.0]
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, turn)
    d.qvel[0:3] = rot.reshape(3, 3) @ d.qvel[0:3]  # world-frame root velocity turns with the body
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(env._get_obs(), obs, atol=1e-5)



def test_character_batch_validates_its_arguments():
    with pytest.raises(ValueError, match="num_characters"):
        CharacterBatch(0)
    with pytest.raises(ValueError, match="threads"):
        CharacterBatch(2, threads=0)
    with pytest.raises(ValueError, match="action_mode"):
        CharacterBatch(2, action_mode="velocity")
    batch = CharacterBatch(2, threads=1)
    batch.reset(np.arange(2), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="shape"):
        batch.step(np.zeros((3, 28)))
    out = batch.step(np.full((2, 28), np.nan))
    assert out.invalid_action.all() and np.isfinite(out.obs).all()
    with pytest.raises(ValueError, match="render"):
        MimicHumanoidVectorEnv(2, render_mode="human")



def test_references_read_from_the_tick_table_are_the_clips_own_samples():
    """A start on the physics grid reads its references from the batch's table; every field equals what a fresh
    sample and forward kinematics at that time give (independently computed here), through a cycle boundary,
    and a start off the grid (computed each step) agrees with its own direct samples too."""
    from sb3_mimic.reward import forward_kinematics

    batch = CharacterBatch(3, "walk", action_mode="residual", threads=1, early_termination=False)
    h = batch.model.opt.timestep
    on_grid = batch.grid_time(1.2345)
    assert on_grid == round(1.2345 * 240) / 240 and on_grid != 1.2345
    batch.reset(np.arange(3), np.array([on_grid, 1.2345, 0.5]))
    assert (batch._start_tick >= 0).tolist() == [True, False, True]
    d = mujoco.MjData(batch.model)
    for _ in range(3):  # walk lasts 1.27 s: the first character crosses into its second cycle
        angles = batch.next_reference_angles()
        batch.step(np.zeros((3, 28)))
        for i, t in enumerate((batch.time[0], 1.2345 + batch.steps[1] * batch.dt, batch.time[2])):
            qpos, qvel = batch.clip.sample(float(t))
            d.qpos[:], d.qvel[:] = qpos, qvel
            forward_kinematics(batch.model, d)
            ref_qpos, ref_qvel = batch.reference_state(i)
            np.testing.assert_array_equal(ref_qpos, qpos)
            np.testing.assert_array_equal(ref_qvel, qvel)
            np.testing.assert_array_equal(batch._ref.xpos[i], d.xpos[1:])
            np.testing.assert_array_equal(batch._ref.xquat[i], d.xquat[1:])
            np.testing.assert_array_equal(batch._ref.com_velocity[i], d.subtree_linvel[1])
            np.testing.assert_array_equal(batch.reference_data(i).xpos, d.xpos)
            diff = np.zeros(batch.model.nv)
            mujoco.mj_differentiatePos(batch.model, diff, 1.0, batch.model.qpos0, qpos)
            np.testing.assert_array_equal(angles[i], diff[batch.index.action_dofs])
    assert batch.time[0] == (batch._start_tick[0] + 3 * batch.frame_skip) * h
    assert batch.time[0] > batch.clip.duration


def test_random_starts_lie_on_the_physics_grid():
    env = MimicHumanoidEnv(motion="walk")
    vec = MimicHumanoidVectorEnv(4, "walk", threads=1)
    vec.reset(seed=3)
    h = env.model.opt.timestep
    for seed in range(5):
        env.reset(seed=seed)
        assert env.start_time == round(env.start_time / h) * h
    starts = vec._chars.batch.start_time
    np.testing.assert_array_equal(starts, np.round(starts / h) * h)
    assert len(set(starts.tolist())) == 4


def test_a_worker_thread_that_fails_raises_in_the_step_instead_of_hanging(monkeypatch):
    batch = CharacterBatch(6, "walk", threads=2)
    batch.reset(np.arange(6), np.zeros(6))
    real = mujoco.mj_step2
    worker = {}

    def failing(m, d):
        import threading

        if threading.current_thread() is not threading.main_thread():
            worker["hit"] = True
            raise RuntimeError("physics failed")
        return real(m, d)

    monkeypatch.setattr(mujoco, "mj_step2", failing)
    with pytest.raises(RuntimeError, match="physics failed"):
        batch.step(np.zeros((6, 28)))
    assert worker["hit"]
    batch.close()


def test_step_infos_hold_each_characters_own_figures():
    from sb3_mimic.reward import TERMS

    batch = CharacterBatch(3, "walk", threads=1)
    batch.reset(np.arange(3), np.array([0.0, 0.4, 0.8]))
    out = batch.step(np.random.default_rng(0).uniform(-1, 1, (3, 28)))
    infos = out.infos()
    assert [out.info(i) for i in range(3)] == infos
    for i, info in enumerate(infos):
        assert [info[f"reward_{t}"] for t in TERMS] == out.terms[i].tolist()
        assert (info["mpjpe"], info["time"], info["phase"]) == (out.mpjpe[i], out.time[i], out.phase[i])
        assert type(info["mpjpe"]) is float and type(info["fell"]) is bool
        assert sum(info[f"reward_{t}"] for t in TERMS) == pytest.approx(out.reward[i], abs=1e-12)
