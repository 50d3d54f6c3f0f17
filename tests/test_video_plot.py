"""Videos, still frames and learning-curve plots: files that decode, with the right size and length."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import gymnasium
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the envs)
from sb3_mimic.evaluation import policy_actor
from sb3_mimic.experts import PDExpert
from sb3_mimic.plotting import load_evaluations, plot_learning_curves
from sb3_mimic.video import record_video, save_frame

W, H = 160, 120


@pytest.fixture(scope="module")
def walk_rgb():
    # the open-loop PD expert has no balance feedback and falls after about 1 s of walk: no early termination
    # here, so that a video always has the requested length
    env = gymnasium.make("MimicHumanoidWalk-v0", render_mode="rgb_array", width=W, height=H, early_termination=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def expert(walk_rgb):
    return policy_actor(PDExpert.for_env(walk_rgb))


def test_video_decodes_with_one_frame_per_step(walk_rgb, expert, tmp_path: Path):
    out = tmp_path / "sub" / "walk.mp4"
    info = record_video(expert, walk_rgb, out, seconds=1.0, seed=0)
    assert info.path == out and out.is_file()
    assert info.fps == 30 and info.steps == 30 and info.frames == info.steps + 1
    assert not info.fell and not info.ended_early
    assert info.seconds == pytest.approx(1.0)
    assert (info.width, info.height) == (W, H)
    assert [p.name for p in out.parent.iterdir()] == ["walk.mp4"]  # no temporary file left behind
    with imageio.get_reader(out, format="FFMPEG") as reader:
        meta = reader.get_meta_data()
        frames = [np.asarray(f) for f in reader]
    assert meta["fps"] == pytest.approx(30)
    assert meta.get("codec", "h264").startswith("h264")
    assert len(frames) == info.frames
    assert all(f.shape == (H, W, 3) for f in frames)
    assert frames[0].std() > 5  # an image, not a blank frame
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1  # the character moved


@pytest.mark.parametrize(
    ("env_id", "kwargs", "fell"),
    [("MimicHumanoidWalk-v0", {}, True), ("MimicHumanoidKick-v0", {"early_termination": False}, False)],
    ids=["fall", "clip_end"],
)
def test_video_stops_at_episode_end(tmp_path: Path, env_id, kwargs, fell):
    """The PD expert falls within about 1 s of walk; kick (not looping) started near its end reaches it."""
    env = gymnasium.make(env_id, render_mode="rgb_array", width=W, height=H, **kwargs)
    try:
        act = policy_actor(PDExpert.for_env(env))
        base = env.unwrapped
        start = None if fell else base.clip.duration - 5.5 * base.dt
        info = record_video(act, env, tmp_path / "end.mp4", seconds=3.0, seed=0, start_time=start)
    finally:
        env.close()
    assert info.ended_early and info.fell == fell
    assert 1 <= info.steps < 90 and info.frames == info.steps + 1
    if not fell:
        assert info.steps == 6
    with imageio.get_reader(info.path, format="FFMPEG") as reader:
        assert sum(1 for _ in reader) == info.frames


def test_frame_png(walk_rgb, expert, tmp_path: Path):
    info = save_frame(expert, walk_rgb, tmp_path / "frame.png", steps=5, seed=1)
    assert info.steps == 5 and not info.ended_early
    image = iio.imread(info.path)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert image.std() > 5 and len(np.unique(image.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf")])
def test_video_rejects_bad_seconds(walk_rgb, expert, tmp_path: Path, seconds):
    with pytest.raises(ValueError, match="seconds"):
        record_video(expert, walk_rgb, tmp_path / "v.mp4", seconds=seconds)
    assert not any(tmp_path.iterdir())


def test_bad_suffix_and_render_mode(walk_rgb, expert, tmp_path: Path):
    with pytest.raises(ValueError, match=r"\.mp4"):
        record_video(expert, walk_rgb, tmp_path / "v.gif", seconds=1.0)
    with pytest.raises(ValueError, match=r"\.png"):
        save_frame(expert, walk_rgb, tmp_path / "f.jpg")
    with pytest.raises(ValueError, match="steps"):
        save_frame(expert, walk_rgb, tmp_path / "f.png", steps=-1)
    plain = gymnasium.make("MimicHumanoidWalk-v0")
    try:
        with pytest.raises(ValueError, match="rgb_array"):
            record_video(expert, plain, tmp_path / "v.mp4", seconds=1.0)
        with pytest.raises(ValueError, match="rgb_array"):
            save_frame(expert, plain, tmp_path / "f.png")
    finally:
        plain.close()
    assert not any(tmp_path.iterdir())


def test_odd_image_size_is_padded_to_even(tmp_path: Path):
    env = gymnasium.make("MimicHumanoidWalk-v0", render_mode="rgb_array", width=W + 1, height=H + 1)
    try:
        info = record_video(policy_actor(PDExpert.for_env(env)), env, tmp_path / "odd.mp4", seconds=0.2)
    finally:
        env.close()
    assert (info.width, info.height) == (W + 2, H + 2) and info.frames == 7
    with imageio.get_reader(info.path, format="FFMPEG") as reader:
        assert reader.get_data(0).shape == (H + 2, W + 2, 3)


# ------------------------------------------------------------------------------------------------------------
# plots

COLUMNS = ["iteration", "env_steps", "wall_time_s", "mean_reward", "normalized_return", "mean_survival_s",
           "fall_rate", "mpjpe_mm"]


def write_run(folder: Path, n: int, speed: float, columns=COLUMNS) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(int(speed * 10))
    with (folder / "evaluations.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in range(n):
            progress = 1 - np.exp(-speed * i / n)
            row = {
                "iteration": i, "env_steps": 5000 * (i + 1), "wall_time_s": 40.0 * (i + 1) / speed,
                "mean_reward": 500 * progress, "normalized_return": 0.9 * progress + 0.02 * rng.random(),
                "mean_survival_s": 20 * progress, "fall_rate": 1 - progress, "mpjpe_mm": 200 * (1 - progress),
            }
            writer.writerow([row[c] for c in columns])
    return folder


def test_learning_curves_png(tmp_path: Path):
    runs = [write_run(tmp_path / "trpo_walk", 20, 3.0), write_run(tmp_path / "ppo_walk", 15, 1.5)]
    data = load_evaluations(runs[0])
    assert len(data["env_steps"]) == 20 and data["wall_time_s"].dtype == np.float64
    out = plot_learning_curves(runs, tmp_path / "plots" / "curves.png", figsize=(8, 6), dpi=100)
    assert out == tmp_path / "plots" / "curves.png" and out.stat().st_size > 10_000
    image = iio.imread(out)
    assert image.shape[:2] == (600, 800) and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 5
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]
    labelled = plot_learning_curves(runs, tmp_path / "labelled.png", labels=["A", "B"], title="walk")
    assert iio.imread(labelled).shape[:2] == (960, 1320)


def test_learning_curves_errors(tmp_path: Path):
    empty = tmp_path / "no_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "evaluations.csv"))):
        load_evaluations(empty)
    good = write_run(tmp_path / "good", 3, 1.0)
    with pytest.raises(FileNotFoundError, match=r"evaluations\.csv"):
        plot_learning_curves([good, empty], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    partial = write_run(tmp_path / "partial", 3, 1.0, columns=["env_steps", "wall_time_s", "normalized_return"])
    with pytest.raises(ValueError, match="mean_survival_s"):
        load_evaluations(partial)
    with pytest.raises(ValueError, match="labels"):
        plot_learning_curves([good], tmp_path / "x.png", labels=["a", "b"])
    with pytest.raises(ValueError, match="cannot write"):
        plot_learning_curves([good], tmp_path / "x.notaformat")

