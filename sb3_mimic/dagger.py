"""DAgger: distil an expert (PD or MPC) into the TRPO policy, with ``imitation``'s DAgger trainer.

Each round runs the current policy, with its mean action, mixed with the expert (whose share ``beta`` decays over
the rounds: its action with probability ``beta``, or with ``mixing="blend"`` a weighted mean of the two actions),
in the env, labels every visited state with the expert (which runs alongside the episode, so a stateful expert
such as the MPC keeps its warm-started plan), adds the labels to all earlier rounds' and retrains the policy by
BC on the aggregate.  Everything lives in a run directory::

    RUN_DIR/dagger.json          the configuration, the MPC settings it resolved to, the number of finished rounds
    RUN_DIR/demos/round-NNN/     every finished round's labelled episodes (imitation's format), kept
    RUN_DIR/policy.zip           the policy after the last finished round: the same TRPO-ready zip as `sft`
    RUN_DIR/bc_optimizer.pt      BC's optimizer state after the last finished round (tensors only)

A round is collected into ``demos/.round-NNN.partial`` and moved into place once complete. An interrupted run
continues from its last finished round with ``resume=True`` (``--resume``): the folders of unfinished rounds are
discarded, and since every round draws its randomness from its own seed (the run's seed and the round number) and
BC's optimizer state is restored, the resumed run collects and trains exactly what an uninterrupted one would.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm.auto import tqdm

from sb3_mimic._util import scratch_folder, write_json_atomic
from sb3_mimic.cloning import make_bc_trainer, quiet_bc_warnings
from sb3_mimic.configs import DAGGER_STATE_FILE as CONFIG_FILE
from sb3_mimic.configs import DAggerConfig, read_dagger_run
from sb3_mimic.experts import MPCSettings, make_expert
from sb3_mimic.policies import (
    DEFAULT_EXPLORATION_STD,
    PolicyMetadata,
    load_policy,
    check_policy_fits,
    make_trpo,
    save_policy,
    set_exploration_std,
    use_one_torch_thread,
)
from sb3_mimic.registration import env_spec_for
from imitation.algorithms.dagger import (
    BetaSchedule,
    ExponentialBetaSchedule,
    InteractiveTrajectoryCollector,
    LinearBetaSchedule,
    SimpleDAggerTrainer,
)
from imitation.data import rollout
from imitation.data.types import Trajectory

#: Prefix of the scratch folder a DAgger run keeps in its run folder (``.bc_scratch_<pid>_XXXX``, removed at the end;
#: one left by a killed run is removed when the next run in that folder starts).
DAGGER_SCRATCH_PREFIX = ".bc_scratch_"


class _BlendingCollector(InteractiveTrajectoryCollector):
    """imitation's collector, except that every step executes ``beta * expert + (1 - beta) * learner`` instead of
    one of the two drawn with probability ``beta``. The label is still the expert's action."""

    def step_async(self, actions: np.ndarray) -> None:
        assert self._is_reset, "call .reset() before .step()"
        learner = self.get_robot_acts(self._last_obs)
        self._last_user_actions = actions
        self.venv.step_async(self.beta * np.asarray(actions) + (1.0 - self.beta) * learner)


