"""A live look at a clip or a policy: MuJoCo's own viewer (``mujoco.viewer``) with the reference as a ghost.

``MimicHumanoidEnv(render_mode="human")`` draws through :class:`LiveViewer`; ``sb3-mimic view`` plays a clip
kinematically (:func:`play_clip`) or runs a policy or an expert in physics (:func:`play_policy`) in real time.  A
viewer needs a display; without one, the error says to write a video with ``sb3-mimic video`` instead.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Callable

import mujoco
import numpy as np

GHOST_RGBA = (1.0, 0.55, 0.15, 0.35)
NO_DISPLAY = (
    "a live viewer needs a display, and none was found (DISPLAY is not set); write a video instead with "
    "`sb3-mimic video --out run.mp4 ...`, or use render_mode='rgb_array'"
)


def display_available() -> bool:
    """Whether a window can be opened: macOS, or an X11 / Wayland display in the environment."""
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class LiveViewer:
    """MuJoCo's passive viewer on ``data``, with an optional ghost of a reference state.

    :raises RuntimeError: without a display (:data:`NO_DISPLAY`), or when the window cannot be opened
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        if not display_available():
            raise RuntimeError(NO_DISPLAY)
        import mujoco.viewer

        before = set(threading.enumerate())
        try:
            self.handle = mujoco.viewer.launch_passive(model, data, show_left_ui=False, show_right_ui=False)
        except Exception as err:  # GLFW could not open a window on this display
            raise RuntimeError(f"MuJoCo's viewer could not open a window ({err}); {NO_DISPLAY}") from err
        # the viewer's own (daemon) thread: close() waits for it, since an interpreter that exits while it still
        # tears the window down crashes (a segfault at exit); atexit closes a viewer its owner left open
        self._threads = [t for t in threading.enumerate() if t not in before]
        atexit.register(self.close)
        self.model = model
        self._option, self._perturb = mujoco.MjvOption(), mujoco.MjvPerturb()

    @property
    def running(self) -> bool:
        """``False`` once the user has closed the window."""
        return self.handle.is_running()

    def show(self, ghost: mujoco.MjData | None = None, ghost_offset=(0.0, 0.0, 0.0)) -> None:
        """Draw the current state (and ``ghost``'s bodies, translucent, moved by ``ghost_offset``)."""
        with self.handle.lock():
            scene = self.handle.user_scn
            scene.ngeom = 0
            if ghost is not None:
                mujoco.mjv_addGeoms(self.model, ghost, self._option, self._perturb, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene)
                for i in range(scene.ngeom):
                    geom = scene.geoms[i]
                    geom.rgba[:] = GHOST_RGBA
                    geom.transparent = 1
                    geom.pos[:] = geom.pos + np.asarray(ghost_offset)
        self.handle.sync()

    def close(self) -> None:
        """Close the window and wait (up to 10 s) for the viewer's thread to finish tearing it down: an interpreter
        that exits while that thread still runs can crash."""
        self.handle.close()
        atexit.unregister(self.close)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10.0)


def play_clip(clip, seconds: float = 60.0, speed: float = 1.0) -> float:
    """Play ``clip`` kinematically in the viewer (looping clips loop) until ``seconds`` or the window closes.

    :return: the clip time shown last
    """
    from sb3_mimic import character

    model = character.load_model()
    data = mujoco.MjData(model)
    viewer = LiveViewer(model, data)
    start, t = time.perf_counter(), 0.0
    try:
        while viewer.running and t < seconds:
            t = (time.perf_counter() - start) * speed
            shown = t if clip.loop else min(t, clip.duration)
            _, qvel = clip.sample(shown, data.qpos)
            data.qvel[:] = qvel
            mujoco.mj_forward(model, data)
            viewer.show()
            time.sleep(1.0 / 60.0)
    finally:
        viewer.close()
    return t


def play_policy(act: Callable[[np.ndarray], np.ndarray], env, seconds: float = 60.0, speed: float = 1.0,
                seed: int | None = 0) -> int:
    """Run ``act`` on ``env`` (made with ``render_mode="human"``) in real time, resetting when an episode ends,
    until ``seconds`` of simulated time or the window closes; returns the steps taken."""
    obs, _ = env.reset(seed=seed)
    dt, steps = env.unwrapped.dt, 0
    env.render()
    next_frame = time.perf_counter()
    while env.unwrapped.viewer_running and steps * dt < seconds:
        obs, _, terminated, truncated, _ = env.step(act(obs))
        steps += 1
        env.render()
        next_frame += dt / speed
        time.sleep(max(0.0, next_frame - time.perf_counter()))
        if terminated or truncated:
            obs, _ = env.reset()
    return steps
