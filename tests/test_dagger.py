"""DAgger: rounds grow the data set, an interrupted run resumes, the output loads where SFT policies do."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mimic.cli import main
from sb3_mimic.dagger import CONFIG_FILE, DAggerConfig, _DAggerTrainer, beta_schedule, run_dagger
from sb3_mimic.experts import MPCSettings, PDExpert
from sb3_mimic.rl import RunConfig, run_training
from sb3_mimic.policies import DEFAULT_EXPLORATION_STD, load_policy, make_trpo, set_exploration_std
from imitation.algorithms import bc
from imitation.algorithms.dagger import SimpleDAggerTrainer

TINY = dict(mocap="walk", expert="pd", steps_per_round=120, epochs_per_round=1, hidden_size=16, num_layers=1,
            batch_size=32)


def _trainer_kwargs(venv, tmp_path):
    """A fresh 16-unit TRPO policy and the keyword arguments of a DAgger trainer around it (PD expert)."""
    model = make_trpo(venv, 16, 1, seed=0)
    rng = np.random.default_rng(0)
    learner = bc.BC(observation_space=venv.observation_space, action_space=venv.action_space, rng=rng,
                    policy=model.policy, device="cpu")
    return model, dict(venv=venv, scratch_dir=tmp_path, expert_policy=PDExpert.for_env(venv), rng=rng,
                       bc_trainer=learner)


def _round_dirs(run_dir):
    return sorted(p.name for p in (run_dir / "demos").iterdir())


def _labelled(run_dir):
    return sum(1 for _ in (run_dir / "demos").rglob("*.npz"))


def test_rounds_grow_the_data_and_an_interrupted_run_resumes(tmp_path):
    run_dir = tmp_path / "dagger"
    run_dagger(DAggerConfig(rounds=2, **TINY), run_dir, log=lambda *_: None)
    assert json.loads((run_dir / CONFIG_FILE).read_text())["rounds_done"] == 2
    assert _round_dirs(run_dir) == ["round-000", "round-001"]
    after_two = _labelled(run_dir)
    # a run asked for 3 rounds that stopped after 2 looks like this on disk: continue it (written before
    # --beta_rampdown existed, which a resume then reads as off)
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    state["config"]["rounds"] = 3
    del state["config"]["beta_rampdown"]
    (run_dir / CONFIG_FILE).write_text(json.dumps(state))
    model = run_dagger(None, run_dir, resume=True, log=lambda *_: None)
    assert json.loads((run_dir / CONFIG_FILE).read_text())["rounds_done"] == 3
    assert _round_dirs(run_dir) == ["round-000", "round-001", "round-002"] and _labelled(run_dir) > after_two
    saved = TRPO.load(run_dir / "policy.zip", device="cpu")
    assert saved.sb3_mimic["trained_by"] == "dagger (pd)" and saved.sb3_mimic["rounds"] == 3
    for key, value in model.policy.state_dict().items():
        assert (value == saved.policy.state_dict()[key]).all()


def test_a_killed_runs_scratch_folder_is_removed_when_the_run_resumes(tmp_path, dead_pid, live_pid, monkeypatch):
    # BC's logger folder lives in the run folder as .bc_scratch_<pid>_XXXX (a SIGKILL leaves it behind), not in the
    # system's temporary folder
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    run_dir = tmp_path / "dagger"
    run_dagger(DAggerConfig(rounds=1, **TINY), run_dir, log=lambda *_: None)
    assert not list(run_dir.glob(".bc_scratch_*"))  # a finished run removes its own
    stale, running = run_dir / f".bc_scratch_{dead_pid}_k1ll", run_dir / f".bc_scratch_{live_pid}_l1ve"
    for folder in (stale, running):
        folder.mkdir()
        (folder / "progress.csv").write_text("x\n")
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    state["config"]["rounds"] = 2
    (run_dir / CONFIG_FILE).write_text(json.dumps(state))
    run_dagger(None, run_dir, resume=True, log=lambda *_: None)
    assert not stale.exists()  # its process is gone
    assert sorted(run_dir.glob(".bc_scratch_*")) == [running]  # another live process's is not touched
    assert not list(system_tmp.glob("sb3_mimic*"))


def test_dagger_output_loads_in_finetune(tmp_path):
    run_dir = tmp_path / "dagger"
    run_dagger(DAggerConfig(rounds=1, **TINY), run_dir, log=lambda *_: None)
    assert load_policy(run_dir / "policy.zip").policy_kwargs["net_arch"]["pi"] == [16]
    config = RunConfig(algo="trpo", env_id="MimicHumanoidWalk-v0", env_kwargs={}, num_timesteps=64, n_envs=1,
                       eval_episodes=1, critic_warmup_iterations=1, load_sft_pretrain=str(run_dir / "policy.zip"),
                       hyperparameters={"n_steps": 64, "batch_size": 32})
    model = run_training(config, tmp_path / "finetune", progress_bar=False)
    assert model.num_timesteps == 64 and (tmp_path / "finetune" / "final_model.zip").exists()


def test_dagger_refuses_a_missing_or_reused_run_folder(tmp_path, capsys):
    assert main(["dagger", "--resume", str(tmp_path / "none")]) == 2
    assert "holds no DAgger run" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    run_dagger(DAggerConfig(rounds=1, **TINY), run_dir, log=lambda *_: None)
    with pytest.raises(ValueError, match="--resume"):
        run_dagger(DAggerConfig(rounds=1, **TINY), run_dir)


def test_mpc_dagger_records_the_planner_settings_it_used(tmp_path):
    run_dir = tmp_path / "dagger_mpc"
    config = DAggerConfig(rounds=1, **{**TINY, "expert": "mpc", "steps_per_round": 32},
                          mpc_kwargs={"horizon": 3, "samples": 3, "nthread": 1})
    run_dagger(config, run_dir, log=lambda *_: None)
    first = json.loads((run_dir / CONFIG_FILE).read_text())
    recorded = first["mpc_settings"]
    # the config as given; beside it what was given and walk's settings (the defaults) for the rest, so that a
    # resumed run plans the same way
    assert first["config"]["mpc_kwargs"] == {"horizon": 3, "samples": 3, "nthread": 1}
    assert recorded == {**MPCSettings().to_dict(), "horizon": 3, "samples": 3}
    assert TRPO.load(run_dir / "policy.zip", device="cpu").sb3_mimic["trained_by"] == "dagger (mpc)"
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    state["config"]["rounds"] = 2
    (run_dir / CONFIG_FILE).write_text(json.dumps(state))
    run_dagger(None, run_dir, resume=True, log=lambda *_: None)  # takes back every recorded setting
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    assert state["rounds_done"] == 2 and state["mpc_settings"] == recorded
    assert state["config"]["mpc_kwargs"] == first["config"]["mpc_kwargs"]


def test_a_resumed_stateless_mpc_dagger_keeps_its_expert_seed(tmp_path, monkeypatch):
    from sb3_mimic.experts import mpc

    seeds = []
    original = mpc.MPCExpert.__init__

    def recorded(self, *args, seed=0, **kwargs):
        seeds.append(seed)
        original(self, *args, seed=seed, **kwargs)

    monkeypatch.setattr(mpc.MPCExpert, "__init__", recorded)
    run_dir = tmp_path / "stateless"
    config = DAggerConfig(rounds=1, seed=7, **{**TINY, "expert": "mpc", "steps_per_round": 40},
                          mpc_kwargs={"horizon": 3, "samples": 3, "stateless": True, "nthread": 1})
    run_dagger(config, run_dir, log=lambda *_: None)
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    state["config"]["rounds"] = 2
    (run_dir / CONFIG_FILE).write_text(json.dumps(state))
    run_dagger(None, run_dir, resume=True, log=lambda *_: None)
    assert seeds == [7, 7]  # the same fixed perturbations, so the same labelling function in every round


def test_the_learner_acts_with_its_mean_action_while_a_round_is_collected(tmp_path):
    venv = DummyVecEnv([lambda: gym.make("MimicHumanoidWalk-v0")])
    model, kwargs = _trainer_kwargs(venv, tmp_path)
    set_exploration_std(model, DEFAULT_EXPLORATION_STD)  # as every DAgger round leaves it
    obs = venv.reset()
    mean_action = model.policy.predict(obs, deterministic=True)[0]
    ours = _DAggerTrainer(**kwargs).create_trajectory_collector()
    np.testing.assert_array_equal(ours.get_robot_acts(obs), mean_action)
    np.testing.assert_array_equal(ours.get_robot_acts(obs), mean_action)
    # imitation's own collector samples around it, with the policy's exploration std
    sampled = SimpleDAggerTrainer(**kwargs).create_trajectory_collector().get_robot_acts(obs)
    assert 0.5 * DEFAULT_EXPLORATION_STD < np.std(sampled - mean_action) < 2 * DEFAULT_EXPLORATION_STD


def test_a_blending_round_executes_the_weighted_mean_of_expert_and_learner(tmp_path):
    executed = []

    class Record(gym.Wrapper):
        def step(self, action):
            executed.append(np.array(action))
            return self.env.step(action)

    venv = DummyVecEnv([lambda: Record(gym.make("MimicHumanoidWalk-v0"))])
    model, kwargs = _trainer_kwargs(venv, tmp_path)
    trainer = _DAggerTrainer(**kwargs, beta_schedule=lambda round_num: 0.25, mixing="blend")
    collector = trainer.create_trajectory_collector()
    obs = collector.reset()
    expert_action = np.full((1, 28), 0.2, dtype=np.float32)
    learner_action = model.policy.predict(obs, deterministic=True)[0]
    collector.step(expert_action)
    np.testing.assert_allclose(executed[-1], 0.25 * expert_action[0] + 0.75 * learner_action[0], rtol=0, atol=1e-6)
    assert np.abs(learner_action - expert_action).max() > 0.05  # the blend differs from either action
    # the label kept for the step is the expert's action
    assert collector._last_user_actions is expert_action


def _blending_cli_run(tmp_path, monkeypatch, *extra: str) -> tuple[list[str], dict, list[float]]:
    """Run ``sb3-mimic dagger --mixing blend`` (PD expert, tiny) and record the beta of every blended step."""
    from sb3_mimic import dagger

    betas = []
    original = dagger._BlendingCollector.step_async

    def counted(self, actions):
        betas.append(self.beta)
        original(self, actions)

    monkeypatch.setattr(dagger._BlendingCollector, "step_async", counted)
    run_dir = tmp_path / "blend"
    argv = ["dagger", "--mocap", "walk", "--expert", "pd", "--epochs_per_round", "1", "--hidden_size", "16",
            "--num_layers", "1", "--batch_size", "32", *extra, "--mixing", "blend", "--run_dir", str(run_dir)]
    assert main(argv) == 0
    return argv, json.loads((run_dir / CONFIG_FILE).read_text()), betas


def test_the_command_line_runs_a_blending_dagger_and_records_it(tmp_path, monkeypatch):
    argv, state, betas = _blending_cli_run(tmp_path, monkeypatch, "--rounds", "2", "--steps_per_round", "60")
    assert state["rounds_done"] == 2 and state["config"]["mixing"] == "blend"
    assert sorted(set(betas)) == [0.5, 1.0]  # both rounds collected by blending, with beta 0.5 ** round
    with pytest.raises(SystemExit) as exit_info:
        main([*argv[:-4], "--mixing", "average", "--run_dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2


def test_beta_falls_linearly_to_zero_with_a_rampdown_and_exponentially_without():
    linear = beta_schedule(DAggerConfig(beta_rampdown=4, beta_decay=0.9))
    np.testing.assert_allclose([linear(r) for r in range(6)], [1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    exponential = beta_schedule(DAggerConfig(beta_decay=0.8))
    np.testing.assert_allclose([exponential(r) for r in range(3)], [1.0, 0.8, 0.64])


def test_the_command_line_ramps_beta_down_until_the_learner_collects_alone(tmp_path, monkeypatch):
    _, state, betas = _blending_cli_run(tmp_path, monkeypatch, "--rounds", "3", "--steps_per_round", "32",
                                        "--beta_rampdown", "2")
    assert state["rounds_done"] == 3 and state["config"]["beta_rampdown"] == 2
    assert sorted(set(betas)) == [0.0, 0.5, 1.0]  # round 2 ran the learner alone


def test_each_round_shows_a_progress_bar_of_its_labels_and_logs_its_wall_time(tmp_path, capsys):
    lines = []
    run_dagger(DAggerConfig(rounds=1, **TINY), tmp_path / "bar", log=lines.append, progress_bar=True)
    bar = capsys.readouterr().err
    assert "round 1/1" in bar and "/120" in bar and "label" in bar  # total: --steps_per_round
    assert len(lines) == 1 and lines[0].startswith("round 1/1:") and " min; saved " in lines[0]
    run_dagger(DAggerConfig(rounds=1, **TINY), tmp_path / "quiet", log=lines.append)
    assert capsys.readouterr().err == ""


def test_dagger_trains_a_residual_learner_with_residual_labels(tmp_path):
    """``action_mode="residual"``: the learner acts in a residual env, the PD expert labels in residual units (0:
    plain tracking), and the policy file records the mode."""
    from imitation.data import serialize

    run_dir = tmp_path / "residual"
    run_dagger(DAggerConfig(rounds=1, action_mode="residual", **TINY), run_dir, log=lambda *_: None)
    labels = np.concatenate([t.acts for path in sorted((run_dir / "demos" / "round-000").glob("*.npz"))
                             for t in serialize.load(path)])
    assert len(labels) >= 120 and np.abs(labels).max() < 1e-5
    model = load_policy(run_dir / "policy.zip")
    assert model.sb3_mimic["action_mode"] == "residual"
    assert model.get_env().envs[0].unwrapped.action_mode == "residual"


def _dagger_cli(run_dir, *extra):
    return [sys.executable, "-m", "sb3_mimic", "dagger", "--rounds", "6", "--steps_per_round", "128", "--epochs_per_round",
            "2", "--batch_size", "32", "--hidden_size", "8", "--num_layers", "1", "--seed", "3", "--no_progress",
            *extra]


def _round_data(run_dir):
    from imitation.data import serialize

    rounds = {}
    for folder in sorted((run_dir / "demos").iterdir()):
        rounds[folder.name] = [(t.obs, t.acts) for path in sorted(folder.glob("*.npz")) for t in serialize.load(path)]
    return rounds


def test_a_dagger_run_killed_at_random_moments_resumes_to_exactly_the_uninterrupted_run(tmp_path, run_with_random_kills):
    import time

    whole = tmp_path / "whole"
    began = time.perf_counter()
    subprocess.run(_dagger_cli(whole, "--run_dir", str(whole)), check=True, capture_output=True, timeout=300)
    round_s = (time.perf_counter() - began) / 6  # kills land within a round's length, on any machine
    killed = tmp_path / "killed"

    def rounds_done() -> int:
        path = killed / CONFIG_FILE
        return json.loads(path.read_text())["rounds_done"] if path.exists() else 0

    def resume() -> list[str]:  # killed before the run was recorded: start it again
        if not (killed / CONFIG_FILE).exists():
            return _dagger_cli(killed, "--run_dir", str(killed))
        return _dagger_cli(killed, "--resume", str(killed))

    kills = run_with_random_kills(lambda: _dagger_cli(killed, "--run_dir", str(killed)), resume, rounds_done, round_s,
                                  np.random.default_rng(0))
    assert kills >= 1  # the first attempt at least dies inside its first round
    assert json.loads((killed / CONFIG_FILE).read_text())["rounds_done"] == 6
    assert sorted(p.name for p in (killed / "demos").iterdir()) == [f"round-{r:03d}" for r in range(6)]
    ours, theirs = _round_data(killed), _round_data(whole)
    assert list(ours) == list(theirs)
    for name in ours:  # the same episodes, no episode of an aborted attempt
        assert len(ours[name]) == len(theirs[name]), name
        for (obs_a, acts_a), (obs_b, acts_b) in zip(ours[name], theirs[name], strict=True):
            np.testing.assert_array_equal(obs_a, obs_b)
            np.testing.assert_array_equal(acts_a, acts_b)
    a = TRPO.load(killed / "policy.zip", device="cpu").policy.state_dict()
    b = TRPO.load(whole / "policy.zip", device="cpu").policy.state_dict()
    assert all(th.equal(a[k], b[k]) for k in a)  # and the same policy, BC's optimizer state included


def test_saved_rounds_are_read_as_arrays_without_jsonpickle_or_pickle(tmp_path, monkeypatch):
    import jsonpickle

    from imitation.data import serialize
    from sb3_mimic.dagger import load_round_episodes

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dagger(DAggerConfig(rounds=1, **TINY), run_dir, log=lambda *_: None)
    folder = run_dir / "demos" / "round-000"
    theirs = [t for path in sorted(folder.glob("*.npz")) for t in serialize.load(path)]
    decoded = []
    monkeypatch.setattr(jsonpickle, "decode", lambda *a, **k: decoded.append(1))
    ours = load_round_episodes(folder)
    assert decoded == [] and len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
        assert a.terminal == b.terminal and a.infos is None
    # a plain pickled .npz planted in a round folder (what imitation would np.load with allow_pickle) is refused
    np.save(folder / "planted.npz", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not an episode saved by sb3-mimic dagger"):
        load_round_episodes(folder)


def test_a_resumed_run_reads_its_saved_rounds_and_files_without_unpickling_anything(tmp_path, monkeypatch):
    # the whole resumed run (state, policy, BC optimizer, every saved round, the new round) with jsonpickle and
    # pickle's loaders made to fail: nothing it reads back may be decoded by them
    import pickle

    import jsonpickle

    from sb3_mimic import dagger

    run_dir = tmp_path / "run"
    run_dagger(DAggerConfig(rounds=1, **TINY), run_dir, log=lambda *_: None)
    state = json.loads((run_dir / CONFIG_FILE).read_text())
    state["config"]["rounds"] = 2
    (run_dir / CONFIG_FILE).write_text(json.dumps(state))
    unpickled = []

    def refuse(name):
        def refused(*args, **kwargs):
            unpickled.append(name)
            raise AssertionError(f"{name} called while a DAgger run was resumed")

        return refused

    for module, name in ((jsonpickle, "decode"), (pickle, "loads"), (pickle, "load")):
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    read = []
    original = dagger.load_round_episodes
    monkeypatch.setattr(dagger, "load_round_episodes", lambda folder: read.append(folder.name) or original(folder))
    run_dagger(None, run_dir, resume=True, log=lambda *_: None)
    assert unpickled == []
    assert "round-000" in read and "round-001" in read  # the saved round was read back, and the new one
    assert json.loads((run_dir / CONFIG_FILE).read_text())["rounds_done"] == 2


def test_a_kill_after_a_rounds_policy_is_saved_but_before_it_is_counted_resumes_from_the_counted_policy(tmp_path,
                                                                                                         monkeypatch):
    """The round's policy is staged until the state file counts the round: a kill in between (here: the state write
    fails) leaves policy.zip the last counted round's, so the resumed run redoes the round from it and ends where an
    uninterrupted run ends."""
    from sb3_mimic import dagger

    whole = tmp_path / "whole"
    run_dagger(DAggerConfig(rounds=2, **TINY), whole, log=lambda *_: None)
    killed = tmp_path / "killed"
    real = dagger.write_json_atomic

    def dies_counting_round_2(path, state):
        if state.get("rounds_done") == 2:
            raise KeyboardInterrupt("killed")
        real(path, state)

    monkeypatch.setattr(dagger, "write_json_atomic", dies_counting_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_dagger(DAggerConfig(rounds=2, **TINY), killed, log=lambda *_: None)
    monkeypatch.setattr(dagger, "write_json_atomic", real)
    assert (killed / ".policy-round-002.zip").exists()  # staged, not counted
    after_one = tmp_path / "one"
    run_dagger(DAggerConfig(rounds=1, **TINY), after_one, log=lambda *_: None)
    a, b = load_policy(killed / "policy.zip").policy.state_dict(), load_policy(after_one / "policy.zip").policy.state_dict()
    assert all(th.equal(a[k], b[k]) for k in a)  # policy.zip is still round 1's
    run_dagger(DAggerConfig(rounds=2, **TINY), killed, resume=True, log=lambda *_: None)
    assert not list(killed.glob(".policy-round-*")) and not list(killed.glob(".bc_optimizer-round-*"))
    a, b = load_policy(killed / "policy.zip").policy.state_dict(), load_policy(whole / "policy.zip").policy.state_dict()
    assert all(th.equal(a[k], b[k]) for k in a)


def test_a_warm_start_from_a_policy_of_another_clip_warns_naming_both(tmp_path, monkeypatch, capsys):
    from sb3_mimic import dagger

    started = []
    monkeypatch.setattr(dagger, "run_dagger", lambda config, run_dir, **_: started.append(config))
    base = ["dagger", "--init_policy", "pretrained:walk", "--expert", "pd", "--no_progress", "--run_dir"]
    assert main([*base, str(tmp_path / "a"), "--mocap", "run"]) == 0
    assert "pretrained:walk was trained on clip 'walk'; DAgger trains it on 'run'" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "b"), "--mocap", "humanoid3d_walk"]) == 0  # the same clip, by its long name
    assert "warning" not in capsys.readouterr().err
    assert [c.mocap for c in started] == ["run", "humanoid3d_walk"]