class _DAggerTrainer(SimpleDAggerTrainer):
    """imitation's trainer, except that the learner acts with its mean action while a round is collected.

    imitation samples the learner's actions from its Gaussian, whose std is the exploration std of the TRPO-ready
    policy (0.05 in normalised units, about 0.16 rad of PD target), far larger than a clone's own error, so the
    collected states would be those of a noisy learner, not of the policy as it runs.
    """

    def __init__(self, *, mixing: str = "switch", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mixing = mixing
        """``"blend"``: collect with :class:`_BlendingCollector`."""

    def create_trajectory_collector(self) -> InteractiveTrajectoryCollector:
        """A collector that writes this round's episodes to its staging folder (see :meth:`commit_round`)."""
        policy = self.bc_trainer.policy
        kind = _BlendingCollector if self.mixing == "blend" else InteractiveTrajectoryCollector
        staging = self._staging_dir()
        if staging.exists():
            shutil.rmtree(staging)
        return kind(
            venv=self.venv, get_robot_acts=lambda obs: policy.predict(obs, deterministic=True)[0],
            beta=self.beta_schedule(self.round_num), save_dir=staging, rng=self.rng,
        )

    def _load_all_demos(self):
        """imitation's loader, except that episodes are read as arrays only (:func:`load_round_episodes`)."""
        num_demos_by_round = []
        for round_num in range(self._last_loaded_round + 1, self.round_num + 1):
            episodes = load_round_episodes(self._demo_dir_path_for_round(round_num))
            self._all_demos.extend(episodes)
            num_demos_by_round.append(len(episodes))
        return rollout.flatten_trajectories(self._all_demos), num_demos_by_round

    def _staging_dir(self) -> Path:
        return self.scratch_dir / "demos" / f".round-{self.round_num:03d}.partial"

    def commit_round(self) -> None:
        """Move the complete round from its staging folder into place (replacing a folder of an aborted attempt)."""
        final = self._demo_dir_path_for_round()
        if final.exists():
            shutil.rmtree(final)
        os.replace(self._staging_dir(), final)

    def discard_unfinished(self, rounds_done: int) -> list[Path]:
        """Remove staging folders and the folders of rounds from ``rounds_done`` on; returns what was removed."""
        demos = self.scratch_dir / "demos"
        removed = []
        for folder in sorted(demos.glob(".round-*.partial")) + sorted(demos.glob("round-*")):
            number = int(folder.name.split("-")[1].split(".")[0])
            if folder.name.startswith(".") or number >= rounds_done:
                shutil.rmtree(folder)
                removed.append(folder)
        return removed


def load_round_episodes(folder: Path) -> list[Trajectory]:
    """The labelled episodes of one DAgger round folder, read as arrays only.

    imitation's own reader decodes each step's ``info`` with jsonpickle (which can build arbitrary objects) and
    reads a plain ``.npz`` file with ``allow_pickle``; here only the episodes' Arrow datasets are read (observations,
    actions, terminal flag) and anything else is refused.
    """
    import datasets

    episodes = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not (path.is_dir() and (path / "dataset_info.json").is_file()):
            raise ValueError(f"{path} is not an episode saved by sb3-mimic dagger (an Arrow dataset folder); not read")
        dataset = datasets.load_from_disk(str(path))
        for row in dataset.select_columns(["obs", "acts", "terminal"]).with_format("numpy"):
            episodes.append(Trajectory(obs=np.asarray(row["obs"]), acts=np.asarray(row["acts"]), infos=None,
                                       terminal=bool(row["terminal"])))
    return episodes


def _save_atomic(tensors: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    th.save(tensors, tmp)
    os.replace(tmp, path)


def _counting(label, bar):
    """``label`` (a policy callable), advancing ``bar`` by the number of observations it labels."""

    def counted(obs, states, episode_starts):
        out = label(obs, states, episode_starts)
        bar.update(len(obs))
        return out

    return counted


def beta_schedule(config: DAggerConfig) -> BetaSchedule:
    """The expert's share per round (counted from 0): ``beta_decay ** round``, or with ``beta_rampdown`` R
    ``max(0, 1 - round / R)``."""
    if config.beta_rampdown > 0:
        return LinearBetaSchedule(config.beta_rampdown)
    return ExponentialBetaSchedule(config.beta_decay)


def run_dagger(config: DAggerConfig, run_dir: str | Path, resume: bool = False, log=print, progress_bar: bool = False):
    """Run (or continue) DAgger; returns the TRPO model after the last round.

    :param log: called with one line per finished round (and nothing else)
    :param progress_bar: show a bar of the labelled steps while each round is collected
    """
    run_dir = Path(run_dir)
    state_path = run_dir / CONFIG_FILE
    if resume:
        state = read_dagger_run(run_dir)  # checked, the config validated
        config = DAggerConfig(**state["config"])
        done = int(state["rounds_done"])
        # a run written before the settings were recorded beside the config has them resolved in mpc_kwargs
        recorded = state.get("mpc_settings")
    else:
        if state_path.exists():
            raise ValueError(f"{run_dir} already holds a DAgger run; continue it with --resume or choose another --run_dir")
        done = 0
        recorded = None
        config.validate()
    use_one_torch_thread()
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # imitation saves every episode through HF datasets, each with its own bar
    env_id, env_kwargs = env_spec_for(config.mocap, config.action_mode, config.target_observation)
    venv = DummyVecEnv([lambda: gym.make(env_id, **env_kwargs)])
    policy_path, optimizer_path = run_dir / "policy.zip", run_dir / "bc_optimizer.pt"

    def staged(rounds: int) -> tuple[Path, Path]:
        """Where round ``rounds``' policy and optimizer wait until the state file counts that round."""
        return run_dir / f".policy-round-{rounds:03d}.zip", run_dir / f".bc_optimizer-round-{rounds:03d}.pt"

    if resume:  # a kill between counting a round and moving its files into place: move them now
        for path, final in zip(staged(done), (policy_path, optimizer_path), strict=True):
            if path.exists():
                os.replace(path, final)
        for leftover in [*run_dir.glob(".policy-round-*.zip"), *run_dir.glob(".bc_optimizer-round-*.pt")]:
            leftover.unlink()  # a round the state never counted: its policy must not be loaded
    if done > 0:
        model = load_policy(policy_path, venv)
    elif config.init_policy:
        model = load_policy(config.init_policy, venv)
        check_policy_fits(model, venv.envs[0])  # its action mode too
    else:
        model = make_trpo(venv, config.hidden_size, config.num_layers, seed=config.seed)
    # the MPC's settings are recorded in full: a resumed run plans as the first one did, whatever the catalogue
    # says now (the PD expert has none).  A stateless MPC keeps its fixed perturbations (its labels stay one
    # function of the state); a warm-started one draws each round's perturbations from that round's seed (below)
    settings = MPCSettings(**recorded) if recorded is not None else None  # None: the clip's, updated by mpc_kwargs
    expert = make_expert(config.expert, venv, **config.expert_arguments(settings))
    mpc_settings: MPCSettings | None = expert.settings if config.expert == "mpc" else None

    def state(rounds_done: int) -> dict:
        recorded = {} if mpc_settings is None else {"mpc_settings": mpc_settings.to_dict()}
        return {"config": asdict(config), **recorded, "rounds_done": rounds_done}

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json_atomic(state_path, state(0))
    rng = np.random.default_rng([config.seed, done])
    with scratch_folder(DAGGER_SCRATCH_PREFIX, run_dir) as tmp:  # BC's logger folder, inside the run
        trainer_bc = make_bc_trainer(model.policy, tmp, rng, batch_size=config.batch_size, lr=config.lr)
        if done > 0 and optimizer_path.exists():
            trainer_bc.optimizer.load_state_dict(th.load(optimizer_path, map_location="cpu", weights_only=True))
        trainer = _DAggerTrainer(
            venv=venv, scratch_dir=run_dir, expert_policy=expert, rng=rng, bc_trainer=trainer_bc,
            beta_schedule=beta_schedule(config), custom_logger=trainer_bc.logger, mixing=config.mixing,
        )
        trainer.round_num = done  # the rounds already on disk are loaded with the next one
        removed = trainer.discard_unfinished(done)
        if removed:
            log(f"discarded the unfinished round data {', '.join(p.name for p in removed)} of an interrupted run")
        with quiet_bc_warnings():
            for round_num in range(done, config.rounds):
                started = time.perf_counter()
                # every round's randomness from its own seed: a resumed run repeats an uninterrupted one exactly
                rng = np.random.default_rng([config.seed, round_num])
                trainer.rng = trainer_bc.rng = rng
                venv.seed(int(np.random.SeedSequence([config.seed, round_num]).generate_state(1)[0]))
                th.manual_seed(int(np.random.SeedSequence([config.seed, round_num, 1]).generate_state(1)[0]))
                if config.expert == "mpc" and not mpc_settings.stateless:
                    expert.rng = np.random.default_rng([config.seed, round_num, 2])
                collector = trainer.create_trajectory_collector()
                sample_until = rollout.make_sample_until(min_timesteps=config.steps_per_round, min_episodes=1)
                with tqdm(total=config.steps_per_round, desc=f"round {round_num + 1}/{config.rounds}", unit="label",
                          disable=not progress_bar, leave=False) as bar:
                    trajectories = rollout.generate_trajectories(
                        policy=_counting(rollout.policy_to_callable(expert, collector, deterministic_policy=True), bar),
                        venv=collector, sample_until=sample_until, rng=rng,
                    )
                trainer.commit_round()
                trainer.extend_and_update(
                    {"n_epochs": config.epochs_per_round, "progress_bar": False, "log_rollouts_venv": None}
                )
                steps = sum(len(t) for t in trajectories)
                mean_s = steps / max(1, len(trajectories)) * venv.envs[0].unwrapped.dt
                set_exploration_std(model, DEFAULT_EXPLORATION_STD)
                meta = PolicyMetadata(
                    env_id=env_id, env_kwargs=env_kwargs, clip=venv.envs[0].unwrapped.clip.name,
                    action_mode=config.action_mode,
                    trained_by=f"dagger ({config.expert})", exploration_std=DEFAULT_EXPLORATION_STD,
                    details={"rounds": round_num + 1},
                )
                # the round's policy and optimizer are staged, then counted, then moved into place: a kill at any
                # moment leaves policy.zip the policy of the rounds the state counts
                staged_policy, staged_optimizer = staged(round_num + 1)
                save_policy(model, staged_policy, meta)
                _save_atomic(trainer_bc.optimizer.state_dict(), staged_optimizer)
                write_json_atomic(state_path, state(round_num + 1))  # the round counts once all is saved
                os.replace(staged_policy, policy_path)
                os.replace(staged_optimizer, optimizer_path)
                log(f"round {round_num + 1}/{config.rounds}: {steps} labelled steps in {len(trajectories)} episodes "
                    f"(mean {mean_s:.2f} s, beta {trainer.beta_schedule(round_num):.2f}) in "
                    f"{(time.perf_counter() - started) / 60:.1f} min; saved {policy_path}")
    if config.expert == "mpc":
        expert.close()
    return model
