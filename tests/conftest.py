"""Shared fixtures: the repository on ``sys.path``, DeepMimic's reference files and raw clip files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# headless rendering; must be set before mujoco is first imported, which happens while collecting tests
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

@pytest.fixture
def walk():
    """A fresh ``MimicHumanoidWalk-v0`` env, closed after the test."""
    import gymnasium

    import sb3_mimic  # noqa: F401  (registers the env ids)

    env = gymnasium.make("MimicHumanoidWalk-v0")
    yield env
    env.close()


#: DeepMimic's original character files (``humanoid3d.txt``, ``humanoid3d_ctrl.txt``), outside the repository.
DEEPMIMIC_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "deepmimic"


@pytest.fixture(scope="session")
def deepmimic_dir() -> Path:
    """Folder with DeepMimic's humanoid3d.txt and humanoid3d_ctrl.txt; skips the test if absent.

    These tests check the MuJoCo character against DeepMimic's own files (masses, offsets, gains, FK). The files are
    MIT-licensed but not part of this repository or the wheel (the product never reads them); they sit in the
    workplace's ``../shared/reference/deepmimic``, so a checkout without that folder skips these checks.
    """
    if not (DEEPMIMIC_DIR / "humanoid3d.txt").is_file() or not (DEEPMIMIC_DIR / "humanoid3d_ctrl.txt").is_file():
        pytest.skip(
            f"DeepMimic's reference character files are not available at {DEEPMIMIC_DIR}: these tests compare the "
            "character with DeepMimic's original humanoid3d.txt/humanoid3d_ctrl.txt, which live outside the repository "
            "(../shared/reference/deepmimic); the product itself does not need them"
        )
    return DEEPMIMIC_DIR


@pytest.fixture(scope="session")
def dm_char(deepmimic_dir: Path) -> dict:
    """DeepMimic's humanoid3d.txt, parsed."""
    return json.loads((deepmimic_dir / "humanoid3d.txt").read_text())


@pytest.fixture(scope="session")
def dm_ctrl(deepmimic_dir: Path) -> dict:
    """DeepMimic's humanoid3d_ctrl.txt, parsed."""
    return json.loads((deepmimic_dir / "humanoid3d_ctrl.txt").read_text())


def dm_clip_path(name: str) -> Path:
    """Path of DeepMimic's original clip file ``humanoid3d_<name>.txt`` shipped by pybullet."""
    pybullet_data = pytest.importorskip(
        "pybullet_data", reason="DeepMimic's original clip files ship in the pybullet wheel, which is not installed"
    )
    path = Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not available: this test reads DeepMimic's original clip file from the pybullet wheel")
    return path


@pytest.fixture(scope="session")
def dm_clip_file():
    """``dm_clip_file(name)``: path of DeepMimic's clip file ``humanoid3d_<name>.txt`` (skips if absent)."""
    return dm_clip_path


@pytest.fixture(scope="session")
def raw_clip():
    """``raw_clip(name)``: the JSON object of DeepMimic's clip file ``humanoid3d_<name>.txt``, unconverted."""
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = json.loads(dm_clip_path(name).read_text())
        return cache[name]

    return load


def _run_with_random_kills(start, resume, progress, unit_s, rng, *, span=1.0, timeout_s=900.0):
    """Run a resumable command to completion, SIGKILLing attempts at random moments; returns the number of kills.

    The first attempt dies at a random moment before its first unit of progress (start-up, or inside the first unit);
    every later attempt is let make at least one unit of progress (``progress()`` rises) and then dies at a random
    moment within the next ``span`` units (``unit_s`` seconds each), so the kills fall all through the run, and the
    run finishes after at most one attempt per unit, on a fast machine or a slow one.
    """
    import signal
    import subprocess
    import time

    kills, attempt, deadline = 0, 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc = subprocess.Popen(start() if attempt == 0 else resume(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        before = progress()
        if attempt > 0:
            while proc.poll() is None and progress() <= before and time.monotonic() < deadline:
                time.sleep(0.02)
        attempt += 1
        try:
            proc.wait(timeout=float(rng.uniform(0.0, span)) * unit_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read()
        return kills
    raise AssertionError(f"the killed run did not finish within {timeout_s:.0f} s")


@pytest.fixture
def run_with_random_kills():
    """``run_with_random_kills(start, resume, progress, unit_s, rng, span=...)``: see :func:`_run_with_random_kills`."""
    return _run_with_random_kills


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The id of a process that has exited (a child run to its end and reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    """The id of a process that is running (a sleeping child, ended after the test)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child.pid
    child.kill()
    child.wait()
