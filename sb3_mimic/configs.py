"""The configurations of the ``sft``, ``dagger``, ``train`` and ``finetune`` jobs and the RL defaults: what the command
line builds and shows.

Light to import (no torch, no imitation), so that ``sb3-mimic --help`` and argument errors come at once.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sb3_mimic._resources import existing_policy_file
from sb3_mimic._util import available_cores, check_writable
from sb3_mimic.envs.actions import ACTION_MODES
from sb3_mimic.experts.settings import EXPERTS, MPCSettings
from sb3_mimic.motion import load_clip
from sb3_mimic.registration import check_env_id


#: Hyperparameters shared by the command line and zoo_configs/ (DeepMimic's TRPO port: max_kl 0.01, lambda 0.97).
TRPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 1024,
    "batch_size": 256,
    "gamma": 0.95,
    "gae_lambda": 0.97,
    "target_kl": 0.01,
    "n_critic_updates": 10,
    "learning_rate": 1e-3,
}
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 1024,
    "batch_size": 256,
    "gamma": 0.95,
    "gae_lambda": 0.95,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "clip_range": 0.2,
}

def is_seed(value: Any) -> bool:
    """Whether ``value`` is a seed numpy and Gymnasium accept: a whole number >= 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: How a DAgger round mixes expert and learner (``DAggerConfig.mixing``).
MIXINGS = ("switch", "blend")


@dataclass
class CloningConfig:
    """What ``sft`` and ``dagger`` share: the clip, the expert that labels it and the policy that learns from it.

    Fields are given by keyword (the subclasses add their own after these)."""

    mocap: str = "walk"
    expert: str = "pd"
    """``"pd"`` or ``"mpc"`` (:func:`sb3_mimic.experts.make_expert`)."""
    action_mode: str = "pd_target"
    """The learner's action mode (``"pd_target"`` or ``"residual"``; ``"torque"`` with the PD expert only)."""
    target_observation: bool = False
    """The learner observes the target block too (the env's ``target_observation``)."""
    lookahead: int = 1
    """Control steps (1/30 s) ahead that the PD expert targets."""
    hidden_size: int = 64
    num_layers: int = 2
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    mpc_kwargs: dict = field(default_factory=dict)
    """MPC settings given by the user (:class:`~sb3_mimic.experts.MPCSettings` names: horizon, samples, ...) with
    ``expert="mpc"``, and optionally ``nthread`` (rollout threads); the others come from the clip's settings."""

    def mpc_arguments(self) -> tuple[dict, int | None]:
        """``mpc_kwargs`` split into MPC settings and the rollout thread count."""
        given = dict(self.mpc_kwargs)
        return given, given.pop("nthread", None)

    def expert_arguments(self, settings: MPCSettings | None = None) -> dict[str, Any]:
        """Every expert's arguments, for ``make_expert(self.expert, env, **arguments)`` (each expert takes its
        own): ``lookahead``, ``seed``, the MPC's rollout threads and its settings, ``settings`` in full when given
        (a resumed run's record), else ``mpc_kwargs``' (on top of the clip's)."""
        given, nthread = self.mpc_arguments()
        mpc = given if settings is None else {"settings": settings}
        return {"lookahead": self.lookahead, "seed": self.seed, "nthread": nthread, **mpc}

    def mpc_settings(self, clip) -> MPCSettings:
        """The MPC's settings on ``clip``: the clip's, updated by ``mpc_kwargs`` (ValueError if one is bad)."""
        return MPCSettings.for_clip(clip).replace(**self.mpc_arguments()[0])


