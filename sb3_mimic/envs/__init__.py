"""Gymnasium envs of sb3-mimic: the single env, the batched simulation and the vector envs built on it."""

from typing import TYPE_CHECKING

from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, pd_target_action

if TYPE_CHECKING:
    from sb3_mimic.envs.batched import CharacterBatch
    from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
    from sb3_mimic.envs.vec_env import MimicHumanoidVecEnv, MimicHumanoidVectorEnv

_LAZY = {
    "CharacterBatch": "sb3_mimic.envs.batched",
    "MimicHumanoidEnv": "sb3_mimic.envs.mimic_humanoid",
    "MimicHumanoidVecEnv": "sb3_mimic.envs.vec_env",
    "MimicHumanoidVectorEnv": "sb3_mimic.envs.vec_env",
}


def __getattr__(name: str):
    """The envs import Gymnasium's MuJoCo env and SB3: only when asked for (``--help`` stays fast)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTION_MODES", "ACTION_SCALE", "CharacterBatch", "MimicHumanoidEnv", "MimicHumanoidVecEnv", "MimicHumanoidVectorEnv",
    "pd_target_action",
]
