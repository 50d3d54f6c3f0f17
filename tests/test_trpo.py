"""GaussianTRPO's update against sb3-contrib's own TRPO update, side by side on the same rollout."""

from __future__ import annotations

import copy
from unittest import mock

import gymnasium
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.distributions import kl_divergence
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv
from torch.nn import functional as F

from sb3_mimic.envs import MimicHumanoidVecEnv
from sb3_mimic.policies import policy_kwargs_for
from sb3_mimic.rl import MimicTRPO
from sb3_mimic.trpo import GaussianTRPO

LOGGED = ("train/policy_objective", "train/kl_divergence_loss", "train/value_loss", "train/std",
          "train/explained_variance", "train/is_line_search_success")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


@pytest.fixture(scope="module")
def walk_env():
    env = MimicHumanoidVecEnv(4, "walk", threads=1, seed=0)
    yield env
    env.close()


def _collected(env, cls=GaussianTRPO, n_steps=32, **kwargs):
    """A model one iteration into training, with a fresh full rollout in its buffer."""
    model = cls("MlpPolicy", env, n_steps=n_steps, batch_size=64, seed=3, device="cpu", **kwargs)
    model.learn(model.n_steps * env.num_envs)
    model._setup_learn(model.n_steps * env.num_envs, None, reset_num_timesteps=False)
    callback = CallbackList([])
    callback.init_callback(model)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    model.set_logger(configure(None, []))
    return model


def _start(model) -> tuple:
    return (copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict()),
            copy.deepcopy(model.rollout_buffer))


def _train_from(model, start, update) -> tuple[dict, dict, float]:
    """``update(model)`` run from a copy of ``start`` (state dicts, buffer) and a fixed numpy seed: the policy's state
    after it, the logged values and numpy's next draw."""
    policy, optimizer, buffer = start
    model.policy.load_state_dict(policy)
    model.policy.optimizer.load_state_dict(copy.deepcopy(optimizer))  # Adam updates a loaded state in place
    model.rollout_buffer = copy.deepcopy(buffer)
    np.random.seed(11)
    update(model)
    state = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
    return state, dict(model.logger.name_to_value), float(np.random.rand())


def _fast(model) -> None:
    """GaussianTRPO's own update; sb3-contrib's raises, so a fall-back would fail the test."""
    with mock.patch.object(TRPO, "train", side_effect=AssertionError("fell back to sb3-contrib's update")):
        GaussianTRPO.train(model)


def _assert_same_update(model) -> None:
    """Both updates from the same state, buffer and random stream: the actor within a thousandth of its step (float
    rounding: sb3-contrib's own update, run twice on copies of one state, differs by about 1e-7 in its actor), the
    critic bit for bit (the same computation, minibatch for minibatch), the same logs and numpy draws."""
    start = _start(model)
    theirs, their_log, their_draw = _train_from(model, start, TRPO.train)
    ours, our_log, our_draw = _train_from(model, start, _fast)
    assert their_draw == our_draw  # the same permutations drawn from numpy's stream
    parameters = {name for name, _ in model.policy.named_parameters()}
    for key, value in theirs.items():
        if "value" in key or key not in parameters:  # the critic; buffers (a normaliser's statistics)
            assert th.equal(ours[key], value), key
        else:
            step = float((value - start[0][key]).abs().max())
            if their_log["train/is_line_search_success"]:  # within a thousandth of the step it took
                assert float((ours[key] - value).abs().max()) < 1e-3 * step, key
            else:
                assert step == 0.0 and th.equal(ours[key], value), key  # a failed line search reverts
    for name in LOGGED:
        assert our_log[name] == pytest.approx(their_log[name], rel=1e-4, abs=1e-9, nan_ok=True), name


