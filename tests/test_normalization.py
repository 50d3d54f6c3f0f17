"""Observation normalisation inside the policy: statistics, their updates during RL, and the policy file."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic import policies
from sb3_mimic.normalization import CLIP, NormalizedObservations, fit_statistics, normalizers_of
from sb3_mimic.policies import PolicyMetadata


def _normalizer(size=5):
    import gymnasium

    return NormalizedObservations(gymnasium.spaces.Box(-np.inf, np.inf, (size,), np.float32))


def test_batched_updates_give_the_mean_and_variance_of_all_the_data():
    data = np.random.default_rng(0).normal([1.0, -2.0, 0.0, 5.0, 3.0], [0.5, 2.0, 1.0, 0.1, 3.0], (1000, 5))
    data[:, 2] = 7.0  # a component that never varies
    norm = _normalizer()
    for chunk in np.array_split(data, [3, 100, 101, 640]):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), data.var(axis=0), rtol=1e-9, atol=1e-20)
    assert float(norm.count) == 1000
    out = norm(th.as_tensor(data[:4], dtype=th.float32)).numpy()
    expected = np.clip((data[:4] - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), -CLIP, CLIP)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert np.all(out[:, 2] == 0)  # the constant component passes as 0, not as a blown-up ratio
    far = norm(th.full((1, 5), 1e6)).numpy()
    assert np.all(np.abs(far) <= CLIP)


def test_pending_statistics_wait_until_applied_and_diverged_rows_are_skipped():
    norm = _normalizer(2)
    norm.update(np.array([[1.0, 1.0], [3.0, 5.0]]))
    norm.update(np.array([[100.0, 100.0], [np.nan, 0.0]]), apply=False)
    np.testing.assert_allclose(norm.mean.numpy(), [2.0, 3.0])  # still the applied ones
    np.testing.assert_allclose(norm.pending_mean.numpy(), [104 / 3, 106 / 3])  # the NaN row left out
    norm.apply_pending()
    np.testing.assert_allclose(norm.mean.numpy(), [104 / 3, 106 / 3])
    assert float(norm.count) == 3


def test_statistics_travel_inside_both_policy_files_and_load_without_unpickling(walk, tmp_path, monkeypatch):
    import pickle

    model = policies.make_trpo(DummyVecEnv([lambda: walk]), 16, 1, normalize=True)
    obs = np.stack([walk.reset(seed=s)[0] for s in range(40)])
    fit_statistics(model.policy, obs)
    (norm,) = normalizers_of(model.policy)
    np.testing.assert_allclose(norm.mean.numpy(), obs.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-9)
    expected = model.predict(obs[:5], deterministic=True)[0]
    fresh = policies.make_trpo(DummyVecEnv([lambda: walk]), 16, 1, normalize=True, seed=0)
    assert not np.allclose(fresh.predict(obs[:5], deterministic=True)[0], expected)  # the statistics matter
    calls = []
    original = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(1) or original(*a, **k))
    for suffix in ("zip", "pth"):
        path = policies.save_policy(model, tmp_path / f"p.{suffix}", PolicyMetadata(env_id="MimicHumanoidWalk-v0"))
        assert policies.read_metadata(path).observation_normalization
        loaded = policies.load_policy(path)
        (loaded_norm,) = normalizers_of(loaded.policy)
        assert th.equal(loaded_norm.mean, norm.mean) and th.equal(loaded_norm.var, norm.var)
        np.testing.assert_allclose(loaded.predict(obs[:5], deterministic=True)[0], expected, atol=1e-6)
    assert calls == []


def test_training_folds_each_rollout_into_the_statistics_before_the_next(tmp_path):
    """After a PPO run of k rollouts the network uses the statistics of its first starts and of rollouts 1..k-1,
    and holds rollout k pending: exactly the observations the rollout buffers saw."""
    from sb3_mimic.rl import RunConfig, run_training

    config = RunConfig(
        algo="ppo", env_id="MimicHumanoidWalk-v0", env_kwargs={"action_mode": "residual"}, num_timesteps=96,
        save_per_iter=10, n_envs=2, vec_env="batched", threads=1, hidden_size=8, num_layers=1,
        normalize_observations=True, eval_episodes=1, hyperparameters={"n_steps": 16, "batch_size": 32, "n_epochs": 1},
    )
    model = run_training(config, tmp_path / "run", progress_bar=False)
    (norm,) = normalizers_of(model.policy)
    assert float(norm.count) == 2 + 2 * 32  # 2 first starts, rollouts 1 and 2 of 32 steps; rollout 3 pending
    assert float(norm.pending_count) == 2 + 3 * 32
    last = model.rollout_buffer.observations.reshape(-1, 197).astype(np.float64)
    # the pending statistics differ from the applied ones by exactly the last rollout's data
    n0, n1 = float(norm.count), float(norm.pending_count)
    mean = (norm.mean.numpy() * n0 + last.sum(axis=0)) / n1
    np.testing.assert_allclose(norm.pending_mean.numpy(), mean, rtol=1e-9, atol=1e-12)
    loaded = policies.load_policy(tmp_path / "run" / "final_model.zip")
    assert policies.read_metadata(tmp_path / "run" / "final_model.zip").action_mode == "residual"
    assert th.equal(normalizers_of(loaded.policy)[0].mean, norm.mean)


@pytest.mark.parametrize("normalize", [False, True])
def test_policy_kwargs_name_the_normaliser_only_when_asked(normalize):
    kwargs = policies.policy_kwargs_for(32, 2, normalize)
    assert ("features_extractor_class" in kwargs) == normalize
    assert kwargs["net_arch"] == {"pi": [32, 32], "vf": [32, 32]}