@dataclass
class SFTConfig(CloningConfig):
    """Arguments of ``sb3-mimic sft`` (the SFT guide's names and defaults, plus a few of our own).

    ``expert="pd"``: teacher forcing plus closed-loop rollouts of the PD expert; ``expert="mpc"``: ``n_rollouts``
    episodes of the MPC expert with DART noise (``dart_noise``) on the actions it executes (no teacher forcing).
    """

    mocap: str = "humanoid3d_dance_a"
    epochs: int = 100
    val_split: float = 0.1
    save_path: str = "policy_sft_pretrained.zip"
    eval_episodes: int = 10
    no_eval: bool = False
    n_samples: int = 20000
    n_rollouts: int = 300
    """Closed-loop expert episodes (with ``expert="mpc"`` the only demonstrations: see :attr:`DEFAULT_ROLLOUTS`)."""
    qpos_noise: float = 0.05
    qvel_noise: float = 0.2
    demos: str | None = None
    """Train on these saved demonstrations (``.npz``) instead of making new ones."""
    save_demos: str | None = None
    """Also save the demonstrations to this ``.npz`` file."""
    dart_noise: float = 0.01
    """Std (normalised action units, default 0.01) of the noise on the MPC expert's executed actions; its labels stay
    clean.  How long the MPC stays up under this noise and under more: ``benchmarks/results/walk_recipe.md``."""
    normalize: bool = False
    """Standardise observations inside the network, with the demonstrations' statistics (saved in the policy)."""

    #: Closed-loop episodes when ``n_rollouts`` is not given: 300 of the cheap PD expert, 20 of the MPC (each up to
    #: the 20 s episode limit, at the MPC's cost per step).
    DEFAULT_ROLLOUTS: ClassVar[dict[str, int]] = {"pd": 300, "mpc": 20}

    def validate(self) -> None:
        """Raise ValueError naming the first bad argument (before any work is done)."""
        if self.expert not in EXPERTS:
            raise ValueError(f"--expert must be one of {', '.join(EXPERTS)}, got {self.expert!r}")
        if self.expert == "mpc" and self.action_mode == "torque":
            raise ValueError("--expert mpc plans PD targets: use --action_mode pd_target or residual")
        if self.expert == "mpc" and self.n_rollouts < 1:
            raise ValueError("--expert mpc labels only its own episodes: --n_rollouts must be at least 1")
        if not (self.dart_noise >= 0 and math.isfinite(self.dart_noise)):
            raise ValueError(f"--dart_noise must be a number >= 0, got {self.dart_noise}")
        clip = load_clip(self.mocap)  # unknown clip names list the available ones; malformed files fail here
        if self.expert == "mpc":
            self.mpc_settings(clip)  # bad MPC settings fail here
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
            (is_seed(self.seed), f"--seed must be a whole number >= 0, got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_writable(self.save_path)
        if self.save_demos:
            check_writable(self.save_demos)
        if self.demos and not Path(self.demos).is_file():
            raise ValueError(f"--demos {self.demos}: no such file")


@dataclass
class DAggerConfig(CloningConfig):
    """Arguments of ``sb3-mimic dagger``.  ``dagger.json`` records the resolved MPC settings beside them."""

    rounds: int = 5
    steps_per_round: int = 2000
    """Env steps labelled per round (at least; whole episodes)."""
    epochs_per_round: int = 20
    beta_decay: float = 0.5
    """The expert's share in round r is ``beta_decay ** r`` (see ``mixing``), unless ``beta_rampdown`` is set."""
    beta_rampdown: int = 0
    """If positive, the expert's share falls linearly instead (imitation's ``LinearBetaSchedule``): the first
    ``beta_rampdown`` rounds mix in the expert, 1, 1 - 1/R, ..., 1/R, and every later round runs the learner alone."""
    mixing: str = "switch"
    """``"switch"``: each step executes the expert's action with probability beta, else the learner's
    (imitation's DAgger). ``"blend"``: each step executes ``beta * expert + (1 - beta) * learner``, so the
    learner takes over gradually and episodes last longer while it is still poor."""
    init_policy: str | None = None
    """Start from this policy (e.g. an SFT zip) instead of a fresh one."""

    def validate(self, fresh: bool = True) -> None:
        """Raise :class:`ValueError` for arguments that cannot work. ``fresh=False`` (a resumed run with finished
        rounds, whose data already fill a batch) skips the check of ``steps_per_round`` against ``batch_size``."""
        if self.expert not in EXPERTS:
            raise ValueError(f"--expert must be one of {', '.join(EXPERTS)}, got {self.expert!r}")
        for name in ("rounds", "steps_per_round", "epochs_per_round", "hidden_size", "num_layers", "batch_size",
                     "lookahead"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if fresh and self.steps_per_round < self.batch_size:
            raise ValueError(
                f"--steps_per_round {self.steps_per_round} is less than --batch_size {self.batch_size}: the first "
                "round's labels might not fill one BC batch (imitation then fails after the labelling); raise "
                "--steps_per_round or lower --batch_size"
            )
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"--action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        if self.expert == "mpc" and self.action_mode == "torque":
            raise ValueError("--expert mpc plans PD targets: use --action_mode pd_target or residual")
        if self.mixing not in MIXINGS:
            raise ValueError(f"--mixing must be one of {', '.join(MIXINGS)}, got {self.mixing!r}")
        if not 0.0 < self.beta_decay <= 1.0:
            raise ValueError(f"--beta_decay must be in (0, 1], got {self.beta_decay}")
        if not (isinstance(self.beta_rampdown, int) and not isinstance(self.beta_rampdown, bool)
                and self.beta_rampdown >= 0):
            raise ValueError(f"--beta_rampdown must be 0 (off) or a number of rounds, got {self.beta_rampdown!r}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not is_seed(self.seed):
            raise ValueError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        clip = load_clip(self.mocap)  # unknown clips fail here
        if self.expert == "mpc":
            self.mpc_settings(clip)  # bad MPC settings fail here
        if self.init_policy and fresh:  # a resumed run with finished rounds no longer reads it
            existing_policy_file("--init_policy", self.init_policy)

# ------------------------------------------------------------------------------------------------------------
# train and finetune: the run's configuration (run.json), checked here so that a bad one fails before torch

#: A training run's configuration file in its run folder.
RUN_FILE = "run.json"
#: The RL algorithms of ``train`` and ``finetune`` (their classes: :data:`sb3_mimic.rl.ALGOS`).
ALGO_NAMES = ("trpo", "ppo")
VEC_ENVS = ("subproc", "batched")
#: Characters of the batched vector env when ``n_envs`` is 0 (32), and their env steps per iteration when ``n_steps``
#: is not given (128): rollouts of 4096 env steps, the configuration ``benchmarks/env_throughput.py`` measures (its
#: speed against the ``SubprocVecEnv`` path: ``benchmarks/results/env_throughput.md``).
BATCHED_DEFAULT_N_ENVS = 32
BATCHED_DEFAULT_N_STEPS = 128


@dataclass
class RunConfig:
    """A training run's configuration, saved as ``run.json``."""

    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    num_timesteps: int
    save_per_iter: int = 10
    n_envs: int = 0
    """Parallel envs; 0 means one per CPU core (``subproc``) or :data:`BATCHED_DEFAULT_N_ENVS` (``batched``)."""
    vec_env: str = "batched"
    """``"batched"`` (default): every env a character of one :class:`~sb3_mimic.envs.MimicHumanoidVecEnv` in this
    process, physics on every core; ``"subproc"``: one env per worker process (``SubprocVecEnv``, ``DummyVecEnv`` for
    one env)."""
    threads: int = 0
    """Physics threads of the batched vector env; 0 means one per CPU core."""
    seed: int = 0
    hidden_size: int = 64
    num_layers: int = 2
    normalize_observations: bool = False
    """Standardise observations inside the network, with running statistics that travel in the policy file (a
    fine-tuned SFT policy keeps its own setting and statistics)."""
    exploration_std: float = 0.05
    """Action standard deviation (normalised units) at the start of fine-tuning or training."""
    critic_warmup_iterations: int = 5
    imitation_coef: float = 0.0
    """Fine-tuning: weight of the imitation term toward the SFT policy at the end of the critic warm-up (0: off)."""
    imitation_anneal_steps: int = 2_000_000
    """Fine-tuning: env steps over which the imitation term's weight falls linearly to 0."""
    curriculum_steps: int = 0
    """DeepMimic's episode-length curriculum: the training episodes' limit grows linearly from
    ``curriculum_start_s`` to the env's own limit over this many env steps (0: off; ``vec_env="batched"`` only)."""
    curriculum_start_s: float = 0.5
    expert_starts: str | None = None
    """A demonstration file with the physics states of expert rollouts (``sft --expert mpc --save_demos``): training
    episodes start in one of them with probability ``expert_start_share`` (``vec_env="batched"`` only)."""
    expert_start_share: float = 0.5
    eval_episodes: int = 10
    time_budget_s: float | None = None
    """Stop once training (evaluations excluded) has taken this many wall-clock seconds in all."""
    load_sft_pretrain: str | None = None
    trust_pickle: bool = False
    """Load a ``load_sft_pretrain`` zip that sb3-mimic did not write with SB3's unpickling loader."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.algo not in ALGO_NAMES:
            raise ValueError(f"unknown algo {self.algo!r}; choose one of {sorted(ALGO_NAMES)}")
        for name in ("num_timesteps", "save_per_iter", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"--hidden_size and --num_layers must be at least 1, got {self.hidden_size}, {self.num_layers}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"the time budget must be positive, got {self.time_budget_s} s")
        if not (self.imitation_coef >= 0 and math.isfinite(self.imitation_coef)) or self.imitation_anneal_steps < 0:
            raise ValueError("--imitation_coef and --imitation_anneal must be numbers >= 0")
        if self.imitation_coef > 0 and not self.load_sft_pretrain:
            raise ValueError("the imitation term needs a teacher: it is for fine-tuning (--load_sft_pretrain)")
        if self.n_envs < 0 or self.critic_warmup_iterations < 0 or self.threads < 0:
            raise ValueError("--n_envs, --threads and --critic_warmup must not be negative")
        if self.curriculum_steps < 0 or not (self.curriculum_start_s > 0 and math.isfinite(self.curriculum_start_s)):
            raise ValueError("--curriculum must be a number of env steps >= 0 and --curriculum_start a positive time")
        if self.curriculum_steps and self.vec_env != "batched":
            raise ValueError("the episode-length curriculum needs --vec_env batched (it sets the batch's episode limit)")
        if self.expert_starts is not None and self.vec_env != "batched":
            raise ValueError("--expert_starts needs --vec_env batched (its characters start in the expert's states)")
        if not (0.0 < self.expert_start_share <= 1.0):
            raise ValueError(f"--expert_start_share must be in (0, 1], got {self.expert_start_share}")
        if self.vec_env not in VEC_ENVS:
            raise ValueError(f"--vec_env must be one of {', '.join(VEC_ENVS)}, got {self.vec_env!r}")
        if not (self.exploration_std > 0 and math.isfinite(self.exploration_std)):
            raise ValueError(f"--exploration_std must be positive, got {self.exploration_std}")
        if not is_seed(self.seed):
            raise ValueError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        check_env_id(self.env_id)
        defaults = algo_defaults(self)
        n_steps = self.hyperparameters.get("n_steps", defaults["n_steps"])
        batch_size = self.hyperparameters.get("batch_size", defaults["batch_size"])
        for name, value in (("n_steps", n_steps), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name} must be a whole number >= 1, got {value!r}")
        n_envs = resolved_n_envs(self.n_envs, self.vec_env)
        if n_steps * n_envs < 2:  # SB3 asserts this deep inside the algorithm's constructor
            raise ValueError(
                f"--n_steps {n_steps} with --n_envs {n_envs} collects rollouts of a single env step; "
                f"{self.algo.upper()} needs n_steps * n_envs of at least 2: raise --n_steps (default "
                f"{defaults['n_steps']}) or --n_envs"
            )


def resolved_n_envs(n_envs: int, vec_env: str = "subproc") -> int:
    if n_envs > 0:
        return n_envs
    return BATCHED_DEFAULT_N_ENVS if vec_env == "batched" else available_cores()


def algo_defaults(config: RunConfig) -> dict[str, Any]:
    """The algorithm's default hyperparameters for this run: :data:`TRPO_DEFAULTS` or :data:`PPO_DEFAULTS`, with
    :data:`BATCHED_DEFAULT_N_STEPS` per character on the batched vector env."""
    defaults = dict(TRPO_DEFAULTS if config.algo == "trpo" else PPO_DEFAULTS)
    if config.vec_env == "batched":
        defaults["n_steps"] = BATCHED_DEFAULT_N_STEPS
    return defaults


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The :class:`RunConfig` recorded in ``RUN_DIR/run.json``; ValueError naming the file if it is unusable."""
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it is not a run's configuration, or it was damaged: "
                         "start a new run in another --run_dir") from err
    fields = RunConfig.__dataclass_fields__
    required = [name for name, f in fields.items() if f.default is MISSING and f.default_factory is MISSING]
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a run's configuration (a JSON object)")
    missing, unknown = [k for k in required if k not in data], sorted(set(data) - set(fields))
    if missing or unknown:
        raise ValueError(
            f"{path} is not a run configuration sb3-mimic can read: "
            + "; ".join(([f"missing {missing}"] if missing else []) + ([f"unknown keys {unknown}"] if unknown else []))
            + "; start a new run in another --run_dir"
        )
    data.setdefault("vec_env", "subproc")  # runs recorded before the batched env existed ran on subprocesses
    return RunConfig(**data)


def read_resumable_run(run_dir: str | Path) -> RunConfig:
    """:func:`read_run_config`, with a ValueError saying what to do if ``run_dir`` holds no run."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).exists():
        raise ValueError(f"{run_dir} holds no run ({RUN_FILE} missing); start one with `sb3-mimic finetune` or `train`")
    return read_run_config(run_dir)

# ------------------------------------------------------------------------------------------------------------
# dagger --resume: the run's state file, checked here so that a damaged one fails before torch

#: A DAgger run's state file in its run folder: its config, the rounds done, the MPC settings it plans with.
DAGGER_STATE_FILE = "dagger.json"


def read_dagger_state(path: Path) -> dict:
    """A run's ``dagger.json``, checked: ValueError naming the file if it cannot be resumed from."""
    fix = "it was damaged or is not a DAgger run's: start a new run in another --run_dir"
    try:
        state = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a DAgger run's state (a JSON object); {fix}")
    missing = [key for key in ("config", "rounds_done") if key not in state]
    if missing:
        raise ValueError(f"{path} has no {' or '.join(repr(k) for k in missing)} entry; {fix}")
    config, done = state["config"], state["rounds_done"]
    fields = DAggerConfig.__dataclass_fields__
    if not isinstance(config, dict) or set(config) - set(fields):
        unknown = sorted(set(config) - set(fields)) if isinstance(config, dict) else None
        what = f"unknown settings {unknown}" if unknown else f"a {type(config).__name__}, not a JSON object"
        raise ValueError(f"{path}: its 'config' entry holds {what}; {fix}")
    if isinstance(done, bool) or not isinstance(done, int) or done < 0:
        raise ValueError(f"{path}: 'rounds_done' must be a whole number >= 0, got {done!r}; {fix}")
    recorded = state.get("mpc_settings")
    if recorded is not None and not (isinstance(recorded, dict) and set(recorded) <= set(MPCSettings.names())):
        raise ValueError(f"{path}: its 'mpc_settings' entry is not a set of MPC settings; {fix}")
    return state


def read_dagger_run(run_dir: str | Path) -> dict:
    """The state of the DAgger run in ``run_dir`` (:func:`read_dagger_state`), its config validated as a resume
    takes it: ValueError if there is no run to resume."""
    path = Path(run_dir) / DAGGER_STATE_FILE
    if not path.exists():
        raise ValueError(f"{run_dir} holds no DAgger run ({DAGGER_STATE_FILE} missing)")
    state = read_dagger_state(path)
    DAggerConfig(**state["config"]).validate(fresh=state["rounds_done"] == 0)
    return state
