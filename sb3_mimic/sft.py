"""Supervised pretraining (SFT): demonstrations of the PD or MPC expert, behaviour-cloned into a TRPO-ready policy.

``imitation``'s BC (:mod:`sb3_mimic.cloning`) trains the actor of an ``sb3_contrib.TRPO`` ``MlpPolicy`` in place,
keeping the weights with the lowest validation MSE.  The result is saved by :func:`sb3_mimic.policies.save_policy`:
an ordinary SB3 ``.zip`` (``TRPO.load``, rl-zoo ``-i``), or a ``.pth`` torch checkpoint, with its metadata.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm.auto import tqdm

from sb3_mimic._util import scratch_folder
from sb3_mimic.cloning import action_mse, make_bc_trainer, quiet_bc_warnings
from sb3_mimic.configs import SFTConfig
from sb3_mimic.normalization import fit_statistics
from sb3_mimic.policies import (
    DEFAULT_EXPLORATION_STD,
    PolicyMetadata,
    make_trpo,
    save_policy,
    set_exploration_std,
    use_one_torch_thread,
)
from sb3_mimic.registration import env_spec_for
from imitation.data.types import Transitions


#: Prefix of BC's scratch folder in the system's temporary folder (``sb3_mimic_bc_<pid>_XXXX``, removed at the end;
#: the ones of killed processes are removed when the next one is made).
BC_SCRATCH_PREFIX = "sb3_mimic_bc_"


@dataclass
class SFTResult:
    """What :func:`train_bc` did."""

    model: TRPO
    """The TRPO model holding the best-validation policy weights."""
    best_val_loss: float
    """Lowest validation MSE seen, at the end of epoch :attr:`best_epoch`."""
    best_epoch: int
    initial_val_loss: float
    """Validation MSE of the untrained policy."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch`` and ``val_loss``."""


def split_transitions(transitions: Transitions, val_split: float, seed: int = 0) -> tuple[Transitions, Transitions]:
    """Shuffle and split into (train, validation)."""
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"val_split must be between 0 and 1 (exclusive), got {val_split}")
    n = len(transitions)
    n_val = max(1, round(n * val_split))
    if n - n_val < 1:
        raise ValueError(f"{n} samples are too few to keep {n_val} for validation; use more samples")
    order = np.random.default_rng(seed).permutation(n)
    return _take(transitions, order[n_val:]), _take(transitions, order[:n_val])


def _take(transitions: Transitions, index: np.ndarray) -> Transitions:
    fields = {name: getattr(transitions, name)[index] for name in ("obs", "acts", "infos", "next_obs", "dones")}
    return Transitions(**fields)


