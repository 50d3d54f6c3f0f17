"""``sb3_mimic.configs``: the sft and dagger configurations' checks and the RL defaults zoo_configs/ shares."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import sb3_mimic
from sb3_mimic import configs
from sb3_mimic.configs import DAggerConfig, SFTConfig
from sb3_mimic.policies import DEFAULT_EXPLORATION_STD, policy_kwargs_for

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(mocap="walk", expert="pd", steps_per_round=120, epochs_per_round=1, hidden_size=16, num_layers=1,
            batch_size=32)


def test_the_dagger_config_refuses_bad_arguments():
    for bad in ({"rounds": 0}, {"steps_per_round": 31}, {"expert": "oracle"}, {"beta_decay": 1.5},
                {"beta_decay": 0.0}, {"beta_rampdown": -1}, {"beta_rampdown": 2.5}, {"mocap": "wlak"}, {"mixing": "average"}):
        with pytest.raises(ValueError):
            DAggerConfig(**{**TINY, **bad}).validate()
    DAggerConfig(**{**TINY, "steps_per_round": 31}).validate(fresh=False)  # a resume: finished rounds fill a batch
    with pytest.raises(ValueError, match="pd_target or residual"):
        DAggerConfig(expert="mpc", action_mode="torque").validate()


def test_the_sft_and_dagger_configs_refuse_a_negative_seed():
    with pytest.raises(ValueError, match=r"--seed must be a whole number >= 0, got -3"):
        SFTConfig(mocap="walk", seed=-3).validate()
    with pytest.raises(ValueError, match=r"--seed must be a whole number >= 0, got -3"):
        DAggerConfig(seed=-3).validate()


@pytest.mark.parametrize(("algo", "defaults"), [("trpo", configs.TRPO_DEFAULTS), ("ppo", configs.PPO_DEFAULTS)])
def test_zoo_configs_cover_every_env_and_match_sft(algo, defaults):
    config = yaml.safe_load((REPO_ROOT / "zoo_configs" / f"{algo}.yml").read_text())
    assert sorted(config) == sorted(sb3_mimic.ENV_IDS)
    for env_id in sb3_mimic.ENV_IDS:
        entry = config[env_id]
        assert "<<" not in entry  # merge keys resolved
        assert entry["policy"] == "MlpPolicy" and entry["normalize"] is False and entry["use_sde"] is False
        kwargs = eval(entry["policy_kwargs"], {"__builtins__": {}}, {"dict": dict})  # rl-zoo evaluates it too
        assert kwargs["net_arch"] == policy_kwargs_for(64, 2)["net_arch"]
        assert kwargs["log_std_init"] == pytest.approx(math.log(DEFAULT_EXPLORATION_STD), abs=0.01)
        for name, value in defaults.items():
            assert entry[name] == pytest.approx(value), (env_id, name)
