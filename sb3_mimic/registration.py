"""Gymnasium registration of the imitation envs: ``MimicHumanoid-v0`` and one id per catalogued clip."""

from __future__ import annotations

import gymnasium

from sb3_mimic.motion import catalogue

ENTRY_POINT = "sb3_mimic.envs.mimic_humanoid:MimicHumanoidEnv"
#: 20 s at the default 30 Hz control frequency.
MAX_EPISODE_STEPS = 600


def register_envs() -> list[str]:
    """Register every env id (idempotent) and return the ids."""
    ids = ["MimicHumanoid-v0"]
    specs = [("MimicHumanoid-v0", {})]
    for name, info in catalogue().items():
        ids.append(info.env_id)
        specs.append((info.env_id, {"motion": name}))
    for env_id, kwargs in specs:
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs, max_episode_steps=MAX_EPISODE_STEPS
            )
    return ids
