"""Behaviour cloning shared by SFT and DAgger: the BC trainer factory and the validation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mimic.cloning import action_mse, make_bc_trainer
from sb3_mimic.policies import make_trpo
from imitation.data.types import Transitions


def test_action_mse_is_the_mean_squared_error_of_the_mean_action(walk, tmp_path):
    model = make_trpo(DummyVecEnv([lambda: walk]), 8, 1, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(37, 197)).astype(np.float32)
    acts = rng.uniform(-1, 1, size=(37, 28)).astype(np.float32)
    with th.no_grad():
        mean = model.policy.get_distribution(th.as_tensor(obs)).distribution.mean.numpy()
    expected = float(((mean - acts) ** 2).mean())
    assert action_mse(model.policy, obs, acts, batch=10) == pytest.approx(expected, rel=1e-6)  # in batches of 10


def test_the_trainer_trains_the_given_policy_in_place(walk, tmp_path):
    model = make_trpo(DummyVecEnv([lambda: walk]), 8, 1, seed=0)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(64, 197)).astype(np.float32)
    acts = np.full((64, 28), 0.3, dtype=np.float32)
    data = Transitions(obs=obs, acts=acts, infos=np.array([{}] * 64), next_obs=obs, dones=np.zeros(64, bool))
    trainer = make_bc_trainer(model.policy, tmp_path, np.random.default_rng(0), batch_size=16, lr=1e-2,
                              demonstrations=data)
    assert trainer.policy is model.policy and trainer.batch_size == 16
    before = action_mse(model.policy, obs, acts)
    trainer.train(n_epochs=20, progress_bar=False, log_interval=10**9)
    assert action_mse(model.policy, obs, acts) < 0.2 * before
    assert not any(tmp_path.iterdir())  # the logger writes no files
