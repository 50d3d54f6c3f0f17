"""Gymnasium registration of the imitation envs: ``MimicHumanoid-v0`` and one id per catalogued clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium

from sb3_mimic.motion import GENERIC_ENV_ID, MotionClip, catalogue, load_clip

ENTRY_POINT = "sb3_mimic.envs.mimic_humanoid:MimicHumanoidEnv"
#: ``gymnasium.make_vec(id, num_envs=N)``: N characters in one batched simulation.
VECTOR_ENTRY_POINT = "sb3_mimic.envs.vec_env:MimicHumanoidVectorEnv"
#: 20 s at the default 30 Hz control frequency.
MAX_EPISODE_STEPS = 600


class ClipEnvEntryPoint:
    """The entry point of a per-clip id (``MimicHumanoidWalk-v0``): a
    :class:`~sb3_mimic.envs.mimic_humanoid.MimicHumanoidEnv` on that clip, which refuses another ``motion``
    (the id's spec keeps ``motion=<clip>`` in its kwargs, which is what a user's ``motion=`` would replace)."""

    def __init__(self, env_id: str, clip: str) -> None:
        self.env_id, self.clip = env_id, clip

    @property
    def metadata(self) -> dict[str, Any]:
        """The env class's (``gymnasium.make`` reads the creator's render modes)."""
        from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

        return MimicHumanoidEnv.metadata

    def __call__(self, motion: Any = None, **kwargs: Any):
        if motion is not None and motion != self.clip:
            raise ValueError(
                f"{self.env_id} imitates the clip {self.clip!r} and takes no motion= (got {motion!r}); for another "
                f"clip use gymnasium.make({GENERIC_ENV_ID!r}, motion={str(motion)!r}) or that clip's own id "
                "(`sb3-mimic clips` lists them)"
            )
        from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

        return MimicHumanoidEnv(motion=self.clip, **kwargs)

    def __repr__(self) -> str:
        return f"ClipEnvEntryPoint({self.env_id!r}, {self.clip!r})"


def is_mimic_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered with one of sb3-mimic's entry points."""
    spec = gymnasium.registry.get(env_id)
    return spec is not None and (spec.entry_point == ENTRY_POINT or isinstance(spec.entry_point, ClipEnvEntryPoint))


def check_env_id(env_id: str, option: str = "--env") -> None:
    """Raise ValueError unless ``env_id`` is a registered sb3-mimic env (e.g. not ``CartPole-v1``)."""
    ids = "MimicHumanoid-v0 (with motion=CLIP) or a clip's own id such as MimicHumanoidWalk-v0 (`sb3-mimic clips`)"
    if env_id not in gymnasium.registry:
        raise ValueError(f"{option} {env_id}: unknown env id (nothing is registered under it); use {ids}")
    if not is_mimic_env(env_id):
        raise ValueError(f"{option} {env_id} is not an sb3-mimic env (it imitates no clip); use {ids}")


def register_envs() -> list[str]:
    """Register every env id (idempotent) and return the ids."""
    ids = [GENERIC_ENV_ID]
    specs = [(GENERIC_ENV_ID, {})]
    for name, info in catalogue().items():
        ids.append(info.env_id)
        specs.append((info.env_id, {"motion": name}))
    for env_id, kwargs in specs:
        if env_id not in gymnasium.registry:
            # a per-clip id goes through ClipEnvEntryPoint, which refuses a motion= (the env cannot see the id)
            entry = ENTRY_POINT if env_id == GENERIC_ENV_ID else ClipEnvEntryPoint(env_id, kwargs["motion"])
            gymnasium.register(
                id=env_id, entry_point=entry, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=kwargs,
                max_episode_steps=MAX_EPISODE_STEPS,
            )
    return ids


def policy_env_kwargs(action_mode: str = "pd_target", target_observation: bool = False) -> dict[str, Any]:
    """The ``gymnasium.make`` kwargs that fix what a policy sees and does (defaults left out)."""
    kwargs: dict[str, Any] = {} if action_mode == "pd_target" else {"action_mode": action_mode}
    if target_observation:
        kwargs["target_observation"] = True
    return kwargs


def env_spec_for(
    clip: str | Path | MotionClip, action_mode: str = "pd_target", target_observation: bool = False
) -> tuple[str, dict[str, Any]]:
    """The registered env id and ``gymnasium.make`` kwargs that imitate ``clip`` in ``action_mode`` (observing the
    target block with ``target_observation``).

    A catalogue clip read from the catalogue's own file gets its own id (``MimicHumanoidWalk-v0``); any other
    clip file gets ``MimicHumanoid-v0`` with ``motion=<path>``.

    :param clip: a clip name, a clip file path or a loaded clip
    :raises MotionClipError: unknown clip name, missing or malformed file
    """
    from sb3_mimic.envs.actions import ACTION_MODES  # here: `import sb3_mimic` stays free of the env's imports

    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
    clip = load_clip(clip)
    kwargs = policy_env_kwargs(action_mode, target_observation)
    if clip.env_id != GENERIC_ENV_ID:
        return clip.env_id, kwargs
    return GENERIC_ENV_ID, {"motion": clip.path, **kwargs}
