"""RL: TRPO fine-tuning with critic warm-up, checkpoints and resume, errors, rl-zoo and the RL command line.

Everything runs on one env (DummyVecEnv) with tiny rollouts (``n_steps`` 128) and 2-episode evaluations of
policies that fall within about a second, so the whole file stays well under 90 s on two busy cores.

"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mimic import rl
from sb3_mimic.cli import main
from sb3_mimic.evaluation import evaluate, policy_actor
from sb3_mimic.rl import MimicTRPO, RunConfig, latest_checkpoint, resume_training, run_training
from sb3_mimic.policies import (
    DEFAULT_EXPLORATION_STD,
    PolicyLoadError,
    PolicyMetadata,
    load_policy,
    make_trpo,
    policy_kwargs_for,
    read_metadata,
    save_policy,
)
from sb3_mimic.sft import SFTConfig, run_sft

REPO_ROOT = Path(__file__).resolve().parents[1]
WALK = "MimicHumanoidWalk-v0"
N = 128  # env steps per iteration (n_steps with one env)
TINY = {"n_steps": N, "batch_size": 64}
CRITIC = ("mlp_extractor.value_net.", "value_net.")
WALK_META = PolicyMetadata(env_id=WALK, clip="walk", details={"lookahead": 1})
ZOO_TIMEOUT_S = 240


@pytest.fixture(autouse=True)
def _one_torch_thread():
    th.set_num_threads(1)


def _config(**overrides) -> RunConfig:
    kwargs = dict(
        algo="trpo", env_id=WALK, env_kwargs={}, num_timesteps=2 * N, save_per_iter=1, n_envs=1, eval_episodes=2,
        hyperparameters=dict(TINY),
    )
    kwargs.update(overrides)
    return RunConfig(**kwargs)


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` with stdout captured; return (result, output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args, **kwargs)
    return result, out.getvalue()


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("model_*_steps.zip"))


def _steps(path: Path) -> int:
    return int(path.stem.split("_")[1])


def _rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "evaluations.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _is_critic(key: str) -> bool:
    return key.startswith(CRITIC)


def _actor_equal(a: dict, b: dict) -> bool:
    """Actor weights (everything but the critic and log_std) bit-identical."""
    return all(th.equal(a[k], b[k]) for k in a if not _is_critic(k) and k != "log_std")


def _tmp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def sft_zip(tmp_path_factory) -> Path:
    """A quickly cloned walk policy with sb3-mimic's default SFT architecture (2 x 64) and metadata."""
    path = tmp_path_factory.mktemp("sft") / "sft.zip"
    config = SFTConfig(mocap="walk", epochs=2, n_samples=300, n_rollouts=3, save_path=str(path), no_eval=True)
    _quiet(run_sft, config, progress_bar=False)
    th.set_num_threads(1)
    return path


@pytest.fixture(scope="module")
def torque_zip(tmp_path_factory) -> Path:
    """An untrained torque-mode walk policy (1 x 16) saved with sb3-mimic metadata."""
    env = gymnasium.make(WALK, action_mode="torque")
    model = make_trpo(DummyVecEnv([lambda: env]), 16, 1)
    meta = WALK_META.replace(env_kwargs={"action_mode": "torque"}, action_mode="torque")
    return save_policy(model, tmp_path_factory.mktemp("torque") / "torque.zip", meta)


@pytest.fixture(scope="module")
def pendulum_zip(tmp_path_factory) -> Path:
    """A policy for 3 observations and 1 action that claims (in its metadata) to be a walk policy."""
    model = make_trpo(DummyVecEnv([lambda: gymnasium.make("Pendulum-v1")]), 16, 1)
    return save_policy(model, tmp_path_factory.mktemp("pendulum") / "pendulum.zip", WALK_META)


# ------------------------------------------------------------------------------------------------------------
# 1. the start of fine-tuning: critic warm-up leaves the SFT actor untouched


def test_critic_warmup_keeps_the_sft_actor_and_its_score(sft_zip, tmp_path):
    std = 0.08  # not the SFT policy's 0.05, so that log_std is seen to be set
    run_dir = tmp_path / "ft"
    config = _config(load_sft_pretrain=str(sft_zip), critic_warmup_iterations=2, num_timesteps=2 * N, exploration_std=std)
    _quiet(run_training, config, run_dir, progress_bar=False)

    sft = load_policy(sft_zip)
    ref = sft.policy.state_dict()
    checkpoints = _checkpoints(run_dir)
    assert [_steps(p) for p in checkpoints] == [0, N, 2 * N]
    for path in checkpoints:
        model = MimicTRPO.load(path, device="cpu")
        state = model.policy.state_dict()
        assert list(state) == list(ref) and model.policy_kwargs == sft.policy_kwargs
        assert _actor_equal(state, ref), path.name
        assert th.equal(state["log_std"], th.full_like(ref["log_std"], math.log(std)))
        critic_changed = [k for k in state if _is_critic(k) and not th.equal(state[k], ref[k])]
        if model.num_timesteps == 0:
            assert critic_changed == [] and model.critic_warmup_left == 2
        else:  # every critic tensor was fitted (the SFT critic's zero biases included)
            assert critic_changed == [k for k in state if _is_critic(k)]
            assert model.critic_warmup_left == 2 - model.num_timesteps // N
    final = MimicTRPO.load(run_dir / "final_model.zip", device="cpu")
    assert final.num_timesteps == 2 * N and _actor_equal(final.policy.state_dict(), ref)

    rows = _rows(run_dir)
    assert [r["env_steps"] for r in rows] == [0, N, 2 * N]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    # the row at 0 steps is the SFT policy's own score (same episodes: seed + 10000) ...
    env = gymnasium.make(WALK)
    own = evaluate(policy_actor(sft), env, episodes=2, seed=config.seed + 10_000)
    env.close()
    assert rows[0]["normalized_return"] == pytest.approx(own.normalized_return, rel=1e-9)
    assert rows[0]["normalized_return"] > 0
    # ... and the first evaluation after the warm-up is no collapse
    after = next(r for r in rows if r["env_steps"] == 2 * N)
    assert abs(after["normalized_return"] - rows[0]["normalized_return"]) <= 0.1 * rows[0]["normalized_return"]
    assert not _tmp_files(run_dir)


