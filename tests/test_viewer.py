"""The live viewer: a clear message without a display, and (under a virtual X display, where Debian's xvfb is
installed) a window that shows a clip, a policy in physics (the shipped one too), ``render_mode="human"`` and rl-zoo's
``enjoy`` drawing through it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import gymnasium
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.cli import main

XVFB = shutil.which("xvfb-run")
needs_xvfb = pytest.mark.skipif(
    XVFB is None, reason="a live window needs a display; this machine has none and no xvfb-run (Debian's xvfb) to fake one"
)


def test_without_a_display_the_viewer_says_to_write_a_video(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["view", "--mocap", "walk"]) == 2
    err = capsys.readouterr().err
    assert "needs a display" in err and "sb3-mimic video" in err
    with pytest.raises(RuntimeError, match=r"render_mode='human'.*sb3-mimic video"):
        gymnasium.make("MimicHumanoidWalk-v0", render_mode="human")
    assert main(["view"]) == 2  # nothing to show is refused too (the display check comes first here)


def _under_xvfb(code: str, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    # faulthandler: a crash in the viewer's thread prints its Python stack instead of a bare "Segmentation fault"
    return subprocess.run([XVFB, "-a", sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                          timeout=180, env=env, cwd=cwd)


#: Prepended to a snippet: count the frames the live viewer draws (printed as "SHOWN n" at exit).
COUNT_FRAMES = (
    "import atexit, sb3_mimic.viewer as v\n"
    "shown = []\n"
    "draw = v.LiveViewer.show\n"
    "v.LiveViewer.show = lambda self, *a, **k: (shown.append(1), draw(self, *a, **k))[1]\n"
    "atexit.register(lambda: print('SHOWN', len(shown), flush=True))\n"
)


def _frames_shown(done: subprocess.CompletedProcess) -> int:
    return int(done.stdout.split("SHOWN")[-1].split()[0])


@needs_xvfb
def test_render_mode_human_opens_mujocos_viewer_with_the_ghost():
    done = _under_xvfb(
        "import gymnasium, sb3_mimic\n"
        "env = gymnasium.make('MimicHumanoidWalk-v0', render_mode='human')\n"
        "env.reset(seed=0)\n"
        "for _ in range(10):\n"
        "    env.step(env.action_space.sample() * 0.1)\n"
        "    env.render()\n"
        "viewer = env.unwrapped._viewer\n"
        "print('RUNNING', viewer.running, 'GHOST', viewer.handle.user_scn.ngeom)\n"
        "env.close()\n"
    )
    assert done.returncode == 0, done.stderr
    running, ghost = done.stdout.split()[1], int(done.stdout.split()[3])
    assert running == "True" and ghost >= 15  # the reference's bodies drawn as the ghost


@needs_xvfb
def test_view_plays_a_clip_and_a_policy():
    for args in (["--mocap", "walk"], ["--expert", "pd", "--mocap", "walk"]):
        code = f"import sys; from sb3_mimic.cli import main; sys.exit(main(['view', *{args!r}, '--seconds', '0.5']))"
        done = _under_xvfb(code)
        assert done.returncode == 0, (args, done.stderr)


@needs_xvfb
def test_view_runs_the_shipped_policy():
    # 0.5 s of simulated time at the env's 30 Hz control rate: 15 steps, each drawn, after the first reset's frame
    code = COUNT_FRAMES + ("import sys; from sb3_mimic.cli import main\n"
                           "sys.exit(main(['view', '--model', 'pretrained:walk', '--seconds', '0.5']))")
    done = _under_xvfb(code)
    assert done.returncode == 0, done.stderr
    assert _frames_shown(done) == 16, done.stdout


@pytest.mark.slow  # about 6 s alone (rl_zoo3's and torch's imports in the subprocess), 11 s beside a training run
@needs_xvfb
def test_rl_zoo_enjoy_renders_a_policy_in_the_live_viewer(tmp_path):
    """rl-zoo's `enjoy` without --no-render makes the env with render_mode="human" and draws every step."""
    pytest.importorskip("rl_zoo3")
    from sb3_contrib import TRPO

    env_id = "MimicHumanoidWalk-v0"
    tiny = TRPO("MlpPolicy", gymnasium.make(env_id), policy_kwargs={"net_arch": [8]}, device="cpu", seed=0)
    folder = tmp_path / "logs" / "trpo" / f"{env_id}_1"  # where rl_zoo3.train would put it
    folder.mkdir(parents=True)
    tiny.save(folder / f"{env_id}.zip")
    argv = ["enjoy", "--algo", "trpo", "--env", env_id, "-f", "logs", "--exp-id", "1", "-n", "20", "--device", "cpu",
            "--gym-packages", "sb3_mimic", "--num-threads", "1"]
    code = COUNT_FRAMES + f"import sys; sys.argv = {argv!r}\nfrom rl_zoo3.enjoy import enjoy\nenjoy()\n"
    done = _under_xvfb(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pygame" not in done.stderr and _frames_shown(done) == 20  # one frame per step of the 20
