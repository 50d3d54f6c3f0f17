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

