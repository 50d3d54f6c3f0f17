"""Vector envs on the batched simulation: N characters in one process, physics on every core.

- :class:`MimicHumanoidVecEnv`: an SB3 ``VecEnv`` with SB3's auto-reset (``infos[i]["terminal_observation"]``,
  ``infos[i]["TimeLimit.truncated"]``) and Monitor's ``infos[i]["episode"]``, for ``PPO``/``TRPO`` and friends.
- :class:`MimicHumanoidVectorEnv`: a Gymnasium ``VectorEnv`` (same-step auto-reset, ``infos["final_obs"]``), made by
  ``gymnasium.make_vec("MimicHumanoidWalk-v0", num_envs=N)`` (every sb3-mimic id registers it as its
  ``vector_entry_point``).

Character ``i`` is the single env ``MimicHumanoidEnv`` reset with ``seed + i`` (its reference-state starts are
drawn from its own generator, seeded like Gymnasium's ``reset(seed=seed + i)``), so from the same starts and
actions the observations, rewards, reward terms, terminations and MPJPE equal the single env's.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from sb3_mimic import character
from sb3_mimic.envs.batched import BatchStep, CharacterBatch
from sb3_mimic.envs.rendering import GHOST_OFFSET, CharacterRenderer, check_image_size
from sb3_mimic.motion import MotionClip
from sb3_mimic.reward import TERMS

#: 20 s at 30 Hz, as registered for the single env.
DEFAULT_MAX_EPISODE_STEPS = 600


class _Characters:
    """The shared part of both vector envs: a :class:`CharacterBatch` with per-character start generators and
    episode limits."""

    def __init__(self, num_envs: int, motion, action_mode, control_frequency, sim_frequency, early_termination,
                 threads, max_episode_steps, termination_distance=None, start_states=None,
                 start_share: float = 0.5, target_observation: bool = False) -> None:
        if max_episode_steps is not None and (int(max_episode_steps) != max_episode_steps or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be a whole number >= 1 or None, got {max_episode_steps!r}")
        self.batch = CharacterBatch(num_envs, motion, action_mode, control_frequency, sim_frequency, early_termination,
                                    threads, termination_distance=termination_distance,
                                    target_observation=target_observation)
        self.n = num_envs
        self.max_episode_steps = max_episode_steps
        self.rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        if start_states is not None:
            nq, nv = self.batch.model.nq, self.batch.model.nv
            if start_states.qpos.shape[1:] != (nq,) or start_states.qvel.shape[1:] != (nv,):
                raise ValueError(f"start states must be (K, {nq}) qpos and (K, {nv}) qvel of this character")
            if not 0.0 < start_share <= 1.0:
                raise ValueError(f"start_share must be in (0, 1], got {start_share!r}")
        self.start_states, self.start_share = start_states, float(start_share)
        self._renderer: CharacterRenderer | None = None
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.batch.observation_size,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(character.ACTION_SIZE,), dtype=np.float32)

    def set_rendering(self, render_mode: str | None, render_index: int, width: int, height: int) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}: the vector env renders images of one character "
                             "(None or 'rgb_array'); for a live window use MimicHumanoidEnv(render_mode='human')")
        if isinstance(render_index, bool) or not isinstance(render_index, (int, np.integer)) or \
                not 0 <= render_index < self.n:
            raise ValueError(f"render_index must be a character index in [0, {self.n}), got {render_index!r}")
        check_image_size(width, height)
        self.render_mode, self.render_index, self._size = render_mode, int(render_index), (int(width), int(height))
        if render_mode is not None:
            vis = self.batch.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, self._size[0]), max(vis.offheight, self._size[1])

    def image(self) -> np.ndarray:
        """An image of character :attr:`render_index`, its reference beside it as a ghost (as the single env draws)."""
        if self._renderer is None:
            self._renderer = CharacterRenderer(self.batch.model, *self._size)
        i = self.render_index
        return self._renderer.render(self.batch.data(i), self.batch.reference_data(i), np.asarray(GHOST_OFFSET),
                                     int(self.batch.index.body_ids[0]))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.batch.close()

    def seed(self, seed: int | None) -> None:
        self.rngs = [seeding.np_random(None if seed is None else seed + i)[0] for i in range(self.n)]

    def draw_starts(self, indices) -> np.ndarray:
        clip, dt = self.batch.clip, self.batch.dt
        end = clip.duration if clip.loop else max(clip.duration - dt, 0.0)
        return np.array([self.batch.grid_time(float(self.rngs[i].uniform(0.0, end))) for i in indices])

    def reset(self, indices=None) -> np.ndarray:
        indices = np.arange(self.n) if indices is None else np.asarray(indices)
        obs = self.batch.reset(indices, self.draw_starts(indices))
        pool = self.start_states
        if pool is not None:  # some episodes start in a state the expert visited, at its clip time
            for j, i in enumerate(indices):
                rng = self.rngs[i]
                if rng.random() < self.start_share:
                    k = int(rng.integers(len(pool.time)))
                    self.batch.reset(np.array([i]), pool.time[k : k + 1])
                    obs[j] = self.batch.set_state(int(i), pool.qpos[k], pool.qvel[k])
        return obs

    def step(self, actions) -> tuple[BatchStep, np.ndarray]:
        out = self.batch.step(np.asarray(actions).reshape(self.n, -1))
        limit = self.max_episode_steps
        truncated = np.zeros(self.n, dtype=bool) if limit is None else (self.batch.steps >= limit) & ~out.terminated
        return out, truncated

    @staticmethod
    def info(out: BatchStep, i: int) -> dict[str, Any]:
        return out.info(i)


class MimicHumanoidVecEnv(VecEnv):
    """An SB3 ``VecEnv`` of ``num_envs`` characters imitating one clip, stepped in ``threads`` threads.

    :param num_envs: number of characters
    :param motion: clip name, clip file path or loaded clip
    :param action_mode: ``"pd_target"``, ``"residual"`` or ``"torque"``
    :param control_frequency: policy steps per second (Hz)
    :param sim_frequency: physics steps per second (Hz)
    :param early_termination: end episodes on falls
    :param threads: physics threads (default: one per core)
    :param max_episode_steps: episode limit (truncation), default 600 (20 s), ``None`` for none
    :param seed: seeds the characters' start times (character ``i`` with ``seed + i``)
    :param termination_distance: end an episode when a body strays this far (m) from its reference (default off)
    :param start_states: physics states an expert visited (:class:`sb3_mimic.demos.StartStates`, from
        :func:`~sb3_mimic.demos.load_start_states`): an episode starts in one of them, drawn uniformly, at its clip
        time, with probability ``start_share``, and from the reference otherwise
    :param start_share: see ``start_states``
    :param target_observation: append the target block to each observation (see the single env)
    :param render_mode: ``"rgb_array"``: ``render()`` (SB3's, through :meth:`get_images`) returns an image of
        character ``render_index`` with its reference as a ghost, as the single env draws it; ``None`` (default)
    :param render_index: the character drawn
    :param width, height: image size, pixels
    """

    def __init__(
        self,
        num_envs: int,
        motion: str | MotionClip = "walk",
        action_mode: str = "pd_target",
        control_frequency: float = 30,
        sim_frequency: float = 240,
        early_termination: bool = True,
        threads: int | None = None,
        max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS,
        seed: int | None = None,
        termination_distance: float | None = None,
        start_states=None,
        start_share: float = 0.5,
        target_observation: bool = False,
        render_mode: str | None = None,
        render_index: int = 0,
        width: int = 640,
        height: int = 480,
    ) -> None:
        self._chars = _Characters(num_envs, motion, action_mode, control_frequency, sim_frequency, early_termination,
                                  threads, max_episode_steps, termination_distance, start_states, start_share,
                                  target_observation)
        self._chars.set_rendering(render_mode, render_index, width, height)
        self.render_mode = render_mode
        super().__init__(num_envs, self._chars.observation_space, self._chars.action_space)
        if seed is not None:
            self._chars.seed(seed)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(num_envs)
        self._t0 = time.perf_counter()

    @property
    def clip(self) -> MotionClip:
        return self._chars.batch.clip

    @property
    def batch(self) -> CharacterBatch:
        """The batched simulation."""
        return self._chars.batch

    @property
    def max_episode_steps(self) -> int | None:
        """The episode limit (truncation), steps; settable (an episode-length curriculum), from the next step on."""
        return self._chars.max_episode_steps

    @max_episode_steps.setter
    def max_episode_steps(self, steps: int | None) -> None:
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ValueError(f"max_episode_steps must be a whole number >= 1 or None, got {steps!r}")
        self._chars.max_episode_steps = None if steps is None else int(steps)

    def reset(self) -> np.ndarray:
        self._returns[:] = 0.0
        if self._seeds and self._seeds[0] is not None:
            self._chars.seed(self._seeds[0])  # SB3's seed(s) gives s + i to env i, as _Characters.seed does
        self._reset_seeds()
        self._reset_options()
        return self._chars.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        out, truncated = self._chars.step(self._actions)
        done = out.terminated | truncated
        obs = out.obs.copy()
        infos = out.infos()
        self._returns += out.reward
        ended = np.flatnonzero(done)
        if len(ended):
            for i in ended:
                infos[i]["terminal_observation"] = out.obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                # what SB3's Monitor reports, so that ep_rew_mean / ep_len_mean are logged without a VecMonitor
                infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._chars.batch.steps[i]),
                                       "t": round(time.perf_counter() - self._t0, 6)}
            self._returns[ended] = 0.0
            obs[ended] = self._chars.reset(ended)
        return obs, out.reward.astype(np.float32), done, infos

    def close(self) -> None:
        self._chars.close()

    # the VecEnv interface for attributes and methods: the characters share the clip and the settings
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """The attribute of the :class:`CharacterBatch` (``clip``, ``dt``, ``action_mode``, ...), or of this VecEnv."""
        source = self._chars.batch if hasattr(self._chars.batch, attr_name) else self
        return [getattr(source, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError(f"the characters of a {type(self).__name__} share their settings; make a new one instead")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        """``method_name(i, *args, **kwargs)`` of the :class:`CharacterBatch` for each index ``i``."""
        method = getattr(self._chars.batch, method_name)
        return [method(i, *method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> list[np.ndarray]:
        """One image: character ``render_index`` with its reference as a ghost (``render()`` returns it as is)."""
        if self.render_mode != "rgb_array":
            raise ValueError("make the vector env with render_mode='rgb_array' to render a character")
        return [self._chars.image()]


class MimicHumanoidVectorEnv(VectorEnv):
    """A Gymnasium ``VectorEnv`` of ``num_envs`` characters (``gymnasium.make_vec(id, num_envs=N)``), with
    same-step auto-reset: the observation of an ended episode's sub-env is its new episode's first, the ended
    one is in ``infos["final_obs"]`` (and its info in ``infos["final_info"]``).  Arguments as
    :class:`MimicHumanoidVecEnv`."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def __init__(
        self,
        num_envs: int,
        motion: str | MotionClip = "walk",
        action_mode: str = "pd_target",
        control_frequency: float = 30,
        sim_frequency: float = 240,
        early_termination: bool = True,
        threads: int | None = None,
        max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS,
        render_mode: str | None = None,
        termination_distance: float | None = None,
        target_observation: bool = False,
        render_index: int = 0,
        width: int = 640,
        height: int = 480,
    ) -> None:
        self._chars = _Characters(num_envs, motion, action_mode, control_frequency, sim_frequency, early_termination,
                                  threads, max_episode_steps, termination_distance,
                                  target_observation=target_observation)
        self._chars.set_rendering(render_mode, render_index, width, height)
        self.metadata = {**self.metadata, "render_fps": round(control_frequency)}
        self.num_envs = num_envs
        self.single_observation_space = self._chars.observation_space
        self.single_action_space = self._chars.action_space
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode

    @property
    def clip(self) -> MotionClip:
        return self._chars.batch.clip

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the vector env takes none")
        if isinstance(seed, list):
            self._chars.rngs = [seeding.np_random(s)[0] for s in seed]
        elif seed is not None:
            self._chars.seed(seed)
        starts = self._chars.draw_starts(range(self.num_envs))
        obs = self._chars.batch.reset(np.arange(self.num_envs), starts)
        return obs, {"time": starts, "phase": self._chars.batch.phases(starts)}

    def step(self, actions):
        out, truncated = self._chars.step(actions)
        terminated = out.terminated.copy()
        infos: dict[str, Any] = {f"reward_{t}": out.terms[:, k].copy() for k, t in enumerate(TERMS)}
        infos.update(mpjpe=out.mpjpe.copy(), time=out.time.copy(), phase=out.phase.copy(), fell=out.fell.copy(),
                     clip_end=out.clip_end.copy(), nonfinite=out.nonfinite.copy(),
                     invalid_action=out.invalid_action.copy(), deviated=out.deviated.copy())
        obs = out.obs.copy()
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            final_obs = np.empty(self.num_envs, dtype=object)
            final_info = np.empty(self.num_envs, dtype=object)
            for i in ended:
                final_obs[i], final_info[i] = out.obs[i].copy(), self._chars.info(out, i)
            infos["final_obs"], infos["final_info"] = final_obs, final_info
            infos["_final_obs"] = infos["_final_info"] = np.isin(np.arange(self.num_envs), ended)
            obs[ended] = self._chars.reset(ended)
        return obs, out.reward.copy(), terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """With ``render_mode="rgb_array"``: a one-image tuple, character ``render_index`` with its ghost."""
        return None if self.render_mode is None else (self._chars.image(),)

    def close_extras(self, **kwargs) -> None:
        self._chars.close()
