"""GaussianTRPO's update against sb3-contrib's own TRPO update, side by side on the same rollout."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.distributions import kl_divergence
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mimic.envs import MimicHumanoidVecEnv
from sb3_mimic.trpo import GaussianTRPO


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


def _collected(env, **kwargs) -> GaussianTRPO:
    """A model one iteration into training, with a fresh full rollout in its buffer."""
    model = GaussianTRPO("MlpPolicy", env, batch_size=64, seed=3, device="cpu", **kwargs)
    model.learn(model.n_steps * env.num_envs)
    model._setup_learn(model.n_steps * env.num_envs, None, reset_num_timesteps=False)
    callback = CallbackList([])
    callback.init_callback(model)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    model.set_logger(configure(None, []))
    return model


def _train_from(model, start, update) -> tuple[dict, dict, float]:
    """``update`` (a ``train`` function) run on a copy of ``start`` (state dicts, buffer, numpy seed): the policy's
    state after it, the logged values and numpy's next draw."""
    policy, optimizer, buffer = start
    model.policy.load_state_dict(policy)
    model.policy.optimizer.load_state_dict(copy.deepcopy(optimizer))  # Adam updates a loaded state in place
    model.rollout_buffer = copy.deepcopy(buffer)
    np.random.seed(11)
    update(model)
    state = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
    return state, dict(model.logger.name_to_value), float(np.random.rand())


def _side_by_side(model):
    start = (copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict()),
             copy.deepcopy(model.rollout_buffer))
    return _train_from(model, start, TRPO.train), _train_from(model, start, GaussianTRPO.train), start


@pytest.fixture(scope="module")
def walk_model():
    env = MimicHumanoidVecEnv(4, "walk", threads=1, seed=0)
    yield _collected(env, n_steps=64)
    env.close()


def test_the_fisher_product_equals_sb3_contribs_kl_hessian(walk_model):
    model = walk_model
    policy = model.policy
    observations = th.as_tensor(model.rollout_buffer.observations.reshape(-1, *model.observation_space.shape))
    with th.no_grad():
        old = copy.copy(policy.get_distribution(observations))
    kl = kl_divergence(policy.get_distribution(observations), old).mean()
    actor, _, grad_kl, _ = model._compute_actor_grad(kl, -kl)  # sb3-contrib's KL gradient (the objective unused)
    named = {id(p): name for name, p in policy.named_parameters()}
    distribution = policy.get_distribution(observations)
    ours = model._fisher_product([(named[id(p)], p, None) for p in actor], distribution.distribution.mean,
                                 len(observations))
    generator = th.Generator().manual_seed(0)
    for _ in range(3):
        vector = th.randn(grad_kl.numel(), generator=generator)
        theirs = model.hessian_vector_product(actor, grad_kl, vector)
        th.testing.assert_close(ours(vector), theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))
    # the closed form's log_std block, 2 / A on the diagonal (plus damping), read off a unit vector
    n_actions = model.action_space.shape[0]
    unit = th.zeros(grad_kl.numel())
    unit[0] = 1.0
    assert actor[0] is policy.log_std
    assert float(model.hessian_vector_product(actor, grad_kl, unit)[0]) == pytest.approx(
        2.0 / n_actions + model.cg_damping, rel=1e-5)


def test_an_update_on_the_walk_env_matches_sb3_contrib(walk_model):
    (theirs, their_log, their_draw), (ours, our_log, our_draw), (before, _, _) = _side_by_side(walk_model)
    assert their_draw == our_draw  # the same permutations drawn from numpy's stream
    for key in theirs:
        if "value" in key:  # the critic's fit is the same computation, minibatch for minibatch
            assert th.equal(ours[key], theirs[key]), key
        else:  # the actor's step agrees to float rounding (sb3-contrib's own update, run twice on copies of one
            # state, differs by about 1e-7 in its actor)
            th.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    moved = [key for key in theirs if not th.equal(theirs[key], before[key])]
    assert set(moved) == set(theirs), "the comparison needs an update that moves every parameter"
    assert their_log["train/is_line_search_success"] == our_log["train/is_line_search_success"] == 1.0
    for name in ("train/policy_objective", "train/kl_divergence_loss", "train/value_loss", "train/std",
                 "train/explained_variance"):
        assert our_log[name] == pytest.approx(their_log[name], rel=1e-5), name


def test_sub_sampling_matches_sb3_contrib():
    env = MimicHumanoidVecEnv(4, "walk", threads=1, seed=1)
    model = _collected(env, n_steps=32, sub_sampling_factor=2)
    (theirs, _, _), (ours, _, _), _ = _side_by_side(model)
    for key in theirs:
        th.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    env.close()


def test_other_action_distributions_fall_back_to_sb3_contribs_update():
    env = DummyVecEnv([lambda: gymnasium.make("CartPole-v1")])
    model = _collected(env, n_steps=128)
    (theirs, _, _), (ours, _, _), _ = _side_by_side(model)
    for key in theirs:  # a Categorical policy has no log_std: the closed-form path could not have run
        th.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)

