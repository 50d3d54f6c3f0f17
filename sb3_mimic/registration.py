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


def register_envs() -> list[str]:
    """Register every env id (idempotent) and return the ids."""
    ids = [GENERIC_ENV_ID]
    specs = [(GENERIC_ENV_ID, {})]
    for name, info in catalogue().items():
        ids.append(info.env_id)
        specs.append((info.env_id, {"motion": name}))
    for env_id, kwargs in specs:
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=kwargs,
                max_episode_steps=MAX_EPISODE_STEPS,
            )
    return ids


def env_spec_for(clip: str | Path | MotionClip, action_mode: str = "pd_target") -> tuple[str, dict[str, Any]]:
    """The registered env id and ``gymnasium.make`` kwargs that imitate ``clip`` in ``action_mode``.

    A catalogue clip read from the catalogue's own file gets its own id (``MimicHumanoidWalk-v0``); any other
    clip file gets ``MimicHumanoid-v0`` with ``motion=<path>``.

    :param clip: a clip name, a clip file path or a loaded clip
    :raises MotionClipError: unknown clip name, missing or malformed file
    """
    from sb3_mimic.envs.actions import ACTION_MODES  # here: `import sb3_mimic` stays free of the env's imports

    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
    clip = load_clip(clip)
    kwargs: dict[str, Any] = {} if action_mode == "pd_target" else {"action_mode": action_mode}
    if clip.env_id != GENERIC_ENV_ID:
        return clip.env_id, kwargs
    return GENERIC_ENV_ID, {"motion": clip.path, **kwargs}
