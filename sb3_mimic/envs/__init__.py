"""Gymnasium envs of sb3-mimic."""

from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv, pd_target_action

__all__ = ["MimicHumanoidEnv", "pd_target_action"]
