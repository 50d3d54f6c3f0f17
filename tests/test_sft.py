"""SFT: splitting demonstrations and behaviour cloning into a TRPO policy (the best-validation weights kept)."""

from __future__ import annotations

import dataclasses
import tempfile

import gymnasium
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic import cloning, policies, sft
from sb3_mimic.demos import teacher_forcing
from sb3_mimic.experts import PDExpert
from sb3_mimic.policies import PolicyMetadata

WALK = "MimicHumanoidWalk-v0"
WALK_META = PolicyMetadata(env_id=WALK, clip="walk", details={"lookahead": 1})


@pytest.fixture(scope="module")
def walk_demos():
    """Perturbed teacher-forced walk demonstrations, split 80/20."""
    env = gymnasium.make(WALK)
    demos = teacher_forcing(env, PDExpert.for_env(env), 300, seed=0, qpos_noise=0.05, qvel_noise=0.2, progress_bar=False)
    env.close()
    return sft.split_transitions(demos, 0.2, seed=0)


def _model(env, hidden=16, layers=1, seed=0):
    return policies.make_trpo(DummyVecEnv([lambda: env]), hidden, layers, seed=seed)


def _state_dicts_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert th.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------------------------------------
# behaviour cloning into TRPO


def test_split_transitions(walk_demos):
    train, val = walk_demos
    assert len(train) == 240 and len(val) == 60
    rows = {row.tobytes() for row in np.concatenate([train.obs, val.obs])}
    assert len(rows) == 300  # a partition: nothing lost, nothing duplicated
    for split in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_split"):
            sft.split_transitions(train, split)


def test_bc_trains_the_trpo_policy_in_place(walk, walk_demos, tmp_path, monkeypatch):
    train, val = walk_demos
    model = _model(walk, hidden=32)
    policy = model.policy
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    untrained = cloning.action_mse(policy, val.obs, val.acts)
    trainers = []

    class RecordingBC(cloning.bc.BC):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(cloning.bc, "BC", RecordingBC)
    result = sft.train_bc(model, train, val, epochs=3, batch_size=64, lr=3e-3, progress_bar=False)
    assert len(trainers) == 1 and trainers[0].policy is policy
    assert result.model is model and model.policy is policy
    assert any(not th.equal(before[k], v) for k, v in policy.state_dict().items())

    assert result.initial_val_loss == pytest.approx(untrained, rel=1e-9)
    assert len(result.history) == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
    losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(losses) == losses[result.best_epoch - 1]
    assert result.best_val_loss < 0.5 * result.initial_val_loss
    assert cloning.action_mse(policy, val.obs, val.acts) == pytest.approx(result.best_val_loss, rel=1e-6)

    path = policies.save_policy(model, tmp_path / "bc", WALK_META)
    assert path == tmp_path / "bc.zip" and path.is_file()
    loaded = TRPO.load(path, device="cpu")
    _state_dicts_equal(loaded.policy.state_dict(), policy.state_dict())
    assert loaded.sb3_mimic["action_mode"] == "pd_target" and loaded.sb3_mimic["format"] == policies.POLICY_FORMAT


def test_bc_removes_the_scratch_folders_that_killed_runs_left(walk, walk_demos, tmp_path, monkeypatch, dead_pid,
                                                             live_pid):
    # BC's logger needs a folder: sb3_mimic_bc_<pid>_XXXX in the system's temporary folder, which a SIGKILL leaves
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale, running = tmp_path / f"sb3_mimic_bc_{dead_pid}_k1ll", tmp_path / f"sb3_mimic_bc_{live_pid}_l1ve"
    unrelated = tmp_path / f"other_bc_{dead_pid}_x"
    for folder in (stale, running, unrelated):
        folder.mkdir()
    train, val = walk_demos
    sft.train_bc(_model(walk), train, val, epochs=1, batch_size=32, progress_bar=False)
    assert not stale.exists()  # its process is gone
    assert sorted(tmp_path.iterdir()) == sorted([running, unrelated])  # and this run's own is removed at its end


def test_bc_keeps_the_best_validation_weights(walk, walk_demos):
    train, val = walk_demos
    # training pulls every action towards 0.5 while validation wants 0: each epoch makes validation worse
    train = dataclasses.replace(train, acts=np.full_like(train.acts, 0.5))
    val = dataclasses.replace(val, acts=np.zeros_like(val.acts))
    model = _model(walk)
    result = sft.train_bc(model, train, val, epochs=3, batch_size=32, lr=1e-3, progress_bar=False)
    losses = [h["val_loss"] for h in result.history]
    assert losses[0] < losses[1] < losses[2] and result.best_epoch == 1
    assert result.best_val_loss == losses[0]
    assert cloning.action_mse(model.policy, val.obs, val.acts) == pytest.approx(losses[0], rel=1e-6)
    with pytest.raises(ValueError, match="epochs"):
        sft.train_bc(model, train, val, epochs=0, progress_bar=False)


def test_sft_from_the_mpc_expert_clones_its_dart_labels_with_normalised_observations(tmp_path):
    """``sft --expert mpc``: DART episodes of the MPC, labelled for a residual policy, observation statistics of
    those demonstrations inside the saved policy; the policy file is TRPO-ready like the PD expert's."""
    from sb3_mimic.cli import main
    from sb3_mimic.demos import load_demos
    from sb3_mimic.normalization import normalizers_of

    path, demos_path = tmp_path / "mpc.zip", tmp_path / "demos.npz"
    assert main(["sft", "--mocap", "walk", "--expert", "mpc", "--n_rollouts", "1", "--mpc_horizon", "4",
                 "--mpc_samples", "4", "--mpc_iterations", "1", "--epochs", "2",
                 "--hidden_size", "16", "--num_layers", "1", "--normalize", "--action_mode", "residual",
                 "--save_path", str(path), "--save_demos", str(demos_path), "--no_eval", "--no_progress"]) == 0
    demos, meta = load_demos(demos_path)
    assert meta.kind == "dart (mpc)" and meta.action_mode == "residual" and meta.extra["dart_noise"] == 0.01
    assert meta.extra["mpc_kwargs"] == {"horizon": 4, "samples": 4, "iterations": 1}
    assert len(demos) >= 10 and np.abs(demos.acts).max() > 1e-3  # MPC corrections, not the PD expert's zeros
    model = policies.load_policy(path)
    saved = policies.read_metadata(path)
    assert saved.action_mode == "residual" and saved.details["expert"] == "mpc" and saved.observation_normalization
    (norm,) = normalizers_of(model.policy)
    np.testing.assert_allclose(norm.mean.numpy(), demos.obs.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-9)
    assert float(norm.count) == len(demos)
    assert isinstance(model, TRPO)
