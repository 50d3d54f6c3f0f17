"""Supervised pretraining (SFT): behaviour cloning of an expert into a TRPO-ready policy.

``imitation``'s BC trains the actor of an ``sb3_contrib.TRPO`` ``MlpPolicy`` in place, so the weights are
TRPO's by construction.  The result is an ordinary SB3 ``.zip`` (``TRPO.load``, rl-zoo ``-i``) that also
carries sb3-mimic's metadata (clip, env id, action mode, lookahead) in the model's ``sb3_mimic`` attribute;
a ``.pth`` path writes the same as a torch checkpoint.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm.auto import tqdm

from sb3_mimic import _imitation  # noqa: F401
from sb3_mimic.envs.mimic_humanoid import ACTION_MODES, MimicHumanoidEnv
from sb3_mimic.motion import resolve_clip
from sb3_mimic.version import __version__
from imitation.algorithms import bc
from imitation.data.types import Transitions
from imitation.util import logger as imitation_logger

POLICY_FORMAT = "sb3-mimic-policy/1"
#: Action std (normalised units) a saved SFT policy explores with when RL continues from it: DeepMimic's fixed
#: exploration noise, the ``log_std_init`` of zoo_configs/.  BC's own std fits the labels' residual and is tiny.
DEFAULT_EXPLORATION_STD = 0.05


def use_one_torch_thread() -> None:
    """Run torch on one thread: the networks are small, and on a busy 2-core machine a second torch thread
    spins against the simulation (measured here: BC 0.4 s per epoch on one thread, 19 s on two under load)."""
    th.set_num_threads(1)


def set_exploration_std(model, std: float) -> None:
    """Set the Gaussian policy's action std (state-independent ``log_std``) to ``std``."""
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"exploration std must be positive, got {std}")
    with th.no_grad():
        model.policy.log_std.fill_(math.log(std))


def env_spec_for(mocap: str, action_mode: str = "pd_target") -> tuple[str, dict[str, Any]]:
    """Registered env id and kwargs for a clip name or path."""
    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
    _, path, info = resolve_clip(mocap)
    kwargs: dict[str, Any] = {} if action_mode == "pd_target" else {"action_mode": action_mode}
    if info is not None and Path(path).name == info.file and info.source == "pybullet_data":
        return info.env_id, kwargs
    return "MimicHumanoid-v0", {"motion": str(path), **kwargs}


def policy_kwargs_for(hidden_size: int, num_layers: int) -> dict[str, Any]:
    """``policy_kwargs`` of the MlpPolicy: ``num_layers`` layers of ``hidden_size`` for actor and critic."""
    layers = [int(hidden_size)] * int(num_layers)
    return {"net_arch": {"pi": list(layers), "vf": list(layers)}}


def make_trpo(
    env: gym.Env | DummyVecEnv, hidden_size: int = 64, num_layers: int = 2, seed: int | None = 0, **trpo_kwargs
) -> TRPO:
    """A fresh TRPO model whose policy BC will train."""
    return TRPO(
        "MlpPolicy", env, policy_kwargs=policy_kwargs_for(hidden_size, num_layers), seed=seed, device="cpu",
        verbose=0, **trpo_kwargs,
    )


