"""sb3-mimic: teach a simulated humanoid to imitate motion-capture clips with Stable-Baselines3.

``import sb3_mimic`` registers the Gymnasium ids ``MimicHumanoid-v0`` (kwarg ``motion``) and one id per
DeepMimic clip, e.g. ``MimicHumanoidWalk-v0``.
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless rendering by default

from sb3_mimic.motion import MotionClip, MotionClipError, available_clips, load_clip
from sb3_mimic.registration import register_envs
from sb3_mimic.version import __version__

ENV_IDS = register_envs()

__all__ = ["ENV_IDS", "MotionClip", "MotionClipError", "__version__", "available_clips", "load_clip"]
