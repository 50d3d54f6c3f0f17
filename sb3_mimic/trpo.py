"""sb3-contrib's TRPO update, computed in fewer passes for a diagonal-Gaussian policy.

:class:`GaussianTRPO` takes the same step as :class:`sb3_contrib.TRPO` (same surrogate, KL constraint, conjugate
gradient, line search and critic fit, the same random draws) and differs only in how the numbers are computed:

- **Fisher-vector products.** sb3-contrib differentiates the gradient of the mean KL divergence a second time for
  each product (a double backward through the whole KL graph). At the old policy that Hessian is the Fisher matrix,
  which for a Gaussian with a state-independent ``log_std`` has a closed form: with ``J`` the Jacobian of the mean
  actions over the batch, ``F = (J^T diag(1/sigma^2) J + 2 N I_log_std) / (N A)`` (sb3-contrib's KL is a mean over
  the batch's ``N`` states and ``A`` action dimensions; the mean/``log_std`` cross terms vanish). A product is then a
  Jacobian-vector product (a backward through a once-built vector-Jacobian graph) and one vector-Jacobian product.
- **One backward for the surrogate's gradient** over all actor parameters, instead of one per parameter.
- **Critic minibatches indexed in torch** from the flattened rollout, instead of copied from numpy per minibatch; the
  minibatch orders are drawn exactly as :meth:`RolloutBuffer.get` draws them, so the random streams stay in step.

Results agree with sb3-contrib's to float rounding, the critic's bit for bit where it shares no trainable layer with
the actor (as in sb3-mimic's networks); ``tests/test_trpo.py`` holds the two updates side by side. Anything else
falls back to sb3-contrib's own :meth:`~sb3_contrib.TRPO.train` (:meth:`GaussianTRPO._fast_update_applies`): a
squashed or state-dependent distribution (gSDE), discrete actions, dict observations, a frozen actor parameter, or
dropout or batch norm in the network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import TRPO
from sb3_contrib.common.utils import conjugate_gradient_solver
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import DiagGaussianDistribution, kl_divergence
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F


#: Modules whose training-mode forward draws random numbers or updates statistics.
_STOCHASTIC_OR_STATEFUL = (th.nn.modules.dropout._DropoutNd, th.nn.modules.batchnorm._NormBase)


def shuffled_minibatches(buffer: RolloutBuffer, batch_size: int) -> Iterator[th.Tensor]:
    """The index batches :meth:`RolloutBuffer.get` would yield for ``batch_size``, drawn from numpy's global random
    stream as it draws them (one permutation per call), as torch index tensors into the flattened buffer."""
    total = buffer.buffer_size * buffer.n_envs
    indices = th.from_numpy(np.random.permutation(total))
    for start in range(0, total, batch_size):
        yield indices[start : start + batch_size]


def flattened_rollout(buffer: RolloutBuffer, *names: str) -> list[th.Tensor]:
    """The buffer's arrays ``names`` as (steps * envs, ...) torch tensors that share the buffer's memory (flattened in
    place the first time, as :meth:`RolloutBuffer.get` does)."""
    assert buffer.full, "the rollout buffer is not full"
    if not buffer.generator_ready:
        for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
            buffer.__dict__[name] = buffer.swap_and_flatten(buffer.__dict__[name])
        buffer.generator_ready = True
    return [buffer.to_torch(getattr(buffer, name), copy=False) for name in names]


def _critic_minibatches(buffer, batch_size: int) -> Iterator[tuple]:
    """(observations, returns) minibatches of one shuffled pass, as ``buffer.get(batch_size)`` gives them."""
    if type(buffer) is not RolloutBuffer:  # a dict or custom buffer: its own get
        for batch in buffer.get(batch_size):
            yield batch.observations, batch.returns
        return
    observations, returns = flattened_rollout(buffer, "observations", "returns")
    for batch in shuffled_minibatches(buffer, batch_size):
        yield observations[batch], returns[batch].flatten()


def fit_critic(algo, passes: int, frozen: list[th.nn.Parameter]) -> list[float]:
    """``passes`` shuffled passes of Adam over the rollout on the value loss, in minibatches of ``algo.batch_size``,
    with the gradients of ``frozen`` dropped before each step: :class:`sb3_contrib.TRPO`'s critic update (and the
    critic warm-up's), with the same random draws. Returns the minibatch losses."""
    policy = algo.policy
    losses = []
    for _ in range(passes):
        for observations, returns in _critic_minibatches(algo.rollout_buffer, algo.batch_size):
            loss = F.mse_loss(returns, policy.predict_values(observations).flatten())
            policy.optimizer.zero_grad()
            loss.backward()
            for param in frozen:
                param.grad = None
            policy.optimizer.step()
            losses.append(loss.item())
    return losses