def test_without_warmup_the_first_iteration_moves_the_actor(sft_zip, tmp_path):
    run_dir = tmp_path / "ft0"
    _quiet(run_training, _config(load_sft_pretrain=str(sft_zip), critic_warmup_iterations=0, num_timesteps=N), run_dir,
           progress_bar=False)
    ref = load_policy(sft_zip).policy.state_dict()
    first = MimicTRPO.load(run_dir / "checkpoints" / f"model_{N:012d}_steps.zip", device="cpu").policy.state_dict()
    assert not _actor_equal(first, ref)
    assert not th.equal(first["action_net.weight"], ref["action_net.weight"])


def test_the_imitation_terms_weight_falls_linearly_from_the_end_of_the_warmup(walk):
    model = MimicTRPO("MlpPolicy", DummyVecEnv([lambda: walk]), imitation_coef=2.0, imitation_anneal_steps=100,
                      n_steps=8, batch_size=8, device="cpu")
    assert model.imitation_weight(0) == 0.0  # before its first actor update: not started
    model.imitation_start = 50
    assert [model.imitation_weight(t) for t in (50, 75, 100, 150, 1000)] == [2.0, 1.5, 1.0, 0.0, 0.0]
    model.imitation_anneal_steps = 0  # no annealing: a constant weight
    assert model.imitation_weight(10**6) == 2.0


def _teacher_gap(model, teacher, obs) -> float:
    with th.no_grad():
        a = model.policy.get_distribution(obs).distribution.mean
        b = teacher.policy.get_distribution(obs).distribution.mean
    return float(((a - b) ** 2).mean())


def test_the_imitation_term_keeps_the_fine_tuned_actor_near_the_sft_teacher_and_survives_a_resume(sft_zip, tmp_path):
    teacher = load_policy(sft_zip)
    env = gymnasium.make(WALK)
    obs = th.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(64)]))
    env.close()
    hyper = {**TINY, "batch_size": 16, "learning_rate": 1e-3}  # 8 imitation steps per iteration
    gaps = {}
    for coef in (0.0, 3.0):
        run_dir = tmp_path / f"coef{coef}"
        config = _config(load_sft_pretrain=str(sft_zip), critic_warmup_iterations=0, num_timesteps=6 * N,
                         imitation_coef=coef, imitation_anneal_steps=10**6, hyperparameters=hyper)
        model, _ = _quiet(run_training, config, run_dir, progress_bar=False)
        gaps[coef] = _teacher_gap(model, teacher, obs)
        assert model.imitation_start == 0  # no warm-up: the term starts with the first actor update
    assert gaps[3.0] < 0.5 * gaps[0.0], gaps  # the same RL steps, pulled back toward the teacher
    # a resumed run reloads the teacher (it is not inside the checkpoint) and goes on imitating it
    resumed, out = _quiet(resume_training, tmp_path / "coef3.0", progress_bar=False, num_timesteps=7 * N)
    assert "Resuming" in out and resumed._teacher is not None and resumed.imitation_start == 0
    assert resumed.imitation_optimizer.state  # Adam's moments came back from the checkpoint
    assert resumed.imitation_weight() == pytest.approx(3.0 * (1 - 7 * N / 10**6))
    with pytest.raises(ValueError, match="needs a teacher"):
        _config(imitation_coef=1.0).validate()


def test_fine_tuning_starts_episodes_in_the_experts_recorded_states(sft_zip, tmp_path, monkeypatch):
    """``finetune --expert_starts``: the training env is built with the file's states (share 1: every episode)."""
    from imitation.data.rollout import flatten_trajectories

    from sb3_mimic.demos import DemoMetadata, dart_rollouts, save_demos
    from sb3_mimic.envs import MimicHumanoidVecEnv
    from sb3_mimic.experts import PDExpert

    env = gymnasium.make("MimicHumanoidWalk-v0")
    episodes = dart_rollouts(env, PDExpert.for_env(env), 2, 0.02, seed=4, max_steps=5, progress_bar=False)
    demos = save_demos(tmp_path / "dart.npz", flatten_trajectories(episodes), DemoMetadata(
        clip="walk", env_id="MimicHumanoidWalk-v0", action_mode="pd_target", lookahead=1, kind="rollouts"))
    states = np.stack([info["state"][1] for episode in episodes for info in episode.infos])
    env.close()
    first_starts = []
    reset = MimicHumanoidVecEnv.reset

    def spy(self):
        obs = reset(self)
        first_starts.append(list(self.batch.qpos.copy()))
        return obs

    monkeypatch.setattr(MimicHumanoidVecEnv, "reset", spy)
    run_dir = tmp_path / "ft"
    assert main(["finetune", "--algo", "ppo", "--load_sft_pretrain", str(sft_zip), "--critic_warmup", "0",
                 "--num_timesteps", "64", "--vec_env", "batched", "--n_envs", "2", "--threads", "1", "--n_steps", "32",
                 "--batch_size", "64", "--n_epochs", "1", "--eval_episodes", "1", "--expert_starts", str(demos),
                 "--expert_start_share", "1", "--run_dir", str(run_dir), "--no_progress"]) == 0
    config = rl.read_run_config(run_dir)
    assert config.expert_starts == str(demos.resolve()) and config.expert_start_share == 1.0
    assert first_starts and all(any(np.array_equal(q, s) for s in states) for q in first_starts[0])


