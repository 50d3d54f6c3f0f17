"""Demonstrations: (observation, action) pairs from an expert, as ``imitation`` data types.

- :func:`teacher_forcing` puts the character exactly in the reference state at times drawn continuously
  across the clip (optionally perturbed, keeping the expert's label at the perturbed state), observes it
  with the env's own observation code and asks the expert.  Physics runs one control step per sample to give
  ``next_obs``.
- :func:`expert_rollouts` lets the expert act in physics from reference-state starts (closed loop).
- :func:`dart_rollouts` does the same with noise added to the actions the expert executes, recording its clean
  labels (DART, Laskey et al. 2017): the labels then cover the states a clone drifts into, and a warm-started
  expert (the MPC) stays on its own plan, so its labels are consistent.

Both save to and load from ``.npz`` files that carry their metadata (:func:`save_demos`, :func:`load_demos`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from tqdm.auto import tqdm

from sb3_mimic import _imitation  # noqa: F401
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
from sb3_mimic.version import __version__
from imitation.data.types import Trajectory, Transitions

DEMO_FORMAT = "sb3-mimic-demos/1"


@dataclass
class DemoMetadata:
    """Where a set of demonstrations comes from; loading checks it against the env that will use them."""

    clip: str
    """Clip name (or path) the demonstrations imitate."""
    env_id: str
    """Gymnasium id of the env (``MimicHumanoid-v0`` for clips given by path)."""
    action_mode: str
    """``"pd_target"`` or ``"torque"``."""
    lookahead: int
    """Expert lookahead, control steps."""
    kind: str
    """``"teacher_forcing"`` or ``"rollouts"``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (noise levels, seed, expert gains)."""
    version: str = __version__
    """sb3-mimic version that made them."""


def _base(env: gym.Env) -> MimicHumanoidEnv:
    base = env.unwrapped
    if not isinstance(base, MimicHumanoidEnv):
        raise TypeError(f"demonstrations need a MimicHumanoidEnv, got {type(base).__name__}")
    return base


def teacher_forcing(
    env: gym.Env,
    expert,
    n_samples: int,
    seed: int = 0,
    qpos_noise: float = 0.0,
    qvel_noise: float = 0.0,
    progress_bar: bool = True,
) -> Transitions:
    """Label reference states (optionally perturbed) sampled continuously across the clip.

    :param env: a :class:`MimicHumanoidEnv` (wrapped or not); it is reset for every sample
    :param expert: a policy with ``predict(obs, deterministic=True)`` (e.g. :class:`~sb3_mimic.experts.PDExpert`)
    :param n_samples: number of (observation, action) pairs
    :param seed: seeds the sampled times and the noise
    :param qpos_noise: standard deviation of the perturbation of joint angles, rad (root excluded)
    :param qvel_noise: standard deviation of the perturbation of joint and root velocities, rad/s or m/s
    :return: ``imitation`` Transitions; ``next_obs`` is one control step later under the expert's action
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    base = _base(env)
    rng = np.random.default_rng(seed)
    end = base.clip.duration if base.clip.loop else max(base.clip.duration - base.dt, 0.0)
    times = np.sort(rng.uniform(0.0, end, n_samples))
    obs = np.empty((n_samples, *env.observation_space.shape), dtype=np.float32)
    next_obs = np.empty_like(obs)
    acts = np.empty((n_samples, *env.action_space.shape), dtype=np.float32)
    dones = np.zeros(n_samples, dtype=bool)
    perturb = np.zeros(base.model.nv)
    for i in tqdm(range(n_samples), desc="teacher forcing", disable=not progress_bar, unit="sample"):
        o, _ = env.reset(seed=seed if i == 0 else None, options={"start_time": float(times[i])})
        if qpos_noise > 0 or qvel_noise > 0:
            qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
            if qpos_noise > 0:  # joint rotations only; ball joints move along their tangent space
                perturb[6:] = rng.normal(0.0, qpos_noise, base.model.nv - 6)
                mujoco.mj_integratePos(base.model, qpos, perturb, 1.0)
            if qvel_noise > 0:
                qvel += rng.normal(0.0, qvel_noise, base.model.nv)
            o = base.set_physics_state(qpos, qvel)
        action, _ = expert.predict(o, deterministic=True)
        o2, _, terminated, truncated, _ = env.step(action)
        obs[i], acts[i], next_obs[i], dones[i] = o, action, o2, terminated or truncated
    infos = np.array([{} for _ in range(n_samples)])
    return Transitions(obs=obs, acts=acts, infos=infos, next_obs=next_obs, dones=dones)