def action_mse(policy, obs: np.ndarray, acts: np.ndarray, batch: int = 8192) -> float:
    """Mean squared error between the policy's mean action and the labels (the guide's validation loss)."""
    total = 0.0
    with th.no_grad():
        for start in range(0, len(obs), batch):
            o = th.as_tensor(np.array(obs[start : start + batch], dtype=np.float32), device=policy.device)
            mean = policy.get_distribution(o).distribution.mean.cpu().numpy()
            total += float(((mean - acts[start : start + batch]) ** 2).sum())
    return total / (len(obs) * acts.shape[1])


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

    :param model: a TRPO model (see :func:`make_trpo`); trained in place
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
    with tempfile.TemporaryDirectory(prefix="sb3_mimic_bc_") as tmp:
        folder = str(log_dir) if log_dir is not None else tmp
        quiet = imitation_logger.configure(folder, format_strs=[])
        trainer = bc.BC(
            observation_space=policy.observation_space,
            action_space=policy.action_space,
            rng=np.random.default_rng(seed),
            policy=policy,
            demonstrations=train,
            batch_size=min(batch_size, len(train)),
            optimizer_kwargs={"lr": lr},
            device="cpu",
            custom_logger=quiet,
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
            with warnings.catch_warnings():
                # imitation logs float(loss) of a tensor that requires grad: harmless, but it warns every batch
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
                trainer.train(n_epochs=epochs, on_epoch_end=on_epoch_end, progress_bar=False, log_interval=10**9)
        finally:
            bar.close()
    if best["state"] is None:
        raise ValueError("the validation loss never became a finite number (training diverged); lower --lr")
    policy.load_state_dict(best["state"])
    return SFTResult(model, best["loss"], best["epoch"], initial, history)


# ------------------------------------------------------------------------------------------------------------
# saving and loading


def _metadata(model: TRPO) -> dict[str, Any]:
    meta = getattr(model, "sb3_mimic", None)
    return dict(meta) if isinstance(meta, dict) else {}


def save_policy(model: TRPO, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Save ``model`` with sb3-mimic ``metadata`` as an SB3 ``.zip`` (any other suffix) or a ``.pth`` checkpoint.

    Writes to a temporary file first, then renames it, so an interrupted save never corrupts an existing file.
    """
    path = Path(path)
    meta = {"format": POLICY_FORMAT, "version": __version__, **metadata}
    model.sb3_mimic = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pth":
        tmp = path.with_name(f".{path.name}.tmp")
        th.save(
            {
                "format": POLICY_FORMAT,
                "metadata": meta,
                "policy_kwargs": model.policy_kwargs,
                "state_dict": model.policy.state_dict(),
            },
            tmp,
        )
    else:
        if path.suffix != ".zip":
            path = path.with_name(path.name + ".zip")
        tmp = path.with_name(f".{path.stem}.tmp.zip")
        model.save(tmp)
    os.replace(tmp, path)
    return path


class PolicyLoadError(ValueError):
    """A saved policy cannot be loaded, or does not fit the env it is loaded for."""


def _read(path: str | Path) -> tuple[Path, dict[str, Any] | TRPO]:
    """The checkpoint dict of a ``.pth`` policy, or the TRPO model of a ``.zip`` loaded without an env."""
    path = Path(path)
    if not path.is_file():
        raise PolicyLoadError(f"policy file {path} does not exist")
    if path.suffix == ".pth":
        try:
            checkpoint = th.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise PolicyLoadError(
                f"{path} is not a readable torch checkpoint ({type(err).__name__}); a .pth policy is written by "
                "`sb3-mimic sft --save_path NAME.pth`"
            ) from err
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != POLICY_FORMAT:
            raise PolicyLoadError(f"{path} is not an sb3-mimic policy checkpoint (made by `sb3-mimic sft`)")
        return path, checkpoint
    try:
        return path, TRPO.load(path, device="cpu")
    except Exception as err:
        raise PolicyLoadError(f"{path} is not a readable SB3 TRPO model ({type(err).__name__}: {err})") from err


def read_metadata(path: str | Path) -> dict[str, Any]:
    """sb3-mimic metadata of a saved policy (empty for a zip that sb3-mimic did not write)."""
    _, saved = _read(path)
    return dict(saved["metadata"]) if isinstance(saved, dict) else _metadata(saved)


def load_policy(path: str | Path, env: gym.Env | DummyVecEnv | None = None) -> TRPO:
    """Load a policy saved by :func:`save_policy` (``.zip`` or ``.pth``) as a TRPO model.

    :param path: the file
    :param env: the env to attach; if None, the env recorded in the metadata is made
    :raises PolicyLoadError: missing or unreadable file, or a policy whose spaces do not match ``env``
    """
    path, saved = _read(path)
    if isinstance(saved, dict):
        meta = saved["metadata"]
        env = env if env is not None else make_env_from_metadata(meta)
        _check_spaces(path, env, saved["state_dict"])
        model = TRPO("MlpPolicy", env, policy_kwargs=saved["policy_kwargs"], device="cpu", verbose=0)
        model.policy.load_state_dict(saved["state_dict"])
        model.sb3_mimic = meta
        return model
    if env is None:
        env = make_env_from_metadata(_metadata(saved))
    try:
        return TRPO.load(path, env=env, device="cpu")
    except ValueError as err:
        raise PolicyLoadError(f"{path} does not fit this env: {err}") from err


def _check_spaces(path: Path, env, state_dict: dict[str, th.Tensor]) -> None:
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    first = next(v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2)
    if first.shape[1] != obs_dim or state_dict["log_std"].shape[0] != act_dim:
        raise PolicyLoadError(
            f"{path} was trained for observations of size {first.shape[1]} and {state_dict['log_std'].shape[0]} "
            f"actions, but this env has {obs_dim} and {act_dim}"
        )


def make_env_from_metadata(meta: dict[str, Any]) -> gym.Env:
    """Make the env a policy was trained for, from its sb3-mimic metadata."""
    if "env_id" not in meta:
        raise PolicyLoadError(
            "this policy carries no sb3-mimic metadata (it was not written by sb3-mimic); pass the env (or --mocap)"
        )
    return gym.make(meta["env_id"], **meta.get("env_kwargs", {}))


def check_policy_fits(model: TRPO, env: gym.Env) -> None:
    """Refuse a policy whose spaces or action mode differ from ``env``'s, with a clear message."""
    base = env.unwrapped
    meta = _metadata(model)
    if model.observation_space.shape != env.observation_space.shape or model.action_space.shape != env.action_space.shape:
        raise PolicyLoadError(
            f"the policy expects observations {model.observation_space.shape} and actions {model.action_space.shape}, "
            f"the env gives {env.observation_space.shape} and takes {env.action_space.shape}"
        )
    if isinstance(base, MimicHumanoidEnv) and meta.get("action_mode", base.action_mode) != base.action_mode:
        raise PolicyLoadError(
            f"the policy was trained with action_mode={meta['action_mode']!r} but the env uses "
            f"{base.action_mode!r}; pass the matching --action_mode"
        )


# ------------------------------------------------------------------------------------------------------------
# the whole job


@dataclass
class SFTConfig:
    """Arguments of ``sb3-mimic sft`` (the SFT guide's names and defaults, plus a few of our own)."""

    mocap: str = "humanoid3d_dance_a"
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    lookahead: int = 1
    hidden_size: int = 64
    num_layers: int = 2
    val_split: float = 0.1
    save_path: str = "policy_sft_pretrained.zip"
    eval_episodes: int = 10
    no_eval: bool = False
    action_mode: str = "pd_target"
    seed: int = 0
    n_samples: int = 20000
    n_rollouts: int = 300
    qpos_noise: float = 0.05
    qvel_noise: float = 0.2
    demos: str | None = None
    """Train on these saved demonstrations (``.npz``) instead of making new ones."""
    save_demos: str | None = None
    """Also save the demonstrations to this ``.npz`` file."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad argument (before any work is done)."""
        resolve_clip(self.mocap)  # unknown clip names list the available ones
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be a positive number, got {self.lr}"),
            (self.lookahead >= 1, f"--lookahead must be at least 1 control step, got {self.lookahead}"),
            (self.hidden_size >= 1, f"--hidden_size must be at least 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"--num_layers must be at least 1, got {self.num_layers}"),
            (0.0 < self.val_split < 1.0, f"--val_split must be between 0 and 1 (exclusive), got {self.val_split}"),
            (self.no_eval or self.eval_episodes >= 1, f"--eval_episodes must be at least 1, got {self.eval_episodes}"),
            (self.n_samples >= 10, f"--n_samples must be at least 10, got {self.n_samples}"),
            (self.n_rollouts >= 0, f"--n_rollouts must not be negative, got {self.n_rollouts}"),
            (self.qpos_noise >= 0 and self.qvel_noise >= 0, "--qpos_noise and --qvel_noise must not be negative"),
            (self.action_mode in ACTION_MODES, f"--action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_writable(self.save_path)
        if self.save_demos:
            check_writable(self.save_demos)
        if self.demos and not Path(self.demos).is_file():
            raise ValueError(f"--demos {self.demos}: no such file")


def check_writable(path: str | Path) -> None:
    """Raise ValueError unless a file can be written at ``path`` (tried with a temporary file, then removed)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"save path {path} is a directory; give a file name such as {path / 'policy.zip'}")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".sb3_mimic_write_test_"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write {path} (save path): {parent} is not a writable folder ({err.strerror})") from err
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"cannot overwrite {path}: permission denied")


@dataclass
class SFTRun:
    """Everything :func:`run_sft` produced."""

    result: SFTResult
    save_path: Path
    env_id: str
    env_kwargs: dict[str, Any]
    evaluation: Any = None


def run_sft(config: SFTConfig, progress_bar: bool = True, log=print) -> SFTRun:
    """Demonstrations from the PD expert, BC into a TRPO policy, save, and (unless ``no_eval``) evaluate."""
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
    from sb3_mimic.experts import PDExpert

    config.validate()
    use_one_torch_thread()
    env_id, env_kwargs = env_spec_for(config.mocap, config.action_mode)
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    source = (f"demonstrations from {config.demos}" if config.demos else
              f"{config.n_samples} teacher-forced samples + {config.n_rollouts} expert rollouts")
    log(
        f"SFT on {base.clip.name} ({env_id}, action_mode={config.action_mode}): {source}, {config.epochs} epochs, "
        f"MLP {config.num_layers}x{config.hidden_size}"
    )
    if config.demos:
        demos, demo_meta = load_demos(config.demos, env_id=env_id, action_mode=config.action_mode)
        log(f"Loaded {len(demos)} demonstrations from {config.demos} ({demo_meta.kind}, lookahead {demo_meta.lookahead})")
    else:
        expert = PDExpert.for_env(env, lookahead=config.lookahead)
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
        meta = DemoMetadata(base.clip.name, env_id, config.action_mode, config.lookahead, "teacher_forcing+rollouts", extra)
        log(f"Saved demonstrations to {save_demos(config.save_demos, demos, meta)}")
    train, val = split_transitions(demos, config.val_split, seed=config.seed)
    model = make_trpo(DummyVecEnv([lambda: env]), config.hidden_size, config.num_layers, seed=config.seed)
    result = train_bc(
        model, train, val, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
        progress_bar=progress_bar,
    )
    bc_std = float(th.exp(model.policy.log_std).mean())
    set_exploration_std(model, DEFAULT_EXPLORATION_STD)  # the mean action (what BC learned) is unchanged
    metadata = {
        "bc_action_std": bc_std,
        "exploration_std": DEFAULT_EXPLORATION_STD,
        "clip": base.clip.name,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "action_mode": config.action_mode,
        "lookahead": config.lookahead,
        "trained_by": "sft",
        "best_val_loss": result.best_val_loss,
        "initial_val_loss": result.initial_val_loss,
        "n_samples": config.n_samples,
        "n_rollouts": config.n_rollouts,
        "n_demonstrations": len(demos),
    }
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
