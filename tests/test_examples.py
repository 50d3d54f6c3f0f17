"""The scripts in examples/ and the README's Python API snippet run as given, on a tiny budget, and produce what
they say they produce.

Each runs in a subprocess in an empty folder (``tmp_path``), as a user would run it (the README snippet twice, as
pasted again); together about a minute on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sb3_mimic
from sb3_mimic.policies import read_metadata
from sb3_mimic.registration import env_spec_for

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
TIMEOUT_S = 300


def _run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **env}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _check_evaluation(figures: dict, episodes: int) -> None:
    assert figures["episodes"] == episodes
    assert 0 <= figures["normalized_return"] <= 1 and 0 < figures["mean_survival_s"] <= 20
    assert figures["mpjpe_mm"] > 0 and figures["std_survival_s"] >= 0


def test_quickstart(tmp_path: Path):
    result = _run(tmp_path, str(EXAMPLES / "quickstart.py"), "--tiny")
    out = tmp_path / "quickstart_out"
    meta = read_metadata(out / "walk_sft.zip")
    assert meta.clip == "walk" and meta.env_id == "MimicHumanoidWalk-v0" and meta.trained_by == "sft"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiny"] is True and Path(summary["policy"]).name == "walk_sft.zip"
    for name in ("pd_expert", "sft_policy"):
        _check_evaluation(summary[name], 2)
    assert "PD expert: normalised return" in result.stdout and "SFT policy (sft on 'walk'" in result.stdout


def test_own_clip(tmp_path: Path):
    result = _run(tmp_path, str(EXAMPLES / "own_clip.py"), "--tiny")
    path = tmp_path / "own_clip_out" / "walk_slow.txt"
    walk, clip = sb3_mimic.load_clip("walk"), sb3_mimic.load_clip(path)
    assert clip.name == "walk_slow" and clip.loop == walk.loop and clip.num_frames == walk.num_frames
    assert clip.duration == pytest.approx(1.25 * walk.duration)
    assert env_spec_for(path) == ("MimicHumanoid-v0", {"motion": str(path)})
    assert f"Wrote own_clip_out/walk_slow.txt: clip 'walk_slow', {walk.num_frames} frames" in result.stdout
    assert re.search(r"PD expert on walk_slow: normalised return 0\.\d+, .*\(2 episodes\)", result.stdout)


def test_own_clip_tiny_by_environment_variable(tmp_path: Path):
    result = _run(tmp_path, str(EXAMPLES / "own_clip.py"), "--slowdown", "2", SB3_MIMIC_EXAMPLES_TINY="1")
    clip = sb3_mimic.load_clip(tmp_path / "own_clip_out" / "walk_slow.txt")
    assert clip.duration == pytest.approx(2 * sb3_mimic.load_clip("walk").duration)
    assert result.stdout.count("(2 episodes)") == 2


def test_zoo_warm_start(tmp_path: Path):
    from sb3_contrib import TRPO

    from sb3_mimic.policies import DEFAULT_EXPLORATION_STD

    result = _run(tmp_path, str(EXAMPLES / "zoo_warm_start.py"), "--tiny")
    summary = json.loads((tmp_path / "zoo_out" / "summary.json").read_text())
    zoo_zip = Path(summary["zoo_model"])
    assert zoo_zip == tmp_path / "zoo_out" / "logs" / "trpo" / "MimicHumanoidWalk-v0_1" / "MimicHumanoidWalk-v0.zip"
    assert "rl_zoo3.train --algo trpo --env MimicHumanoidWalk-v0 --gym-packages sb3_mimic" in result.stdout
    model, sft = TRPO.load(zoo_zip, device="cpu"), TRPO.load(summary["sft_policy"], device="cpu")
    assert model.num_timesteps == summary["timesteps"] == 128
    assert model.sb3_mimic["trained_by"] == "sft"  # the SFT metadata travels on
    ours, theirs = model.policy.state_dict(), sft.policy.state_dict()
    key = "mlp_extractor.policy_net.0.weight"  # one small TRPO step from the SFT weights, not a fresh network
    assert 0 < float((ours[key] - theirs[key]).norm() / theirs[key].norm()) < 0.05
    assert float(ours["log_std"].exp().mean()) == pytest.approx(DEFAULT_EXPLORATION_STD, rel=0.05)
    for name in ("sft", "zoo"):
        _check_evaluation(summary["evaluations"][name], 2)


def _readme_python_snippet() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1]
    match = re.search(r"```python\n(.*?)\n```", section, flags=re.S)
    assert match, "README.md's Python API section has no ```python block"
    return match.group(1)


def test_readme_python_api_snippet_runs(tmp_path: Path):
    snippet = _readme_python_snippet()
    assert "run_sft(" in snippet and "run_dagger(" in snippet  # the block is the one with the whole tour
    (tmp_path / "snippet.py").write_text(snippet + "\n")
    # the promise: it runs as pasted in under two minutes, and pasted again in the same folder too
    for runs in (1, 2):
        started = time.perf_counter()
        result = _run(tmp_path, "snippet.py")
        wall = time.perf_counter() - started
        assert wall < 120, f"run {runs} of the README snippet took {wall:.0f} s"
        assert read_metadata(tmp_path / "walk_sft.zip").clip == "walk"
        assert len(list((tmp_path / "runs").glob("dagger_walk_*/policy.zip"))) == runs  # one new run folder each
        assert "PolicyMetadata(env_id='MimicHumanoidWalk-v0'" in result.stdout
