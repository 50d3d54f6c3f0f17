"""The imitation env: DeepMimic's humanoid in MuJoCo tracking a motion clip."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from sb3_mimic import character
from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, pd_target_action, residual_action
from sb3_mimic.envs.batched import CharacterBatch, observation_structure
from sb3_mimic.envs.rendering import GHOST_OFFSET, CharacterRenderer, check_image_size
from sb3_mimic.motion import MotionClip, load_clip
from sb3_mimic.reward import PoseFeatures, end_effectors, heading




class MimicHumanoidEnv(MujocoEnv, utils.EzPickle):
    r"""
    ## Description
    DeepMimic's humanoid (Peng et al., 2018, "DeepMimic: Example-Guided Deep Reinforcement Learning of
    Physics-Based Character Skills") in MuJoCo, rewarded for tracking a motion-capture clip.  The character
    has 15 bodies, 45 kg, 8 ball joints and 4 hinges driven by stiff PD servos with DeepMimic's gains and
    torque limits.  The policy acts at ``control_frequency`` (30 Hz); physics and PD run at
    ``sim_frequency`` (240 Hz) with MuJoCo's implicit-in-velocity integrator.

    ## Action Space
    ``Box(-1, 1, (28,), float32)``, in DeepMimic's joint order: chest, neck, right hip, right knee,
    right ankle, right shoulder, right elbow, left hip, left knee, left ankle, left shoulder, left elbow.
    Ball joints take 3 numbers, hinges (knees, elbows) one.

    | action_mode | meaning of ``a`` |
    |---|---|
    | ``"pd_target"`` (default) | PD target ``pi * a``: exp-map (rad, joint frame) per ball joint, angle (rad) per hinge |
    | ``"residual"`` | PD target: the reference pose one control step ahead, plus ``pi / 4 * a`` (``a = 0`` tracks the clip) |
    | ``"torque"`` | torque ``a * torque_limit`` (N m), clamped by norm per ball joint; servos off, joint damping on |

    Out-of-range actions are clipped to [-1, 1]; NaN entries are replaced by 0 (``info["invalid_action"]``).
    :func:`pd_target_action` encodes a pose as the action that targets it.

    ## Observation Space
    ``Box(-inf, inf, (197,), float32)``, DeepMimic's state.  Positions and velocities are expressed in the
    root's heading frame: the world frame turned about the vertical by the root's heading
    (:func:`sb3_mimic.reward.heading`), DeepMimic's direction of the root's x axis on the floor while that axis
    is within 45 degrees of horizontal, blended towards the floor direction of the root's sagittal plane as it
    turns vertical, so that the frame does not swing round when the x axis passes through vertical (roll, crawl,
    getups).  Body positions are body-frame origins, which sit at the joints.  Bodies are in DeepMimic's order
    (``sb3_mimic.character.BODIES``).

    | slice | size | observation | unit |
    |---|---|---|---|
    | 0 | 1 | phase of the clip, in [0, 1) | - |
    | 1 | 1 | root height above the floor | m |
    | 2-46 | 45 | position of each body relative to the root, heading frame | m |
    | 47-106 | 60 | orientation of each body, heading frame, quaternion (w, x, y, z) with w >= 0 | - |
    | 107-151 | 45 | linear velocity of each body origin, heading frame | m/s |
    | 152-196 | 45 | angular velocity of each body, heading frame | rad/s |

    With ``target_observation=True`` the space is ``(247,)``: a target block follows, the reference the reward
    compares the state with, seen from the character's heading frame (DeepMimic's state says nothing of the heading
    and place the character should have, so a policy cannot see, let alone undo, a drift of its heading):

    | slice | size | observation | unit |
    |---|---|---|---|
    | 197-199 | 3 | the reference's root position minus the character's, heading frame | m |
    | 200-201 | 2 | cosine and sine of the reference's heading minus the character's | - |
    | 202-246 | 45 | position of each reference body relative to the reference's root, heading frame | m |

    ``env.observation_structure`` gives the block sizes.

    ## Rewards
    DeepMimic's released imitation reward (see :mod:`sb3_mimic.reward`), 1 at the reference state:

    ``reward = reward_pose + reward_velocity + reward_end_effector + reward_root + reward_com`` with

    - ``reward_pose = 0.5 exp(-2 pose_err)``: joint and root orientations;
    - ``reward_velocity = 0.05 exp(-0.1 vel_err)``: joint and root angular velocities;
    - ``reward_end_effector = 0.15 exp(-40 ee_err)``: ankle and wrist positions;
    - ``reward_root = 0.2 exp(-5 root_err)``: root position, orientation and velocities;
    - ``reward_com = 0.1 exp(-10 com_err)``: centre-of-mass velocity.

    Each term is in ``info["reward_<term>"]``.  ``info["mpjpe"]`` is the mean per-joint position error (m)
    of the 14 non-root bodies relative to the root, against the reference.

    ## Starting State
    Reference-state initialisation: the character starts in the reference pose and velocity at a time drawn
    uniformly from the clip with ``self.np_random`` and rounded to the physics timestep (where the references
    are tabulated), raised clear of the floor if that frame sinks into it.
    ``reset(options={"start_time": t})`` starts at time ``t`` exactly.

    ## Episode End
    - Termination: a floor contact of a body in the clip's ``fall_bodies`` (by default every body but the
      feet; cartwheel also allows the wrists, crawl checks only root, chest and neck, getups and roll never
      fall) ends the episode as a fall (``info["fell"]``); a non-looping clip ends at its last frame
      (``info["clip_end"]``); a non-finite state ends it as a fall too (``info["nonfinite"]``).
    - Truncation: 20 s (600 steps) through the registration's ``max_episode_steps``.

    ## Arguments
    | argument | default | description |
    |---|---|---|
    | ``motion`` | ``"walk"`` | catalogue clip name (``sb3_mimic.available_clips()``), clip file path, or ``MotionClip`` |
    | ``action_mode`` | ``"pd_target"`` | ``"pd_target"``, ``"residual"`` or ``"torque"`` |
    | ``control_frequency`` | 30 | policy steps per second (Hz) |
    | ``sim_frequency`` | 240 | physics and PD steps per second (Hz), a multiple of ``control_frequency`` |
    | ``early_termination`` | ``True`` | end episodes on falls |
    | ``termination_distance`` | ``None`` | a fall (``info["deviated"]``) too: a body this far (m) from its reference |
    | ``target_observation`` | ``False`` | append the target block to the observation (see above) |
    | ``render_mode`` | ``None`` | ``"rgb_array"``: images, the reference as a ghost; ``"human"``: a live viewer |
    | ``width``, ``height`` | 640, 480 | image size |
    | ``ghost_offset`` | ``(1, 0, 0)`` | ghost at reference + offset (m); the camera looks along +y: +x is beside, +y behind |

    ## Version History
    - v0: first version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(
        self,
        motion: str | MotionClip = "walk",
        action_mode: str = "pd_target",
        control_frequency: float = 30,
        sim_frequency: float = 240,
        early_termination: bool = True,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
        ghost_offset: tuple[float, float, float] = GHOST_OFFSET,
        termination_distance: float | None = None,
        target_observation: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(
                f"MimicHumanoidEnv got unexpected arguments {sorted(kwargs)}; valid arguments are motion, "
                "action_mode, control_frequency, sim_frequency, early_termination, render_mode, width, height, "
                "ghost_offset, termination_distance, target_observation"
            )
        if action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
        for label, flag in (("early_termination", early_termination), ("target_observation", target_observation)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{label} must be True or False, got {flag!r}")
        check_image_size(width, height)
        offset = np.asarray(ghost_offset, dtype=object)
        if offset.shape != (3,) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(v) for v in offset
        ):
            raise ValueError(f"ghost_offset must be three finite numbers (x, y, z) in metres, got {ghost_offset!r}")
        for label, value in (("control_frequency", control_frequency), ("sim_frequency", sim_frequency)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive number of Hz, got {value!r}")
        ratio = sim_frequency / control_frequency
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(
                f"sim_frequency ({sim_frequency} Hz) must be a whole multiple of control_frequency "
                f"({control_frequency} Hz), e.g. 300 and 30"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"unsupported render_mode {render_mode!r}; use None, 'rgb_array' (headless images) or 'human' (a live "
                "window)"
            )
        if render_mode == "human":
            from sb3_mimic.viewer import NO_DISPLAY, display_available

            if not display_available():
                raise RuntimeError(f"render_mode='human': {NO_DISPLAY}")
        utils.EzPickle.__init__(
            self, motion, action_mode, control_frequency, sim_frequency, early_termination, render_mode, width,
            height, ghost_offset, termination_distance, target_observation,
        )
        self.clip: MotionClip = load_clip(motion)
        self.action_mode = action_mode
        self.early_termination = early_termination
        self.ghost_offset = np.asarray(ghost_offset, dtype=np.float64)
        self._sim_frequency = float(sim_frequency)
        self.metadata = {**self.metadata, "render_fps": round(control_frequency)}
        self.target_observation = bool(target_observation)
        self.observation_structure = observation_structure(self.target_observation)
        size = sum(self.observation_structure.values())
        observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        MujocoEnv.__init__(
            self, character.model_path(), round(ratio), observation_space, render_mode=render_mode,
            width=width, height=height,
        )
        if abs(1.0 / self.dt - control_frequency) > 1e-6 * control_frequency:
            raise ValueError("control_frequency and sim_frequency do not give a whole number of physics steps")

        m = self.model
        if action_mode == "torque":
            m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION  # the joints' damping (DeepMimic's kd) stays
        # a batch of one character on this env's own model, which keeps ``self.data`` equal to its state: the
        # vector envs run the same code
        self._batch = CharacterBatch(
            1, self.clip, action_mode, control_frequency, sim_frequency, early_termination, threads=1, model=m,
            mirror=self.data, termination_distance=termination_distance, target_observation=self.target_observation,
        )
        self.index = self._batch.index
        self._root = int(self.index.body_ids[0])
        if list(self.index.body_ids) != list(range(1, len(character.BODIES) + 1)):
            raise RuntimeError("the character model's bodies 1..15 must be the character's, in BODIES order")
        self._renderer: mujoco.Renderer | None = None
        self._viewer = None

    # ------------------------------------------------------------------------------------------------
    # gymnasium API

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = character.load_model()  # the MJCF file's model, with the sensors the batch reads
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        model.opt.timestep = 1.0 / self._sim_frequency
        return model, mujoco.MjData(model)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Gymnasium's ``MujocoEnv.set_state``: :meth:`set_physics_state`, without the observation."""
        self.set_physics_state(qpos, qvel)

    def _set_action_space(self) -> spaces.Box:
        # MuJoCo 4 gives the orientation actuators an unset (0, 0) ctrlrange per control: set our own
        self.action_space = spaces.Box(-1.0, 1.0, shape=(character.ACTION_SIZE,), dtype=np.float32)
        return self.action_space

    @property
    def time(self) -> float:
        """Reference time (s) of the current state."""
        return float(self._batch.time[0])

    @property
    def start_time(self) -> float:
        """Clip time (s) at which the current episode started."""
        return float(self._batch.start_time[0])

    @property
    def elapsed_steps(self) -> int:
        """Control steps taken since the last reset."""
        return int(self._batch.steps[0])

    @property
    def fall_geoms(self) -> np.ndarray:
        """(ngeom,) read-only mask of the geoms whose floor contact ends an episode as a fall (the bodies in the
        clip's ``fall_bodies``)."""
        return self._batch.fall_geoms

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super(MujocoEnv, self).reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"start_time"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; the only option is 'start_time' (seconds)")
        duration = self.clip.duration
        if "start_time" in options:
            start = float(options["start_time"])
            if not math.isfinite(start) or start < 0 or (not self.clip.loop and start >= duration):
                limit = "" if self.clip.loop else f" and below the clip's duration {duration:.3f} s"
                raise ValueError(f"start_time must be a finite number of seconds >= 0{limit}, got {start!r}")
        else:
            end = duration if self.clip.loop else max(duration - self.dt, 0.0)
            start = self._batch.grid_time(float(self.np_random.uniform(0.0, end)))
        obs = self._batch.reset(np.zeros(1, dtype=np.int64), np.array([start]))[0]
        return obs, {"time": start, "phase": self.clip.phase(start)}

    def step(self, action):
        a = np.array(action, dtype=np.float64)
        if a.shape != (character.ACTION_SIZE,):
            raise ValueError(f"action must have shape ({character.ACTION_SIZE},), got {a.shape}")
        out = self._batch.step(a[None])
        return out.obs[0], float(out.reward[0]), bool(out.terminated[0]), False, out.info(0)

    def set_physics_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Put the character in state ``(qpos, qvel)`` at the current reference time and return its observation.

        The episode's clock is unchanged, so the reward of the next step compares with the reference at
        ``self.time + self.dt``.  Used to label perturbed reference states.
        """
        qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
        if qpos.shape != (self.model.nq,) or qvel.shape != (self.model.nv,):
            raise ValueError(f"qpos and qvel must have shapes ({self.model.nq},) and ({self.model.nv},)")
        if not (np.isfinite(qpos).all() and np.isfinite(qvel).all()):
            raise ValueError("qpos and qvel must be finite")
        return self._batch.set_state(0, qpos, qvel).copy()

    # ------------------------------------------------------------------------------------------------
    # actions

    def pd_target_action(self, qpos: np.ndarray) -> np.ndarray:
        """The ``pd_target`` action whose PD targets are the joint angles of ``qpos`` (a full model qpos)."""
        return pd_target_action(self.model, qpos, self.index)

    def residual_base(self) -> np.ndarray:
        """(28,) joint angles (rad, action layout) of the reference one control step ahead: the PD targets of the
        zero ``residual`` action in the current state."""
        return self._batch.next_reference_angles()[0]

    def encode_pd_targets(self, action: np.ndarray, action_mode: str) -> np.ndarray:
        """The action in ``action_mode`` (``"pd_target"`` or ``"residual"``) that sets the same PD targets as the
        ``pd_target`` action ``action`` now, float32 (may exceed [-1, 1]; the env clips)."""
        if action_mode == "pd_target":
            return np.asarray(action, dtype=np.float32)
        if action_mode == "residual":
            return residual_action(ACTION_SCALE * np.asarray(action, dtype=np.float64), self.residual_base())
        raise ValueError(f"PD targets cannot be encoded as {action_mode!r} actions; use pd_target or residual")

    # ------------------------------------------------------------------------------------------------
    # features, reference, observation

    def reference_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference ``(qpos, qvel)`` at the current time (copies)."""
        return self._batch.reference_state(0)

    @property
    def _ref(self) -> mujoco.MjData:
        return self._batch.reference_data(0)

    def _features(self, arrays, yaw: float) -> PoseFeatures:
        ee = end_effectors(arrays.xpos[0, self.index.end_effector_ids - 1], arrays.xpos[0, 0], yaw)
        return PoseFeatures(arrays.qpos[0].copy(), arrays.qvel[0].copy(), ee, arrays.com_velocity[0].copy())

    @property
    def _sim_features(self) -> PoseFeatures:
        """The reward's features of the current state (copies)."""
        self._batch._refresh()
        return self._features(self._batch._sim, heading(self._batch._sim.xquat[0, 0]))

    @property
    def _ref_features(self) -> PoseFeatures:
        """The reward's features of the current reference (copies)."""
        self._batch._refresh()
        return self._features(self._batch._ref, self._batch._ref.heading[0])

    def _get_obs(self) -> np.ndarray:
        return self._batch.observe()[0]

    # ------------------------------------------------------------------------------------------------
    # rendering

    @property
    def viewer_running(self) -> bool:
        """With ``render_mode="human"``: ``False`` once the viewer's window was closed."""
        return self._viewer is None or self._viewer.running

    def render(self):
        if self.render_mode is None:
            return None
        if self.render_mode == "human":
            if self._viewer is None:
                from sb3_mimic.viewer import LiveViewer

                self._viewer = LiveViewer(self.model, self.data)
            self._viewer.show(self._ref, self.ghost_offset)
            return None
        if self._renderer is None:
            self._renderer = CharacterRenderer(self.model, self.width, self.height)
        return self._renderer.render(self.data, self._ref, self.ghost_offset, self._root)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
        super().close()