def expert_rollouts(
    env: gym.Env, expert, n_episodes: int, seed: int = 0, max_steps: int | None = None, progress_bar: bool = True
) -> list[Trajectory]:
    """Closed-loop episodes of ``expert`` in physics from seeded reference-state starts.

    :param env: a :class:`MimicHumanoidEnv`, usually with its ``TimeLimit`` (``gymnasium.make``)
    :param expert: a policy with ``predict(obs, deterministic=True)``
    :param n_episodes: number of episodes
    :param seed: episode ``i`` is reset with seed ``seed + i``
    :param max_steps: optional cap on the steps per episode
    :return: ``imitation`` Trajectories (``terminal`` is True when the episode ended, not when it was cut)
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    _base(env)
    trajectories = []
    for episode in tqdm(range(n_episodes), desc="expert rollouts", disable=not progress_bar, unit="episode"):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, infos = [obs], [], []
        done = terminal = False
        while not done:
            action, _ = expert.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            infos.append(info)
            terminal = terminated or truncated
            done = terminal or (max_steps is not None and len(actions) >= max_steps)
        trajectories.append(
            Trajectory(
                obs=np.asarray(observations, dtype=np.float32),
                acts=np.asarray(actions, dtype=np.float32),
                infos=np.array(infos),
                terminal=terminal,
            )
        )
    return trajectories


def dart_rollouts(
    env: gym.Env, expert, n_episodes: int, noise_std: float, seed: int = 0, action_mode: str = "pd_target",
    max_steps: int | None = None, progress_bar: bool = True,
) -> list[Trajectory]:
    """Closed-loop episodes of ``expert`` with Gaussian noise of ``noise_std`` on the actions it executes.

    Each step records the observation and the expert's clean action, encoded in ``action_mode`` (the expert acts
    in the env's ``pd_target`` mode; ``"residual"`` labels are the same PD targets as offsets from the next
    reference pose, see :meth:`MimicHumanoidEnv.encode_pd_targets`), and executes ``clip(label + noise, -1, 1)``;
    ``infos[k]["executed"]`` holds what was executed, and ``infos[k]["state"]`` the physics state ``(time,
    qpos, qvel)`` the label was given in (what :func:`save_demos` keeps as start states, for fine-tuning runs
    that start episodes where the expert went: ``finetune --expert_starts``).

    :param env: a ``pd_target`` :class:`MimicHumanoidEnv`, usually with its ``TimeLimit``
    :param expert: a policy with ``predict(obs, deterministic=True)`` (the MPC reads the env's state)
    :param noise_std: std of the injected noise, normalised action units (0: plain expert rollouts)
    :param seed: episode ``i`` is reset with seed ``seed + i``; the noise is drawn from ``seed``
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    if not (noise_std >= 0 and math.isfinite(noise_std)):
        raise ValueError(f"the DART noise std must be a finite number >= 0, got {noise_std!r}")
    base = _base(env)
    if base.action_mode != "pd_target":
        raise ValueError(f"DART rollouts act in pd_target mode, the env uses {base.action_mode!r}")
    rng = np.random.default_rng([seed, 7])
    trajectories = []
    bar = tqdm(desc="DART labels", disable=not progress_bar, unit="label")
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, labels, infos = [obs], [], []
        done = terminal = False
        while not done:
            state = (base.time, base.data.qpos.copy(), base.data.qvel.copy())
            clean, _ = expert.predict(obs, deterministic=True)
            labels.append(base.encode_pd_targets(clean, action_mode))
            executed = np.clip(clean + rng.normal(0.0, noise_std, clean.shape), -1.0, 1.0).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(executed)
            observations.append(obs)
            infos.append({**info, "executed": executed, "label_pd_target": np.asarray(clean, dtype=np.float32),
                          "state": state})
            terminal = terminated or truncated
            done = terminal or (max_steps is not None and len(labels) >= max_steps)
            bar.update(1)
        bar.set_postfix(episode=f"{episode + 1}/{n_episodes}", last_s=f"{len(labels) * base.dt:.1f}")
        trajectories.append(
            Trajectory(obs=np.asarray(observations, dtype=np.float32), acts=np.asarray(labels, dtype=np.float32),
                       infos=np.array(infos), terminal=terminal)
        )
    bar.close()
    return trajectories


def concatenate_transitions(parts: list[Transitions]) -> Transitions:
    """One Transitions holding all of ``parts`` in order."""
    names = ("obs", "acts", "infos", "next_obs", "dones")
    return Transitions(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})


