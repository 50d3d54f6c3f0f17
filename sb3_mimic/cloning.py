"""Behaviour cloning shared by SFT and DAgger: ``imitation``'s BC trainer bound to a TRPO policy, and its loss.

BC trains ``policy`` in place, so a policy made by :func:`sb3_mimic.policies.make_trpo` stays TRPO's by
construction (same architecture, same ``log_std``), ready for fine-tuning or rl-zoo.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch as th

from sb3_mimic import _imitation  # noqa: F401  (clear error if imitation is missing)
from imitation.algorithms import bc
from imitation.data.types import Transitions
from imitation.util import logger as imitation_logger


def make_bc_trainer(
    policy,
    log_dir: str | Path,
    rng: np.random.Generator,
    batch_size: int = 256,
    lr: float = 1e-3,
    demonstrations: Transitions | None = None,
) -> bc.BC:
    """``imitation``'s BC trainer for ``policy`` (an SB3 ActorCriticPolicy), on the CPU, logging nowhere visible.

    :param policy: the policy to train in place
    :param log_dir: a folder imitation's logger may use (it writes no files there)
    :param rng: the batch order's random generator
    :param batch_size: BC batch size
    :param lr: Adam learning rate
    :param demonstrations: the training data (DAgger sets them per round)
    """
    return bc.BC(
        observation_space=policy.observation_space,
        action_space=policy.action_space,
        rng=rng,
        policy=policy,
        demonstrations=demonstrations,
        batch_size=batch_size,
        optimizer_kwargs={"lr": lr},
        device="cpu",
        custom_logger=imitation_logger.configure(str(log_dir), format_strs=[]),
    )


@contextlib.contextmanager
def quiet_bc_warnings() -> Iterator[None]:
    """Silence the harmless warnings imitation raises on every batch and episode: it logs ``float(loss)`` of a
    tensor that requires grad, and stores episode infos with a jsonpickle call that is deprecated."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        warnings.filterwarnings("ignore", message="keys will default to True", category=DeprecationWarning)
        yield


def action_mse(policy, obs: np.ndarray, acts: np.ndarray, batch: int = 8192) -> float:
    """Mean squared error between the policy's mean action and the labels (the SFT guide's validation loss)."""
    total = 0.0
    with th.no_grad():
        for start in range(0, len(obs), batch):
            o = th.as_tensor(np.array(obs[start : start + batch], dtype=np.float32), device=policy.device)
            mean = policy.get_distribution(o).distribution.mean.cpu().numpy()
            total += float(((mean - acts[start : start + batch]) ** 2).sum())
    return total / (len(obs) * acts.shape[1])
