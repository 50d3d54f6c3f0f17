"""Videos and still frames: files that decode, with the right size and length; what the frames show (the camera on
the character, the ghost beside it) and the overlay's text."""

from __future__ import annotations

import inspect
from pathlib import Path

import gymnasium
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the envs)
from sb3_mimic.cli import build_parser, main
from sb3_mimic.envs import MimicHumanoidEnv
from sb3_mimic.evaluation import policy_actor
from sb3_mimic.experts import PDExpert
from sb3_mimic.video import GLYPH_SIZE, draw_text, overlay_lines, record_video, save_frame

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


def test_a_killed_writers_temporary_video_is_removed_by_the_next_write(walk_rgb, expert, tmp_path: Path, dead_pid,
                                                                      live_pid):
    # a video is written to .{stem}.{pid}.tmp.mp4 beside its output, then renamed; a SIGKILL leaves that file
    stale, running = tmp_path / f".walk.{dead_pid}.tmp.mp4", tmp_path / f".walk.{live_pid}.tmp.mp4"
    other_output = tmp_path / f".run.{dead_pid}.tmp.mp4"
    for path in (stale, running, other_output):
        path.write_bytes(b"cut off")
    record_video(expert, walk_rgb, tmp_path / "walk.mp4", seconds=0.2, seed=0)
    assert not stale.exists()  # its process is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["walk.mp4", running.name, other_output.name])


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
# what the frames show: the character's pixels are found by painting the character's geoms pure green (the ghost
# keeps its own orange, which the env sets on the ghost's geoms whatever the model's colours)


def _paint_character_green(env) -> None:
    model = env.unwrapped.model
    character = model.geom_bodyid > 0  # body 0 (the world) holds the floor
    model.geom_rgba[character] = (0.0, 1.0, 0.0, 1.0)
    materials = np.unique(model.geom_matid[character])
    model.mat_rgba[materials[materials >= 0]] = (0.0, 1.0, 0.0, 1.0)


def _masks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(character, ghost) pixel masks of a frame of a green-painted character."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    character = (g > r + 60) & (g > b + 60)
    ghost = (r > b + 60) & ~character
    return character, ghost


def _green_env(**kwargs):
    env = gymnasium.make("MimicHumanoidWalk-v0", render_mode="rgb_array", width=W, height=H, **kwargs)
    _paint_character_green(env)
    return env


def test_default_frame_shows_the_ghost_beside_the_character():
    env = _green_env()
    try:
        env.reset(options={"start_time": 0.2})  # the character stands in the reference pose
        character, ghost = _masks(env.render())
        cy, cx = np.nonzero(character)
        gy, gx = np.nonzero(ghost)
        assert character.sum() > 150 and ghost.sum() > 0.7 * character.sum()  # the ghost is not hidden behind it
        assert abs(cx.mean() - W / 2) < 0.1 * W  # the camera aims at the character
        assert gx.min() > cx.max() + 2  # the ghost stands to its right, apart
        assert abs(gy.min() - cy.min()) <= 3 and abs(gy.max() - cy.max()) <= 3  # at the same depth: same size
        # the offset that used to be documented as "beside" puts the ghost behind the character, overlapping it
        env.unwrapped.ghost_offset = np.array([0.0, 1.0, 0.0])
        character, ghost = _masks(env.render())
        gx = np.nonzero(ghost)[1]
        assert gx.size and gx.min() <= cx.max() and gx.max() >= cx.min()
    finally:
        env.close()


def test_cli_and_env_share_the_ghost_offset_default():
    default = inspect.signature(MimicHumanoidEnv.__init__).parameters["ghost_offset"].default
    assert tuple(default) == (1.0, 0.0, 0.0)
    args = build_parser().parse_args(["video", "--expert", "pd", "--mocap", "walk"])
    assert tuple(args.ghost_offset) == tuple(default) and args.overlay is False


def test_camera_follows_a_fallen_character():
    """Open-loop PD falls within about a second of walk; 5 s later the reference has walked on some 4 m."""
    env = _green_env(early_termination=False)
    try:
        act = policy_actor(PDExpert.for_env(env))
        obs, _ = env.reset(seed=0)
        for _ in range(150):
            obs, *_ = env.step(act(obs))
        u = env.unwrapped
        root, ref_root = u.data.xpos[1], u._ref.xpos[1]
        assert root[2] < 0.4 and ref_root[0] - root[0] > 3.0  # on the floor, far behind the reference
        character, _ = _masks(env.render())
        ys, xs = np.nonzero(character)
    finally:
        env.close()
    assert character.sum() > 100
    assert abs(xs.mean() - W / 2) < 0.15 * W  # still the subject of the frame
    assert xs.min() > 0 and xs.max() < W - 1 and ys.min() > 0 and ys.max() < H - 1  # whole, not cut by an edge


# ------------------------------------------------------------------------------------------------------------
# the overlay


