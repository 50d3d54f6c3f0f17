"""Reinforcement learning: TRPO or PPO fine-tuning from an SFT policy, or TRPO/PPO from scratch.

Every run lives in a run directory::

    RUN_DIR/run.json              the run's configuration (what --resume needs)
    RUN_DIR/checkpoints/*.zip     SB3 checkpoints, written atomically every ``save_per_iter`` iterations
    RUN_DIR/evaluations.csv       deterministic evaluations at each checkpoint (and .json)
    RUN_DIR/tb/                   TensorBoard logs
    RUN_DIR/final_model.zip       the model at the end of the run

An SFT policy runs unchanged in RL: its observation normaliser (if any) travels inside the network. Fine-tuning a
cloned policy with a random critic makes the first actor updates follow noise: the critic is first fitted on
rollouts of the frozen SFT policy (``critic_warmup_iterations``, default 5), and an annealed imitation term keeps
the actor near it while the critic learns (:class:`FineTuning`, for TRPO and PPO alike).
"""

from __future__ import annotations

import csv
import os
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from sb3_mimic._util import write_json_atomic
from sb3_mimic.configs import (  # noqa: F401  (RunConfig and the rest re-exported: their home before configs)
    ALGO_NAMES,
    BATCHED_DEFAULT_N_ENVS,
    BATCHED_DEFAULT_N_STEPS,
    PPO_DEFAULTS,
    RUN_FILE,
    TRPO_DEFAULTS,
    VEC_ENVS,
    RunConfig,
    algo_defaults,
    read_resumable_run,
    read_run_config,
    resolved_n_envs,
)
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.normalization import ObservationStatsCallback
from sb3_mimic.reward import TERMS
from sb3_mimic.policies import (
    PolicyLoadError,
    PolicyMetadata,
    attach_metadata,
    check_policy_fits,
    load_policy,
    metadata_of,
    policy_kwargs_for,
    set_exploration_std,
    use_one_torch_thread,
)
from sb3_mimic.trpo import GaussianTRPO, fit_critic

EVAL_COLUMNS = (
    "iteration", "env_steps", "wall_time_s", "mean_reward", "normalized_return", "mean_survival_s", "fall_rate",
    "mpjpe_mm", "std_normalized_return", "std_survival_s", "std_mpjpe_mm",
)

