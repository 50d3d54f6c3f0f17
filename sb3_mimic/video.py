"""Videos and still frames of a policy (or an expert) driving an imitation env, with the reference as a ghost.

The env must be made with ``render_mode="rgb_array"`` (headless: set ``MUJOCO_GL=egl`` before mujoco is first
imported).  Frames are the env's own images: the character, a translucent orange ghost of the reference (by
default 1 m to the character's right, the env's ``ghost_offset``) and a camera that follows the character's
root.  Videos are H.264 ``.mp4`` files written with imageio's ffmpeg plugin (``imageio-ffmpeg`` ships the ffmpeg
binary) at the env's control frequency, so one video second is one second of simulated time.

With ``overlay=True`` each frame carries, in its top-left corner, the time since the episode start, the reward of
the step that led to the frame and the MPJPE to the reference (``-`` on the first frame, before any step), and
``fell`` on frames whose step reports a fall.  The text is drawn with a small built-in bitmap font
(:func:`draw_text`), so no font files or extra packages are needed.
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

from sb3_mimic._util import check_writable, temp_sibling

__all__ = ["FrameInfo", "VideoInfo", "draw_text", "overlay_lines", "record_video", "save_frame"]


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
    check_writable(path)  # before any rendering: an unwritable folder fails now, not after the recording


def _reset(env: gym.Env, seed: int | None, start_time: float | None) -> tuple[np.ndarray, dict[str, Any]]:
    options = None if start_time is None else {"start_time": float(start_time)}
    return env.reset(seed=seed, options=options)


def _frame(env: gym.Env, text: list[str] | None = None) -> np.ndarray:
    image = env.render()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise RuntimeError(f"env.render() must return an (H, W, 3) image, got {type(image).__name__}")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return image if text is None else draw_text(image, text)


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


# ------------------------------------------------------------------------------------------------------------
# text overlay: a 5 x 7 bitmap font of the characters the overlay needs

_GLYPH_ROWS: dict[str, tuple[str, ...]] = {
    " ": (".....", ".....", ".....", ".....", ".....", ".....", "....."),
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    "-": (".....", ".....", ".....", ".###.", ".....", ".....", "....."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "/": (".....", "....#", "...#.", "..#..", ".#...", "#....", "....."),
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "d": ("....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "f": ("..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."),
    "i": ("..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."),
    "l": (".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "m": (".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"),
    "n": (".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "o": (".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."),
    "r": (".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."),
    "s": (".....", ".....", ".###.", "#....", ".###.", "....#", "####."),
    "t": (".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."),
    "u": (".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"),
    "w": (".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
}
_GLYPHS: dict[str, np.ndarray] = {
    char: np.array([[cell == "#" for cell in row] for row in rows], dtype=bool) for char, rows in _GLYPH_ROWS.items()
}
#: Glyph size in font pixels (width, height); characters are one font pixel apart, lines two.
GLYPH_SIZE = (5, 7)


def _text_mask(line: str, scale: int) -> np.ndarray:
    """Boolean mask of one line of text, ``scale`` image pixels per font pixel."""
    unknown = sorted(set(line) - set(_GLYPHS))
    if unknown:
        raise ValueError(
            f"the overlay font cannot draw {''.join(unknown)!r}; it has {''.join(sorted(_GLYPHS))!r}"
        )
    gap = np.zeros((GLYPH_SIZE[1], 1), dtype=bool)
    pieces = [part for char in line for part in (_GLYPHS[char], gap)][:-1] or [np.zeros((GLYPH_SIZE[1], 0), bool)]
    mask = np.concatenate(pieces, axis=1)
    return np.kron(mask, np.ones((scale, scale), dtype=bool))


def draw_text(
    image: np.ndarray,
    lines: list[str] | tuple[str, ...],
    origin: tuple[int, int] = (4, 4),
    scale: int | None = None,
    color: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Return a copy of ``image`` with ``lines`` of text on a darkened box, top-left corner at ``origin``.

    The font is a built-in 5 x 7 bitmap (digits, ``. - + : /``, space and the letters the overlay uses); text
    that runs past the image edge is cut off.

    :param image: ``(H, W, 3)`` uint8 image
    :param lines: text lines, top to bottom
    :param origin: ``(x, y)`` of the box's top-left corner (px)
    :param scale: image pixels per font pixel; default ``max(1, H // 240)`` (2 for a 480-pixel-high frame)
    :param color: text colour (RGB)
    :raises ValueError: a character the font does not have, or not an ``(H, W, 3)`` image
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"draw_text needs an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    scale = max(1, height // 240) if scale is None else int(scale)
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    masks = [_text_mask(line, scale) for line in lines]
    out = np.array(image, dtype=np.uint8, copy=True)
    if not masks:
        return out
    pad, line_step = 2 * scale, (GLYPH_SIZE[1] + 2) * scale
    box_w = max(m.shape[1] for m in masks) + 2 * pad
    box_h = line_step * len(masks) - 2 * scale + 2 * pad
    x0, y0 = int(origin[0]), int(origin[1])
    x1, y1 = min(width, x0 + box_w), min(height, y0 + box_h)
    if x0 >= width or y0 >= height or x1 <= max(x0, 0) or y1 <= max(y0, 0):
        return out
    region = out[max(y0, 0):y1, max(x0, 0):x1]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken: the text reads on any background
    for i, mask in enumerate(masks):
        top, left = y0 + pad + i * line_step, x0 + pad
        # the part of the mask inside the image
        r0, c0 = max(0, -top), max(0, -left)
        r1, c1 = min(mask.shape[0], height - top), min(mask.shape[1], width - left)
        if r1 <= r0 or c1 <= c0:
            continue
        target = out[top + r0:top + r1, left + c0:left + c1]
        target[mask[r0:r1, c0:c1]] = color
    return out


def overlay_lines(elapsed_s: float, reward: float | None = None, mpjpe_m: float | None = None,
                  fell: bool = False) -> list[str]:
    """The overlay's text: time since the episode start, the last step's reward and MPJPE (``-`` when there is
    none yet, or it is not finite), and ``fell`` while the step reports a fall (``info["fell"]``).

    :param elapsed_s: simulated time since the reset (s)
    :param reward: reward of the step that led to the frame
    :param mpjpe_m: ``info["mpjpe"]`` of that step (m); shown in millimetres
    """
    has_reward = reward is not None and math.isfinite(reward)
    has_mpjpe = mpjpe_m is not None and math.isfinite(mpjpe_m)
    lines = [
        f"time {elapsed_s:.2f} s",
        f"reward {reward:.3f}" if has_reward else "reward -",
        f"MPJPE {1000.0 * mpjpe_m:.0f} mm" if has_mpjpe else "MPJPE - mm",
    ]
    if fell:
        lines.append("fell")
    return lines


def record_video(
    act: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    out_path: str | os.PathLike,
    seconds: float = 10.0,
    seed: int | None = 0,
    start_time: float | None = None,
    quality: float = 7.0,
    progress_bar: bool = False,
    overlay: bool = False,
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
    :param overlay: draw time, reward and MPJPE on every frame (:func:`overlay_lines`)
    """
    out_path = Path(out_path).expanduser()
    _check_suffix(out_path, ".mp4", "a video")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number of seconds, got {seconds!r}")
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be between 0 and 10, got {quality!r}")
    _check_env(env)
    import imageio.v2 as imageio  # deferred: only video needs ffmpeg

    dt = _env_dt(env)
    fps = int(env.metadata.get("render_fps") or round(1.0 / dt))
    n_steps = max(1, round(seconds / dt))
    obs, info = _reset(env, seed, start_time)
    first = _even(_frame(env, overlay_lines(0.0) if overlay else None))
    height, width = first.shape[:2]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out_path)
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
                obs, reward, terminated, truncated, info = env.step(act(obs))
                steps += 1
                text = None
                if overlay:
                    text = overlay_lines(steps * dt, float(reward), info.get("mpjpe"), bool(info.get("fell", False)))
                writer.append_data(_even(_frame(env, text)))
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
    overlay: bool = False,
) -> FrameInfo:
    """Save a still ``.png`` of ``env`` after ``steps`` steps of ``act`` from a reset (a quick look).

    The reset is as in :func:`record_video`.  If the episode ends first, the frame shows its last state
    (:attr:`FrameInfo.ended_early`).  Written atomically.

    :param steps: control steps to take before the frame, >= 0 (0: the reset state)
    :param overlay: draw time, reward and MPJPE on the frame, as in :func:`record_video`
    """
    out_png = Path(out_png).expanduser()
    _check_suffix(out_png, ".png", "a frame")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    _check_env(env)
    import imageio.v3 as iio

    obs, info = _reset(env, seed, start_time)
    taken, fell, ended, reward = 0, False, False, None
    while taken < steps:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        taken += 1
        if terminated or truncated:
            fell = bool(info.get("fell", False))
            ended = taken < steps
            break
    text = None
    if overlay:
        text = overlay_lines(taken * _env_dt(env), reward, info.get("mpjpe"), bool(info.get("fell", False)))
    image = _frame(env, text)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out_png)
    try:
        iio.imwrite(tmp, image, extension=".png")
        os.replace(tmp, out_png)
    finally:
        if tmp.exists():
            tmp.unlink()
    return FrameInfo(path=out_png, steps=taken, time=float(info.get("time", taken * _env_dt(env))), fell=fell,
                     ended_early=ended)
