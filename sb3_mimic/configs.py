"""The configurations of the ``sft`` and ``dagger`` jobs and the RL defaults: what the command line builds and shows.

Light to import (no torch, no imitation), so that ``sb3-mimic --help`` and argument errors come at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sb3_mimic._resources import policy_file
from sb3_mimic._util import check_writable
from sb3_mimic.envs.actions import ACTION_MODES
from sb3_mimic.experts.settings import EXPERTS, MPCSettings
from sb3_mimic.motion import load_clip


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
        if self.init_policy:
            try:
                found = policy_file(self.init_policy).is_file()
            except FileNotFoundError as err:
                raise ValueError(f"--init_policy: {err}") from err
            if not found:
                raise ValueError(f"--init_policy {self.init_policy}: no such file")
