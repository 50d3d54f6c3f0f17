"""Evaluation of a policy (or an expert) on an imitation env: returns, survival, falls and tracking error."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv


@dataclass
class EvalResult:
    """Figures over ``episodes`` deterministic episodes from seeded reference-state starts.

    The ``std_*`` fields are the spread over the episodes (population std, as ``std_reward``): learning-curve
    plots draw them as a band around the mean.
    """

    mean_reward: float
    """Mean episode return (sum of rewards)."""
    std_reward: float
    min_reward: float
    max_reward: float
    normalized_return: float
    """Mean of return / (steps the episode could have lasted), in [0, 1]: 1 is perfect tracking to the time
    limit (or to the end of a non-looping clip)."""
    mean_survival_s: float
    """Mean episode length in seconds (time to fall, or to the time limit or clip end)."""
    fall_rate: float
    """Fraction of episodes that ended in a fall."""
    mpjpe_mm: float
    """Mean per-joint position error to the reference over all steps, millimetres."""
    episodes: int
    std_survival_s: float = math.nan
    """Std over the episodes of the episode length (s)."""
    std_normalized_return: float = math.nan
    """Std over the episodes of the normalised return."""
    std_mpjpe_mm: float = math.nan
    """Std over the episodes of each episode's mean MPJPE (mm); episodes without a finite MPJPE are left out."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def format_block(self) -> str:
        """The SFT guide's evaluation block plus the imitation figures."""
        return "\n".join(
            [
                f"Evaluation over {self.episodes} episodes:",
                f"  Mean Reward: {self.mean_reward:.2f} +/- {self.std_reward:.2f}",
                f"  Min Reward: {self.min_reward:.2f}",
                f"  Max Reward: {self.max_reward:.2f}",
                f"  Normalized return per step: {self.normalized_return:.3f} +/- {self.std_normalized_return:.3f}",
                f"  Mean time to fall: {self.mean_survival_s:.2f} s +/- {self.std_survival_s:.2f} s "
                f"(fall rate {self.fall_rate:.0%})",
                f"  Mean MPJPE: {self.mpjpe_mm:.1f} mm +/- {self.std_mpjpe_mm:.1f} mm",
            ]
        )


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    episodes: int = 10,
    seed: int = 0,
    progress_bar: bool = False,
    on_step: Callable[..., None] | None = None,
    progress_steps: bool = False,
) -> EvalResult:
    """Run ``episodes`` episodes of ``act`` (observation -> action) on ``env``.

    Episode ``i`` starts with ``env.reset(seed=seed + i)``: a reference-state start at a seeded random time.

    :param act: deterministic policy function
    :param env: a :class:`MimicHumanoidEnv`, normally with its registered ``TimeLimit``
    :param progress_steps: with ``progress_bar``, tick once per control step (for slow actors such as the MPC
        expert) instead of once per episode; an episode that ends early jumps the bar to its end
    :param on_step: called after every step as ``on_step(obs, action, reward, next_obs, terminated, truncated,
        info)``, e.g. to keep an expert's labelled episodes
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    base = env.unwrapped
    if not isinstance(base, MimicHumanoidEnv):
        raise TypeError(f"evaluate needs a MimicHumanoidEnv, got {type(base).__name__}")
    limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else None
    if limit is None and base.clip.loop:
        raise ValueError(
            "evaluate needs a step limit for a looping clip (its normalised return is per possible step): make the "
            "env with gymnasium.make, which adds the registered TimeLimit, or wrap it in gymnasium.wrappers.TimeLimit"
        )
    returns, normalized, survival, falls, errors, episode_errors = [], [], [], [], [], []
    per_step = progress_steps and limit is not None
    bar = tqdm(total=episodes * limit if per_step else episodes, desc="evaluation", unit="step" if per_step else "episode",
               disable=not progress_bar)
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        possible = limit or 10**9
        if not base.clip.loop:
            possible = min(possible, max(1, math.ceil((base.clip.duration - info["time"]) / base.dt - 1e-9)))
        total, steps, fell = 0.0, 0, False
        first_error = len(errors)
        done = False
        while not done:
            action = act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            if on_step is not None:
                on_step(obs, action, reward, next_obs, terminated, truncated, info)
            obs = next_obs
            total += reward
            steps += 1
            if per_step:
                bar.update(1)
            if math.isfinite(info["mpjpe"]):
                errors.append(info["mpjpe"])
            fell = bool(info.get("fell", False))
            done = terminated or truncated
        bar.update(limit - steps if per_step else 1)
        returns.append(total)
        normalized.append(total / possible)
        survival.append(steps * base.dt)
        falls.append(fell)
        if len(errors) > first_error:
            episode_errors.append(float(np.mean(errors[first_error:])))
    bar.close()
    r = np.asarray(returns)
    return EvalResult(
        mean_reward=float(r.mean()),
        std_reward=float(r.std()),
        min_reward=float(r.min()),
        max_reward=float(r.max()),
        normalized_return=float(np.mean(normalized)),
        mean_survival_s=float(np.mean(survival)),
        fall_rate=float(np.mean(falls)),
        mpjpe_mm=1000.0 * float(np.mean(errors)) if errors else float("nan"),
        episodes=episodes,
        std_survival_s=float(np.std(survival)),
        std_normalized_return=float(np.std(normalized)),
        std_mpjpe_mm=1000.0 * float(np.std(episode_errors)) if episode_errors else float("nan"),
    )


def policy_actor(policy) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic observation -> action function of an SB3 model or policy (or an expert)."""

    def act(obs: np.ndarray) -> np.ndarray:
        action, _ = policy.predict(obs, deterministic=True)
        return action

    return act