class GaussianTRPO(TRPO):
    """:class:`sb3_contrib.TRPO` with the update described in this module's docstring."""

    def _fast_update_applies(self) -> bool:
        """Whether :meth:`train` computes the update itself: a Box-action policy with a state-independent diagonal
        Gaussian, a plain rollout buffer of Box observations, every actor parameter trainable (sb3-contrib refuses
        frozen ones), and no module whose training-mode forward is random or stateful (dropout, batch norm: the
        Fisher at the old policy would not be this one, or their statistics would move differently)."""
        policy = self.policy
        return (
            isinstance(self.action_space, spaces.Box)
            and type(policy.action_dist) is DiagGaussianDistribution  # not a subclass: the squashed one
            and not self.use_sde
            and isinstance(getattr(policy, "log_std", None), th.nn.Parameter)
            and type(self.rollout_buffer) is RolloutBuffer
            and isinstance(self.observation_space, spaces.Box)
            and all(p.requires_grad for name, p in policy.named_parameters() if "value" not in name)
            and not any(isinstance(m, _STOCHASTIC_OR_STATEFUL) for m in policy.modules())
        )

    def train(self) -> None:
        if not self._fast_update_applies():
            super().train()
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.rollout_buffer
        total = buffer.buffer_size * buffer.n_envs
        # sb3-contrib's rollout_buffer.get(batch_size=None): one permutation, the whole rollout in that order
        whole = next(shuffled_minibatches(buffer, total))
        observations, actions, old_log_prob, advantages = (
            t[whole] for t in flattened_rollout(buffer, "observations", "actions", "log_probs", "advantages")
        )
        old_log_prob, advantages = old_log_prob.flatten(), advantages.flatten()
        if self.sub_sampling_factor > 1:
            step = self.sub_sampling_factor
            observations, actions = observations[::step], actions[::step]
            old_log_prob, advantages = old_log_prob[::step], advantages[::step]
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        objective, kl, success, actor_params = self._natural_gradient_step(observations, actions, old_log_prob,
                                                                           advantages)
        value_losses = fit_critic(self, self.n_critic_updates, actor_params)

        self._n_updates += 1
        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/policy_objective", objective)
        self.logger.record("train/value_loss", float(np.mean(value_losses)) if value_losses else float("nan"))
        self.logger.record("train/kl_divergence_loss", kl)
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/is_line_search_success", float(success))
        self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _natural_gradient_step(self, observations, actions, old_log_prob, advantages):
        """sb3-contrib's actor step; returns (objective, KL, line search succeeded, actor parameters)."""
        policy = self.policy
        # get_distribution returns the policy's one distribution object, updated in place: copy what is kept
        distribution = copy.copy(policy.get_distribution(observations))
        mean_actions = distribution.distribution.mean
        with th.no_grad():
            old = copy.copy(distribution)
            old.distribution = th.distributions.Normal(mean_actions.detach(), distribution.distribution.stddev.detach())
        log_prob = distribution.log_prob(actions)
        objective = (advantages * th.exp(log_prob - old_log_prob)).mean()

        candidates = [p for name, p in policy.named_parameters() if "value" not in name]  # sb3-contrib's rule
        grads = th.autograd.grad(objective, candidates, retain_graph=True, allow_unused=True)
        actor_params = [p for p, g in zip(candidates, grads, strict=True) if g is not None]
        objective_grad = th.cat([g.reshape(-1) for g in grads if g is not None])
        fisher_product = self._fisher_product(actor_params, mean_actions, observations.shape[0])

        direction = conjugate_gradient_solver(fisher_product, objective_grad, max_iter=self.cg_max_steps)
        max_step = np.sqrt(2 * self.target_kl / float(th.dot(direction, fisher_product(direction))))
        del fisher_product  # frees the vector-Jacobian graph (the forward's lives until the step returns)

        originals = [p.detach().clone() for p in actor_params]
        steps = list(th.split(direction, [p.numel() for p in actor_params]))
        coefficient = 1.0
        objective_value = objective.item()
        with th.no_grad():
            for _ in range(self.line_search_max_iter):
                for param, original, step in zip(actor_params, originals, steps, strict=True):
                    param.data = original + coefficient * max_step * step.view_as(param)
                distribution = policy.get_distribution(observations)
                new_objective = (advantages * th.exp(distribution.log_prob(actions) - old_log_prob)).mean()
                kl = kl_divergence(distribution, old).mean()
                if kl < self.target_kl and new_objective > objective:
                    return new_objective.item(), kl.item(), True, actor_params
                coefficient *= self.line_search_shrinking_factor
            for param, original in zip(actor_params, originals, strict=True):
                param.data = original.clone()
        return objective_value, 0.0, False, actor_params

    def _fisher_product(self, actor: list[th.nn.Parameter], mean_actions: th.Tensor,
                        n: int) -> Callable[[th.Tensor], th.Tensor]:
        """``v -> F v + damping v`` over the flattened ``actor`` parameters (the KL Hessian at the old policy)."""
        policy = self.policy
        n_actions = mean_actions.shape[1]
        is_log_std = [p is policy.log_std for p in actor]
        mean_params = [p for p, skip in zip(actor, is_log_std, strict=True) if not skip]
        sizes = [p.numel() for p in actor]
        inverse_variance = th.exp(-2 * policy.log_std.detach()) / (n * n_actions)
        # a vector-Jacobian graph, linear in `probe`: differentiating it by `probe` gives Jacobian-vector products
        probe = th.zeros_like(mean_actions, requires_grad=True)
        vjp = th.autograd.grad(mean_actions, mean_params, grad_outputs=probe, create_graph=True)

        def product(vector: th.Tensor) -> th.Tensor:
            parts = th.split(vector, sizes)
            tangents = [part.view_as(p) for part, p, skip in zip(parts, actor, is_log_std, strict=True) if not skip]
            (jv,) = th.autograd.grad(vjp, probe, grad_outputs=tangents, retain_graph=True)
            back = iter(th.autograd.grad(mean_actions, mean_params, grad_outputs=jv * inverse_variance,
                                         retain_graph=True))
            out = [part * (2.0 / n_actions) if skip else next(back).reshape(-1)
                   for part, skip in zip(parts, is_log_std, strict=True)]
            return th.cat(out) + self.cg_damping * vector

        return product