class FineTuning:
    """What fine-tuning adds to an SB3 on-policy algorithm (mixed into :class:`MimicTRPO` and :class:`MimicPPO`):

    - **critic warm-up**: the first ``critic_warmup_iterations`` updates fit only the critic (the actor stays
      frozen). Their rollouts are collected with the current (e.g. SFT) policy, so the value function has learned
      that policy's returns before the first actor update uses its advantages.
    - **an annealed imitation term** (kickstarting, Schmitt et al. 2018): with a teacher (:meth:`set_teacher`, the
      SFT policy when fine-tuning) and ``imitation_coef > 0``, every iteration after the algorithm's own update also
      takes one pass of Adam steps over the rollout's states on the distillation loss ``KL(teacher(s) || policy(s))``
      at the policy's std (half the squared distance of the mean actions in units of that std). Adam's steps do not
      scale with a loss weight, so the weight ``coef`` scales the step size: ``imitation_lr * coef``, with ``coef``
      falling linearly from ``imitation_coef`` to 0 over ``imitation_anneal_steps`` env steps after the warm-up.
      The optimiser's state is saved in checkpoints, so a resumed run continues as an uninterrupted one would.

    With neither (the defaults) the algorithm trains exactly as its SB3 parent.
    """

    def __init__(self, *args, critic_warmup_iterations: int = 0, imitation_coef: float = 0.0,
                 imitation_anneal_steps: int = 0, imitation_lr: float = 1e-4, **kwargs) -> None:
        self.critic_warmup_left = int(critic_warmup_iterations)
        self.imitation_coef = float(imitation_coef)
        self.imitation_anneal_steps = int(imitation_anneal_steps)
        self.imitation_lr = float(imitation_lr)
        self.imitation_start: int | None = None
        self._teacher = None
        super().__init__(*args, **kwargs)  # sets the model up (_setup_model), which needs the settings above

    def set_teacher(self, policy) -> None:
        """Imitate ``policy`` (an SB3 actor-critic policy; a frozen copy is kept, outside the saved model)."""
        import copy

        self._teacher = copy.deepcopy(policy).to(self.device)
        self._teacher.set_training_mode(False)
        for p in self._teacher.parameters():
            p.requires_grad_(False)

    def imitation_weight(self, num_timesteps: int | None = None) -> float:
        """The imitation term's coefficient at ``num_timesteps`` (default: now)."""
        now = self.num_timesteps if num_timesteps is None else num_timesteps
        if self.imitation_coef <= 0 or self.imitation_start is None:
            return 0.0
        if self.imitation_anneal_steps <= 0:
            return self.imitation_coef
        return self.imitation_coef * max(0.0, 1.0 - (now - self.imitation_start) / self.imitation_anneal_steps)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.imitation_optimizer = th.optim.Adam(self._actor_parameters(), lr=self.imitation_lr)

    def _actor_parameters(self) -> list[th.nn.Parameter]:
        return [*self.policy.mlp_extractor.policy_net.parameters(), *self.policy.action_net.parameters()]

    def _excluded_save_params(self) -> list[str]:
        # the teacher is reloaded from the run's configuration on resume; the optimiser is saved as a state dict
        return [*super()._excluded_save_params(), "_teacher", "imitation_optimizer"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if getattr(self, "imitation_coef", 0.0) > 0:
            state_dicts = [*state_dicts, "imitation_optimizer"]
        return state_dicts, variables

    def train(self) -> None:
        if getattr(self, "critic_warmup_left", 0) > 0:
            self._train_critic_only()
            self.critic_warmup_left -= 1
            return
        if self.imitation_start is None:
            self.imitation_start = self.num_timesteps - self.rollout_buffer.buffer_size * self.n_envs
        super().train()
        if getattr(self, "_teacher", None) is not None:
            self._imitation_pass()

    def _imitation_pass(self) -> None:
        coef = self.imitation_weight()
        self.logger.record("train/imitation_coef", coef)
        if coef <= 0:
            return
        optimizer = self.imitation_optimizer
        for group in optimizer.param_groups:
            group["lr"] = self.imitation_lr * coef
        obs = self.rollout_buffer.to_torch(self.rollout_buffer.observations.reshape(-1, *self.observation_space.shape))
        losses = []
        for start in range(0, len(obs), self.batch_size):  # in order: no draw from any random stream
            batch = obs[start : start + self.batch_size]
            with th.no_grad():
                target = self._teacher.get_distribution(batch).distribution.mean
            student = self.policy.get_distribution(batch).distribution
            loss = (((student.mean - target) / student.stddev.detach()) ** 2).sum(dim=1).mean() / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        self.logger.record("train/imitation_kl", float(np.mean(losses)))

    def _critic_passes(self) -> int:
        raise NotImplementedError

    def _train_critic_only(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        critic = {id(p) for p in [*self.policy.mlp_extractor.value_net.parameters(), *self.policy.value_net.parameters()]}
        # the actor (and log_std) stay exactly as they are
        frozen = [p for p in self.policy.parameters() if id(p) not in critic]
        losses = fit_critic(self, self._critic_passes(), frozen)
        self.logger.record("train/value_loss", float(np.mean(losses)))
        self.logger.record("train/critic_warmup", 1)


class MimicTRPO(FineTuning, GaussianTRPO):
    """sb3-contrib TRPO (its update computed as :class:`~sb3_mimic.trpo.GaussianTRPO` computes it) with
    :class:`FineTuning`'s critic warm-up (``n_critic_updates`` passes per iteration) and imitation term (after the
    natural-gradient step)."""

    def _critic_passes(self) -> int:
        return self.n_critic_updates


class MimicPPO(FineTuning, PPO):
    """SB3 PPO with :class:`FineTuning`'s critic warm-up (``n_epochs`` passes per iteration) and imitation term
    (after the clipped-surrogate epochs)."""

    def _critic_passes(self) -> int:
        return self.n_epochs


ALGOS = {"trpo": MimicTRPO, "ppo": MimicPPO}
assert tuple(ALGOS) == ALGO_NAMES
#: Env kwargs that shape training episodes only: evaluations, and the env a saved policy records, go without them,
#: so that figures stay comparable across runs.
TRAINING_ONLY_KWARGS = ("termination_distance",)


def evaluation_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` less :data:`TRAINING_ONLY_KWARGS`."""
    return {k: v for k, v in env_kwargs.items() if k not in TRAINING_ONLY_KWARGS}


def make_training_env(config: RunConfig):
    n = resolved_n_envs(config.n_envs, config.vec_env)
    if config.vec_env == "batched":
        from sb3_mimic.envs import MimicHumanoidVecEnv

        spec = gym.spec(config.env_id)
        starts = None
        if config.expert_starts is not None:
            from sb3_mimic.demos import load_start_states

            starts = load_start_states(config.expert_starts, env_id=config.env_id)
        return MimicHumanoidVecEnv(
            n, **{**spec.kwargs, **config.env_kwargs}, threads=config.threads or None,
            max_episode_steps=spec.max_episode_steps, seed=config.seed, start_states=starts,
            start_share=config.expert_start_share,
        )
    # the "module:id" form makes worker processes import sb3_mimic, which registers the ids
    env_id = config.env_id if ":" in config.env_id else f"sb3_mimic:{config.env_id}"
    return make_vec_env(
        env_id, n_envs=n, seed=config.seed, env_kwargs=config.env_kwargs,
        vec_env_cls=SubprocVecEnv if n > 1 else DummyVecEnv,
    )


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run (by its step count), or None."""
    files = sorted(Path(run_dir, "checkpoints").glob("model_*_steps.zip"))
    return files[-1] if files else None


def _atomic_save(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


class EpisodeCurriculumCallback(BaseCallback):
    """DeepMimic's episode-length curriculum on a :class:`~sb3_mimic.envs.MimicHumanoidVecEnv`: at each rollout's
    start the episode limit becomes ``start_s + (full - start_s) * num_timesteps / steps`` seconds (in whole control
    steps), reaching the env's own limit ``full`` after ``steps`` env steps, and stays there."""

    def __init__(self, steps: int, start_s: float) -> None:
        super().__init__()
        self.steps, self.start_s = int(steps), float(start_s)
        self.full: int | None = None

    def limit(self, num_timesteps: int, dt: float) -> int:
        """The episode limit (control steps) at ``num_timesteps``."""
        assert self.full is not None
        start = min(self.full, max(1, round(self.start_s / dt)))
        share = min(1.0, num_timesteps / self.steps)
        return round(start + (self.full - start) * share)

    def _on_training_start(self) -> None:
        env = self.training_env.unwrapped
        if self.full is None:
            self.full = env.max_episode_steps if env.max_episode_steps is not None else round(env.clip.duration / env.batch.dt)

    def _on_rollout_start(self) -> None:
        env = self.training_env.unwrapped
        env.max_episode_steps = self.limit(self.model.num_timesteps, env.batch.dt)
        self.logger.record("rollout/episode_limit_s", env.max_episode_steps * env.batch.dt)

    def _on_step(self) -> bool:
        return True


class CheckpointEvalCallback(BaseCallback):
    """Every ``save_per_iter`` iterations: an atomic checkpoint and a deterministic evaluation row."""

    def __init__(
        self, run_dir: Path, config: RunConfig, wall_offset: float = 0.0, iteration_offset: int = 0, verbose: int = 1
    ) -> None:
        super().__init__(verbose)
        self.run_dir, self.config = run_dir, config
        self.wall_offset, self.iteration = wall_offset, iteration_offset
        self._eval_env = gym.make(config.env_id, **evaluation_kwargs(config.env_kwargs))
        self._t0 = time.perf_counter()
        self._eval_time = 0.0
        self._term_sums: np.ndarray | None = None
        self._term_steps: np.ndarray | None = None

    def _on_step(self) -> bool:
        self._log_training_terms()
        budget = self.config.time_budget_s
        return budget is None or self.wall_time() < budget

    def _log_training_terms(self) -> None:
        """Each finished training episode's mean reward terms, as ``rollout/reward_<term>`` in TensorBoard."""
        infos, dones = self.locals.get("infos"), self.locals.get("dones")
        if infos is None or dones is None or f"reward_{TERMS[0]}" not in infos[0]:
            return
        if self._term_sums is None:
            self._term_sums, self._term_steps = np.zeros((len(infos), len(TERMS))), np.zeros(len(infos))
        self._term_sums += [[info[f"reward_{t}"] for t in TERMS] for info in infos]
        self._term_steps += 1
        for i in np.flatnonzero(dones):
            for k, t in enumerate(TERMS):
                self.logger.record_mean(f"rollout/reward_{t}", self._term_sums[i, k] / self._term_steps[i])
            self._term_sums[i], self._term_steps[i] = 0.0, 0

    def _on_training_start(self) -> None:
        if self.iteration == 0 and not read_evaluations(self.run_dir) and latest_checkpoint(self.run_dir) is None:
            self.checkpoint()  # the starting policy's own score (the SFT policy's, when fine-tuning)
        elif not any(r["env_steps"] == self.model.num_timesteps for r in read_evaluations(self.run_dir)):
            self.evaluate()  # a resume from a checkpoint whose evaluation a crash cut off

    def wall_time(self) -> float:
        """Training wall time so far (evaluation excluded), including earlier sessions of the run."""
        return self.wall_offset + time.perf_counter() - self._t0 - self._eval_time

    def _on_rollout_start(self) -> None:
        due = self.iteration > 0 and self.iteration % self.config.save_per_iter == 0
        if due and latest_checkpoint(self.run_dir) != self._path():  # a resumed run starts on its own checkpoint
            self.checkpoint()

    def _on_rollout_end(self) -> None:
        self.iteration += 1

    def _on_training_end(self) -> None:
        if latest_checkpoint(self.run_dir) != self._path():
            self.checkpoint()

    def _path(self) -> Path:
        return self.run_dir / "checkpoints" / f"model_{self.model.num_timesteps:012d}_steps.zip"

    def checkpoint(self) -> None:
        wall = self.wall_time()
        # the progress travels inside the checkpoint, so a resume can never read it from a different moment
        self.model.sb3_mimic_progress = {"iteration": self.iteration, "wall_time_s": wall}
        _atomic_save(self.model, self._path())
        self.evaluate(wall)

    def evaluate(self, wall: float | None = None) -> None:
        """Evaluate the current policy and add its row to ``evaluations.csv`` and its figures to TensorBoard."""
        wall = self.wall_time() if wall is None else wall
        start = time.perf_counter()
        terms = np.zeros(len(TERMS))
        counted = [0]

        def add_terms(*step) -> None:
            info = step[-1]
            if not info.get("nonfinite", False):
                terms[:] += [info[f"reward_{t}"] for t in TERMS]
                counted[0] += 1

        result = evaluate(policy_actor(self.model), self._eval_env, self.config.eval_episodes, seed=self.config.seed + 10_000,
                          on_step=add_terms)
        self._eval_time += time.perf_counter() - start
        # the figures that matter, beside the CSV, in TensorBoard (as SB3's EvalCallback writes eval/mean_reward)
        for key in ("normalized_return", "mean_survival_s", "fall_rate", "mpjpe_mm", "mean_reward"):
            self.logger.record(f"eval/{key}", getattr(result, key))
        for k, t in enumerate(TERMS):
            self.logger.record(f"eval/reward_{t}", terms[k] / max(1, counted[0]))
        self.logger.dump(self.model.num_timesteps)
        row = {"iteration": self.iteration, "env_steps": self.model.num_timesteps, "wall_time_s": round(wall, 3),
               **{k: v for k, v in result.to_dict().items() if k in EVAL_COLUMNS}}
        append_evaluation(self.run_dir, row)
        if self.verbose:
            print(
                f"[{self.model.num_timesteps} steps, {wall / 60:.1f} min] normalized return {row['normalized_return']:.3f}, "
                f"time to fall {row['mean_survival_s']:.2f} s, MPJPE {row['mpjpe_mm']:.0f} mm",
                flush=True,
            )


def read_evaluations(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``evaluations.csv`` (none if it is missing); a row cut short by a crash is skipped."""
    csv_path = Path(run_dir) / "evaluations.csv"
    if not csv_path.exists():
        return []
    rows = []
    with csv_path.open(newline="") as f:
        for raw in csv.DictReader(f):
            try:
                rows.append({k: float(v) for k, v in raw.items() if k is not None and v not in (None, "")})
            except ValueError:
                continue  # a partial line: the row is written again when its checkpoint is evaluated again
            if not set(EVAL_COLUMNS[:3]) <= set(rows[-1]):
                rows.pop()
    return rows


def append_evaluation(run_dir: Path, row: dict[str, Any]) -> None:
    """Add one evaluation row to ``evaluations.csv`` and ``evaluations.json``, both rewritten atomically.

    Rows of later steps than ``row``'s (left by an attempt whose checkpoints were lost) are dropped."""
    rows = [r for r in read_evaluations(run_dir) if r["env_steps"] < row["env_steps"]]
    rows.append({k: float(row[k]) for k in EVAL_COLUMNS if k in row})
    csv_path = run_dir / "evaluations.csv"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_COLUMNS, restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (int(v) if k in ("iteration", "env_steps") else v) for k, v in r.items()})
    os.replace(tmp, csv_path)
    write_json_atomic(run_dir / "evaluations.json", rows)


def _new_model(config: RunConfig, env, run_dir: Path):
    hyper = {**algo_defaults(config), **config.hyperparameters}
    common = dict(seed=config.seed, device="cpu", verbose=0, tensorboard_log=str(run_dir / "tb"))
    probe = gym.make(config.env_id, **config.env_kwargs)  # the env the run trains on, for its clip and spaces
    if config.load_sft_pretrain:
        sft = load_policy(config.load_sft_pretrain, trust_pickle=config.trust_pickle)
        check_policy_fits(sft, probe)
        model = ALGOS[config.algo](
            "MlpPolicy", env, policy_kwargs=sft.policy_kwargs, critic_warmup_iterations=config.critic_warmup_iterations,
            imitation_coef=config.imitation_coef, imitation_anneal_steps=config.imitation_anneal_steps, **hyper, **common,
        )
        model.policy.load_state_dict(sft.policy.state_dict())
        if config.imitation_coef > 0:
            model.set_teacher(sft.policy)
    else:
        model = ALGOS[config.algo](
            "MlpPolicy", env, policy_kwargs=policy_kwargs_for(config.hidden_size, config.num_layers,
                                                             config.normalize_observations),
            critic_warmup_iterations=0, **hyper, **common,
        )
    set_exploration_std(model, config.exploration_std)
    inherited = metadata_of(sft) if config.load_sft_pretrain else None
    changes = {
        "env_id": config.env_id,
        "env_kwargs": evaluation_kwargs(config.env_kwargs),
        "action_mode": config.env_kwargs.get("action_mode", "pd_target"),
        "trained_by": "finetune" if config.load_sft_pretrain else f"train ({config.algo})",
        "exploration_std": config.exploration_std,
        "clip": probe.unwrapped.clip.name,
    }
    probe.close()
    attach_metadata(model, inherited.replace(**changes) if inherited is not None else PolicyMetadata(**changes))
    return model


def run_training(config: RunConfig, run_dir: str | Path, progress_bar: bool = True):
    """Start a new run in ``run_dir`` (which must not hold one already) and train to ``num_timesteps``."""
    config.validate()
    use_one_torch_thread()
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).exists():
        raise ValueError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --run_dir")
    env = make_training_env(config)
    try:
        model = _new_model(config, env, run_dir)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / RUN_FILE, asdict(config))  # only once the run can start: a failed start can be retried
        return _learn(model, config, run_dir, config.num_timesteps, progress_bar, wall_offset=0.0, iteration=0)
    finally:
        env.close()


def warmup_steps(config: RunConfig) -> int:
    """Env steps the critic warm-up of a run takes (0 without one)."""
    n_steps = config.hyperparameters.get("n_steps", algo_defaults(config)["n_steps"])
    return config.critic_warmup_iterations * n_steps * resolved_n_envs(config.n_envs, config.vec_env)


def resume_training(run_dir: str | Path, progress_bar: bool = True, num_timesteps: int | None = None):
    """Continue a run from its newest checkpoint with the same step count and configuration.

    :param num_timesteps: a new total for the run (larger than recorded: the run is extended, and ``run.json``
        records the new total); by default the recorded one
    """
    run_dir = Path(run_dir)
    use_one_torch_thread()
    config = read_resumable_run(run_dir)
    if num_timesteps is not None and num_timesteps != config.num_timesteps:
        if num_timesteps < config.num_timesteps:
            raise ValueError(f"--num_timesteps {num_timesteps} is below the run's {config.num_timesteps}; a run can "
                             "only be extended")
        print(f"Extending {run_dir} from {config.num_timesteps} to {num_timesteps} steps")
        config.num_timesteps = num_timesteps
        write_json_atomic(run_dir / RUN_FILE, asdict(config))
    for leftover in [*Path(run_dir, "checkpoints").glob(".*.tmp.zip"), *run_dir.glob(".*.tmp"), *run_dir.glob(".*.tmp.zip")]:
        leftover.unlink()  # a save or a table cut off by a crash
    if latest_checkpoint(run_dir) is None:
        raise ValueError(f"{run_dir} has no checkpoint yet; start the run again")
    env = make_training_env(config)
    try:
        model, ckpt = _load_newest_good_checkpoint(run_dir, config, env)
        if config.load_sft_pretrain and config.imitation_coef > 0:  # the teacher is not inside the checkpoint
            model.set_teacher(load_policy(config.load_sft_pretrain, trust_pickle=config.trust_pickle).policy)
        remaining = config.num_timesteps - model.num_timesteps
        if remaining <= 0:
            evaluated = any(r["env_steps"] == model.num_timesteps for r in read_evaluations(run_dir))
            if not evaluated or not (run_dir / "final_model.zip").exists():
                # killed after its last checkpoint, before that checkpoint's evaluation or the final model: a run of
                # no further steps writes both (the callback evaluates a checkpoint that has no row)
                progress = getattr(model, "sb3_mimic_progress", None) or {}
                _learn(model, config, run_dir, 0, False, progress.get("wall_time_s", 0.0), progress.get("iteration", 0),
                       reset=False)
            print(f"{run_dir} is complete ({model.num_timesteps} of {config.num_timesteps} steps)")
            return model
        progress = getattr(model, "sb3_mimic_progress", None) or {}
        budget = config.time_budget_s
        if budget is not None and progress.get("wall_time_s", 0.0) >= budget:
            print(f"{run_dir} used its time budget ({budget / 60:.1f} min) at {model.num_timesteps} steps")
            return model
        print(f"Resuming {run_dir} from {ckpt.name} ({model.num_timesteps} steps)")
        return _learn(model, config, run_dir, remaining, progress_bar, progress.get("wall_time_s", 0.0),
                      progress.get("iteration", 0), reset=False)
    finally:
        env.close()


def _load_newest_good_checkpoint(run_dir: Path, config: RunConfig, env):
    """The newest checkpoint that loads; an unreadable one is renamed ``*.corrupt``, with a message, and the one
    before it is tried."""
    while (ckpt := latest_checkpoint(run_dir)) is not None:
        try:
            with zipfile.ZipFile(ckpt) as archive:  # a file cut short is not a zip, or has a damaged member
                damaged = archive.testzip()
            if damaged is not None:
                raise zipfile.BadZipFile(f"member {damaged} is damaged")
            try:
                return ALGOS[config.algo].load(ckpt, env=env, device="cpu", tensorboard_log=str(run_dir / "tb")), ckpt
            except ValueError as err:  # it loads, but it does not fit: not a crash's doing
                raise PolicyLoadError(f"checkpoint {ckpt} does not fit {config.env_id}: {err}") from err
        except PolicyLoadError:
            raise
        except Exception as err:
            corrupt = ckpt.with_name(ckpt.name + ".corrupt")
            os.replace(ckpt, corrupt)
            older = latest_checkpoint(run_dir)
            print(f"checkpoint {ckpt.name} is unreadable ({type(err).__name__}: {err}); kept as {corrupt.name}, "
                  + (f"resuming from {older.name} instead" if older else "and no older checkpoint is left"), flush=True)
    raise ValueError(f"{run_dir} has no readable checkpoint left; start the run again")


def _learn(model, config: RunConfig, run_dir: Path, steps: int, progress_bar: bool, wall_offset: float, iteration: int,
           reset: bool = True):
    # the statistics first: a checkpoint at a rollout's start holds the ones that rollout uses
    callbacks = [ObservationStatsCallback(), CheckpointEvalCallback(run_dir, config, wall_offset, iteration)]
    if config.curriculum_steps:
        callbacks.insert(0, EpisodeCurriculumCallback(config.curriculum_steps, config.curriculum_start_s))
    callback = CallbackList(callbacks)
    model.learn(total_timesteps=steps, callback=callback, progress_bar=progress_bar, reset_num_timesteps=reset,
                tb_log_name="run")
    _atomic_save(model, run_dir / "final_model.zip")
    return model
