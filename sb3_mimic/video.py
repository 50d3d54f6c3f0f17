"""Videos and still frames of a policy (or an expert) driving an imitation env, with the reference as a ghost.

The env must be made with ``render_mode="rgb_array"`` (headless: set ``MUJOCO_GL=egl`` before mujoco is first
imported).  Frames are the env's own images: the character, a translucent orange ghost of the reference and a
camera that follows both.  Videos are H.264 ``.mp4`` files written with imageio's ffmpeg plugin
(``imageio-ffmpeg`` ships the ffmpeg binary) at the env's control frequency, so one video second is one second
of simulated time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

__all__ = ["FrameInfo", "VideoInfo", "record_video", "save_frame"]


@dataclass
class VideoInfo:
    """What :func:`record_video` wrote."""

    path: Path
    """The ``.mp4`` file."""
    frames: int
    """Frames in the video: one after the reset and one after every step (``steps + 1``)."""
    fps: int
    """Frames per second, the env's control frequency."""
    seconds: float
    """Simulated time covered, ``steps * env.dt`` (s); less than requested when the episode ended early."""
    steps: int
    """Env steps taken."""
    fell: bool
    """The episode ended in a fall."""
    ended_early: bool
    """The episode ended (fall, clip end or time limit) before the requested length; the video stops there."""
    width: int
    """Video width (px): the env's, plus one if odd (H.264 needs even sizes; the last column is repeated)."""
    height: int
    """Video height (px), likewise."""


@dataclass
class FrameInfo:
    """What :func:`save_frame` wrote."""

    path: Path
    steps: int
    """Env steps taken before the frame (fewer than requested if the episode ended first)."""
    time: float
    """Reference time of the frame (s)."""
    fell: bool
    ended_early: bool


def _check_env(env: gym.Env) -> None:
    mode = getattr(env, "render_mode", None)
    if mode != "rgb_array":
        raise ValueError(
            f"the env must be made with render_mode='rgb_array' to record images, got render_mode={mode!r}; e.g. "
            "gymnasium.make('MimicHumanoidWalk-v0', render_mode='rgb_array')"
        )


def _check_suffix(path: Path, suffix: str, what: str) -> None:
    if path.suffix.lower() != suffix:
        raise ValueError(f"{what} must be written to a {suffix} file, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name ending in {suffix}")


def _reset(env: gym.Env, seed: int | None, start_time: float | None) -> tuple[np.ndarray, dict[str, Any]]:
    options = None if start_time is None else {"start_time": float(start_time)}
    return env.reset(seed=seed, options=options)


def _frame(env: gym.Env) -> np.ndarray:
    image = env.render()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise RuntimeError(f"env.render() must return an (H, W, 3) image, got {type(image).__name__}")
    return np.ascontiguousarray(image, dtype=np.uint8)


def _even(image: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by repeating the last row/column (H.264 in yuv420p needs even sizes)."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return image


def _env_dt(env: gym.Env) -> float:
    dt = getattr(env.unwrapped, "dt", None)
    if dt is None:
        dt = 1.0 / env.metadata["render_fps"]
    return float(dt)


def _temp_path(path: Path) -> Path:
    # keep the suffix so that writers which look at it pick the right format
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def record_video(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    out_path: str | os.PathLike,
    seconds: float = 10.0,
    seed: int | None = 0,
    start_time: float | None = None,
    quality: float = 7.0,
    progress_bar: bool = False,
) -> VideoInfo:
    """Record ``act`` (a deterministic observation -> action function) driving ``env`` as an H.264 ``.mp4``.

    The episode starts with ``env.reset(seed=seed)`` (a seeded reference-state start) or, with ``start_time``,
    at that clip time.  One frame is rendered after the reset and one after every step, for
    ``round(seconds / env.dt)`` steps, or until the episode ends (fall, end of a non-looping clip or the time
    limit): the video then stops there, and :attr:`VideoInfo.ended_early` and :attr:`VideoInfo.fell` say so.
    The file is written to a temporary file in the same folder and renamed, so an interrupted recording never
    leaves a truncated video at ``out_path``.

    :param act: e.g. :func:`sb3_mimic.evaluation.policy_actor` of a model or an expert
    :param env: made with ``render_mode="rgb_array"``; the image size is its ``width`` and ``height``
    :param out_path: a ``.mp4`` path; missing folders are created
    :param seconds: simulated time to record (s), > 0
    :param seed: reset seed
    :param start_time: clip time to start at (s), instead of a seeded random start
    :param quality: imageio's ffmpeg quality, 0 (smallest) to 10 (best)
    :param progress_bar: show a bar of the recorded frames
    """
    out_path = Path(out_path).expanduser()
    _check_suffix(out_path, ".mp4", "a video")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number of seconds, got {seconds!r}")
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be between 0 and 10, got {quality!r}")
    _check_env(env)
    import imageio.v2 as imageio  # deferred: only video needs ffmpeg

    fps = int(env.metadata.get("render_fps") or round(1.0 / _env_dt(env)))
    n_steps = max(1, round(seconds / _env_dt(env)))
    obs, info = _reset(env, seed, start_time)
    first = _even(_frame(env))
    height, width = first.shape[:2]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(out_path)
    steps, fell, ended = 0, False, False
    try:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=quality, pixelformat="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
        )
        bar = tqdm(total=n_steps, desc="video", unit="frame", disable=not progress_bar)
        try:
            writer.append_data(first)
            while steps < n_steps:
                obs, _, terminated, truncated, info = env.step(act(obs))
                steps += 1
                writer.append_data(_even(_frame(env)))
                bar.update(1)
                if terminated or truncated:
                    fell = bool(info.get("fell", False))
                    ended = steps < n_steps
                    break
        finally:
            bar.close()
            writer.close()
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return VideoInfo(
        path=out_path, frames=steps + 1, fps=fps, seconds=steps * _env_dt(env), steps=steps, fell=fell,
        ended_early=ended, width=width, height=height,
    )


def save_frame(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    out_png: str | os.PathLike,
    steps: int = 0,
    seed: int | None = 0,
    start_time: float | None = None,
) -> FrameInfo:
    """Save a still ``.png`` of ``env`` after ``steps`` steps of ``act`` from a reset (a quick look).

    The reset is as in :func:`record_video`.  If the episode ends first, the frame shows its last state
    (:attr:`FrameInfo.ended_early`).  Written atomically.

    :param steps: control steps to take before the frame, >= 0 (0: the reset state)
    """
    out_png = Path(out_png).expanduser()
    _check_suffix(out_png, ".png", "a frame")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    _check_env(env)
    import imageio.v3 as iio

    obs, info = _reset(env, seed, start_time)
    taken, fell, ended = 0, False, False
    while taken < steps:
        obs, _, terminated, truncated, info = env.step(act(obs))
        taken += 1
        if terminated or truncated:
            fell = bool(info.get("fell", False))
            ended = taken < steps
            break
    image = _frame(env)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(out_png)
    try:
        iio.imwrite(tmp, image, extension=".png")
        os.replace(tmp, out_png)
    finally:
        if tmp.exists():
            tmp.unlink()
    return FrameInfo(path=out_png, steps=taken, time=float(info.get("time", taken * _env_dt(env))), fell=fell,
                     ended_early=ended)
