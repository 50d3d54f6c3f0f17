"""Gymnasium envs of sb3-mimic."""

from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, pd_target_action
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

__all__ = ["ACTION_MODES", "ACTION_SCALE", "MimicHumanoidEnv", "pd_target_action"]
