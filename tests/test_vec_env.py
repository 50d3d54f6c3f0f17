"""The batched simulation and its vector envs: equal to the single env step by step, and the SB3 and Gymnasium
vector-env contracts."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
from stable_baselines3 import PPO

import sb3_mimic
from sb3_mimic.envs import MimicHumanoidEnv, MimicHumanoidVecEnv, MimicHumanoidVectorEnv
from sb3_mimic.reward import TERMS

STEPS = 600


def _actions(n: int, steps: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-1, 1, (steps, n, 28)) * 0.5).astype(np.float32)


@pytest.mark.parametrize("clip", ["walk", "run", "backflip"])
def test_vec_env_equals_the_single_env_through_falls_and_resets(clip):
    """From the same seeds and actions: observations bit-identical; rewards, terms and MPJPE within 1e-12 (the
    batched sums of a batch of three and of a batch of one may round their last bit differently)."""
    n, seed = 3, 11
    env_id, kwargs = sb3_mimic.registration.env_spec_for(clip)
    vec = MimicHumanoidVecEnv(n, clip, threads=2, seed=seed)
    first = vec.reset()
    actions = _actions(n, STEPS)
    record = [vec.step(actions[k]) for k in range(STEPS)]
    vec.close()
    ended = 0
    for i in range(n):
        env = gymnasium.make(env_id, **kwargs)
        obs, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs, first[i])
        for k in range(STEPS):
            obs, reward, terminated, truncated, info = env.step(actions[k][i])
            v_obs, v_reward, v_done, v_infos = (part[i] for part in record[k])
            assert v_done == (terminated or truncated), (i, k)
            assert v_reward == pytest.approx(reward, abs=1e-12)
            for t in TERMS:
                assert v_infos[f"reward_{t}"] == pytest.approx(info[f"reward_{t}"], abs=1e-12)
            assert v_infos["mpjpe"] == pytest.approx(info["mpjpe"], abs=1e-12, nan_ok=True)
            assert (v_infos["fell"], v_infos["clip_end"]) == (info["fell"], info["clip_end"])
            if terminated or truncated:
                ended += 1
                np.testing.assert_array_equal(v_infos["terminal_observation"], obs)
                assert v_infos["TimeLimit.truncated"] == truncated
                obs, _ = env.reset()
            np.testing.assert_array_equal(v_obs, obs)
        env.close()
    assert ended >= n  # the random actions fell: the auto-resets were exercised


def test_sb3_vec_env_contract_and_seeding():
    vec = MimicHumanoidVecEnv(4, "walk", threads=2)
    vec.seed(3)
    a = vec.reset()
    vec.seed(3)
    b = vec.reset()
    np.testing.assert_array_equal(a, b)  # seeding reproduces the starts
    assert len({round(float(t), 9) for t in vec.batch.start_time}) == 4  # one generator per character
    assert vec.get_attr("clip")[0].name == "walk" and vec.get_attr("dt", [1, 2]) == [1 / 30, 1 / 30]
    qpos, _ = vec.env_method("reference_state", indices=[2])[0]
    assert qpos.shape == (43,) and vec.env_is_wrapped(gymnasium.Wrapper) == [False] * 4
    obs, reward, done, infos = vec.step(np.zeros((4, 28), dtype=np.float32))
    assert obs.shape == (4, 197) and reward.dtype == np.float32 and done.shape == (4,) and len(infos) == 4
    vec.close()


def test_episodes_start_in_the_experts_states_at_the_share_asked():
    """With start states, an episode starts in one of them (drawn from the character's generator) at its clip time,
    and from the reference otherwise; the share of the former is about ``start_share``."""
    from sb3_mimic.demos import StartStates

    ref = MimicHumanoidVecEnv(1, "walk", threads=1, seed=0)
    ref.reset()
    rng = np.random.default_rng(0)
    qpos = np.stack([ref.batch.qpos[0].copy() for _ in range(3)])
    qpos[:, 7:] += rng.normal(0.0, 0.05, (3, qpos.shape[1] - 7))  # joints bent away from any reference pose
    pool = StartStates(time=np.array([0.1, 0.5, 0.9]), qpos=qpos, qvel=np.zeros((3, ref.batch.model.nv)), clip="walk")
    vec = MimicHumanoidVecEnv(40, "walk", threads=2, seed=1, start_states=pool, start_share=0.25)
    vec.reset()
    from_pool = []
    for i in range(40):
        match = [k for k in range(3) if np.array_equal(vec.batch.qpos[i], qpos[k])]
        if match:
            assert vec.batch.time[i] == pool.time[match[0]]
            np.testing.assert_array_equal(vec.batch.qvel[i], 0.0)
        from_pool.append(bool(match))
    assert 4 <= sum(from_pool) <= 18  # 10 expected of 40 (binomial, p = 0.25: outside 4..18 once in 1,000)
    # the observation is the state's own: equal to the single env put in that state
    single = gymnasium.make("MimicHumanoidWalk-v0").unwrapped
    i = from_pool.index(True)
    k = next(k for k in range(3) if np.array_equal(vec.batch.qpos[i], qpos[k]))
    single.reset(options={"start_time": float(pool.time[k])})
    np.testing.assert_array_equal(single.set_physics_state(qpos[k], pool.qvel[k]), vec.batch.last_obs[i])
    with pytest.raises(ValueError, match="start_share"):
        MimicHumanoidVecEnv(2, "walk", threads=1, start_states=pool, start_share=0.0)
    with pytest.raises(ValueError, match="start states must be"):
        MimicHumanoidVecEnv(2, "walk", threads=1, start_states=StartStates(pool.time, qpos[:, :10], pool.qvel, "walk"))
    vec.close()
    ref.close()


def test_an_sb3_model_learns_on_the_vec_env():
    vec = MimicHumanoidVecEnv(4, "walk", threads=2, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0,
                device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0  # episodes ended and were counted
    assert all(0 < e["l"] <= 600 and 0 < e["r"] <= e["l"] for e in model.ep_info_buffer)
    vec.close()


def test_gymnasium_make_vec_gives_the_batched_vector_env():
    envs = gymnasium.make_vec("MimicHumanoidWalk-v0", num_envs=3, vectorization_mode="vector_entry_point", threads=1)
    assert isinstance(envs.unwrapped, MimicHumanoidVectorEnv) and envs.num_envs == 3
    obs, _ = envs.reset(seed=5)
    single = gymnasium.make("MimicHumanoidWalk-v0")
    np.testing.assert_array_equal(obs[1], single.reset(seed=6)[0])
    assert obs.shape == (3, 197) and envs.observation_space.shape == (3, 197)
    actions = _actions(3, 60, seed=1)
    finals = 0
    for k in range(60):
        obs, reward, terminated, _, infos = envs.step(actions[k])
        s_obs, s_reward, s_term, s_trunc, _ = single.step(actions[k][1])
        assert reward[1] == pytest.approx(s_reward, abs=1e-12) and terminated[1] == s_term
        if s_term or s_trunc:
            finals += 1
            assert infos["_final_obs"][1]
            np.testing.assert_array_equal(infos["final_obs"][1], s_obs)
            s_obs, _ = single.reset()
        np.testing.assert_array_equal(obs[1], s_obs)
    assert finals >= 1
    envs.close()


def test_train_runs_on_the_batched_vec_env(tmp_path):
    from sb3_mimic.cli import main
    from sb3_mimic.rl import RunConfig, make_training_env

    run_dir = tmp_path / "run"
    argv = ["train", "--algo", "ppo", "--vec_env", "batched", "--n_envs", "4", "--threads", "2", "--num_timesteps", "128",
            "--n_steps", "32", "--batch_size", "64", "--eval_episodes", "1", "--run_dir", str(run_dir), "--no_progress"]
    assert main(argv) == 0
    config = RunConfig(**json.loads((run_dir / "run.json").read_text()))
    assert (config.vec_env, config.n_envs, config.threads) == ("batched", 4, 2)
    env = make_training_env(config)
    assert isinstance(env, MimicHumanoidVecEnv) and env.num_envs == 4 and env.batch.threads == 2
    env.close()
    assert (run_dir / "final_model.zip").is_file()


def test_the_vec_env_observes_the_target_block_as_the_single_env_does():
    n, seed, steps = 2, 5, 120
    vec = MimicHumanoidVecEnv(n, "walk", threads=2, seed=seed, target_observation=True)
    assert vec.observation_space.shape == (247,)
    first = vec.reset()
    actions = _actions(n, steps, seed=1)
    record = [vec.step(actions[k])[0] for k in range(steps)]
    vec.close()
    for i in range(n):
        env = gymnasium.make("MimicHumanoidWalk-v0", target_observation=True)
        obs, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs, first[i])
        for k in range(steps):
            obs, _, terminated, truncated, _ = env.step(actions[k][i])
            if terminated or truncated:
                obs, _ = env.reset()
            np.testing.assert_array_equal(record[k][i], obs)
    gym_vec = gymnasium.make_vec("MimicHumanoidWalk-v0", num_envs=2, vectorization_mode="vector_entry_point",
                                 target_observation=True)
    assert gym_vec.single_observation_space.shape == (247,)
    assert gym_vec.reset(seed=0)[0].shape == (2, 247)
    gym_vec.close()


@pytest.mark.parametrize("kind", ["sb3", "gymnasium"])
def test_one_character_renders_as_the_single_env_draws_it(kind):
    """``render_mode="rgb_array"``: the image of character ``render_index`` is the single env's image of the same
    state (character i is the single env seeded with seed + i), ghost included."""
    single = MimicHumanoidEnv(motion="walk", render_mode="rgb_array", width=160, height=120)
    single.reset(seed=7 + 2)
    if kind == "sb3":
        vec = MimicHumanoidVecEnv(3, "walk", threads=1, seed=7, render_mode="rgb_array", render_index=2, width=160,
                                  height=120)
        vec.reset()
    else:
        vec = MimicHumanoidVectorEnv(3, "walk", threads=1, render_mode="rgb_array", render_index=2, width=160,
                                     height=120)
        vec.reset(seed=7)
    action = np.random.default_rng(0).uniform(-0.2, 0.2, 28).astype(np.float32)
    for _ in range(5):
        single.step(action)
        if kind == "sb3":
            vec.step_async(np.tile(action, (3, 1)))
            vec.step_wait()
        else:
            vec.step(np.tile(action, (3, 1)))
    expected = single.render()
    image = vec.render() if kind == "sb3" else vec.render()[0]
    assert image.shape == (120, 160, 3) and image.std() > 0
    np.testing.assert_array_equal(image, expected)
    vec.close()
    single.close()
    with pytest.raises(ValueError, match="render_mode"):
        MimicHumanoidVecEnv(2, render_mode="human")
    with pytest.raises(ValueError, match="render_index"):
        MimicHumanoidVecEnv(2, render_mode="rgb_array", render_index=2)
