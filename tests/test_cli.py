"""The ``sb3-mimic`` command line: argument errors, help, and tiny ``sft`` and ``eval`` runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import gymnasium
import numpy as np
import pytest
from sb3_contrib import TRPO

import sb3_mimic
import sb3_mimic.demos
from sb3_mimic import policies
from sb3_mimic.cli import DEFAULT_NUM_TIMESTEPS, build_parser, main, mpc_overrides
from sb3_mimic.evaluation import evaluate, policy_actor

GUIDE_ARGS = [
    "--mocap", "--epochs", "--batch_size", "--lr", "--lookahead", "--hidden_size", "--num_layers", "--val_split",
    "--save_path", "--eval_episodes", "--no_eval",
]
EVAL_KEYS = {
    "mean_reward", "std_reward", "min_reward", "max_reward", "normalized_return", "mean_survival_s", "fall_rate",
    "mpjpe_mm", "episodes", "std_normalized_return", "std_survival_s", "std_mpjpe_mm",
}
TINY = ["--mocap", "walk", "--epochs", "2", "--n_samples", "300", "--n_rollouts", "3", "--hidden_size", "16",
        "--num_layers", "1", "--no_progress"]


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Make any start of the SFT work (demonstrations) fail the test; run in an empty folder."""

    def refuse(*args, **kwargs):
        raise AssertionError("sb3-mimic sft started working despite a bad argument")

    monkeypatch.setattr(sb3_mimic.demos, "teacher_forcing", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (["--mocap", "wlak"], ["wlak", "Available clips", "walk", "dance_a"]),
        (["--lookahead", "0"], ["--lookahead"]),
        (["--val_split", "1.5"], ["--val_split"]),
        (["--val_split", "0"], ["--val_split"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--batch_size", "0"], ["--batch_size"]),
        (["--lr", "-1"], ["--lr"]),
        (["--hidden_size", "0"], ["--hidden_size"]),
        (["--eval_episodes", "0"], ["--eval_episodes"]),
    ],
)
def test_sft_bad_arguments_fail_before_any_work(no_work, capsys, args, messages):
    start = time.perf_counter()
    code = main(["sft", *args, "--save_path", str(no_work / "p.zip"), "--no_progress"])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2 and elapsed < 5.0
    assert out == ""  # not even the "SFT on ..." line: nothing started
    assert err.startswith("sb3-mimic sft: error:")
    for message in messages:
        assert message in err
    assert list(no_work.iterdir()) == []


def test_sft_unwritable_save_path_fails_before_any_work(no_work, capsys):
    blocker = no_work / "afile"
    blocker.write_text("a regular file, not a folder\n")
    target = blocker / "x.zip"
    start = time.perf_counter()
    code = main(["sft", *TINY, "--save_path", str(target)])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2 and elapsed < 5.0 and out == ""
    assert "cannot write" in err and str(target) in err
    assert blocker.read_text() == "a regular file, not a folder\n"
    (no_work / "folder.zip").mkdir()
    assert main(["sft", *TINY, "--save_path", str(no_work / "folder.zip")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_eval_bad_arguments(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "missing.zip")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "--expert", "pd"]) == 2
    assert "--mocap" in capsys.readouterr().err
    assert main(["eval", "--expert", "pd", "--mocap", "walk", "--eval_episodes", "0"]) == 2
    assert "--eval_episodes" in capsys.readouterr().err
    assert main(["eval", "--expert", "pd", "--mocap", "wlak"]) == 2
    assert "Available clips" in capsys.readouterr().err
    assert main(["eval", "--expert", "mpc", "--mocap", "walk", "--mpc_horizon", "1"]) == 2
    assert "horizon must be a whole number >= 2" in capsys.readouterr().err
    assert main(["eval", "--expert", "mpc", "--mocap", "walk", "--mpc_ensemble", "2"]) == 2
    assert "also pass stateless=True (--mpc_stateless)" in capsys.readouterr().err


def test_eval_mpc_expert_with_its_options(tmp_path, capsys):
    report = tmp_path / "mpc.json"
    argv = ["eval", "--expert", "mpc", "--mocap", "walk", "--eval_episodes", "1", "--seed", "3", "--json", str(report),
            "--mpc_horizon", "4", "--mpc_samples", "4", "--mpc_noise", "0.05", "--mpc_ensemble", "2", "--mpc_stateless"]
    assert main(argv) == 0
    assert "MPC expert" in capsys.readouterr().out
    figures = json.loads(report.read_text())
    assert figures["episodes"] == 1 and figures["mean_survival_s"] > 0
    args = build_parser().parse_args(argv)
    assert (args.mpc_horizon, args.mpc_samples, args.mpc_iterations, args.mpc_noise) == (4, 4, None, 0.05)
    assert mpc_overrides(args) == {"horizon": 4, "samples": 4, "noise": 0.05, "stateless": True, "ensemble": 2}
    assert mpc_overrides(build_parser().parse_args(argv[:-1])) == {"horizon": 4, "samples": 4, "noise": 0.05, "ensemble": 2}


def test_help_lists_the_guide_arguments_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sft", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for arg in GUIDE_ARGS:
        assert arg in text, arg
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for arg in ("--model", "--expert", "--mocap", "--action_mode", "--lookahead", "--eval_episodes", "--seed", "--json"):
        assert arg in text, arg
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "sft" in text and "eval" in text
    # the guide's defaults
    args = build_parser().parse_args(["sft"])
    assert (args.mocap, args.epochs, args.batch_size, args.lr, args.lookahead) == ("humanoid3d_dance_a", 100, 256, 1e-3, 1)
    assert (args.hidden_size, args.num_layers, args.val_split) == (64, 2, 0.1)
    assert (args.save_path, args.eval_episodes, args.no_eval) == ("policy_sft_pretrained.zip", 10, False)
    assert main([]) == 2


def test_sft_end_to_end_then_eval(tmp_path, capsys):
    save = tmp_path / "tmp" / "x.zip"
    assert main(["sft", *TINY, "--eval_episodes", "2", "--save_path", str(save)]) == 0
    out = capsys.readouterr().out
    assert "Training complete! Best validation loss:" in out and "Mean Reward:" in out
    assert "Evaluation over 2 episodes" in out
    assert save.is_file()

    model = TRPO.load(save, device="cpu")  # a plain SB3 zip
    meta = model.sb3_mimic
    assert (meta["clip"], meta["env_id"], meta["action_mode"], meta["lookahead"]) == (
        "walk", "MimicHumanoidWalk-v0", "pd_target", 1
    )
    printed = float(re.search(r"Best validation loss: ([0-9.]+)", out).group(1))
    assert printed == pytest.approx(meta["best_val_loss"], abs=1e-6)
    assert meta["best_val_loss"] < meta["initial_val_loss"]
    weights = {k: v.shape for k, v in model.policy.state_dict().items()}
    assert weights["mlp_extractor.policy_net.0.weight"] == (16, 197)  # --hidden_size 16, --num_layers 1
    assert weights["action_net.weight"] == (28, 16)
    assert not any(k.startswith("mlp_extractor.policy_net.2") for k in weights)

    report = tmp_path / "eval" / "out.json"
    assert main(["eval", "--model", str(save), "--eval_episodes", "2", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Mean Reward:" in out
    figures = json.loads(report.read_text())
    assert set(figures) == EVAL_KEYS and figures["episodes"] == 2
    assert 0.0 <= figures["normalized_return"] <= 1.0 and 0.0 <= figures["fall_rate"] <= 1.0
    env = gymnasium.make("MimicHumanoidWalk-v0")
    direct = evaluate(policy_actor(policies.load_policy(save)), env, episodes=2, seed=0)
    assert figures["mean_reward"] == pytest.approx(direct.mean_reward)

    assert main(["eval", "--model", str(save), "--mocap", "walk", "--action_mode", "torque"]) == 2
    err = capsys.readouterr().err
    assert "action_mode" in err and "pd_target" in err and "torque" in err

    assert main(["eval", "--expert", "pd", "--mocap", "walk", "--eval_episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "PD expert" in out and "Evaluation over 2 episodes" in out and "Mean Reward:" in out


def test_sft_pth_without_evaluation(tmp_path, capsys):
    save = tmp_path / "p.pth"
    args = ["sft", "--mocap", "humanoid3d_walk", "--epochs", "1", "--n_samples", "100", "--n_rollouts", "0",
            "--hidden_size", "16", "--num_layers", "1", "--lookahead", "2", "--no_eval", "--no_progress",
            "--save_path", str(save)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Training complete!" in out and "Mean Reward:" not in out
    model = policies.load_policy(save)
    assert model.sb3_mimic["lookahead"] == 2 and model.sb3_mimic["n_demonstrations"] == 100
    assert model.predict(np.zeros(197, dtype=np.float32), deterministic=True)[0].shape == (28,)
    assert main(["eval", "--model", str(save), "--eval_episodes", "1"]) == 0
    assert "Mean Reward:" in capsys.readouterr().out


def test_module_entry_point_runs_eval(tmp_path):
    report = tmp_path / "expert.json"
    done = subprocess.run(
        [sys.executable, "-m", "sb3_mimic.cli", "eval", "--expert", "pd", "--mocap", "walk", "--eval_episodes", "2",
         "--json", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Mean Reward:" in done.stdout
    figures = json.loads(report.read_text())
    assert set(figures) == EVAL_KEYS and figures["episodes"] == 2


def test_sft_saves_and_reuses_demonstrations(tmp_path, capsys):
    demos = tmp_path / "walk_demos.npz"
    args = ["sft", "--mocap", "walk", "--epochs", "1", "--hidden_size", "8", "--num_layers", "1", "--no_eval",
            "--no_progress"]
    assert main([*args, "--n_samples", "60", "--n_rollouts", "1", "--save_demos", str(demos),
                 "--save_path", str(tmp_path / "a.zip")]) == 0
    assert demos.is_file()
    from sb3_mimic.demos import load_demos

    transitions, meta = load_demos(demos)
    assert meta.clip == "walk" and meta.kind == "teacher_forcing+rollouts" and len(transitions) > 60
    capsys.readouterr()
    assert main([*args, "--demos", str(demos), "--save_path", str(tmp_path / "b.zip")]) == 0
    assert f"demonstrations from {demos}" in capsys.readouterr().out
    assert main([*args, "--mocap", "run", "--demos", str(demos), "--save_path", str(tmp_path / "c.zip")]) == 2
    err = capsys.readouterr().err
    assert "MimicHumanoidWalk-v0" in err and "MimicHumanoidRun-v0" in err
    assert not (tmp_path / "c.zip").exists()


def test_train_with_mocap_records_and_names_that_clips_task(monkeypatch, capsys):
    from sb3_mimic import rl

    started = {}
    monkeypatch.setattr(rl, "run_training", lambda config, run_dir, **_: started.update(config=config, run_dir=run_dir))
    assert main(["train", "--mocap", "run", "--num_timesteps", "10", "--no_progress"]) == 0
    config = started["config"]
    assert config.env_id == "MimicHumanoidRun-v0" and config.env_kwargs == {}
    assert Path(started["run_dir"]).name.startswith("trpo_run_") and "MimicHumanoidRun-v0" in capsys.readouterr().out
    assert main(["train", "--mocap", "run", "--env", "MimicHumanoidWalk-v0"]) == 2
    assert "give --env or --mocap, not both" in capsys.readouterr().err


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys, time; t = time.perf_counter(); from sb3_mimic.cli import main\n"
            "for command in ('sft', 'eval', 'finetune', 'train', 'dagger', 'video', 'plot'):\n"
            "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in ('torch', 'imitation', 'stable_baselines3', 'sb3_contrib') if m in sys.modules)\n"
            "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, seconds = re.search(r"HEAVY (\[.*\]) SECONDS (\S+)", out).groups()
    assert heavy == "[]", heavy  # every --help works before torch, imitation or SB3 is imported
    assert float(seconds) < 30  # a loose bound on a shared machine; it takes under a second alone



def test_clips_lists_every_clip_with_its_env_id_and_fall_rule(capsys):
    assert main(["clips"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(sb3_mimic.available_clips())
    assert "MimicHumanoidWalk-v0" in lines["walk"] and "any body but the feet" in lines["walk"]
    assert lines["walk"].split()[1:4] == ["1.27", "s", "yes"]
    assert "root, chest, neck" in lines["crawl"] and "never" in lines["roll"] and " no " in lines["kick"]


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "sb3_mimic", "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: sb3-mimic" in out and "clips" in out


def test_help_shows_each_default_once(capsys):
    for command in ("sft", "eval", "finetune", "train", "dagger", "video", "plot", "clips", "view"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text, command
        assert not re.search(r"\(default: [^)]*\) \(default:", text), command
        if command not in ("plot", "clips"):
            # a default of 0 equals False: it must still be shown
            assert re.search(r"--seed SEED [^-]*\(default: 0\)", text), command
    # option by option: one "default:" in each help that has a default (0 included), none twice
    import argparse

    from sb3_mimic.cli import _HelpFormatter

    commands = build_parser()._subparsers._group_actions[0].choices
    for command, sub in commands.items():
        for action in sub._actions:
            if not action.help or action.help is argparse.SUPPRESS:
                continue
            shown = _HelpFormatter(command)._expand_help(action)
            assert shown.count("default:") <= 1, (command, shown)
            if action.default is not None and action.default is not False and action.default is not argparse.SUPPRESS:
                assert shown.count("default:") == 1, (command, shown)
    with pytest.raises(SystemExit):
        main(["video", "--help"])
    assert re.search(r"--frame_step FRAME_STEP [^()]*\(default: 0\)", " ".join(capsys.readouterr().out.split()))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with subproc 1024 for TRPO, 1024 for PPO)" in text and "(default: 2000000)" in text
    from sb3_mimic import rl

    # the help's batched defaults are the run's (the help is written without importing torch)
    assert f"default: {rl.BATCHED_DEFAULT_N_STEPS} with --vec_env batched" in text
    assert f"0 = {rl.BATCHED_DEFAULT_N_ENVS} characters with --vec_env batched" in text


def test_the_package_is_typed():
    import importlib.resources

    assert importlib.resources.files("sb3_mimic").joinpath("py.typed").is_file()


def test_train_takes_the_action_mode(monkeypatch):
    from sb3_mimic import rl

    started = []
    monkeypatch.setattr(rl, "run_training", lambda config, run_dir, **_: started.append(config))
    assert main(["train", "--action_mode", "torque", "--num_timesteps", "10", "--run_dir", "unused", "--no_progress"]) == 0
    assert main(["train", "--mocap", "run", "--action_mode", "torque", "--run_dir", "unused", "--no_progress"]) == 0
    assert [c.env_kwargs for c in started] == [{"action_mode": "torque"}] * 2
    assert started[1].env_id == "MimicHumanoidRun-v0"


def test_eval_refuses_a_foreign_zip_unless_trusted(tmp_path, capsys):
    from sb3_contrib import TRPO

    foreign = TRPO("MlpPolicy", gymnasium.make("MimicHumanoidWalk-v0"), policy_kwargs={"net_arch": [8]}, device="cpu")
    foreign.save(tmp_path / "foreign.zip")
    argv = ["eval", "--model", str(tmp_path / "foreign.zip"), "--mocap", "walk", "--eval_episodes", "1", "--no_progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "would unpickle code" in err and "--trust_pickle" in err
    assert main([*argv, "--trust_pickle"]) == 0
    assert "Evaluating policy" in capsys.readouterr().out


def _readme_usage() -> dict[str, str]:
    """The README's command-line block, as the text of each ``sb3-mimic COMMAND`` entry."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## The command line", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    entries = re.split(r"^sb3-mimic (\w+)", block, flags=re.MULTILINE)[1:]
    return {command: body for command, body in zip(entries[::2], entries[1::2], strict=True)}


def test_the_readme_usage_names_every_option_with_the_help_s_default():
    from sb3_mimic import rl
    from sb3_mimic.configs import TRPO_DEFAULTS

    usage = _readme_usage()
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(usage) == set(commands)
    for command, sub in commands.items():
        # train's run options are finetune's ("same run options")
        text = usage[command] + (usage["finetune"] if command == "train" else "")
        shown = dict(re.findall(r"\[--(\w+) ([^\]\s]+)", text))
        for action in sub._actions:
            option = next((o for o in action.option_strings if o.startswith("--")), None)
            if option is None or option == "--help" or option.startswith("--mpc_"):
                continue
            assert re.search(rf"{option}\b(?!_)", text), (command, option)
            value, default = shown.get(option[2:]), action.default
            if value is None or "|" in value or value.isupper() or default is None or isinstance(default, (bool, tuple)):
                continue
            if isinstance(default, (int, float)):
                assert float(value) == default, (command, option, value, default)
            else:
                assert value == default, (command, option, value, default)
    # the defaults the help writes out in words
    assert f"[--n_steps {rl.BATCHED_DEFAULT_N_STEPS} (per env; {TRPO_DEFAULTS['n_steps']} with subproc)]" in usage["finetune"]
    assert f"[--batch_size {TRPO_DEFAULTS['batch_size']}]" in usage["finetune"]
    assert f"[--num_timesteps {DEFAULT_NUM_TIMESTEPS}]" in usage["finetune"]


def test_view_says_why_it_has_no_no_progress(capsys):
    # view plays in real time and shows no bar: its help says so instead of offering --no_progress
    with pytest.raises(SystemExit):
        main(["view", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[--no_progress]" not in text and "no --no_progress: it shows no progress bar" in text


def test_finetune_shows_its_start_as_required_and_every_episode_command_can_hide_its_bars(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    usage = " ".join(capsys.readouterr().out.split("\n\n", 1)[0].split())
    assert "(--load_sft_pretrain PATH | --resume RUN_DIR)" in usage
    for command in ("sft", "eval", "finetune", "train", "dagger", "video"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--no_progress" in capsys.readouterr().out, command


class _RecordingBar:
    """A stand-in for tqdm that keeps its total, unit and ticks (and draws nothing)."""

    made: ClassVar[list[_RecordingBar]] = []

    def __init__(self, total=None, unit="it", disable=False, **_):
        self.total, self.unit, self.disable, self.ticks = total, unit, disable, []
        _RecordingBar.made.append(self)

    def update(self, n=1):
        self.ticks.append(n)

    def close(self):
        pass


def test_eval_of_the_mpc_expert_ticks_once_per_control_step(monkeypatch, capsys):
    from sb3_mimic import evaluation
    from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

    monkeypatch.setattr(_RecordingBar, "made", [])
    monkeypatch.setattr(evaluation, "tqdm", _RecordingBar)
    steps = []
    original = MimicHumanoidEnv.step
    monkeypatch.setattr(MimicHumanoidEnv, "step", lambda self, action: steps.append(1) or original(self, action))
    # a tiny MPC (4 samples over 4 steps) that falls within a second: cheap, and each episode ends early
    argv = ["eval", "--expert", "mpc", "--mocap", "walk", "--eval_episodes", "2", "--seed", "3", "--mpc_horizon", "4",
            "--mpc_samples", "4"]
    assert main(argv) == 0
    (bar,) = _RecordingBar.made
    limit = gymnasium.spec("MimicHumanoidWalk-v0").max_episode_steps
    assert not bar.disable and bar.unit == "step" and bar.total == 2 * limit
    # one tick per control step, then one that jumps over the rest of the episode's limit, per episode
    assert len(steps) > 2 and len(bar.ticks) == len(steps) + 2 and sum(bar.ticks) == bar.total
    assert main([*argv, "--no_progress"]) == 0 and _RecordingBar.made[-1].disable
    monkeypatch.setattr(_RecordingBar, "made", [])
    assert main(["eval", "--expert", "pd", "--mocap", "walk", "--eval_episodes", "2"]) == 0
    assert _RecordingBar.made[0].unit == "episode" and _RecordingBar.made[0].total == 2  # a fast actor: per episode


def test_video_draws_a_progress_bar_of_its_frames(tmp_path, capsys):
    out = tmp_path / "bar.mp4"
    assert main(["video", "--expert", "pd", "--mocap", "walk", "--out", str(out), "--seconds", "0.2", "--width", "64",
                 "--height", "48"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"video: 100%.*\b6/6\b.*frame", err), err  # 0.2 s at 30 fps: 6 steps, each a frame
    assert main(["video", "--expert", "pd", "--mocap", "walk", "--out", str(out), "--seconds", "0.2", "--width", "64",
                 "--height", "48", "--no_progress"]) == 0
    assert "video:" not in capsys.readouterr().err


def test_a_policy_that_observes_the_target_block_carries_it_to_eval_and_finetune(tmp_path, capsys):
    """``--target_observation``: the policy file records it, so eval (with or without --mocap) and finetune build the
    247-number env the policy expects; demonstrations of the other size are refused with what to do."""
    from sb3_mimic.policies import read_metadata

    save, demos = tmp_path / "t.zip", tmp_path / "d.npz"
    assert main(["sft", *TINY, "--no_eval", "--target_observation", "--save_path", str(save),
                 "--save_demos", str(demos)]) == 0
    meta = read_metadata(save)
    assert meta.env_kwargs == {"target_observation": True}
    for extra in ([], ["--mocap", "walk"]):
        assert main(["eval", "--model", str(save), "--eval_episodes", "1", *extra]) == 0
    assert main(["finetune", "--load_sft_pretrain", str(save), "--mocap", "walk", "--num_timesteps", "64",
                 "--n_envs", "1", "--n_steps", "32", "--batch_size", "32", "--critic_warmup", "0", "--save_per_iter",
                 "1", "--eval_episodes", "1", "--no_progress", "--run_dir", str(tmp_path / "ft")]) == 0
    assert read_metadata(tmp_path / "ft" / "final_model.zip").env_kwargs == {"target_observation": True}
    capsys.readouterr()
    assert main(["sft", *TINY, "--demos", str(demos), "--save_path", str(tmp_path / "u.zip")]) == 2
    assert "add --target_observation" in capsys.readouterr().err