def save_demos(path: str | Path, transitions: Transitions, metadata: DemoMetadata) -> Path:
    """Write demonstrations and their metadata to a compressed ``.npz`` file.

    Infos are not kept, except the physics states of rollouts that recorded them (:func:`dart_rollouts`), which
    :func:`load_start_states` reads back.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": DEMO_FORMAT, **metadata.__dict__}
    states = {}
    if len(transitions.infos) and all(isinstance(i, dict) and "state" in i for i in transitions.infos):
        times, qpos, qvel = zip(*(i["state"] for i in transitions.infos), strict=True)
        states = {"state_time": np.asarray(times), "state_qpos": np.stack(qpos), "state_qvel": np.stack(qvel)}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp, obs=transitions.obs, acts=transitions.acts, next_obs=transitions.next_obs, dones=transitions.dones,
        metadata=np.array(json.dumps(meta)), **states,
    )
    tmp.replace(path)  # atomic: a crash never leaves a half-written file under the real name
    return path


def load_demos(
    path: str | Path, env_id: str | None = None, action_mode: str | None = None
) -> tuple[Transitions, DemoMetadata]:
    """Read demonstrations written by :func:`save_demos`.

    :param env_id: if given, refuse demos made for another env
    :param action_mode: if given, refuse demos made for another action mode
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demonstration file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            arrays = {k: data[k] for k in ("obs", "acts", "next_obs", "dones")}
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not an sb3-mimic demonstration file ({err}); make one with save_demos") from err
    if meta.pop("format", None) != DEMO_FORMAT:
        raise ValueError(f"{path} is not an sb3-mimic demonstration file (format {DEMO_FORMAT} expected)")
    try:
        metadata = DemoMetadata(**meta)
    except TypeError as err:
        raise ValueError(f"{path} has unexpected demonstration metadata ({err}); make new demonstrations") from err
    if env_id is not None and metadata.env_id != env_id:
        raise ValueError(
            f"{path} holds demonstrations for env {metadata.env_id!r} (clip {metadata.clip!r}), not {env_id!r}; "
            "make new demonstrations for this env"
        )
    if action_mode is not None and metadata.action_mode != action_mode:
        raise ValueError(
            f"{path} holds demonstrations for action_mode {metadata.action_mode!r}, not {action_mode!r}: their "
            "actions mean different things; make new demonstrations with the matching action mode"
        )
    infos = np.array([{} for _ in range(len(arrays["obs"]))])
    return Transitions(infos=infos, **arrays), metadata


@dataclass(frozen=True)
class StartStates:
    """Physics states an expert visited, with the clip time of each: where episodes may start instead of the
    reference (``MimicHumanoidVecEnv(start_states=...)``, ``finetune --expert_starts``)."""

    time: np.ndarray
    """(K,) clip time of each state, s."""
    qpos: np.ndarray
    """(K, nq)"""
    qvel: np.ndarray
    """(K, nv)"""
    clip: str
    """The clip the states belong to."""

    def __post_init__(self) -> None:
        k = len(self.time)
        if k == 0 or self.qpos.shape[0] != k or self.qvel.shape[0] != k:
            raise ValueError("start states need matching, non-empty time, qpos and qvel arrays")
        if not (np.isfinite(self.time).all() and np.isfinite(self.qpos).all() and np.isfinite(self.qvel).all()):
            raise ValueError("start states must be finite")


def load_start_states(path: str | Path, env_id: str | None = None) -> StartStates:
    """The physics states recorded in a demonstration file (DART rollouts of ``sft --expert mpc --save_demos``).

    :param env_id: if given, refuse states recorded on another env
    """
    _, metadata = load_demos(path, env_id=env_id)
    with np.load(path, allow_pickle=False) as data:
        if "state_qpos" not in data:
            raise ValueError(
                f"{path} holds no physics states ({metadata.kind} demonstrations); states are recorded by expert "
                "rollouts with DART: sb3-mimic sft --expert mpc --save_demos FILE.npz"
            )
        return StartStates(np.array(data["state_time"]), np.array(data["state_qpos"]), np.array(data["state_qvel"]),
                           metadata.clip)
