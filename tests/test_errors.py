"""Bad input is a clear error before any work: exit status 2 and a message on stderr (command line), a ValueError
naming what is wrong (API), and MuJoCo's warnings on a logger instead of a MUJOCO_LOG.TXT."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import pytest

import sb3_mimic
import sb3_mimic.demos
from sb3_mimic.cli import main
from sb3_mimic.motion import MotionClipError, load_clip


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Run in an empty folder; any start of SFT, DAgger, RL training or video work fails the test."""
    from sb3_mimic import dagger, rl, video

    def refuse(*args, **kwargs):
        raise AssertionError("work started despite a bad argument")

    monkeypatch.setattr(sb3_mimic.demos, "teacher_forcing", refuse)
    monkeypatch.setattr(dagger, "run_dagger", refuse)
    monkeypatch.setattr(rl, "make_training_env", refuse)
    monkeypatch.setattr(rl, "resume_training", refuse)
    monkeypatch.setattr(video, "record_video", refuse)
    monkeypatch.setattr(video, "save_frame", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fails(capsys, argv: list[str], *messages: str) -> str:
    """Run the command line; assert exit status 2, nothing on stdout and ``messages`` in stderr's error line."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert out == "", out
    assert err.startswith(f"sb3-mimic {argv[0]}: error:"), err
    assert "Traceback" not in err
    for message in messages:
        assert message in err, (message, err)
    return err


# 1. negative seeds --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--expert", "pd", "--mocap", "walk"],
        ["train", "--num_timesteps", "10"],
        ["finetune", "--load_sft_pretrain", "sft.zip"],
        ["sft", "--mocap", "walk"],
        ["dagger", "--mocap", "walk"],
        ["video", "--expert", "pd", "--mocap", "walk"],
    ],
)
def test_a_negative_seed_is_refused(no_work, capsys, argv):
    _fails(capsys, [*argv, "--seed", "-1"], "--seed must be a whole number >= 0", "got -1")
    assert list(no_work.iterdir()) == []


def test_the_run_config_refuses_a_negative_seed():  # the sft and dagger configs': tests/test_configs.py
    from sb3_mimic.rl import RunConfig

    with pytest.raises(ValueError, match=r"--seed must be a whole number >= 0, got -3"):
        RunConfig(algo="trpo", env_id="MimicHumanoidWalk-v0", env_kwargs={}, num_timesteps=10, seed=-3).validate()


# 2. an env id that is not an sb3-mimic env ------------------------------------------------------------------------------

def test_train_refuses_an_env_that_is_not_an_sb3_mimic_env(no_work, capsys):
    from sb3_mimic.rl import RunConfig

    _fails(capsys, ["train", "--env", "CartPole-v1"], "--env CartPole-v1 is not an sb3-mimic env", "MimicHumanoid-v0")
    _fails(capsys, ["train", "--env", "NoSuchEnv-v0"], "unknown env id", "MimicHumanoidWalk-v0")
    with pytest.raises(ValueError, match="CartPole-v1 is not an sb3-mimic env"):
        RunConfig(algo="ppo", env_id="CartPole-v1", env_kwargs={}, num_timesteps=10).validate()
    assert list(no_work.iterdir()) == []


# 3. a rollout of one env step ---------------------------------------------------------------------------------------------

def test_train_refuses_a_rollout_of_one_step(no_work, capsys):
    from sb3_mimic.rl import RunConfig

    for algo in ("trpo", "ppo"):
        _fails(capsys, ["train", "--algo", algo, "--n_steps", "1", "--n_envs", "1", "--run_dir", "r"],
               "--n_steps 1 with --n_envs 1", "n_steps * n_envs of at least 2", "raise --n_steps")
    config = RunConfig(algo="trpo", env_id="MimicHumanoidWalk-v0", env_kwargs={}, num_timesteps=10, n_envs=1,
                       hyperparameters={"n_steps": 1})
    with pytest.raises(ValueError, match=r"n_steps \* n_envs of at least 2"):
        config.validate()
    assert list(no_work.iterdir()) == []


# 4. run folders whose state cannot be read --------------------------------------------------------------------------------

def test_dagger_resume_names_a_state_file_it_cannot_use(tmp_path, capsys, monkeypatch):
    from sb3_mimic import dagger

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dagger, "DummyVecEnv", lambda *a, **k: pytest.fail("work started despite a bad dagger.json"))
    run = tmp_path / "run"
    run.mkdir()
    state = run / "dagger.json"
    state.write_text(json.dumps({"rounds_done": 1}))
    _fails(capsys, ["dagger", "--resume", str(run)], str(state), "'config'", "--run_dir")
    state.write_text('{"config": {"mocap": "walk"}, "rounds_do')  # cut short
    _fails(capsys, ["dagger", "--resume", str(run)], str(state), "not valid JSON")
    state.write_text(json.dumps({"config": {"mocap": "walk", "colour": "red"}, "rounds_done": 1}))
    _fails(capsys, ["dagger", "--resume", str(run)], str(state), "unknown settings ['colour']")
    state.write_text(json.dumps({"config": {"mocap": "walk"}, "rounds_done": "two"}))
    _fails(capsys, ["dagger", "--resume", str(run)], str(state), "'rounds_done'")
    state.write_text("[1, 2]")
    _fails(capsys, ["dagger", "--resume", str(run)], str(state), "not a DAgger run's state")


def test_rl_resume_names_a_run_file_it_cannot_use(tmp_path, capsys, monkeypatch):
    from sb3_mimic import rl

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rl, "make_training_env", lambda *a, **k: pytest.fail("work started despite a bad run.json"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "rl_model_1_steps.zip").write_bytes(b"")
    path = run / "run.json"
    path.write_text("{not json")
    for command in ("train", "finetune"):
        _fails(capsys, [command, "--resume", str(run)], str(path), "not valid JSON")
    path.write_text(json.dumps({"algo": "trpo", "env_kwargs": {}, "num_timesteps": 10}))
    _fails(capsys, ["train", "--resume", str(run)], str(path), "missing ['env_id']")
    path.write_text(json.dumps({"algo": "trpo", "env_id": "MimicHumanoidWalk-v0", "env_kwargs": {}, "num_timesteps": 10,
                                "speed": 3}))
    with pytest.raises(ValueError, match=r"unknown keys \['speed'\]"):
        rl.read_run_config(run)


# 5. video output and image size -------------------------------------------------------------------------------------------

def test_video_refuses_an_unwritable_output_and_a_bad_image_size(no_work, capsys):
    blocker = no_work / "afile"
    blocker.write_text("a regular file, not a folder\n")
    base = ["video", "--expert", "pd", "--mocap", "walk"]
    _fails(capsys, [*base, "--out", str(blocker / "run.mp4")], "cannot write", str(blocker / "run.mp4"))
    _fails(capsys, [*base, "--frame", str(blocker / "still.png")], "cannot write", str(blocker / "still.png"))
    _fails(capsys, [*base, "--width", "0"], "--width must be at least 1 pixel, got 0")
    _fails(capsys, [*base, "--height", "-4"], "--height must be at least 1 pixel, got -4")
    _fails(capsys, [*base, "--out", "run.avi"], "--out must name a .mp4 file")
    assert sorted(p.name for p in no_work.iterdir()) == ["afile"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, which takes no new files")
def test_an_output_in_a_missing_folder_names_that_folder(no_work, capsys):
    base = ["video", "--expert", "pd", "--mocap", "walk"]
    _fails(capsys, [*base, "--out", "/proc/x/run.mp4"], "cannot write /proc/x/run.mp4: the folder /proc/x does not exist",
           "create it yourself, or choose a path in a folder you can write to")
    # several missing folders: the outermost one, which would have to be created first
    _fails(capsys, [*base, "--out", "/proc/x/y/run.mp4"], "the folder /proc/x does not exist")
    _fails(capsys, [*base, "--out", "/proc/run.mp4"], "/proc is not a writable folder")


def test_check_writable_names_the_missing_folder_and_a_file_in_the_way(tmp_path, monkeypatch):
    from sb3_mimic import _util

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=f"{re.escape(str(blocker))} is a file, not a folder"):
        _util.check_writable(blocker / "sub" / "run.mp4")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_util.tempfile, "NamedTemporaryFile", refuse)  # tmp_path as a folder nobody may write in
    with pytest.raises(ValueError, match=f"the folder {re.escape(str(tmp_path / 'a'))} does not exist and cannot be "
                                         f"created, {re.escape(str(tmp_path))} does not take new files"):
        _util.check_writable(tmp_path / "a" / "b" / "run.mp4")
    assert not (tmp_path / "a").exists()


def test_record_video_checks_its_output_before_rendering(walk, tmp_path):
    from sb3_mimic.video import record_video, save_frame

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    # the env was made without render_mode: the output's error comes first, before anything is rendered
    with pytest.raises(ValueError, match="cannot write"):
        record_video(lambda obs: np.zeros(28), walk, blocker / "run.mp4")
    with pytest.raises(ValueError, match="cannot write"):
        save_frame(lambda obs: np.zeros(28), walk, blocker / "still.png")


# 6. env kwargs --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"early_termination": "no"}, r"early_termination must be True or False, got 'no'"),
        ({"width": -5}, r"width must be a whole number of pixels >= 1, got -5"),
        ({"height": 0}, r"height must be a whole number of pixels >= 1, got 0"),
        ({"width": 64.5}, r"width must be a whole number"),
        ({"ghost_offset": (1.0, 0.0)}, r"ghost_offset must be three finite numbers"),
        ({"ghost_offset": (1.0, float("nan"), 0.0)}, r"ghost_offset must be three finite numbers"),
        ({"motion": "run"}, r"MimicHumanoidWalk-v0 imitates the clip 'walk' and takes no motion= .*MimicHumanoid-v0"),
    ],
)
def test_the_env_refuses_bad_kwargs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gymnasium.make("MimicHumanoidWalk-v0", **kwargs)


def test_per_clip_ids_still_make_the_env_class():
    from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

    env = gymnasium.make("MimicHumanoidRun-v0", ghost_offset=np.array([0.0, 1.0, 0.0]), early_termination=np.bool_(False))
    assert type(env.unwrapped) is MimicHumanoidEnv and env.unwrapped.clip.name == "run"
    assert gymnasium.spec("MimicHumanoidRun-v0").kwargs == {"motion": "run"}
    env.close()
    env = gymnasium.make("MimicHumanoidWalk-v0", motion="walk")  # its own clip: nothing to refuse
    assert env.unwrapped.clip.name == "walk"
    env.close()
    env = gymnasium.make("MimicHumanoid-v0", motion="run")
    assert env.unwrapped.clip.name == "run"
    env.close()


# 7. MPC options -------------------------------------------------------------------------------------------------------------

def test_a_bad_mpc_option_is_named_with_its_value(no_work, capsys):
    base = ["eval", "--expert", "mpc", "--mocap", "walk"]
    _fails(capsys, [*base, "--mpc_noise", "-1"], "--mpc_noise must be a positive number, got -1.0")
    _fails(capsys, [*base, "--mpc_decay", "1.5"], "--mpc_decay must be in (0, 1], got 1.5")
    _fails(capsys, [*base, "--mpc_samples", "1"], "--mpc_samples must be a whole number >= 2, got 1")
    _fails(capsys, ["dagger", "--expert", "mpc", "--mpc_fall_penalty", "-2"],
           "--mpc_fall_penalty must be a number >= 0, got -2.0")


# 8. a clip path that does not exist -------------------------------------------------------------------------------------

def test_an_explicit_clip_path_that_does_not_exist_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for path in ("./walk.txt", "./humanoid3d_walk.txt", str(tmp_path / "walk.txt"), "clips/walk.txt"):
        with pytest.raises(MotionClipError, match=rf"motion clip file '{re.escape(path)}' does not exist.*'walk'"):
            load_clip(path)
    with pytest.raises(MotionClipError, match=r"'./mine.txt' does not exist; check the path$"):
        load_clip("./mine.txt")
    assert load_clip("walk.txt").name == "walk"  # a bare file name may still mean the catalogue's clip
    assert load_clip("humanoid3d_walk.txt").name == "walk"
    _fails(capsys, ["eval", "--expert", "pd", "--mocap", "./walk.txt"], "'./walk.txt' does not exist")


# 9. argument errors before the heavy imports ---------------------------------------------------------------------------------

def test_argument_errors_come_before_torch_is_imported(tmp_path):
    damaged = tmp_path / "damaged_dagger"
    damaged.mkdir()
    (damaged / "dagger.json").write_text('{"rounds_done": 1}')  # its config lost
    (damaged / "run.json").write_text('{"algo": "trpo"}')  # a run.json without its env and budget
    commands = ("eval --expert pd", "sft", "dagger", "train", "video --expert pd", "finetune --load_sft_pretrain x.zip")
    missing_clip = [f"{command} --mocap ./walk.txt" for command in commands]
    argvs = ["sft --epochs 0", "sft --seed -1", "train --seed -1", "train --env CartPole-v1", "train --n_steps 0",
             "eval --expert mpc --mocap walk --mpc_noise -1", "video --expert pd --mocap walk --width 0",
             "dagger --rounds 0", "dagger --mocap wlak", "finetune --load_sft_pretrain x.zip --batch_size 0",
             "train --n_steps 1 --n_envs 1 --vec_env subproc", *missing_clip, f"dagger --resume {damaged}",
             f"train --resume {damaged}", "finetune --load_sft_pretrain missing.zip",
             "finetune --load_sft_pretrain pretrained:nope"]
    code = (
        "import sys, time; t = time.perf_counter(); from sb3_mimic.cli import main\n"
        f"codes = [main(a.split()) for a in {argvs!r}]\n"
        "heavy = sorted(m for m in ('torch', 'imitation', 'stable_baselines3', 'sb3_contrib') if m in sys.modules)\n"
        "print('CODES', codes, 'HEAVY', heavy, 'SECONDS', time.perf_counter() - t)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    codes, heavy, seconds = re.search(r"CODES (\[.*\]) HEAVY (\[.*\]) SECONDS (\S+)", run.stdout).groups()
    assert codes == str([2] * len(argvs)), run.stderr
    errors = run.stderr.splitlines()
    assert len(errors) == len(argvs)  # one message per command, each naming what is wrong
    assert "n_steps * n_envs of at least 2" in errors[10]
    assert all("'./walk.txt' does not exist" in line for line in errors[11:17]), errors[11:17]
    assert "dagger.json has no 'config' entry" in errors[17]
    assert "run.json is not a run configuration" in errors[18] and "missing ['env_id'" in errors[18]
    assert "--load_sft_pretrain missing.zip: no such file" in errors[19]
    assert "no shipped policy 'pretrained:nope'; the package ships: pretrained:walk" in errors[20]
    assert heavy == "[]", heavy  # every one of these fails before torch, imitation or SB3 is imported
    assert float(seconds) < 10  # a loose bound on a shared machine; about a second alone
    assert "Traceback" not in run.stderr


# 10. MuJoCo's warnings -------------------------------------------------------------------------------------------------------

def test_mujoco_warnings_go_to_the_logger_not_to_a_file(tmp_path, monkeypatch, caplog):
    from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv

    assert mujoco.get_mju_user_warning() is not None  # installed by `import sb3_mimic`
    monkeypatch.chdir(tmp_path)
    env = MimicHumanoidEnv(action_mode="torque")
    env.reset(seed=0)
    env.model.dof_damping[:] = 0
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="sb3_mimic.mujoco"):
        for _ in range(5):
            env.set_physics_state(env.data.qpos, rng.normal(0.0, 1e12, env.model.nv))  # huge velocities: it diverges
            *_, terminated, _, info = env.step(np.ones(28, dtype=np.float32))
            if terminated:
                break
    env.close()
    assert info.get("nonfinite")
    records = [r for r in caplog.records if r.name == "sb3_mimic.mujoco"]
    assert records and "unstable" in records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert list(tmp_path.iterdir()) == []
