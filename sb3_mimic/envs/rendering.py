"""Images of one character with its reference as a ghost: what ``render_mode="rgb_array"`` draws, for the single env
and for one character of the vector env."""

from __future__ import annotations

import mujoco
import numpy as np

from sb3_mimic.viewer import GHOST_RGBA

#: Where the ghost (the reference) is drawn, m from the reference: beside it, as the camera looks along +y.
GHOST_OFFSET = (1.0, 0.0, 0.0)


def check_image_size(width, height) -> None:
    """ValueError unless ``width`` and ``height`` are whole numbers of pixels >= 1."""
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a whole number of pixels >= 1, got {value!r}")


class CharacterRenderer:
    """An offscreen renderer of ``model`` that follows the character (horizontally, at a fixed aim height) and draws
    the reference translucent beside it.

    :param model: the character model, its offscreen buffer at least ``width`` x ``height``
    :raises RuntimeError: MuJoCo could not create an OpenGL context (the message says how to render headless)
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"MuJoCo could not create an OpenGL context ({err}). For headless rendering set the environment "
                "variable MUJOCO_GL=egl (or osmesa) before mujoco is first imported."
            ) from err
        self.model = model
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.distance, self._camera.azimuth, self._camera.elevation = 4.0, 90.0, -12.0
        self._scene_option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()

    def render(self, data: mujoco.MjData, ghost: mujoco.MjData, ghost_offset: np.ndarray, root: int) -> np.ndarray:
        """(height, width, 3) uint8 image of ``data`` with ``ghost``'s bodies moved by ``ghost_offset`` (m)."""
        # follow the character alone (the ghost may walk on after a fall), horizontally only: a fixed aim height
        # keeps the floor still under a walking or jumping body and a fallen one in the lower half of the image
        x, y = data.xpos[root, :2]
        self._camera.lookat[:] = (x, y, 0.8)
        self._renderer.update_scene(data, self._camera, self._scene_option)
        scene = self._renderer.scene
        first = scene.ngeom
        mujoco.mjv_addGeoms(self.model, ghost, self._scene_option, self._perturb, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene)
        for i in range(first, scene.ngeom):
            geom = scene.geoms[i]
            geom.rgba[:] = GHOST_RGBA
            geom.transparent = 1  # set by mjv_addGeoms from the model colour: blend the ghost
            geom.pos[:] = geom.pos + ghost_offset
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()