def test_the_fisher_product_equals_sb3_contribs_kl_hessian(walk_env):
    model = _collected(walk_env, n_steps=64)
    policy = model.policy
    observations = th.as_tensor(model.rollout_buffer.observations.reshape(-1, *model.observation_space.shape))
    with th.no_grad():
        old = copy.copy(policy.get_distribution(observations))
    kl = kl_divergence(policy.get_distribution(observations), old).mean()
    actor, _, grad_kl, _ = model._compute_actor_grad(kl, -kl)  # sb3-contrib's KL gradient (the objective unused)
    mean_actions = policy.get_distribution(observations).distribution.mean
    ours = model._fisher_product(actor, mean_actions, len(observations))
    generator = th.Generator().manual_seed(0)
    for _ in range(3):
        vector = th.randn(grad_kl.numel(), generator=generator)
        theirs = model.hessian_vector_product(actor, grad_kl, vector)
        th.testing.assert_close(ours(vector), theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))
    # the log_std block: 2 / A on the diagonal (sb3-contrib's KL is a mean over the action dimensions too)
    unit = th.zeros(grad_kl.numel())
    unit[0] = 1.0
    assert actor[0] is policy.log_std
    expected = 2.0 / model.action_space.shape[0] + model.cg_damping
    assert float(model.hessian_vector_product(actor, grad_kl, unit)[0]) == pytest.approx(expected, rel=1e-5)
    assert float(ours(unit)[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")  # sb3-contrib, no critic
@pytest.mark.parametrize("settings", [
    {},
    {"normalize_advantage": False, "n_critic_updates": 0},
    {"line_search_max_iter": 0},  # the line search fails: the actor is restored, the logs say so
    {"target_kl": 30.0},  # an overlong first step, which the line search shrinks until the surrogate improves
    {"sub_sampling_factor": 3},
    {"policy_kwargs": policy_kwargs_for(32, 2, normalize=True)},  # the product's normalised network
], ids=["defaults", "raw-advantages-no-critic", "failed-line-search", "line-search-shrinks", "sub-sampling",
        "normalised-network"])
def test_an_update_matches_sb3_contribs(walk_env, settings):
    model = _collected(walk_env, **settings)
    assert model._fast_update_applies()
    _assert_same_update(model)


def _falls_back(model) -> None:
    """GaussianTRPO.train hands the update to sb3-contrib's, and the two give the same result."""
    start = _start(model)
    with mock.patch.object(TRPO, "train", autospec=True, side_effect=TRPO.train) as theirs:
        assert not model._fast_update_applies()
        _train_from(model, start, GaussianTRPO.train)
    assert theirs.call_count == 1


def test_other_distributions_and_networks_fall_back_to_sb3_contribs_update(walk_env):
    _falls_back(_collected(DummyVecEnv([lambda: gymnasium.make("CartPole-v1")]), n_steps=64))  # categorical
    _falls_back(_collected(walk_env, use_sde=True))  # state-dependent noise
    dropout = _collected(walk_env)
    dropout.policy.mlp_extractor.policy_net.append(th.nn.Dropout(0.1))  # a random training-mode forward
    _falls_back(dropout)


def test_a_frozen_actor_parameter_is_refused_as_sb3_contrib_refuses_it(walk_env):
    model = _collected(walk_env)
    model.policy.log_std.requires_grad_(False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        GaussianTRPO.train(model)


def test_the_critic_warmup_fits_the_critic_as_a_loop_over_the_buffer_does(walk_env):
    model = _collected(walk_env, cls=MimicTRPO, critic_warmup_iterations=5)
    assert model.critic_warmup_left > 0
    passes = model.n_critic_updates

    def by_hand(m):  # RolloutBuffer.get's minibatches, the critic's gradients only
        critic = {id(p) for p in [*m.policy.mlp_extractor.value_net.parameters(), *m.policy.value_net.parameters()]}
        m._update_learning_rate(m.policy.optimizer)
        for _ in range(passes):
            for batch in m.rollout_buffer.get(m.batch_size):
                loss = F.mse_loss(batch.returns, m.policy.predict_values(batch.observations).flatten())
                m.policy.optimizer.zero_grad()
                loss.backward()
                for p in m.policy.parameters():
                    if id(p) not in critic:
                        p.grad = None
                m.policy.optimizer.step()

    start = _start(model)
    expected, _, expected_draw = _train_from(model, start, by_hand)
    got, log, draw = _train_from(model, start, MimicTRPO.train)
    assert log["train/critic_warmup"] == 1 and draw == expected_draw
    for key, value in expected.items():
        assert th.equal(got[key], value), key
    assert any(not th.equal(expected[key], start[0][key]) for key in expected if "value" in key)
