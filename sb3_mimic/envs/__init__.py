"""Gymnasium envs of sb3-mimic: the single env, the batched simulation and the vector envs built on it."""

from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, pd_target_action
from sb3_mimic.envs.batched import CharacterBatch
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
from sb3_mimic.envs.vec_env import MimicHumanoidVecEnv, MimicHumanoidVectorEnv

__all__ = [
    "ACTION_MODES", "ACTION_SCALE", "CharacterBatch", "MimicHumanoidEnv", "MimicHumanoidVecEnv", "MimicHumanoidVectorEnv",
    "pd_target_action",
]
