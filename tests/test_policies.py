"""Saved policies: zip and pth files, their metadata, loading errors and the fit check."""

from __future__ import annotations

import dataclasses
import json

import gymnasium
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic import policies
from sb3_mimic.policies import PolicyLoadError, PolicyMetadata

WALK = "MimicHumanoidWalk-v0"
WALK_META = PolicyMetadata(env_id=WALK, clip="walk", details={"lookahead": 1})


def _model(env, hidden=16, layers=1, seed=0):
    return policies.make_trpo(DummyVecEnv([lambda: env]), hidden, layers, seed=seed)


def _state_dicts_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert th.equal(a[key], b[key]), key


@pytest.fixture
def distinct_model(walk):
    """A walk TRPO model whose weights are unlike any fresh initialisation."""
    model = _model(walk)
    generator = th.Generator().manual_seed(7)
    with th.no_grad():
        for p in model.policy.parameters():
            p.add_(0.2 * th.randn(p.shape, generator=generator))
    return model


def test_zip_and_pth_load_back_with_equal_predictions(walk, distinct_model, tmp_path):
    obs = np.stack([walk.reset(seed=s)[0] for s in range(6)])
    expected, _ = distinct_model.predict(obs, deterministic=True)
    zip_path = policies.save_policy(distinct_model, tmp_path / "p.zip", WALK_META)
    pth_path = policies.save_policy(distinct_model, tmp_path / "p.pth", WALK_META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pth", "p.zip"]  # no temporary files left
    for path in (zip_path, pth_path):
        loaded = policies.load_policy(path)  # the env comes from the metadata
        assert loaded.observation_space.shape == (197,) and loaded.sb3_mimic["env_id"] == WALK
        np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], expected, atol=1e-6)
        _state_dicts_equal(loaded.policy.state_dict(), distinct_model.policy.state_dict())
    checkpoint = th.load(pth_path, map_location="cpu", weights_only=True)
    _state_dicts_equal(checkpoint["state_dict"], distinct_model.policy.state_dict())
    assert checkpoint["metadata"]["action_mode"] == "pd_target"


def test_load_policy_errors(walk, tmp_path):
    with pytest.raises(PolicyLoadError, match="does not exist"):
        policies.load_policy(tmp_path / "missing.zip")
    for name in ("text.zip", "text.pth"):
        path = tmp_path / name
        path.write_text("this is not a policy\n")
        with pytest.raises(PolicyLoadError) as err:
            policies.load_policy(path, env=walk)
        assert str(path) in str(err.value)

    pendulum = gymnasium.make("Pendulum-v1")
    foreign = TRPO("MlpPolicy", pendulum, policy_kwargs={"net_arch": [16]}, device="cpu")
    foreign.save(tmp_path / "pendulum.zip")
    with pytest.raises(PolicyLoadError, match=r"not written by sb3-mimic.*unpickle.*trust_pickle=True"):
        policies.load_policy(tmp_path / "pendulum.zip", env=walk)  # a foreign zip is not unpickled by default
    with pytest.raises(PolicyLoadError, match=r"Observation spaces do not match"):
        policies.load_policy(tmp_path / "pendulum.zip", env=walk, trust_pickle=True)
    with pytest.raises(PolicyLoadError, match="no sb3-mimic metadata"):
        policies.load_policy(tmp_path / "pendulum.zip", trust_pickle=True)
    policies.save_policy(foreign, tmp_path / "pendulum.pth", PolicyMetadata(env_id="Pendulum-v1"))
    with pytest.raises(PolicyLoadError, match="observations of size 3") as err:
        policies.load_policy(tmp_path / "pendulum.pth", env=walk)
    assert "197" in str(err.value)
    with pytest.raises(PolicyLoadError, match=r"spaces|observations"):
        policies.check_policy_fits(foreign, walk)


def test_check_policy_fits_refuses_another_action_mode(distinct_model, walk, tmp_path):
    path = policies.save_policy(distinct_model, tmp_path / "p.zip", WALK_META)
    torque = gymnasium.make(WALK, action_mode="torque")
    model = policies.load_policy(path, env=torque)  # same spaces, so it loads ...
    with pytest.raises(PolicyLoadError, match="action_mode") as err:  # ... but it must not run there
        policies.check_policy_fits(model, torque)
    assert "pd_target" in str(err.value) and "torque" in str(err.value)
    policies.check_policy_fits(model, walk)  # the env it was made for is fine


def test_metadata_record_round_trips_through_both_file_kinds(distinct_model, tmp_path):
    meta = PolicyMetadata(env_id=WALK, clip="walk", trained_by="sft", exploration_std=0.05,
                          details={"lookahead": 2, "best_val_loss": 0.01})
    flat = meta.to_dict()
    assert flat["lookahead"] == 2 and flat["env_id"] == WALK and flat["format"] == policies.POLICY_FORMAT
    assert PolicyMetadata.from_dict(flat) == meta
    # saving adds what the network is (the file says how to rebuild it without unpickling)
    saved = meta.replace(network={"net_arch": {"pi": [16], "vf": [16]}}, observation_normalization=False)
    for name in ("p.zip", "p.pth"):
        path = policies.save_policy(distinct_model, tmp_path / name, meta)
        assert policies.read_metadata(path) == saved
        assert policies.metadata_of(policies.load_policy(path)) == saved
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.env_id = "MimicHumanoidRun-v0"
    assert meta.replace(clip="run").clip == "run" and meta.clip == "walk"
    with pytest.raises(PolicyLoadError, match="names no env_id"):
        PolicyMetadata.from_dict({"clip": "walk"})



def test_an_sb3_mimic_zip_loads_without_unpickling(distinct_model, tmp_path, monkeypatch):
    import pickle
    import zipfile

    path = policies.save_policy(distinct_model, tmp_path / "p.zip", WALK_META)
    calls = []
    original = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(1) or original(*a, **k))
    import cloudpickle

    monkeypatch.setattr(cloudpickle, "loads", lambda *a, **k: calls.append(1) or original(*a, **k))
    loaded = policies.load_policy(path)
    assert calls == []  # neither pickle nor cloudpickle ran
    _state_dicts_equal(loaded.policy.state_dict(), distinct_model.policy.state_dict())
    # a crafted zip: our metadata, but a pickled object among the policy's kwargs: refused by default
    crafted = tmp_path / "crafted.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(crafted, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "data":
                content = json.loads(data)
                content["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": "gAR9lC4="}
                data = json.dumps(content).encode()
            dst.writestr(item, data)
    with pytest.raises(PolicyLoadError, match="trust_pickle"):
        policies.load_policy(crafted)
