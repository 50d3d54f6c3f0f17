"""Videos and still frames: files that decode, with the right size and length."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the envs)
from sb3_mimic.evaluation import policy_actor
from sb3_mimic.experts import PDExpert
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