def train_bc(
    model: TRPO,
    train: Transitions,
    val: Transitions,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    progress_bar: bool = True,
    log_dir: str | Path | None = None,
) -> SFTResult:
    """Behaviour-clone ``train`` into ``model.policy`` with ``imitation``'s BC; keep the best-validation weights.

    :param model: a TRPO model (see :func:`sb3_mimic.policies.make_trpo`); trained in place
    :param train: training demonstrations
    :param val: validation demonstrations
    :param epochs: passes over ``train``
    :param batch_size: BC batch size
    :param lr: Adam learning rate
    :param seed: seeds torch and the batch order
    :param progress_bar: show a progress bar over epochs
    :param log_dir: where imitation's logger may write (a temporary folder if None)
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError("epochs and batch_size must be at least 1 and lr positive")
    th.manual_seed(seed)
    policy = model.policy
    with scratch_folder(BC_SCRATCH_PREFIX) as tmp:
        trainer = make_bc_trainer(
            policy, log_dir if log_dir is not None else tmp, np.random.default_rng(seed),
            batch_size=min(batch_size, len(train)), lr=lr, demonstrations=train,
        )
        initial = action_mse(policy, val.obs, val.acts)
        best = {"loss": math.inf, "epoch": 0, "state": None}
        history: list[dict[str, float]] = []
        bar = tqdm(total=epochs, desc="BC", unit="epoch", disable=not progress_bar)

        def on_epoch_end() -> None:
            loss = action_mse(policy, val.obs, val.acts)
            epoch = len(history) + 1
            history.append({"epoch": epoch, "val_loss": loss})
            if loss < best["loss"]:
                best.update(loss=loss, epoch=epoch, state=copy.deepcopy(policy.state_dict()))
            bar.set_postfix(val_loss=f"{loss:.5f}", best=f"{best['loss']:.5f}")
            bar.update(1)

        try:
            with quiet_bc_warnings():
                trainer.train(n_epochs=epochs, on_epoch_end=on_epoch_end, progress_bar=False, log_interval=10**9)
        finally:
            bar.close()
    if best["state"] is None:
        raise ValueError("the validation loss never became a finite number (training diverged); lower --lr")
    policy.load_state_dict(best["state"])
    return SFTResult(model, best["loss"], best["epoch"], initial, history)


# ------------------------------------------------------------------------------------------------------------
# the whole job


@dataclass
class SFTRun:
    """Everything :func:`run_sft` produced."""

    result: SFTResult
    save_path: Path
    env_id: str
    env_kwargs: dict[str, Any]
    evaluation: Any = None


def _mpc_demonstrations(config: SFTConfig, env_id: str, env_kwargs: dict, progress_bar: bool, log) -> Transitions:
    """DART episodes of the MPC expert, labelled in ``config.action_mode`` (the MPC itself acts in pd_target mode,
    on its rollout threads: every core)."""
    from imitation.data.rollout import flatten_trajectories
    from sb3_mimic.demos import dart_rollouts
    from sb3_mimic.experts import make_expert

    kwargs = {k: v for k, v in env_kwargs.items() if k != "action_mode"}
    label_env = gym.make(env_id, **kwargs)
    expert = make_expert(config.expert, label_env, **config.expert_arguments())
    try:
        episodes = dart_rollouts(label_env, expert, config.n_rollouts, config.dart_noise, seed=config.seed + 10**6,
                                 action_mode=config.action_mode, progress_bar=progress_bar)
    finally:
        expert.close()
        label_env.close()
    lengths = [len(t) * label_env.unwrapped.dt for t in episodes]
    log(f"MPC expert: {sum(len(t) for t in episodes)} labels in {len(episodes)} episodes, mean {np.mean(lengths):.1f} s "
        f"(min {min(lengths):.1f} s) under DART noise {config.dart_noise}")
    return flatten_trajectories(episodes)


def run_sft(config: SFTConfig, progress_bar: bool = True, log=print) -> SFTRun:
    """Demonstrations (the PD expert's teacher forcing and rollouts, the MPC expert's DART episodes, or a saved
    file), BC into a TRPO policy, save, and (unless ``no_eval``) evaluate."""
    from sb3_mimic.demos import (
        DemoMetadata,
        concatenate_transitions,
        expert_rollouts,
        load_demos,
        save_demos,
        teacher_forcing,
    )
    from imitation.data.rollout import flatten_trajectories
    from sb3_mimic.evaluation import evaluate, policy_actor
    from sb3_mimic.experts import make_expert

    config.validate()
    use_one_torch_thread()
    env_id, env_kwargs = env_spec_for(config.mocap, config.action_mode, config.target_observation)
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    if config.demos:
        source = f"demonstrations from {config.demos}"
    elif config.expert == "mpc":
        source = f"{config.n_rollouts} MPC expert episodes with DART noise {config.dart_noise}"
    else:
        source = f"{config.n_samples} teacher-forced samples + {config.n_rollouts} expert rollouts"
    log(
        f"SFT on {base.clip.name} ({env_id}, action_mode={config.action_mode}): {source}, {config.epochs} epochs, "
        f"MLP {config.num_layers}x{config.hidden_size}" + (", normalised observations" if config.normalize else "")
    )
    kind = "teacher_forcing+rollouts"
    if config.demos:
        demos, demo_meta = load_demos(config.demos, env_id=env_id, action_mode=config.action_mode)
        size = env.observation_space.shape[0]
        if demos.obs.shape[1] != size:
            raise ValueError(
                f"{config.demos} holds {demos.obs.shape[1]}-number observations, the env gives {size}: "
                + ("drop --target_observation" if config.target_observation else "add --target_observation")
                + " to match the demonstrations, or record new ones"
            )
        log(f"Loaded {len(demos)} demonstrations from {config.demos} ({demo_meta.kind}, lookahead {demo_meta.lookahead})")
    elif config.expert == "mpc":
        kind = "dart (mpc)"
        demos = _mpc_demonstrations(config, env_id, env_kwargs, progress_bar, log)
    else:
        expert = make_expert(config.expert, env, **config.expert_arguments())
        demos = teacher_forcing(
            env, expert, config.n_samples, seed=config.seed, qpos_noise=config.qpos_noise,
            qvel_noise=config.qvel_noise, progress_bar=progress_bar,
        )
        if config.n_rollouts:
            # the expert's own closed-loop states, labelled by it: the clone then follows the expert off the reference
            rollouts = expert_rollouts(env, expert, config.n_rollouts, seed=config.seed + 10**6, progress_bar=progress_bar)
            demos = concatenate_transitions([demos, flatten_trajectories(rollouts)])
    if config.save_demos:
        extra = {"n_samples": config.n_samples, "n_rollouts": config.n_rollouts, "qpos_noise": config.qpos_noise,
                 "qvel_noise": config.qvel_noise, "seed": config.seed}
        if config.expert == "mpc":
            extra = {"n_rollouts": config.n_rollouts, "dart_noise": config.dart_noise, "seed": config.seed,
                     "mpc_kwargs": config.mpc_kwargs}
        meta = DemoMetadata(base.clip.name, env_id, config.action_mode, config.lookahead, kind, extra)
        log(f"Saved demonstrations to {save_demos(config.save_demos, demos, meta)}")
    train, val = split_transitions(demos, config.val_split, seed=config.seed)
    model = make_trpo(DummyVecEnv([lambda: env]), config.hidden_size, config.num_layers, seed=config.seed,
                      normalize=config.normalize)
    if config.normalize:
        fit_statistics(model.policy, demos.obs)  # the states BC trains on; RL keeps folding in its own
    result = train_bc(
        model, train, val, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
        progress_bar=progress_bar,
    )
    bc_std = float(th.exp(model.policy.log_std).mean())
    set_exploration_std(model, DEFAULT_EXPLORATION_STD)  # the mean action (what BC learned) is unchanged
    details = {
        "expert": config.expert,
        "bc_action_std": bc_std,
        "lookahead": config.lookahead,
        "best_val_loss": result.best_val_loss,
        "initial_val_loss": result.initial_val_loss,
        "n_samples": config.n_samples,
        "n_rollouts": config.n_rollouts,
        "n_demonstrations": len(demos),
    }
    metadata = PolicyMetadata(
        env_id=env_id, env_kwargs=env_kwargs, clip=base.clip.name, action_mode=config.action_mode, trained_by="sft",
        exploration_std=DEFAULT_EXPLORATION_STD, details=details,
    )
    path = save_policy(model, Path(config.save_path).expanduser(), metadata)
    log(f"Training complete! Best validation loss: {result.best_val_loss:.6f} (epoch {result.best_epoch}; "
        f"untrained policy: {result.initial_val_loss:.6f})")
    log(f"Saved policy to {path}")
    run = SFTRun(result, path, env_id, env_kwargs)
    if not config.no_eval:
        run.evaluation = evaluate(policy_actor(model), env, episodes=config.eval_episodes, seed=config.seed + 1000)
        log(run.evaluation.format_block())
    env.close()
    return run
