"""sb3-mimic: teach a simulated humanoid to imitate motion-capture clips with Stable-Baselines3.

``import sb3_mimic`` registers the Gymnasium ids ``MimicHumanoid-v0`` (kwarg ``motion``) and one id per
DeepMimic clip, e.g. ``MimicHumanoidWalk-v0``.
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless rendering by default

import logging

import mujoco

from sb3_mimic.motion import MotionClip, MotionClipError, available_clips, load_clip
from sb3_mimic.registration import register_envs
from sb3_mimic.version import __version__

#: MuJoCo's warnings (an unstable simulation, a full contact buffer) go here, not to a MUJOCO_LOG.TXT in the
#: current folder.
MUJOCO_LOGGER = logging.getLogger("sb3_mimic.mujoco")


def _log_mujoco_warning(message: str) -> None:
    MUJOCO_LOGGER.warning("MuJoCo warning: %s", message)


if mujoco.get_mju_user_warning() is None:  # once, and never over a handler the user installed
    mujoco.set_mju_user_warning(_log_mujoco_warning)

ENV_IDS = register_envs()


def load_pretrained(name: str, env=None):
    """Load a policy that ships with sb3-mimic, e.g. ``load_pretrained("walk")`` (a TRPO model on its env, made from
    the policy's metadata unless ``env`` is given). :func:`sb3_mimic.policies.pretrained_names` lists them;
    ``pretrained:NAME`` names them wherever the command line takes a policy file."""
    from sb3_mimic.policies import load_pretrained as load

    return load(name, env)


__all__ = ["ENV_IDS", "MotionClip", "MotionClipError", "__version__", "available_clips", "load_clip", "load_pretrained"]