def test_overlay_lines():
    assert overlay_lines(0.0) == ["time 0.00 s", "reward -", "MPJPE - mm"]
    assert overlay_lines(1.5, 0.71234, 0.0456, fell=True) == ["time 1.50 s", "reward 0.712", "MPJPE 46 mm", "fell"]
    assert overlay_lines(2.0, float("nan"), float("inf"))[1:] == ["reward -", "MPJPE - mm"]


def test_draw_text_draws_glyphs_in_a_dark_box():
    grey = np.full((H, W, 3), 200, dtype=np.uint8)
    one = draw_text(grey, ["1"], origin=(10, 20), scale=2)
    assert np.array_equal(grey, np.full((H, W, 3), 200))  # the input is left alone
    changed = np.nonzero((one != grey).any(axis=2))
    box_w, box_h = GLYPH_SIZE[0] * 2 + 2 * 4, GLYPH_SIZE[1] * 2 + 2 * 4
    assert (changed[1].min(), changed[0].min()) == (10, 20)
    assert (changed[1].max(), changed[0].max()) == (10 + box_w - 1, 20 + box_h - 1)
    white = (one == 255).all(axis=2)
    assert white.sum() == 10 * 4  # the glyph "1" has 10 font pixels (a stem of 7, a flag and two feet), each 2 x 2
    assert (one[~white & (one != grey).any(axis=2)] < 100).all()  # the rest of the box is darkened
    assert not np.array_equal(draw_text(grey, ["7"], origin=(10, 20), scale=2), one)
    two_lines = draw_text(grey, ["1", "11"], origin=(0, 0), scale=1)
    assert (two_lines == 255).all(axis=2).sum() == 3 * 10
    # the default scale grows with the image: 2 image pixels per font pixel at 480 pixels high
    assert (draw_text(np.zeros((480, 640, 3), np.uint8), ["1"]) == 255).all(axis=2).sum() == 10 * 4
    with pytest.raises(ValueError, match="cannot draw"):
        draw_text(grey, ["time?"])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        draw_text(grey[..., 0], ["1"])


def test_frame_overlay_shows_the_steps_own_figures(walk_rgb, expert, tmp_path: Path):
    """The overlaid still is the plain still with the text of the env's own reward and MPJPE after 5 steps."""
    plain = iio.imread(save_frame(expert, walk_rgb, tmp_path / "plain.png", steps=5, seed=3).path)
    info = save_frame(expert, walk_rgb, tmp_path / "overlay.png", steps=5, seed=3, overlay=True)
    shown = iio.imread(info.path)
    obs, _ = walk_rgb.reset(seed=3)
    for _ in range(5):
        obs, reward, _, _, step_info = walk_rgb.step(expert(obs))
    lines = overlay_lines(5 * walk_rgb.unwrapped.dt, reward, step_info["mpjpe"], step_info["fell"])
    assert lines[0] == "time 0.17 s" and lines[1].startswith("reward 0.")
    assert np.array_equal(shown, draw_text(plain, lines))
    differs = np.nonzero((shown != plain).any(axis=2))
    assert differs[0].max() < H // 2 and differs[1].max() < W * 2 // 3  # only the top-left box


def test_video_overlay(walk_rgb, expert, tmp_path: Path):
    plain = record_video(expert, walk_rgb, tmp_path / "plain.mp4", seconds=0.5, seed=0)
    shown = record_video(expert, walk_rgb, tmp_path / "overlay.mp4", seconds=0.5, seed=0, overlay=True)
    assert shown.frames == plain.frames == 16
    with imageio.get_reader(plain.path, format="FFMPEG") as a, imageio.get_reader(shown.path, format="FFMPEG") as b:
        pairs = [(np.asarray(x, dtype=int), np.asarray(y, dtype=int)) for x, y in zip(a, b, strict=True)]
    box = (slice(4, 4 + 29), slice(4, 4 + 75))  # three lines of up to 12 characters at scale 1
    for x, y in pairs:
        diff = np.abs(x - y).mean(axis=2)
        assert diff[box].mean() > 20  # the box is there, in every frame
        outside = np.ones_like(diff, dtype=bool)
        outside[: 4 + 29 + 4, : 4 + 75 + 4] = False
        assert diff[outside].mean() < 2  # and the image is otherwise the same (up to H.264's losses)
    assert np.abs(pairs[1][1][box] - pairs[10][1][box]).mean() > 1  # the figures change as the time runs


def test_cli_frame_overlay(tmp_path: Path):
    """`sb3-mimic video --frame --overlay` writes what the Python API writes (and the env's default ghost)."""
    out = tmp_path / "cli.png"
    assert main(["video", "--expert", "pd", "--mocap", "walk", "--frame", str(out), "--frame_step", "3", "--overlay",
                 "--width", str(W), "--height", str(H), "--no_progress"]) == 0
    env = gymnasium.make("MimicHumanoidWalk-v0", render_mode="rgb_array", width=W, height=H)
    try:
        api = save_frame(policy_actor(PDExpert.for_env(env)), env, tmp_path / "api.png", steps=3, seed=0, overlay=True)
    finally:
        env.close()
    assert np.array_equal(iio.imread(out), iio.imread(api.path))

