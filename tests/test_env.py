"""The imitation env: API contract, reward, reference-state initialisation, episode ends, bad input."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest

from sb3_mimic.envs import MimicHumanoidEnv
from sb3_mimic.motion import floor_clearance, load_clip
from sb3_mimic.reward import TERMS


def reference_step(env: gymnasium.Env):
    """Step with the reference pose one control step ahead as the PD target."""
    u = env.unwrapped
    qpos, _ = u.clip.sample(u.time + u.dt)
    return env.step(u.pd_target_action(qpos))


def test_spaces_and_timing(walk):
    u = walk.unwrapped
    assert walk.action_space.shape == (28,) and walk.action_space.dtype == np.float32
    assert (walk.action_space.low == -1).all() and (walk.action_space.high == 1).all()
    assert walk.observation_space.shape == (197,)
    assert sum(u.observation_structure.values()) == 197
    assert u.dt == pytest.approx(1 / 30) and u.model.opt.timestep == pytest.approx(1 / 240)
    assert walk.metadata["render_fps"] == 30


def test_gymnasium_and_sb3_env_checkers():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    gym_check(MimicHumanoidEnv(motion="walk"), skip_render_check=True)
    sb3_check(MimicHumanoidEnv(motion="walk"), warn=True)


def test_start_time_reset_is_exact_reference(walk):
    u = walk.unwrapped
    for t in (0.0, 0.5, 2.9):  # 2.9 s is past one walk cycle: the root carries the cycle offset
        walk.reset(options={"start_time": t})
        qpos, qvel = u.clip.sample(t)
        qpos[2] += floor_clearance(u.model, qpos)  # a frame that sinks into the floor starts lifted clear of it
        np.testing.assert_allclose(u.data.qpos, qpos, atol=1e-12)
        np.testing.assert_allclose(u.data.qvel, qvel, atol=1e-12)
        assert u.time == t
    assert u.clip.sample(2.9)[0][0] > u.clip.sample(2.9 - u.clip.duration)[0][0] + 1.0


def test_reward_sums_terms_and_reference_target_tracks(walk):
    for t in (0.1, 0.3, 0.77, 1.2):
        walk.reset(options={"start_time": t})
        _, reward, terminated, _, info = reference_step(walk)
        assert reward == pytest.approx(sum(info[f"reward_{k}"] for k in TERMS), abs=1e-12)
        assert reward > 0.85 and info["mpjpe"] < 0.03 and not terminated
        assert info["time"] == pytest.approx(t + 1 / 30)


def test_random_actions_earn_clearly_less(walk):
    rng = np.random.default_rng(0)
    tracked, random = [], []
    for t in (0.1, 0.5, 0.9):
        walk.reset(options={"start_time": t})
        rewards = [reference_step(walk)[1] for _ in range(5)]
        tracked.append(np.mean(rewards))
        walk.reset(options={"start_time": t})
        rewards = [walk.step(rng.uniform(-1, 1, 28).astype(np.float32))[1] for _ in range(5)]
        random.append(np.mean(rewards))
    assert np.mean(random) < np.mean(tracked) - 0.1


def test_reward_drops_with_pose_error(walk):
    walk.reset(options={"start_time": 0.5})
    u = walk.unwrapped
    base = [reference_step(walk)[1] for _ in range(5)]
    walk.reset(options={"start_time": 0.5})
    for _ in range(5):
        qpos, _ = u.clip.sample(u.time + u.dt)
        action = u.pd_target_action(qpos)
        action[6:9] += 0.3  # steer the right hip about 0.9 rad away from the reference
        _, reward, _, _, info = walk.step(action)
    assert reward < base[-1] - 0.05 and info["mpjpe"] > 0.03
    assert info["reward_pose"] < 0.45


def test_seeded_resets_are_reproducible():
    a, b = MimicHumanoidEnv(motion="walk"), MimicHumanoidEnv(motion="walk")
    starts_a = [a.reset(seed=s)[1]["time"] for s in (1, 2, 3)]
    starts_b = [b.reset(seed=s)[1]["time"] for s in (1, 2, 3)]
    assert starts_a == starts_b and len(set(starts_a)) == 3
    assert all(0 <= t < a.clip.duration for t in starts_a)


def test_zero_torque_falls_and_getup_never_falls():
    env = gymnasium.make("MimicHumanoidWalk-v0", action_mode="torque")
    env.reset(seed=0)
    for step in range(90):  # noqa: B007 - step is read after the loop
        _, _, terminated, _, info = env.step(np.zeros(28, dtype=np.float32))
        if terminated:
            break
    assert terminated and info["fell"] and not info["clip_end"] and step < 60
    getup = gymnasium.make("MimicHumanoidGetupFaceup-v0", action_mode="torque")
    getup.reset(options={"start_time": 0.0})
    for _ in range(20):
        _, _, terminated, _, info = getup.step(np.zeros(28, dtype=np.float32))
        assert not info["fell"]


def test_none_clip_ends_at_last_frame():
    env = gymnasium.make("MimicHumanoidKick-v0")
    u = env.unwrapped
    env.reset(options={"start_time": u.clip.duration - 0.1})
    for _ in range(4):
        _, _, terminated, truncated, info = reference_step(env)
        if terminated:
            break
    assert terminated and info["clip_end"] and not info["fell"] and not truncated
    with pytest.raises(ValueError, match="below the clip's duration"):
        env.reset(options={"start_time": u.clip.duration + 1})


def test_torque_mode():
    env = MimicHumanoidEnv(motion="walk", action_mode="torque")
    env.reset(options={"start_time": 0.2})
    env.step(np.zeros(28, dtype=np.float32))
    assert np.abs(env.data.qfrc_actuator).max() == 0.0  # PD servos are off
    action = np.ones(28, dtype=np.float32)
    env.step(action)
    tau = env.data.qfrc_applied[env.index.action_dofs]
    chest = np.linalg.norm(tau[0:3])
    assert chest == pytest.approx(200.0)  # a ball joint's torque is clamped by norm to its limit
    assert tau[9] == pytest.approx(150.0)  # right knee at its limit


def test_nan_and_out_of_range_actions_never_crash(walk):
    walk.reset(seed=0)
    action = np.full(28, np.nan, dtype=np.float32)
    obs, reward, _, _, info = walk.step(action)
    assert info["invalid_action"] and np.isfinite(obs).all() and np.isfinite(reward)
    obs, reward, *_ = walk.step(np.full(28, 1e9, dtype=np.float32))
    assert np.isfinite(obs).all()
    np.testing.assert_allclose(walk.unwrapped.data.ctrl, np.pi)
    with pytest.raises(ValueError, match="shape"):
        walk.step(np.zeros(5))


def test_diverged_state_ends_episode():
    env = MimicHumanoidEnv(motion="walk")
    env.reset(seed=0)
    env.set_physics_state(env.data.qpos, np.full(env.model.nv, 1e200))
    obs, reward, terminated, _, info = env.step(np.zeros(28, dtype=np.float32))
    assert terminated and info["nonfinite"] and info["fell"] and reward == 0.0
    assert np.isfinite(obs).all()
    env.reset(seed=1)
    assert np.isfinite(env.step(np.zeros(28, dtype=np.float32))[0]).all()
    for seed in (2, 3):  # a character that diverged once is caught again
        env.reset(seed=seed)
        env.set_physics_state(env.data.qpos, np.full(env.model.nv, 1e200))
        _, reward, terminated, _, info = env.step(np.zeros(28, dtype=np.float32))
        assert terminated and info["nonfinite"] and reward == 0.0
        env.reset(seed=seed)
        *_, terminated, _, info = env.step(np.zeros(28, dtype=np.float32))
        assert not info["nonfinite"]  # and a clean episode after it is not


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"motion": "wlak"}, "Available clips"),
        ({"action_mode": "velocity"}, "action_mode"),
        ({"control_frequency": 0}, "control_frequency"),
        ({"sim_frequency": -300}, "sim_frequency"),
        ({"sim_frequency": 100, "control_frequency": 30}, "whole multiple"),
        ({"frame_skip": 3}, "unexpected arguments"),
    ],
)
def test_bad_kwargs_raise_clear_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        gymnasium.make("MimicHumanoid-v0", **kwargs)


def test_unsupported_render_mode():
    with pytest.raises(ValueError, match="render_mode"):
        MimicHumanoidEnv(render_mode="depth_array")


def test_bad_reset_options(walk):
    with pytest.raises(ValueError, match="start_time"):
        walk.reset(options={"start_time": -1.0})
    with pytest.raises(ValueError, match="start_time"):
        walk.reset(options={"start_time": float("nan")})
    with pytest.raises(ValueError, match="unknown reset options"):
        walk.reset(options={"start": 1.0})


def test_render_shows_character_and_ghost():
    env = gymnasium.make("MimicHumanoidWalk-v0", render_mode="rgb_array", width=160, height=120, ghost_offset=(0, 1, 0))
    env.reset(options={"start_time": 0.2})
    image = env.render()
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    orange = (image[..., 0].astype(int) - image[..., 2] > 60).sum()  # the ghost is orange, the body blue-grey
    assert orange > 20
    env.close()
    plain = MimicHumanoidEnv(motion="walk")
    plain.reset(seed=0)
    assert plain.render() is None


def test_pickle_and_subproc_vec_env():
    env = MimicHumanoidEnv(motion="run")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.clip.name == "run"
    obs_a, _ = env.reset(options={"start_time": 0.3})
    obs_b, _ = clone.reset(options={"start_time": 0.3})
    np.testing.assert_array_equal(obs_a, obs_b)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # worker processes import sb3_mimic (and so register its ids) through the "module:id" form
    vec = make_vec_env("sb3_mimic:MimicHumanoidWalk-v0", n_envs=2, vec_env_cls=SubprocVecEnv, seed=0)
    obs = vec.reset()
    obs, rewards, _, infos = vec.step(np.zeros((2, 28), dtype=np.float32))
    assert obs.shape == (2, 197) and rewards.shape == (2,) and "mpjpe" in infos[0]
    vec.close()


def test_observation_table_in_docstring_matches_structure():
    import re

    rows = re.findall(r"^\s*\| (\d+)(?:-(\d+))? \| (\d+) \|", MimicHumanoidEnv.__doc__, flags=re.MULTILINE)
    sizes = [int(size) for _, _, size in rows]
    assert sizes == list(MimicHumanoidEnv(motion="walk", target_observation=True).observation_structure.values())
    for start, end, size in rows:  # each row's slice covers exactly its size
        assert (int(end or start) - int(start) + 1) == int(size)


def test_a_start_state_that_would_sink_into_the_floor_is_lifted_clear_of_it():
    from sb3_mimic.motion import lowest_point

    env = gymnasium.make("MimicHumanoidCrawl-v0").unwrapped  # crawl's reference sinks up to 111 mm in places
    model = env.model
    lifted = 0
    for t in np.linspace(0.0, env.clip.duration - 2 * env.dt, 40):
        env.reset(options={"start_time": float(t)})
        ref_qpos, _ = env.clip.sample(float(t))
        depth = -lowest_point(model, ref_qpos)
        assert lowest_point(model, env.data.qpos) >= -1e-9  # the start state stands on or above the floor
        rise = env.data.qpos[2] - ref_qpos[2]
        if depth > 0:
            lifted += 1
            assert rise == pytest.approx(depth, abs=1e-12)
        else:
            assert rise == 0.0
        np.testing.assert_array_equal(env.data.qpos[3:], ref_qpos[3:])  # only the height changes
        np.testing.assert_array_equal(env.reference_state()[0], ref_qpos)  # the reference itself is not moved
    assert lifted > 0


TORQUE_CLIPS = ["walk", "run", "backflip", "roll"]  # upright, with flight, inverted in the air, inverted on the floor


@pytest.mark.parametrize("clip", TORQUE_CLIPS)
def test_random_torques_over_the_full_range_stay_finite_for_20_s(clip):
    env = gymnasium.make(load_clip(clip).env_id, action_mode="torque", early_termination=False)
    rng = np.random.default_rng(0)
    for episode in range(3):
        env.reset(seed=episode)
        for step in range(600):
            obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 28).astype(np.float32))
            assert not info["nonfinite"] and np.isfinite(obs).all(), (episode, step)
            if terminated or truncated:
                break
        assert step == 599  # the whole 20 s
    assert np.all(env.unwrapped.model.dof_damping[6:] > 0)  # the joints keep their damping in torque mode


# Mean survival (s) of the PD rule from 10 starts, PD targets / torques: walk 0.98 / 0.98, run 0.58 / 0.58, backflip
# 0.80 / 0.79, roll 5.0 / 5.0 (every start reaches the 150-step limit that keeps the test cheap; it falls in 0.09 s
# when torque mode diverged)
@pytest.mark.parametrize(("clip", "limit"), [("walk", 600), ("run", 600), ("backflip", 600), ("roll", 150)])
def test_the_torque_pd_rule_stays_up_as_long_as_pd_target_tracking(clip, limit):
    from sb3_mimic.experts import PDExpert

    def survival(env_kwargs):
        env = gymnasium.make(load_clip(clip).env_id, max_episode_steps=limit, **env_kwargs)
        expert = PDExpert.for_env(env)
        times = []
        for start in range(10):
            obs, _ = env.reset(seed=1000 + start)
            steps, done = 0, False
            while not done:
                obs, _, terminated, truncated, _ = env.step(expert.label(obs)[0])
                steps, done = steps + 1, terminated or truncated
            times.append(steps * env.unwrapped.dt)
        return float(np.mean(times)), env.unwrapped.dt

    (pd_target, dt), (torque, _) = survival({}), survival({"action_mode": "torque"})
    # the same servo, its torque held for a control step instead of recomputed each physics step: as long, within
    # one control step
    assert torque >= pd_target - dt, (torque, pd_target)
    assert pd_target > 0.5  # the PD rule holds the clip for a while: a fall in a few steps would prove nothing


def test_pose_deviation_ends_an_episode_once_a_body_strays_beyond_the_distance():
    """``termination_distance``: the episode ends as a fall (``deviated``) at the first step where some body origin
    is farther than the distance from its reference, and not before; off by default."""
    from sb3_mimic.envs import MimicHumanoidVecEnv

    actions = np.full(28, 0.6, dtype=np.float32)  # a pose far from walk's: the bodies leave the reference
    plain = gymnasium.make("MimicHumanoidWalk-v0", early_termination=False)
    plain.reset(seed=2)
    distances = []
    for _ in range(30):
        _, _, terminated, _, info = plain.step(actions)
        u = plain.unwrapped
        sim = u.data.xpos[1:16]
        ref = u._ref.xpos[1:16]
        distances.append(float(np.linalg.norm(sim - ref, axis=1).max()))
        assert not terminated and not info["deviated"]
    limit = 0.5 * (min(distances) + max(distances))
    first = next(k for k, d in enumerate(distances) if d > limit)
    env = gymnasium.make("MimicHumanoidWalk-v0", early_termination=False, termination_distance=limit)
    env.reset(seed=2)
    for k in range(first + 1):
        _, _, terminated, _, info = env.step(actions)
        assert terminated == (k == first) and info["deviated"] == (k == first) and info["fell"] == (k == first), k
    vec = MimicHumanoidVecEnv(2, "walk", early_termination=False, termination_distance=limit, seed=2, threads=1)
    vec.reset()
    ends = [vec.step(np.tile(actions, (2, 1)))[3][0].get("deviated") for _ in range(first + 1)]
    assert ends[-1] is True and not any(ends[:-1])
    vec.close()
    with pytest.raises(ValueError, match="termination_distance"):
        gymnasium.make("MimicHumanoidWalk-v0", termination_distance=-1.0)


def test_the_target_block_shows_the_reference_from_the_character_and_its_difference_is_the_mpjpe():
    """``target_observation=True`` appends 50 numbers; at a reference-state start (lifted clear of the floor only)
    they say "no offset, no turn, the same pose", and after the body strays, the per-body difference of the target
    and own body-position blocks has the mean length ``info["mpjpe"]`` (a rotation keeps lengths), and the root
    offset and heading turn match the MjData of the character and of its reference."""
    from sb3_mimic.reward import heading

    env = gymnasium.make("MimicHumanoidWalk-v0", target_observation=True, early_termination=False)
    plain = gymnasium.make("MimicHumanoidWalk-v0", early_termination=False)
    u = env.unwrapped
    s = u.observation_structure
    assert list(s)[-3:] == ["target_root_offset", "target_heading", "target_body_positions"]
    assert env.observation_space.shape == (247,) == (sum(s.values()),)
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs[:197], plain.reset(seed=4)[0])  # DeepMimic's part is unchanged
    np.testing.assert_allclose(obs[197:199], 0.0, atol=1e-6)
    assert -0.05 < obs[199] <= 0.0  # the reference sits at most the floor lift below the character
    np.testing.assert_allclose(obs[200:202], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs[202:247], obs[2:47], atol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(40):
        action = rng.uniform(-0.5, 0.5, 28).astype(np.float32)
        obs, _, _, _, info = env.step(action)
        assert plain.step(action)[0] == pytest.approx(obs[:197])
    diff = (obs[202:247] - obs[2:47]).reshape(15, 3)[1:]
    assert info["mpjpe"] > 0.05  # the body did stray: the check below is not of zeros
    assert np.linalg.norm(diff, axis=1).mean() == pytest.approx(info["mpjpe"], rel=1e-5)
    sim, ref = u.data, u._ref
    turn = heading(ref.xquat[1:2])[0] - heading(sim.xquat[1:2])[0]
    np.testing.assert_allclose(obs[200:202], [np.cos(turn), np.sin(turn)], atol=1e-6)
    offset = ref.xpos[1] - sim.xpos[1]
    assert np.linalg.norm(obs[197:200]) == pytest.approx(np.linalg.norm(offset), rel=1e-5)
    assert obs[199] == pytest.approx(offset[2], abs=1e-6)  # the heading frame turns about the vertical only
    with pytest.raises(ValueError, match="target_observation must be True or False"):
        gymnasium.make("MimicHumanoidWalk-v0", target_observation="yes")