def test_ppo_fine_tuning_warms_up_the_critic_then_moves_the_actor_under_the_imitation_term(sft_zip, tmp_path, capsys):
    """``finetune --algo ppo``: the same SFT file, critic warm-up and imitation term as TRPO's, on SB3's PPO."""
    run_dir = tmp_path / "ppo_ft"
    code = main(["finetune", "--algo", "ppo", "--load_sft_pretrain", str(sft_zip), "--critic_warmup", "1",
                 "--num_timesteps", str(2 * N), "--save_per_iter", "1", "--vec_env", "subproc", "--n_envs", "1",
                 "--n_steps", str(N), "--batch_size", "64", "--n_epochs", "2", "--learning_rate", "1e-3",
                 "--eval_episodes", "1", "--run_dir", str(run_dir), "--no_progress"])
    assert code == 0
    config = rl.read_run_config(run_dir)
    assert config.algo == "ppo" and config.imitation_coef == 1.0 and config.hyperparameters["n_epochs"] == 2
    ref = load_policy(sft_zip).policy.state_dict()
    warm, moved = (rl.MimicPPO.load(run_dir / "checkpoints" / f"model_{n:012d}_steps.zip", device="cpu")
                   for n in (N, 2 * N))
    assert isinstance(warm, PPO) and warm.n_epochs == 2
    assert _actor_equal(warm.policy.state_dict(), ref)  # the warm-up fitted the critic alone ...
    assert all(not th.equal(warm.policy.state_dict()[k], ref[k]) for k in ref if _is_critic(k))
    assert not _actor_equal(moved.policy.state_dict(), ref)  # ... then PPO's epochs and the imitation pass moved it
    assert moved.imitation_start == N and moved.imitation_optimizer.state
    assert moved.imitation_weight() == pytest.approx(1.0 - N / 2_000_000)
    assert load_policy(run_dir / "final_model.zip").sb3_mimic["trained_by"] == "finetune"


# ------------------------------------------------------------------------------------------------------------
# 2. checkpoints and resume


