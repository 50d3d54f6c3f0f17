"""Observation normalisation inside the policy, so that its statistics travel in the policy file.

:class:`NormalizedObservations` is the policy's features extractor: it flattens the observation and standardises it
with a running mean and variance, clipped to +-:data:`CLIP` (MimicKit's clip).  The statistics are buffers of the
network, saved with its weights, so SFT, RL, evaluation, video and rl-zoo all see observations the same way with no
side file (SB3's ``VecNormalize`` keeps them in a pickle beside the model).

During RL, :class:`ObservationStatsCallback` folds each rollout's observations into the statistics.  The rollout's
data go into a pending copy at the rollout's end and become the ones the network uses at the next rollout's start,
so a policy never changes between collecting a batch and training on it, and a checkpoint (taken at a rollout's
start) holds exactly the statistics the next rollout uses.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

#: Normalised observations are clipped to [-CLIP, CLIP].
CLIP = 10.0
#: Added to the variance: components that never vary (a constant observation) pass through unscaled.
EPSILON = 1e-8


class NormalizedObservations(BaseFeaturesExtractor):
    """Flatten and standardise observations with running statistics kept as network buffers.

    Until statistics are given (:meth:`update`), the mean is 0 and the variance 1: the extractor is ``Flatten``
    then a clip.
    """

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        size = int(np.prod(observation_space.shape))
        super().__init__(observation_space, features_dim=size)
        for prefix in ("", "pending_"):
            self.register_buffer(f"{prefix}mean", th.zeros(size, dtype=th.float64))
            self.register_buffer(f"{prefix}var", th.ones(size, dtype=th.float64))
            self.register_buffer(f"{prefix}count", th.zeros((), dtype=th.float64))
        self._scale: tuple[th.Tensor, th.Tensor] | None = None

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if self._scale is None:
            self._scale = (self.mean.float(), th.rsqrt(self.var + EPSILON).float())
        mean, inv_std = self._scale
        return ((observations.flatten(1) - mean) * inv_std).clamp(-CLIP, CLIP)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._scale = None

    @th.no_grad()
    def update(self, observations: np.ndarray | th.Tensor, apply: bool = True) -> None:
        """Fold a batch of observations (any leading shape) into the statistics (Chan et al.'s parallel update).

        :param apply: use the new statistics at once; ``False`` keeps them pending until :meth:`apply_pending`
        """
        x = th.tensor(np.asarray(observations), dtype=th.float64).reshape(-1, self.features_dim)
        if not th.isfinite(x).all():
            x = x[th.isfinite(x).all(dim=1)]  # a diverged character's observation says nothing about the others
        n = float(x.shape[0])
        if n == 0:
            return
        batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        count = float(self.pending_count)
        total = count + n
        delta = batch_mean - self.pending_mean
        var = (self.pending_var * count + batch_var * n + delta**2 * count * n / total) / total
        self.pending_mean.add_(delta * n / total)
        self.pending_var.copy_(var)
        self.pending_count.fill_(total)
        if apply:
            self.apply_pending()

    @th.no_grad()
    def apply_pending(self) -> None:
        """Use the pending statistics from now on."""
        self.mean.copy_(self.pending_mean)
        self.var.copy_(self.pending_var)
        self.count.copy_(self.pending_count)
        self._scale = None


def normalizers_of(policy: th.nn.Module) -> list[NormalizedObservations]:
    """The policy's observation normalisers: none, one (shared by actor and critic) or one each."""
    return [m for m in policy.modules() if isinstance(m, NormalizedObservations)]


def fit_statistics(policy: th.nn.Module, observations: np.ndarray) -> None:
    """Set the statistics of every normaliser of ``policy`` to those of ``observations`` (used at once)."""
    for normalizer in normalizers_of(policy):
        for prefix in ("", "pending_"):
            getattr(normalizer, f"{prefix}mean").zero_()
            getattr(normalizer, f"{prefix}var").fill_(1.0)
            getattr(normalizer, f"{prefix}count").zero_()
        normalizer.update(observations)


class ObservationStatsCallback(BaseCallback):
    """Fold each rollout's observations into the policy's :class:`NormalizedObservations` statistics.

    A no-op for a policy without a normaliser.  Put it before any callback that saves checkpoints at a rollout's
    start (a :class:`~stable_baselines3.common.callbacks.CallbackList` calls them in order).
    """

    def _on_step(self) -> bool:
        return True

    def _on_training_start(self) -> None:
        for normalizer in normalizers_of(self.model.policy):
            if float(normalizer.count) == 0 and self.model._last_obs is not None:
                normalizer.update(self.model._last_obs)  # a fresh network: the first starts, until a rollout is in

    def _on_rollout_start(self) -> None:
        for normalizer in normalizers_of(self.model.policy):
            normalizer.apply_pending()

    def _on_rollout_end(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        for normalizer in normalizers_of(self.model.policy):
            if buffer is not None:
                normalizer.update(buffer.observations, apply=False)
