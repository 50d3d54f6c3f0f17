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
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    turn = np.array([np.cos(0.35), 0, 0, np.sin(0.35)])  # 0.7 rad about z
    mujoco.mju_mulQuat(qpos[3:7], turn, env.data.qpos[3:7])
    qpos[0:2] = [5.0, -2.0]
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, turn)
    qvel[0:3] = rot.reshape(3, 3) @ qvel[0:3]  # world-frame root velocity turns with the body
    turned = env.set_physics_state(qpos, qvel)
    np.testing.assert_array_equal(env.data.qpos, qpos)  # the env's data follows the batch
    np.testing.assert_allclose(turned, obs, atol=1e-5)
    np.testing.assert_array_equal(env._get_obs(), turned)



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
    from sb3_mimic.reward import forward_kinematics, heading

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
            assert batch._ref.heading[i] == heading(d.xquat[1])
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


def test_batch_physics_and_falls_equal_a_plain_loop_over_mujoco_data():
    """The batch's one call into MuJoCo's threads equals stepping one MjData per character by hand (mj_step for the
    control step, mj_step1 for the new state's kinematics, mj_subtreeVel for the centre-of-mass velocity), bit for
    bit, over falls and resets (whose kinematics the batch leaves to the next step, or to a reader); and its contact
    sensors flag a fall exactly when MuJoCo's contact list touches a fall geom."""
    n = 6
    batch = CharacterBatch(n, "walk", threads=2, early_termination=True)
    m = batch.model
    starts = np.array([batch.grid_time(t) for t in np.linspace(0.0, 1.1, n)])
    batch.reset(np.arange(n), starts)
    datas = []
    for i in range(n):
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:] = batch.qpos[i], batch.qvel[i]
        mujoco.mj_forward(m, d)
        datas.append(d)
    rng = np.random.default_rng(4)
    falls = resets = 0
    for _ in range(40):
        a = rng.uniform(-1.0, 1.0, (n, 28))
        out = batch.step(a)
        for i, d in enumerate(datas):
            d.ctrl[:] = a[i] * np.pi
            mujoco.mj_step(m, d, nstep=batch.frame_skip)
            mujoco.mj_step1(m, d)
            mujoco.mj_subtreeVel(m, d)
            np.testing.assert_array_equal(batch.qpos[i], d.qpos)
            np.testing.assert_array_equal(batch.qvel[i], d.qvel)
            np.testing.assert_array_equal(batch._sim.xpos[i], d.xpos[1:])
            np.testing.assert_array_equal(batch._sim.cvel[i], d.cvel[1:])
            np.testing.assert_array_equal(batch._sim.com_velocity[i], d.subtree_linvel[1])
            touched = bool(batch.fall_geoms[d.contact.geom[: d.ncon]].any())
            assert out.fell[i] == touched
            falls += touched
        assert not out.nonfinite.any()
        ended = np.flatnonzero(out.fell)
        if len(ended):  # a reset of a character that has run equals a fresh start of its MjData
            batch.reset(ended, batch.start_time[ended])
            for i in ended:
                d = datas[i]
                mujoco.mj_resetData(m, d)
                d.qpos[:], d.qvel[:] = batch.qpos[i], batch.qvel[i]
                mujoco.mj_forward(m, d)
                np.testing.assert_array_equal(batch.data(i).xpos, d.xpos)  # its kinematics, computed when read
            resets += len(ended)
    assert falls > 0 and resets > 0  # random actions: characters fell, the check saw it, and they started again