@pytest.fixture(scope="module")
def crashed_and_resumed(sft_zip, tmp_path_factory):
    """A fine-tuning run (2 warm-up iterations, 4 in all) killed during its 2nd iteration, resumed to the end,
    then extended by one iteration (run.json's num_timesteps raised, as for a run killed before its target)."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    config = _config(load_sft_pretrain=str(sft_zip), critic_warmup_iterations=2, num_timesteps=4 * N)
    on_step = rl.CheckpointEvalCallback._on_step

    def crash(self):
        if self.model.num_timesteps >= N + N // 2:
            raise RuntimeError("simulated crash")
        return on_step(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rl.CheckpointEvalCallback, "_on_step", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            _quiet(run_training, config, run_dir, progress_bar=False)
    crashed = {
        "checkpoints": [_steps(p) for p in _checkpoints(run_dir)],
        "rows": _rows(run_dir),
        "final_exists": (run_dir / "final_model.zip").exists(),
    }
    th.set_num_threads(1)
    resumed, out1 = _quiet(resume_training, run_dir, progress_bar=False)
    after_resume = {"rows": _rows(run_dir), "num_timesteps": resumed.num_timesteps, "out": out1}
    run = json.loads((run_dir / "run.json").read_text())
    run["num_timesteps"] = 5 * N
    (run_dir / "run.json").write_text(json.dumps(run))
    extended, out2 = _quiet(resume_training, run_dir, progress_bar=False)
    rows_before_noop = _rows(run_dir)
    again, out3 = _quiet(resume_training, run_dir, progress_bar=False)  # complete: nothing to do
    return {
        "run_dir": run_dir, "crashed": crashed, "after_resume": after_resume, "extended": extended, "out2": out2,
        "rows_before_noop": rows_before_noop, "again": again, "out3": out3,
    }


def test_resume_continues_from_the_newest_checkpoint(crashed_and_resumed, sft_zip):
    r = crashed_and_resumed
    run_dir = r["run_dir"]
    assert r["crashed"]["checkpoints"] == [0, N] and not r["crashed"]["final_exists"]
    assert [row["env_steps"] for row in r["crashed"]["rows"]] == [0, N]
    assert f"from model_{N:012d}_steps.zip ({N} steps)" in r["after_resume"]["out"]
    assert r["after_resume"]["num_timesteps"] == 4 * N  # the step count continued, it was not reset
    assert f"from model_{4 * N:012d}_steps.zip ({4 * N} steps)" in r["out2"]
    assert r["extended"].num_timesteps == 5 * N

    # every checkpoint loads, with its own step count; the warm-up state survived the crash
    ref = load_policy(sft_zip).policy.state_dict()
    checkpoints = _checkpoints(run_dir)
    assert [_steps(p) for p in checkpoints] == [0, N, 2 * N, 3 * N, 4 * N, 5 * N]
    for path in checkpoints:
        model = MimicTRPO.load(path, device="cpu")
        assert model.num_timesteps == _steps(path)
        frozen = _actor_equal(model.policy.state_dict(), ref)
        assert frozen == (model.num_timesteps <= 2 * N), path.name  # warm-up iteration 2 ran after the resume
    final = MimicTRPO.load(run_dir / "final_model.zip", device="cpu")
    assert final.num_timesteps == 5 * N
    for key, value in MimicTRPO.load(checkpoints[-1], device="cpu").policy.state_dict().items():
        assert th.equal(value, final.policy.state_dict()[key])
    assert not _tmp_files(run_dir)

    rows = _rows(run_dir)
    steps = [row["env_steps"] for row in rows]
    assert steps == sorted(steps) and steps[-1] == 5 * N
    assert set(steps) == {0, N, 2 * N, 3 * N, 4 * N, 5 * N}
    walls = [row["wall_time_s"] for row in rows]
    assert walls == sorted(walls)  # training wall time carries over from the checkpoint's progress
    progress = MimicTRPO.load(checkpoints[-1], device="cpu").sb3_mimic_progress
    assert progress["iteration"] == 5 and progress["wall_time_s"] == pytest.approx(walls[-1], abs=1e-3)
    assert json.loads((run_dir / "evaluations.json").read_text()) == rows


def test_resume_of_a_complete_run_does_nothing(crashed_and_resumed):
    r = crashed_and_resumed
    assert "is complete (640 of 640 steps)" in r["out3"] and r["again"].num_timesteps == 5 * N
    assert _rows(r["run_dir"]) == r["rows_before_noop"]


def test_resume_does_not_repeat_the_evaluation_of_its_checkpoint(crashed_and_resumed):
    steps = [row["env_steps"] for row in _rows(crashed_and_resumed["run_dir"])]
    assert steps == [0, N, 2 * N, 3 * N, 4 * N, 5 * N]


def test_resume_needs_a_run_and_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match=r"run\.json missing"):
        resume_training(tmp_path / "nothing", progress_bar=False)
    run_dir = tmp_path / "started"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(asdict(_config())))
    with pytest.raises(ValueError, match="no checkpoint"):
        resume_training(run_dir, progress_bar=False)


def test_a_run_folder_is_not_started_twice(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    text = json.dumps(asdict(_config(num_timesteps=999)))
    (run_dir / "run.json").write_text(text)
    with pytest.raises(ValueError, match="--resume"):
        run_training(_config(), run_dir, progress_bar=False)
    assert (run_dir / "run.json").read_text() == text and _checkpoints(run_dir) == []


def test_resume_refuses_a_checkpoint_for_another_env(tmp_path, pendulum_zip):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(asdict(_config())))
    (run_dir / "checkpoints" / "model_000000000128_steps.zip").write_bytes(pendulum_zip.read_bytes())
    with pytest.raises(PolicyLoadError, match="does not fit"):
        resume_training(run_dir, progress_bar=False)


def test_time_budget_stops_the_run_with_a_final_checkpoint(tmp_path):
    run_dir = tmp_path / "budget"
    model, _ = _quiet(run_training, _config(time_budget_s=1e-9, num_timesteps=4 * N, hidden_size=16, num_layers=1),
                      run_dir, progress_bar=False)
    assert 0 < model.num_timesteps < N
    assert latest_checkpoint(run_dir).name == f"model_{model.num_timesteps:012d}_steps.zip"
    assert (run_dir / "final_model.zip").exists()
    assert [row["env_steps"] for row in _rows(run_dir)] == [0, model.num_timesteps]


def test_a_failed_start_can_be_retried(tmp_path, sft_zip):
    run_dir = tmp_path / "run"
    with pytest.raises(PolicyLoadError):
        run_training(_config(load_sft_pretrain=str(tmp_path / "missing.zip"), num_timesteps=N), run_dir,
                     progress_bar=False)
    _quiet(run_training, _config(load_sft_pretrain=str(sft_zip), num_timesteps=N), run_dir, progress_bar=False)
    assert (run_dir / "final_model.zip").exists()


# ------------------------------------------------------------------------------------------------------------
# 3. policies that do not fit, and bad configurations


def test_load_policy_refuses_another_observation_size(pendulum_zip, tmp_path):
    env = gymnasium.make(WALK)
    with pytest.raises(PolicyLoadError, match="does not fit"):
        load_policy(pendulum_zip, env)
    with pytest.raises(PolicyLoadError, match="does not fit"):
        load_policy(pendulum_zip)  # the env its metadata names
    pth = save_policy(load_policy(pendulum_zip, gymnasium.make("Pendulum-v1")), tmp_path / "p.pth", WALK_META)
    with pytest.raises(PolicyLoadError, match="observations of size 3"):
        load_policy(pth, env)
    env.close()


def test_finetuning_a_policy_for_another_env_fails_clearly(pendulum_zip, tmp_path):
    with pytest.raises(PolicyLoadError, match="does not fit"):
        run_training(_config(load_sft_pretrain=str(pendulum_zip)), tmp_path / "run", progress_bar=False)


def test_finetuning_refuses_a_torque_policy_on_a_pd_target_env(torque_zip, tmp_path):
    with pytest.raises(PolicyLoadError, match="action_mode='torque'"):
        run_training(_config(load_sft_pretrain=str(torque_zip)), tmp_path / "run", progress_bar=False)


def test_cli_finetune_uses_the_policys_action_mode(torque_zip, tmp_path, capsys):
    run_dir = tmp_path / "ft"
    # the CLI has no --n_steps: one iteration is TRPO_DEFAULTS' 1024 steps, whatever --num_timesteps says
    code = main(["finetune", "--load_sft_pretrain", str(torque_zip), "--mocap", "walk", "--num_timesteps", "256",
                 "--save_per_iter", "1", "--run_dir", str(run_dir), "--n_envs", "1", "--vec_env", "subproc",
                 "--eval_episodes", "2",
                 "--critic_warmup", "0", "--no_progress"])
    _, err = capsys.readouterr()
    assert code == 0, err
    run = json.loads((run_dir / "run.json").read_text())
    assert run["env_id"] == WALK and run["env_kwargs"] == {"action_mode": "torque"}
    assert run["load_sft_pretrain"] == str(torque_zip.resolve())
    final = MimicTRPO.load(run_dir / "final_model.zip", device="cpu")
    assert final.num_timesteps == rl.TRPO_DEFAULTS["n_steps"] and final.policy_kwargs == policy_kwargs_for(16, 1)
    assert [row["env_steps"] for row in _rows(run_dir)] == [0, rl.TRPO_DEFAULTS["n_steps"]]
    assert main(["finetune", "--resume", str(run_dir), "--no_progress"]) == 0
    assert "is complete" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algo": "a2c"}, "unknown algo"),
        ({"num_timesteps": 0}, "--num_timesteps"),
        ({"num_timesteps": -5}, "--num_timesteps"),
        ({"save_per_iter": 0}, "--save_per_iter"),
        ({"eval_episodes": -1}, "--eval_episodes"),
        ({"n_envs": -1}, "--n_envs"),
        ({"critic_warmup_iterations": -1}, "--critic_warmup"),
        ({"exploration_std": 0.0}, "--exploration_std"),
        ({"exploration_std": -0.1}, "--exploration_std"),
        ({"exploration_std": float("nan")}, "--exploration_std"),
        ({"env_id": "NoSuchEnv-v0"}, "unknown env id"),
    ],
)
def test_bad_run_config_is_refused_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides).validate()
    with pytest.raises(ValueError, match=message):
        run_training(_config(**overrides), tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides", [{"hidden_size": 0}, {"num_layers": 0}])
def test_bad_network_size_is_refused(overrides):
    with pytest.raises(ValueError):
        _config(**overrides).validate()


def test_cli_rl_argument_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # the usage line shows one of the two as required
        main(["finetune", "--run_dir", str(tmp_path / "a"), "--no_progress"])
    assert exit_info.value.code == 2
    assert "one of the arguments --load_sft_pretrain --resume is required" in capsys.readouterr().err
    assert main(["finetune", "--load_sft_pretrain", str(tmp_path / "missing.zip"), "--no_progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--num_timesteps", "0", "--run_dir", str(tmp_path / "b"), "--no_progress"]) == 2
    assert "--num_timesteps" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing"), "--no_progress"]) == 2
    assert "run.json missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", "a2c"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------------------------
# 4. rl-baselines3-zoo


def _zoo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", *args, "--gym-packages", "sb3_mimic", "--num-threads", "1"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=ZOO_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _zoo_train(cwd: Path, algo: str, steps: int, *extra: str) -> subprocess.CompletedProcess:
    return _zoo(
        cwd, "rl_zoo3.train", "--algo", algo, "--env", WALK, "--conf-file", str(REPO_ROOT / "zoo_configs" / f"{algo}.yml"),
        "-n", str(steps), "-f", "logs", "--eval-freq", "-1", "--device", "cpu", "--hyperparams", f"n_steps:{N}",
        "n_envs:1", "batch_size:64", *extra,
    )


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    """rl-zoo's folder after `rl_zoo3.train --algo trpo -n 512` (experiment 1)."""
    cwd = tmp_path_factory.mktemp("zoo")
    _zoo_train(cwd, "trpo", 4 * N)
    return cwd


