"""The live viewer: a clear message without a display, and (under a virtual X display, where Debian's xvfb is
installed) a window that shows a clip, a policy in physics and ``render_mode="human"``."""

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


def _under_xvfb(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    return subprocess.run([XVFB, "-a", sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)


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
