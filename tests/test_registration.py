"""Registration: every clip's env id, and the env id and kwargs that imitate a clip (env_spec_for)."""

from __future__ import annotations


import shutil
from pathlib import Path
import gymnasium
import numpy as np
import pytest

import sb3_mimic
from sb3_mimic.registration import env_spec_for

ALL_IDS = [
    "MimicHumanoidWalk-v0", "MimicHumanoidRun-v0", "MimicHumanoidDanceA-v0", "MimicHumanoidDanceB-v0",
    "MimicHumanoidBackflip-v0", "MimicHumanoidCartwheel-v0", "MimicHumanoidCrawl-v0",
    "MimicHumanoidGetupFacedown-v0", "MimicHumanoidGetupFaceup-v0", "MimicHumanoidJump-v0", "MimicHumanoidKick-v0",
    "MimicHumanoidPunch-v0", "MimicHumanoidRoll-v0", "MimicHumanoidSpin-v0", "MimicHumanoidSpinkick-v0",
]


def test_ids_registered_and_run():
    assert set(ALL_IDS) | {"MimicHumanoid-v0"} <= set(gymnasium.registry)
    assert set(sb3_mimic.ENV_IDS) == set(ALL_IDS) | {"MimicHumanoid-v0"}
    for env_id in ALL_IDS:
        env = gymnasium.make(env_id)
        assert env.spec.max_episode_steps == 600  # 20 s at 30 Hz
        obs, _ = env.reset(seed=0)
        obs, reward, *_ = env.step(env.action_space.sample())
        assert obs.shape == (197,) and np.isfinite(obs).all() and 0.0 < reward <= 1.0
        env.close()
    env = gymnasium.make("MimicHumanoid-v0", motion="humanoid3d_run")
    assert env.unwrapped.clip.name == "run"


def test_env_spec_for_a_clip(tmp_path):
    from sb3_mimic.motion import load_clip

    assert env_spec_for("walk") == ("MimicHumanoidWalk-v0", {})
    assert env_spec_for("humanoid3d_run", "torque") == ("MimicHumanoidRun-v0", {"action_mode": "torque"})
    assert env_spec_for(load_clip("kick")) == ("MimicHumanoidKick-v0", {})
    # a copy of the run clip elsewhere is not the registered id's file: the generic id with its path
    copy = shutil.copy(load_clip("run").path, tmp_path / "humanoid3d_run.txt")
    env_id, kwargs = env_spec_for(copy)
    assert env_id == "MimicHumanoid-v0" and kwargs == {"motion": str(Path(copy).resolve())}
    env = gymnasium.make(env_id, **kwargs)
    assert env.unwrapped.clip.path == str(Path(copy).resolve())
    with pytest.raises(ValueError, match="action_mode"):
        env_spec_for("walk", "velocity")