def test_zoo_trains_trpo_and_enjoy_replays_it(zoo_dir):
    model_path = zoo_dir / "logs" / "trpo" / f"{WALK}_1" / f"{WALK}.zip"
    model = TRPO.load(model_path, device="cpu")
    assert model.num_timesteps == 4 * N
    assert model.policy_kwargs == {**policy_kwargs_for(64, 2), "log_std_init": -3.0}
    assert not model.policy.use_sde
    result = _zoo(zoo_dir, "rl_zoo3.enjoy", "--algo", "trpo", "--env", WALK, "-f", "logs", "--exp-id", "1", "-n", "50",
                  "--no-render", "--device", "cpu")
    assert f"{WALK}_1/{WALK}.zip" in result.stdout


def test_zoo_enjoy_is_importable():
    import rl_zoo3.load_from_hub  # noqa: F401


def test_zoo_warm_starts_from_an_sft_policy(zoo_dir, sft_zip):
    _zoo_train(zoo_dir, "trpo", N, "-i", str(sft_zip))
    model = TRPO.load(zoo_dir / "logs" / "trpo" / f"{WALK}_2" / f"{WALK}.zip", device="cpu")
    sft = TRPO.load(sft_zip, device="cpu")
    assert model.policy_kwargs == sft.policy_kwargs == policy_kwargs_for(64, 2)
    assert model.num_timesteps == N
    assert model.sb3_mimic["env_id"] == WALK  # the SFT metadata travels on
    # one small TRPO step from the SFT weights, not a fresh network (which differs by ~100 %)
    ours, theirs = model.policy.state_dict(), sft.policy.state_dict()
    for key in ("mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.2.weight"):
        assert 0 < float((ours[key] - theirs[key]).norm() / theirs[key].norm()) < 0.05, key
    np.testing.assert_allclose(ours["log_std"].numpy(), math.log(DEFAULT_EXPLORATION_STD), atol=0.05)


def test_zoo_trains_ppo(tmp_path):
    _zoo_train(tmp_path, "ppo", 2 * N)
    model = PPO.load(tmp_path / "logs" / "ppo" / f"{WALK}_1" / f"{WALK}.zip", device="cpu")
    assert model.num_timesteps == 2 * N and model.policy_kwargs["net_arch"] == policy_kwargs_for(64, 2)["net_arch"]


def test_zoo_runs_the_residual_recipe_with_statistics_inside_the_policy_and_warm_starts_from_sft(tmp_path):
    """``zoo_configs/ppo_residual.yml``: residual actions, the normaliser from the policy kwargs, its statistics folded
    in by the callback; warm-started from a normalised residual SFT policy, the SFT statistics carry on."""
    from sb3_mimic.normalization import normalizers_of

    sft_path = tmp_path / "sft.zip"
    config = SFTConfig(mocap="walk", epochs=1, n_samples=200, n_rollouts=1, save_path=str(sft_path), no_eval=True,
                       action_mode="residual", normalize=True, hidden_size=256)
    _quiet(run_sft, config, progress_bar=False)
    th.set_num_threads(1)
    conf = str(REPO_ROOT / "zoo_configs" / "ppo_residual.yml")
    common = ("--algo", "ppo", "--env", WALK, "--conf-file", conf, "-f", "logs", "--eval-freq", "-1", "--device", "cpu",
              "--hyperparams", "n_steps:64", "n_envs:1", "batch_size:64")
    _zoo(tmp_path, "rl_zoo3.train", *common, "-n", "128")
    fresh = PPO.load(tmp_path / "logs" / "ppo" / f"{WALK}_1" / f"{WALK}.zip", device="cpu")
    (norm,) = normalizers_of(fresh.policy)
    assert float(norm.count) == 1 + 64  # the first start, then the first rollout (the second one pending)
    assert float(norm.pending_count) == 1 + 128
    _zoo(tmp_path, "rl_zoo3.train", *common, "-n", "64", "-i", str(sft_path))
    warm = PPO.load(tmp_path / "logs" / "ppo" / f"{WALK}_2" / f"{WALK}.zip", device="cpu")
    sft_norm = normalizers_of(load_policy(sft_path).policy)[0]
    (warm_norm,) = normalizers_of(warm.policy)
    assert float(warm_norm.pending_count) == float(sft_norm.count) + 64  # the SFT statistics, plus the rollout
    np.testing.assert_allclose(warm_norm.mean.numpy(), sft_norm.mean.numpy())  # applied at the next rollout only
    assert warm.sb3_mimic["action_mode"] == "residual"


# ------------------------------------------------------------------------------------------------------------
# 5. the command line: train, plot, video


@pytest.fixture(scope="module")
def cli_ppo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "ppo"
    code, _ = _quiet(main, ["train", "--algo", "ppo", "--num_timesteps", "256", "--save_per_iter", "1", "--run_dir",
                            str(run_dir), "--n_envs", "1", "--vec_env", "subproc", "--eval_episodes", "2",
                            "--hidden_size", "16", "--num_layers", "1", "--no_progress"])
    th.set_num_threads(1)
    assert code == 0
    return run_dir


