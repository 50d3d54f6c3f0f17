"""``sb3_mimic.experts.settings``: the MPC's settings record (defaults, the clip's catalogue overrides, replace)."""

from __future__ import annotations

import dataclasses

import gymnasium
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.experts.settings import MPCSettings


def test_settings_come_from_the_clip_catalogue_unless_given(tmp_path):
    import json
    import shutil

    from sb3_mimic import motion
    from sb3_mimic._resources import data_path

    raw = json.loads(data_path("motions", "catalogue.json").read_text())["clips"]
    defaults = MPCSettings()
    assert MPCSettings.for_clip(motion.load_clip("walk")) == defaults and "mpc" not in raw["walk"]
    run_settings = MPCSettings.for_clip(motion.load_clip("run"))
    assert run_settings.to_dict() == {**defaults.to_dict(), **raw["run"]["mpc"]} and run_settings != defaults
    run_file = gymnasium.make("MimicHumanoidRun-v0").unwrapped.clip.path  # a clip loaded by path: as its name
    assert MPCSettings.for_clip(motion.load_clip(run_file)) == run_settings
    copy = shutil.copy(run_file, tmp_path / "my_clip.txt")  # a file the catalogue does not name: the defaults
    assert MPCSettings.for_clip(motion.load_clip(copy)) == defaults
    with pytest.raises(motion.MotionClipError, match="rnu"):
        motion.load_clip("rnu")
    clip = motion.load_clip("walk")
    typo = dataclasses.replace(clip, info=dataclasses.replace(clip.info, mpc=(("horizont", 3),)))
    with pytest.raises(ValueError, match="unknown settings \\['horizont'\\]"):
        MPCSettings.for_clip(typo)


def test_settings_record_validates_and_replaces():
    settings = MPCSettings()
    assert settings.replace(horizon=20, samples=None) == MPCSettings(horizon=20)  # None keeps a setting
    assert settings.replace(horizon=20) is not settings and settings.horizon == 15  # frozen: a new record
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.horizon = 3
    with pytest.raises(ValueError, match="unknown MPC settings \\['horizont'\\]"):
        settings.replace(horizont=3)
    for bad, message in (({"horizon": 1}, "horizon must be a whole number >= 2"), ({"noise": 0}, "noise and temperature"),
                         ({"decay": 1.5}, "decay must be in"), ({"stateless": "yes"}, "stateless must be True or False"),
                         ({"ensemble": 2}, "also pass stateless=True"), ({"temperature": float("nan")}, "must be a number")):
        with pytest.raises(ValueError, match=message):
            MPCSettings(**bad)
    assert MPCSettings(**settings.to_dict()) == settings
    assert MPCSettings.names()[:3] == ("horizon", "samples", "iterations")