def test_a_change_to_the_model_applies_to_the_batch():
    """The batch runs on the caller's model, not a copy: what an env's user changes (here gravity) is simulated."""
    changed, plain = (CharacterBatch(1, "walk", threads=1, early_termination=False) for _ in range(2))
    changed.model.opt.gravity[:] = (0.0, 0.0, 3.0)
    for b in (changed, plain):
        b.reset(np.arange(1), np.zeros(1))
    d = mujoco.MjData(changed.model)
    d.qpos[:], d.qvel[:] = changed.qpos[0], changed.qvel[0]
    mujoco.mj_forward(changed.model, d)
    for _ in range(3):
        changed.step(np.zeros((1, 28)))
        plain.step(np.zeros((1, 28)))
        mujoco.mj_step(changed.model, d, nstep=changed.frame_skip)
    np.testing.assert_array_equal(changed.qpos[0], d.qpos)
    assert changed.qpos[0, 2] > plain.qpos[0, 2] + 1e-3  # pulled up, not down


def test_batch_data_and_the_env_mirror_hold_the_whole_state():
    env = MimicHumanoidEnv(motion="walk")
    env.reset(seed=2)
    env.step(np.zeros(28, dtype=np.float32))
    batch = env._batch
    d = batch.data(0)
    np.testing.assert_array_equal(d.qpos, env.data.qpos)
    np.testing.assert_array_equal(d.xpos, env.data.xpos)
    assert d.time == env.data.time > 0 and env.data.ncon == d.ncon
    with pytest.raises(IndexError, match="out of range"):
        batch.data(1)
    with pytest.raises(ValueError, match="read-only"):
        batch.qpos[0, 0] = 1.0


@pytest.mark.parametrize("target_observation", [False, True])
def test_an_episodes_first_observation_from_the_tick_cache_is_a_fresh_one(target_observation):
    """The first observation of an episode is looked up per start tick after its first computation: every later
    start at that tick gets what computing it from the state gives (``observe``), through steps in between."""
    batch = CharacterBatch(4, "walk", threads=2, target_observation=target_observation)
    starts = np.array([batch.grid_time(t) for t in (0.2, 0.2, 0.7, 0.9)])
    first = batch.reset(np.arange(4), starts)  # computed (0.2 twice in one call)
    np.testing.assert_array_equal(first[0], first[1])
    rng = np.random.default_rng(1)
    for _ in range(3):
        batch.step(rng.uniform(-1, 1, (4, 28)))
        again = batch.reset(np.array([3, 0]), starts[[2, 0]])  # cached now, in the order asked for
        np.testing.assert_array_equal(again, batch.observe()[[3, 0]])
        np.testing.assert_array_equal(again, first[[2, 0]])
    with pytest.raises(ValueError, match="more than once"):
        batch.reset(np.array([1, 1]), starts[:2])


def test_an_error_mujoco_raises_in_the_step_reaches_the_caller_with_the_clocks_unchanged():
    batch = CharacterBatch(3, "walk", threads=2)
    batch.reset(np.arange(3), np.zeros(3))
    batch.step(np.zeros((3, 28)))
    before = batch.time.copy()
    mujoco.set_mjcb_control(lambda m, d: None)  # a Python physics callback: MuJoCo's batch refuses to run it
    try:
        with pytest.raises(ValueError):
            batch.step(np.zeros((3, 28)))
    finally:
        mujoco.set_mjcb_control(None)
    np.testing.assert_array_equal(batch.time, before)
    batch.step(np.zeros((3, 28)))
    np.testing.assert_array_equal(batch.time, before + batch.dt)


def test_reset_from_a_view_of_its_own_start_times():
    """Start times passed as a view of ``start_time`` (which reset overwrites) are read before they change."""
    batch = CharacterBatch(3, "walk", threads=1)
    h = batch.model.opt.timestep
    batch.reset(np.arange(3), np.array([10, 20, 30]) * h)
    batch.reset(np.array([1, 2]), batch.start_time[0:2])
    assert np.round(batch.start_time / h).tolist() == [10, 10, 20]
    assert batch.time.tolist() == (np.array([10, 10, 20]) * h).tolist()
    assert np.array_equal(batch.reference_state(2)[0], batch.clip.sample(20 * h)[0])