def test_cli_train_ppo(cli_ppo_run):
    run = json.loads((cli_ppo_run / "run.json").read_text())
    assert run["algo"] == "ppo" and run["env_id"] == WALK and run["critic_warmup_iterations"] == 0
    final = PPO.load(cli_ppo_run / "final_model.zip", device="cpu")
    assert final.num_timesteps == rl.PPO_DEFAULTS["n_steps"]  # one full rollout: the CLI has no --n_steps
    assert final.policy_kwargs == policy_kwargs_for(16, 1)
    start = PPO.load(_checkpoints(cli_ppo_run)[0], device="cpu")
    assert start.num_timesteps == 0  # --exploration_std (default 0.05) set the starting action std
    assert th.equal(start.policy.log_std, th.full_like(start.policy.log_std, math.log(0.05)))
    assert [row["env_steps"] for row in _rows(cli_ppo_run)] == [0, rl.PPO_DEFAULTS["n_steps"]]
    for path in _checkpoints(cli_ppo_run):
        PPO.load(path, device="cpu")


def test_cli_plot_two_runs(cli_ppo_run, crashed_and_resumed, tmp_path, capsys):
    import imageio.v3 as iio

    out = tmp_path / "curves.png"
    assert main(["plot", str(cli_ppo_run), str(crashed_and_resumed["run_dir"]), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = iio.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert f"Wrote {out}" in capsys.readouterr().out


def test_cli_video_frame_count(sft_zip, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "v.mp4"
    code = main(["video", "--model", str(sft_zip), "--out", str(out), "--seconds", "0.5", "--width", "160", "--height",
                 "120"])
    assert code == 0, capsys.readouterr().err
    # the same deterministic episode, replayed without rendering: 15 steps at 30 Hz unless it ends first
    env = gymnasium.make(WALK)
    act = policy_actor(load_policy(sft_zip))
    obs, _ = env.reset(seed=0)
    steps = 0
    while steps < 15:
        obs, _, terminated, truncated, _ = env.step(act(obs))
        steps += 1
        if terminated or truncated:
            break
    env.close()
    with imageio.get_reader(out, format="FFMPEG") as reader:
        frames = np.stack([np.asarray(f) for f in reader])
    assert frames.shape == (steps + 1, 120, 160, 3)
    assert frames[0].std() > 5  # an image, not a blank frame
    assert f"{steps + 1} frames" in capsys.readouterr().out


def test_cli_video_of_a_finetuned_model(crashed_and_resumed, tmp_path, capsys):
    out = tmp_path / "ft.mp4"
    model = crashed_and_resumed["run_dir"] / "final_model.zip"
    code = main(["video", "--model", str(model), "--mocap", "walk", "--out", str(out), "--seconds", "0.2", "--width",
                 "160", "--height", "120"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file()


# ------------------------------------------------------------------------------------------------------------
# command-line edges: warnings, extending a run, TensorBoard


def test_cli_finetune_warns_when_it_would_never_update_the_actor(sft_zip, tmp_path, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(rl, "run_training", lambda config, run_dir, **_: started.append(config))
    base = ["finetune", "--load_sft_pretrain", str(sft_zip), "--n_envs", "1", "--vec_env", "subproc", "--no_progress",
            "--run_dir"]
    assert main([*base, str(tmp_path / "a"), "--num_timesteps", "3000"]) == 0
    err = capsys.readouterr().err
    # 5 warm-up iterations of 1024 steps with one env: 3000 steps end inside them
    assert "--num_timesteps 3000 ends inside the critic warm-up (5 iterations, 5120 env steps)" in err
    assert main([*base, str(tmp_path / "b"), "--num_timesteps", "6000"]) == 0
    assert "warning" not in capsys.readouterr().err and len(started) == 2
    assert main([*base, str(tmp_path / "c"), "--num_timesteps", "6000", "--mocap", "run"]) == 0
    assert "was trained on clip 'walk'; fine-tuning it on 'run'" in capsys.readouterr().err
    assert started[-1].env_id == "MimicHumanoidRun-v0"
    # pose-deviation termination shapes the fine-tuning episodes as it does train's
    assert main([*base, str(tmp_path / "d"), "--num_timesteps", "6000", "--termination_distance", "1.0"]) == 0
    assert started[-1].env_kwargs == {"termination_distance": 1.0}
    assert main([*base, str(tmp_path / "e"), "--termination_distance", "0"]) == 2
    assert "--termination_distance must be a positive number of metres, got 0.0" in capsys.readouterr().err
    assert len(started) == 4
    # starts in the expert's states: the file must exist, and the batched env is needed
    assert main([*base, str(tmp_path / "f"), "--expert_starts", str(tmp_path / "none.npz")]) == 2
    assert "--expert_starts" in (err := capsys.readouterr().err) and "does not exist" in err and "--save_demos" in err
    demos = tmp_path / "dart.npz"
    demos.write_bytes(b"")  # only its existence is checked here; the env reads it (tests/test_vec_env.py)
    assert main([*base, str(tmp_path / "g"), "--expert_starts", str(demos)]) == 2
    assert "--expert_starts needs --vec_env batched" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "h"), "--num_timesteps", "6000", "--vec_env", "batched", "--expert_starts",
                 str(demos), "--expert_start_share", "0.3"]) == 0
    assert (started[-1].expert_starts, started[-1].expert_start_share) == (str(demos.resolve()), 0.3)
    assert len(started) == 5


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("extend") / "ppo"
    args = ["--save_per_iter", "1", "--n_envs", "1", "--n_steps", "64", "--batch_size", "64", "--eval_episodes", "1",
            "--hidden_size", "8", "--num_layers", "1", "--no_progress"]
    code, _ = _quiet(main, ["train", "--algo", "ppo", "--num_timesteps", "128", "--run_dir", str(run_dir), *args])
    assert code == 0
    code, out = _quiet(main, ["train", "--resume", str(run_dir), "--num_timesteps", "256", "--no_progress"])
    th.set_num_threads(1)
    assert code == 0
    return run_dir, out


def test_resume_with_a_larger_num_timesteps_extends_the_run(extended_run):
    run_dir, out = extended_run
    assert "Extending" in out and "from 128 to 256 steps" in out
    assert json.loads((run_dir / "run.json").read_text())["num_timesteps"] == 256
    assert [row["env_steps"] for row in _rows(run_dir)] == [0, 64, 128, 192, 256]  # the step count continues
    assert PPO.load(run_dir / "final_model.zip", device="cpu").num_timesteps == 256
    with pytest.raises(ValueError, match="can only be extended"):
        resume_training(run_dir, progress_bar=False, num_timesteps=100)


def test_checkpoint_evaluations_and_training_terms_reach_tensorboard(extended_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = extended_run
    tags: set[str] = set()
    steps: dict[str, list[int]] = {}
    for folder in sorted((run_dir / "tb").iterdir()):
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            tags.add(tag)
            steps.setdefault(tag, []).extend(e.step for e in events.Scalars(tag))
    wanted = {"eval/normalized_return", "eval/mean_survival_s", "eval/fall_rate", "eval/mpjpe_mm",
              *(f"eval/reward_{t}" for t in ("pose", "velocity", "end_effector", "root", "com"))}
    assert wanted <= tags, sorted(wanted - tags)
    assert sorted(steps["eval/normalized_return"]) == [0, 64, 128, 192, 256]  # one per row of evaluations.csv
    assert {f"rollout/reward_{t}" for t in ("pose", "com")} <= tags  # the training episodes' terms
    rows = _rows(run_dir)
    events = [e for folder in sorted((run_dir / "tb").iterdir()) for e in _scalars(folder, "eval/mean_survival_s")]
    by_step = {e.step: e.value for e in events}
    for row in rows:
        assert by_step[int(row["env_steps"])] == pytest.approx(row["mean_survival_s"], rel=1e-6)


def _scalars(folder: Path, tag: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


# ------------------------------------------------------------------------------------------------------------
# crashes: partial tables, corrupt checkpoints, SIGKILL at random moments

TINY_CLI = ["--algo", "ppo", "--save_per_iter", "1", "--n_envs", "1", "--n_steps", "64", "--batch_size", "64",
            "--eval_episodes", "1", "--hidden_size", "8", "--num_layers", "1", "--no_progress"]


def test_a_partial_evaluation_row_and_a_corrupt_checkpoint_do_not_block_a_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_CLI, "--num_timesteps", "128", "--run_dir", str(run_dir)]) == 0
    with (run_dir / "evaluations.csv").open("a") as f:
        f.write("3,192,1.5,0.4")  # a row cut off by a crash
    newest = _checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a checkpoint cut off (as if written without the atomic rename)
    (run_dir / "checkpoints" / ".model_000000000192_steps.tmp.zip").write_bytes(b"partial")
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--num_timesteps", "256", "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint {newest.name} is unreadable" in out and "resuming from model_000000000064_steps.zip" in out
    assert (run_dir / "checkpoints" / (newest.name + ".corrupt")).is_file()  # kept, not deleted
    assert not list((run_dir / "checkpoints").glob(".*.tmp.zip"))  # the leftover is cleaned
    assert [row["env_steps"] for row in _rows(run_dir)] == [0, 64, 128, 192, 256]  # every step once, partial row gone
    assert PPO.load(run_dir / "final_model.zip", device="cpu").num_timesteps == 256


def _run_killed_at_random_moments(command: str, args: list[str], iterations: int, tmp_path: Path, run_with_random_kills,
                                  *, span: float, seed: int) -> tuple[Path, int]:
    """``sb3-mimic COMMAND ARGS --run_dir DIR`` (one checkpoint per iteration) SIGKILLed at random moments and
    resumed until it finishes; returns DIR and the number of kills.  Kills are timed from an uninterrupted run of
    the same command, so they land within ``span`` checkpoints' length on any machine."""
    import time

    run_dir = tmp_path / "killed"
    start = [sys.executable, "-m", "sb3_mimic", command, *args, "--run_dir", str(run_dir)]
    began = time.perf_counter()
    subprocess.run([*start[:-1], str(tmp_path / "whole")], check=True, capture_output=True, timeout=300)
    checkpoint_s = (time.perf_counter() - began) / iterations

    def evaluated() -> int:
        path = run_dir / "evaluations.csv"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def resume() -> list[str]:
        if not _checkpoints(run_dir):  # killed before its first checkpoint: the run starts again
            shutil.rmtree(run_dir, ignore_errors=True)
            return start
        return [sys.executable, "-m", "sb3_mimic", command, "--resume", str(run_dir), "--no_progress"]

    kills = run_with_random_kills(lambda: start, resume, evaluated, checkpoint_s, np.random.default_rng(seed),
                                  span=span)
    return run_dir, kills


def test_a_run_killed_at_random_moments_resumes_with_every_checkpoint_evaluated_once(tmp_path, run_with_random_kills):
    run_dir, kills = _run_killed_at_random_moments("train", [*TINY_CLI, "--num_timesteps", "2560"], 40, tmp_path,
                                                   run_with_random_kills, span=8, seed=1)
    assert kills >= 1  # the first attempt at least dies before its first few checkpoints
    steps = [row["env_steps"] for row in _rows(run_dir)]
    assert steps == [64 * k for k in range(41)]  # every checkpoint's evaluation once, in order, none lost
    for path in _checkpoints(run_dir):
        PPO.load(path, device="cpu")
    assert PPO.load(run_dir / "final_model.zip", device="cpu").num_timesteps == 2560
    assert not [p for p in run_dir.rglob(".*") if p.is_file()]  # no temporary file left behind


def test_a_finetune_run_killed_at_random_moments_resumes_its_warmup_imitation_and_teacher(
    sft_zip, tmp_path, run_with_random_kills
):
    """``finetune`` under SIGKILL at random moments: every checkpoint evaluated once, the critic warm-up (1
    iteration) done once, the imitation term toward the reloaded SFT policy counted from the warm-up's end."""
    iterations, anneal = 8, 1280
    args = ["--load_sft_pretrain", str(sft_zip), "--critic_warmup", "1", "--imitation_anneal", str(anneal),
            "--save_per_iter", "1", "--n_envs", "1", "--n_steps", "64", "--batch_size", "64", "--eval_episodes", "1",
            "--no_progress", "--num_timesteps", str(64 * iterations)]  # fmt: skip
    run_dir, kills = _run_killed_at_random_moments("finetune", args, iterations, tmp_path, run_with_random_kills,
                                                   span=3, seed=2)
    assert kills >= 1
    assert [row["env_steps"] for row in _rows(run_dir)] == [64 * k for k in range(iterations + 1)]
    teacher = load_policy(sft_zip).policy.state_dict()
    assert [_steps(path) for path in _checkpoints(run_dir)] == [64 * k for k in range(iterations + 1)]
    for path in _checkpoints(run_dir):
        model = MimicTRPO.load(path, device="cpu")
        assert model.num_timesteps == _steps(path)
        # the warm-up iteration moved the critic alone; every later one the actor too, the imitation term counted
        # from the end of the warm-up (a resume that redid the warm-up or restarted the term would move it)
        assert _actor_equal(model.policy.state_dict(), teacher) == (model.num_timesteps <= 64), path.name
        if model.num_timesteps > 64:
            assert model.imitation_start == 64 and model.imitation_optimizer.state, path.name
    final = MimicTRPO.load(run_dir / "final_model.zip", device="cpu")
    assert final.num_timesteps == 64 * iterations
    assert final.imitation_weight() == pytest.approx(1.0 - (64 * iterations - 64) / anneal)
    assert not [p for p in run_dir.rglob(".*") if p.is_file()]  # no temporary file left behind


def _drop_last_evaluation_and_final_model(run_dir: Path) -> None:
    lines = (run_dir / "evaluations.csv").read_text().splitlines()
    (run_dir / "evaluations.csv").write_text("\n".join(lines[:-1]) + "\n")
    (run_dir / "final_model.zip").unlink()


def test_the_evaluation_of_the_checkpoint_a_resume_starts_from_is_not_lost(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_CLI, "--num_timesteps", "128", "--run_dir", str(run_dir)]) == 0
    rows = _rows(run_dir)
    # as if killed after the checkpoint at 128 steps was written and before its evaluation row was
    _drop_last_evaluation_and_final_model(run_dir)
    assert main(["train", "--resume", str(run_dir), "--num_timesteps", "192", "--no_progress"]) == 0
    after = _rows(run_dir)
    assert [row["env_steps"] for row in after] == [0, 64, 128, 192]
    assert after[2]["normalized_return"] == pytest.approx(rows[2]["normalized_return"])  # the same policy, evaluated


def test_pose_deviation_termination_shapes_training_episodes_but_not_evaluations(tmp_path, capsys):
    run_dir = tmp_path / "dev"
    assert main(["train", *TINY_CLI, "--num_timesteps", "64", "--termination_distance", "0.3", "--action_mode", "residual",
                 "--run_dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "run.json").read_text())
    assert config["env_kwargs"] == {"action_mode": "residual", "termination_distance": 0.3}
    meta = read_metadata(run_dir / "final_model.zip")
    assert meta.env_kwargs == {"action_mode": "residual"}  # the policy's env, and its evaluations, fall as usual
    assert main(["train", *TINY_CLI, "--termination_distance", "-1", "--run_dir", str(tmp_path / "bad")]) == 2
    assert "--termination_distance must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_episode_length_curriculum_grows_the_training_limit_from_its_start_to_the_full_episode(tmp_path):
    """DeepMimic's curriculum: the limit at each rollout's start is start + (full - start) * steps / T, in control
    steps, and the training episodes are truncated there."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from sb3_mimic.envs import MimicHumanoidVecEnv

    curriculum = rl.EpisodeCurriculumCallback(steps=6000, start_s=0.5)
    curriculum.full = 600
    assert [curriculum.limit(t, 1 / 30) for t in (0, 1500, 3000, 6000, 10**6)] == [15, 161, 308, 600, 600]
    seen, lengths = [], []

    class Watch(BaseCallback):
        def _on_rollout_start(self) -> None:
            seen.append(self.training_env.unwrapped.max_episode_steps)

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
                if done:
                    lengths.append((len(seen), info.get("TimeLimit.truncated", False)))
            return True

    env = MimicHumanoidVecEnv(2, "walk", action_mode="residual", threads=1, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, device="cpu", seed=0,
                policy_kwargs={"net_arch": [8], "log_std_init": -5.0})
    model.learn(3 * 64, callback=CallbackList([rl.EpisodeCurriculumCallback(192, 0.2), Watch()]))
    env.close()
    assert seen == [6, 204, 402]  # 0.2 s = 6 control steps at the start, then +198 every 64 env steps
    assert (1, True) in lengths  # the first rollout's episodes were cut at its 6-step limit
    with pytest.raises(ValueError, match="vec_env batched"):
        _config(curriculum_steps=100, vec_env="subproc").validate()
    # the command line passes it to the run
    run_dir = tmp_path / "cli"
    assert main(["train", *TINY_CLI[:TINY_CLI.index("--n_envs")], "--vec_env", "batched", "--n_envs", "2",
                 "--n_steps", "32", "--batch_size", "64", "--eval_episodes", "1", "--hidden_size", "8", "--num_layers",
                 "1", "--no_progress", "--num_timesteps", "64", "--curriculum", "1000", "--run_dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "run.json").read_text())["curriculum_steps"] == 1000


def test_a_run_killed_after_its_last_checkpoint_gets_that_evaluation_and_its_final_model_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_CLI, "--num_timesteps", "128", "--run_dir", str(run_dir)]) == 0
    rows = _rows(run_dir)
    # as if killed after the last checkpoint was written, before its evaluation row and final_model.zip
    _drop_last_evaluation_and_final_model(run_dir)
    assert main(["train", "--resume", str(run_dir), "--no_progress"]) == 0
    after = _rows(run_dir)
    assert [row["env_steps"] for row in after] == [0, 64, 128]
    assert after[-1]["normalized_return"] == pytest.approx(rows[-1]["normalized_return"])
    assert PPO.load(run_dir / "final_model.zip", device="cpu").num_timesteps == 128
