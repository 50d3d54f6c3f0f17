"""Batched simulation: N characters of one clip stepped together, physics on every core.

:class:`CharacterBatch` holds one ``MjModel`` and N physics states in a persistent :class:`mujoco.batch.Batch`
(MuJoCo 4's batched simulation: one ``MjData`` per character, stepped on a C thread pool with the GIL released).
A step is one call into it: each character's ``frame_skip`` physics steps, then the position and velocity stages
at the new state (what ``mj_step1`` computes, which the next step continues from), with the sensors the
character model carries for the batch (a contact sensor per body, for falls, and the centre-of-mass velocity);
MuJoCo copies the fields the batch functions read out into (N, ...) arrays in its own threads.  No Python runs per
character.  References are a function of time alone: a character whose start lies on the physics grid (the envs'
random starts do) reads them, and its start state, from a table filled once per physics tick.  What the step
returns (observations, reward terms, MPJPE, falls) is then computed for the whole batch by one call of a compiled
kernel (:mod:`sb3_mimic._jit`) built from the row functions of this module (:func:`observation_into`,
:func:`target_into`, :func:`mpjpe_of`) and of :mod:`sb3_mimic.reward` (:func:`~sb3_mimic.reward.heading_of`,
:func:`~sb3_mimic.reward.end_effectors_into`, :func:`~sb3_mimic.reward.errors_into`,
:func:`~sb3_mimic.reward.reward_into`): the one implementation of each, which the numpy-facing functions
(:func:`observations`, :func:`~sb3_mimic.reward.batch_errors`, ...), the single env
(:class:`~sb3_mimic.envs.MimicHumanoidEnv`, a batch of one) and the MPC call too.  A reset writes the start states
and leaves their kinematics to the next step (which computes them anyway) or to the first reader that needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import mujoco.batch
import numpy as np

from sb3_mimic import character
from sb3_mimic._jit import announce_compilation, jit
from sb3_mimic._util import available_cores
from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, BALL_ACTIONS, RESIDUAL_SCALE, joint_angles
from sb3_mimic.motion import FloorProbe, MotionClip, load_clip
from sb3_mimic.reward import (
    TERMS,
    end_effectors,
    end_effectors_into,
    errors_into,
    forward_kinematics,
    heading,
    heading_of,
    pose_weights,
    reward_into,
)

N_BODIES = len(character.BODIES)
#: Size of each observation block (the env docstring's table).
OBSERVATION_STRUCTURE: dict[str, int] = {
    "phase": 1,
    "root_height": 1,
    "body_positions": 3 * N_BODIES,
    "body_rotations": 4 * N_BODIES,
    "body_linear_velocities": 3 * N_BODIES,
    "body_angular_velocities": 3 * N_BODIES,
}
OBSERVATION_SIZE = sum(OBSERVATION_STRUCTURE.values())
#: Sizes of the target block appended with ``target_observation=True``: the reference the reward compares the state
#: with, seen from the character (what DeepMimic's observation leaves out: the heading and place it should have).
TARGET_STRUCTURE: dict[str, int] = {
    "target_root_offset": 3,
    "target_heading": 2,
    "target_body_positions": 3 * N_BODIES,
}


def observation_structure(target_observation: bool = False) -> dict[str, int]:
    """The observation's blocks and their sizes, in order (DeepMimic's, then the target block if asked for)."""
    return {**OBSERVATION_STRUCTURE, **(TARGET_STRUCTURE if target_observation else {})}


def heading_frames(root_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The root's heading (rad, :func:`sb3_mimic.reward.heading`) and its cosine and sine, which turn world vectors
    into the heading frame (``x_h = c x + s y``, ``y_h = c y - s x``, z unchanged).

    :param root_quat: (N, 4) root orientations
    :return: ``heading``, ``cos`` and ``sin``, each (N,)
    """
    yaw = heading(root_quat)
    return yaw, np.cos(yaw), np.sin(yaw)


_BLOCK_STARTS = np.cumsum([0, *OBSERVATION_STRUCTURE.values()]).tolist()  # where each observation block starts
_POSITIONS, _ROTATIONS, _LINEAR, _ANGULAR = _BLOCK_STARTS[2:6]


@jit
def observation_into(phase, xpos, xquat, cvel, com, yaw, c, s, out):  # pragma: no cover - compiled
    """One character's observation into ``out`` (float32, at least 197): :func:`observations` of one row (a compiled
    function, which the step kernel calls too)."""
    out[0], out[1] = phase, xpos[0, 2]
    hc, hs = math.cos(0.5 * yaw), math.sin(0.5 * yaw)
    for b in range(xpos.shape[0]):
        # position relative to the root, turned into the heading frame (x_h = c x + s y, y_h = c y - s x)
        x, y = xpos[b, 0] - xpos[0, 0], xpos[b, 1] - xpos[0, 1]
        k = _POSITIONS + 3 * b
        out[k], out[k + 1], out[k + 2] = x * c + y * s, y * c - x * s, xpos[b, 2] - xpos[0, 2]
        # angular velocity, and the linear velocity of the body origin: cvel's, taken at the centre of mass of the
        # root's subtree, moved to the origin by ang x arm
        ax, ay, az = cvel[b, 0], cvel[b, 1], cvel[b, 2]
        rx, ry, rz = xpos[b, 0] - com[0], xpos[b, 1] - com[1], xpos[b, 2] - com[2]
        vx, vy = cvel[b, 3] + (ay * rz - az * ry), cvel[b, 4] + (az * rx - ax * rz)
        k = _LINEAR + 3 * b
        out[k], out[k + 1], out[k + 2] = vx * c + vy * s, vy * c - vx * s, cvel[b, 5] + (ax * ry - ay * rx)
        k = _ANGULAR + 3 * b
        out[k], out[k + 1], out[k + 2] = ax * c + ay * s, ay * c - ax * s, az
        # orientation in the heading frame: conj(heading quaternion) * q, with w >= 0
        w, qx, qy, qz = xquat[b, 0], xquat[b, 1], xquat[b, 2], xquat[b, 3]
        tw, tx, ty, tz = hc * w + hs * qz, hc * qx + hs * qy, hc * qy - hs * qx, hc * qz - hs * w
        sign = math.copysign(1.0, tw)
        k = _ROTATIONS + 4 * b
        out[k], out[k + 1], out[k + 2], out[k + 3] = tw * sign, tx * sign, ty * sign, tz * sign


@jit
def target_into(sim_xpos, c, s, sim_yaw, ref_xpos, ref_yaw, out):  # pragma: no cover - compiled
    """One character's target block into ``out`` (float32, 50): :func:`target_observations` of one row."""
    x, y = ref_xpos[0, 0] - sim_xpos[0, 0], ref_xpos[0, 1] - sim_xpos[0, 1]
    out[0], out[1], out[2] = x * c + y * s, y * c - x * s, ref_xpos[0, 2] - sim_xpos[0, 2]
    out[3], out[4] = math.cos(ref_yaw - sim_yaw), math.sin(ref_yaw - sim_yaw)
    for b in range(ref_xpos.shape[0]):
        x, y = ref_xpos[b, 0] - ref_xpos[0, 0], ref_xpos[b, 1] - ref_xpos[0, 1]
        k = 5 + 3 * b
        out[k], out[k + 1], out[k + 2] = x * c + y * s, y * c - x * s, ref_xpos[b, 2] - ref_xpos[0, 2]


@jit
def mpjpe_of(sim_xpos, ref_xpos):  # pragma: no cover - compiled
    """:func:`mpjpe` of one character."""
    total = 0.0
    for b in range(1, sim_xpos.shape[0]):
        squares = 0.0
        for i in range(3):
            d = (sim_xpos[b, i] - ref_xpos[b, i]) - (sim_xpos[0, i] - ref_xpos[0, i])
            squares += d * d
        total += math.sqrt(squares)
    return total / (sim_xpos.shape[0] - 1)


@jit
def _observation_rows(phase, xpos, xquat, cvel, com, yaw, c, s, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        observation_into(phase[i], xpos[i], xquat[i], cvel[i], com[i], yaw[i], c[i], s[i], out[i])


@jit
def _target_rows(sim_xpos, c, s, sim_yaw, ref_xpos, ref_yaw, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        target_into(sim_xpos[i], c[i], s[i], sim_yaw[i], ref_xpos[i], ref_yaw[i], out[i])


@jit
def _mpjpe_rows(sim_xpos, ref_xpos, out):  # pragma: no cover - compiled
    for i in range(len(out)):
        out[i] = mpjpe_of(sim_xpos[i], ref_xpos[i])


def observations(
    phase: np.ndarray, xpos: np.ndarray, xquat: np.ndarray, cvel: np.ndarray, subtree_com: np.ndarray,
    heading: np.ndarray, c: np.ndarray, s: np.ndarray,
) -> np.ndarray:
    """DeepMimic's observation of N characters (see the env's table), float32 (N, 197).

    :param phase: (N,) clip phase
    :param xpos, xquat, cvel: (N, 15, ...) the character's bodies (model bodies 1..15, in ``character.BODIES`` order)
    :param subtree_com: (N, 3) centre of mass of the root's subtree (``cvel``'s linear part is taken there)
    :param heading, c, s: from :func:`heading_frames`
    """
    obs = np.empty((len(phase), OBSERVATION_SIZE), dtype=np.float32)
    _observation_rows(np.asarray(phase, dtype=np.float64), xpos, xquat, cvel, subtree_com, heading, c, s, obs)
    return obs


def target_observations(
    sim_xpos: np.ndarray, sim_heading: np.ndarray, c: np.ndarray, s: np.ndarray, ref_xpos: np.ndarray,
    ref_heading: np.ndarray,
) -> np.ndarray:
    """The target block of N characters, float32 (N, 50): the reference seen from each character's heading frame.

    ``target_root_offset`` (3): the reference's root minus the character's, m; ``target_heading`` (2): cosine and
    sine of the reference's heading minus the character's; ``target_body_positions`` (45): each reference body
    relative to the reference's root, m.  The last minus the character's own ``body_positions`` block is the
    per-body error MPJPE averages, turned into the character's heading frame.

    :param sim_xpos, ref_xpos: (N, 15, 3) body positions of the characters and of their references
    :param sim_heading, c, s: the characters' :func:`heading_frames`
    :param ref_heading: (N,) the references' headings
    """
    out = np.empty((len(sim_heading), sum(TARGET_STRUCTURE.values())), dtype=np.float32)
    _target_rows(sim_xpos, c, s, sim_heading, ref_xpos, np.asarray(ref_heading, dtype=np.float64), out)
    return out


def mpjpe(sim_xpos: np.ndarray, ref_xpos: np.ndarray) -> np.ndarray:
    """(N,) mean per-joint position error (m) of the 14 non-root bodies, root-relative."""
    out = np.empty(len(sim_xpos))
    _mpjpe_rows(sim_xpos, ref_xpos, out)
    return out


@jit
def _step_rows(phase, xpos, xquat, cvel, com, qpos, qvel, com_velocity, sensordata, fall_columns, ee_ids, ref_qpos,
               ref_qvel, ref_xpos, ref_ee, ref_com_velocity, ref_heading, quat_weights, hinge_weights, root_weights,
               velocity_weights, quat_qpos, hinge_qpos, target, distance, obs, terms, rewards, errors_mpjpe, deviated,
               touched):  # pragma: no cover - compiled
    """What a step gives each character, from the batch's arrays: the observation (and target block), the reward and
    its terms, MPJPE, whether a body strayed beyond ``distance`` (if positive) and whether a fall body touches."""
    ee, dee = np.empty(ref_ee.shape[1:]), np.empty(ref_ee.shape[1:])
    dv, dcom, errors = np.empty(qvel.shape[1]), np.empty(3), np.empty(terms.shape[1])
    for i in range(len(phase)):
        yaw = heading_of(xquat[i, 0, 0], xquat[i, 0, 1], xquat[i, 0, 2], xquat[i, 0, 3])
        c, s = math.cos(yaw), math.sin(yaw)
        observation_into(phase[i], xpos[i], xquat[i], cvel[i], com[i], yaw, c, s, obs[i])
        if target:
            target_into(xpos[i], c, s, yaw, ref_xpos[i], ref_heading[i], obs[i, OBSERVATION_SIZE:])
        end_effectors_into(xpos[i], ee_ids, xpos[i, 0], c, s, ee)
        for k in range(ee.shape[0]):
            for j in range(3):
                dee[k, j] = ref_ee[i, k, j] - ee[k, j]
        for k in range(len(dv)):
            dv[k] = ref_qvel[i, k] - qvel[i, k]
        for j in range(3):
            dcom[j] = ref_com_velocity[i, j] - com_velocity[i, j]
        errors_into(quat_weights, hinge_weights, root_weights, velocity_weights, quat_qpos, hinge_qpos, qpos[i],
                    ref_qpos[i], dv, dee, dcom, errors)
        rewards[i] = reward_into(errors, terms[i])
        errors_mpjpe[i] = mpjpe_of(xpos[i], ref_xpos[i])
        if distance > 0.0:
            farthest = 0.0
            for b in range(xpos.shape[1]):
                d = 0.0
                for j in range(3):
                    d += (xpos[i, b, j] - ref_xpos[i, b, j]) * (xpos[i, b, j] - ref_xpos[i, b, j])
                farthest = max(farthest, math.sqrt(d))
            deviated[i] = farthest > distance
        touched[i] = False
        for k in fall_columns:
            if sensordata[i, k] > 0:
                touched[i] = True
                break


#: The keys of a step's ``info``, in order.
INFO_KEYS = (*(f"reward_{t}" for t in TERMS), "mpjpe", "time", "phase", "fell", "clip_end", "nonfinite",
             "invalid_action", "deviated")


@dataclass
class BatchStep:
    """What one step of a :class:`CharacterBatch` produced, one row per character."""

    obs: np.ndarray
    """(N, 197) float32 observations, (N, 247) with the target block (the last good one for a character whose state
    went non-finite)."""
    reward: np.ndarray
    """(N,) the imitation reward (0 for a non-finite state)."""
    terms: np.ndarray
    """(N, 5) its weighted terms, in :data:`sb3_mimic.reward.TERMS` order."""
    mpjpe: np.ndarray
    """(N,) mean per-joint position error, m (NaN for a non-finite state)."""
    fell: np.ndarray
    """(N,) a fall body touched the floor (with early termination), a body strayed beyond ``termination_distance``,
    or the state went non-finite."""
    clip_end: np.ndarray
    """(N,) a non-looping clip reached its last frame."""
    nonfinite: np.ndarray
    """(N,) the physics diverged (MuJoCo reset the data)."""
    invalid_action: np.ndarray
    """(N,) the action had NaN or infinite entries (replaced by 0 / +-1)."""
    time: np.ndarray
    """(N,) reference time after the step, s."""
    phase: np.ndarray
    """(N,) clip phase after the step."""
    deviated: np.ndarray
    """(N,) a body strayed farther than ``termination_distance`` from its reference (counted in :attr:`fell`)."""

    @property
    def terminated(self) -> np.ndarray:
        return self.fell | self.clip_end

    def info(self, i: int) -> dict:
        """The Gymnasium ``info`` of character ``i``: its reward terms, MPJPE, clock and end flags."""
        return self.infos(np.array([i]))[0]

    def infos(self, indices: np.ndarray | None = None) -> list[dict]:
        """:meth:`info` of each character of ``indices`` (default all), built from one conversion per field."""
        rows = slice(None) if indices is None else indices
        columns = [self.terms[rows].T, self.mpjpe[rows], self.time[rows], self.phase[rows], self.fell[rows],
                   self.clip_end[rows], self.nonfinite[rows], self.invalid_action[rows], self.deviated[rows]]
        values = zip(*(c.tolist() for c in (*columns[0], *columns[1:])), strict=True)
        return [dict(zip(INFO_KEYS, v, strict=True)) for v in values]


class CharacterBatch:
    """N characters imitating one clip, each with its own physics state and episode clock.

    :param num_characters: N
    :param motion: clip name, clip file path or loaded clip
    :param action_mode: ``"pd_target"``, ``"residual"`` or ``"torque"`` (see :mod:`sb3_mimic.envs.actions`)
    :param control_frequency: policy steps per second (Hz)
    :param sim_frequency: physics steps per second (Hz), a multiple of ``control_frequency``
    :param early_termination: end episodes on falls
    :param termination_distance: also end an episode as a fall when a body origin strays farther than this (m) from
        its reference (pose-deviation termination; MimicKit uses 1.0 m); ``None`` (default): off
    :param target_observation: append the target block (:data:`TARGET_STRUCTURE`, :func:`target_observations`) to
        each observation
    :param threads: threads that step the characters, the caller's included (default: one per core)
    :param model: an existing model to share (the single env passes its own), from
        :func:`sb3_mimic.character.load_model` (the batch reads its sensors); by default one is loaded
    :param mirror: an ``MjData`` of ``model`` kept equal to character 0's whole ``MjData`` after every reset, step
        and :meth:`set_state` (the single env's ``data``, which renderers and Gymnasium's MuJoCo API read)
    """

    def __init__(
        self,
        num_characters: int,
        motion: str | MotionClip = "walk",
        action_mode: str = "pd_target",
        control_frequency: float = 30,
        sim_frequency: float = 240,
        early_termination: bool = True,
        threads: int | None = None,
        model: mujoco.MjModel | None = None,
        mirror: mujoco.MjData | None = None,
        termination_distance: float | None = None,
        target_observation: bool = False,
    ) -> None:
        if int(num_characters) != num_characters or num_characters < 1:
            raise ValueError(f"num_characters must be a whole number >= 1, got {num_characters!r}")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; choose one of {ACTION_MODES}")
        if termination_distance is not None and not (isinstance(termination_distance, (int, float, np.number))
                                                     and not isinstance(termination_distance, bool)
                                                     and math.isfinite(termination_distance) and termination_distance > 0):
            raise ValueError(f"termination_distance must be a positive number of metres or None, got {termination_distance!r}")
        self.termination_distance = None if termination_distance is None else float(termination_distance)
        if not isinstance(target_observation, (bool, np.bool_)):
            raise ValueError(f"target_observation must be True or False, got {target_observation!r}")
        self.target_observation = bool(target_observation)
        self.observation_structure = observation_structure(self.target_observation)
        self.observation_size = sum(self.observation_structure.values())
        threads = available_cores() if threads is None else threads
        if int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        self.n = int(num_characters)
        announce_compilation("batched._step_rows")
        self.clip = load_clip(motion)
        self.action_mode = action_mode
        self.early_termination = bool(early_termination)
        if model is None:
            model = character.load_model()
            model.opt.timestep = 1.0 / float(sim_frequency)
            if action_mode == "torque":
                model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION  # the joints' damping stays
        self.model = model
        self.frame_skip = round(float(sim_frequency) / float(control_frequency))
        self.dt = self.frame_skip * model.opt.timestep
        self.index = character.character_index(model)
        fall_ids = [model.body(b).id for b in self.clip.info.fall_bodies]
        self.fall_geoms = np.isin(model.geom_bodyid, fall_ids)
        self.fall_geoms.flags.writeable = False
        self._ee_index = self.index.end_effector_ids - 1  # model body id -> index among bodies 1..15
        self.start_time = np.zeros(self.n)
        self._start_tick = np.full(self.n, -1, dtype=np.int64)  # start time / timestep, -1 when off the grid
        self.steps = np.zeros(self.n, dtype=np.int64)
        self._tick = np.zeros(self.n, dtype=np.int64)  # start_tick + steps * frame_skip, kept by reset and step
        self._on_grid = False  # every character started on the physics grid
        # characters reset since the last step, whose kinematics (MuJoCo's forward) and reference arrays are brought
        # up to date only when something reads them (the next step computes them anyway)
        self._stale = np.zeros(self.n, dtype=bool)
        self.threads = min(int(threads), self.n)
        # one MjData per character, stepped by MuJoCo's batch on its own threads; what the batch functions read is
        # bound: the state rows (qpos, qvel, time, controls) and the fields MuJoCo copies out after every call
        self._mjb = mujoco.batch.Batch(model, self.n, nthread=self.threads, persistent=True)
        self._mjb.set_models(model)  # this model itself, not the batch's copy: changes to it (options, gains) apply
        self._sim = _BatchArrays(self._mjb, self.index, model)
        # the contact sensors of the clip's fall bodies
        self._fall_sensors = _sensor_columns(model, [character.CONTACT_SENSOR.format(b) for b in self.clip.info.fall_bodies])
        self._mjb.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._state = self._mjb.state  # (N, nstate) each character's mjSTATE_INTEGRATION row, live
        self._reset_state = self._state[0].copy()
        self._warnings = self._mjb.warning  # (N, mjNWARNING, 2): last info and count of each MuJoCo warning
        self._inputs = self._mjb.bind("qfrc_applied" if action_mode == "torque" else "ctrl")
        if mirror is not None and mirror.qpos.shape != (model.nq,):
            raise ValueError("mirror must be an MjData of the batch's model")
        self.mirror = mirror
        self._ref = _Arrays(self.n, model.nq, model.nv, self._ee_index)
        self._table = _ReferenceTable(self)
        self._weights = pose_weights(model, self.index)
        self._kernel_weights = self._weights.kernel_arrays(self.index)
        self._scratch: dict[int, mujoco.MjData] = {}
        self.last_obs = np.zeros((self.n, self.observation_size), dtype=np.float32)

    # ------------------------------------------------------------------------------------------------
    @property
    def time(self) -> np.ndarray:
        """(N,) reference time of each character's current state, s: ``tick * timestep`` for a start on the physics
        grid (see :meth:`grid_time`), else ``start_time + steps * dt``."""
        if self._on_grid:  # the usual case
            return self._tick * self.model.opt.timestep
        return np.where(self._start_tick >= 0, self._tick * self.model.opt.timestep, self.start_time + self.steps * self.dt)

    @property
    def qpos(self) -> np.ndarray:
        """(N, nq) the characters' positions (a read-only view; :meth:`set_state` changes them)."""
        return _read_only(self._sim.qpos)

    @property
    def qvel(self) -> np.ndarray:
        """(N, nv) the characters' velocities (a read-only view)."""
        return _read_only(self._sim.qvel)

    def data(self, i: int) -> mujoco.MjData:
        """Character ``i``'s whole ``MjData`` as of the last call, for drawing it or any ``mj_`` function (a copy,
        refreshed by each call of this method; changing it does not change the character: see :meth:`set_state`)."""
        if i not in range(self.n):
            raise IndexError(f"character {i} out of range: the batch has {self.n}")
        if i not in self._scratch:
            self._scratch[i] = mujoco.MjData(self.model)
        self._refresh()
        self._mjb.get_data(i, self._scratch[i])
        return self._scratch[i]

    def _ticks(self, ahead: int = 0) -> np.ndarray:
        """(N,) physics ticks of the characters' times ``ahead`` control steps on (meaningless off the grid)."""
        return self._tick + ahead * self.frame_skip if ahead else self._tick

    def grid_time(self, t: float) -> float:
        """``t`` (s) rounded to the physics grid (a multiple of the timestep): starts drawn there, as the envs' random
        starts are, read their references from a table computed once per tick instead of computing them each
        step; any other start time works too, at that cost."""
        return round(t / self.model.opt.timestep) * self.model.opt.timestep

    def phases(self, times: np.ndarray) -> np.ndarray:
        if self.clip.loop:
            return (times / self.clip.duration) % 1.0
        return np.clip(times / self.clip.duration, 0.0, 1.0)

    def _mirror(self) -> None:
        if self.mirror is not None:
            self._refresh()
            self._mjb.get_data(0, self.mirror)

    def _refresh(self) -> None:
        """Bring the kinematics and reference arrays of the characters reset since the last step up to date."""
        if self._stale.any():
            rows = np.flatnonzero(self._stale)
            self._stale[rows] = False
            self._mjb.forward(rows, stage=mujoco.mjtStage.mjSTAGE_VEL)
            self._references(rows)

    # ------------------------------------------------------------------------------------------------
    def reset(self, indices: np.ndarray, start_times: np.ndarray) -> np.ndarray:
        """Put characters ``indices`` in the reference state at ``start_times`` (s); return their observations.

        A reference frame that sinks into the floor starts lifted clear of it (the reference is not moved).  The
        observations come in the order of ``indices``, which must not name a character twice."""
        given = np.asarray(indices, dtype=np.int64).reshape(-1)
        times = np.array(start_times, dtype=np.float64)  # a copy: the caller may pass a view of start_time
        if times.shape != given.shape:
            times = np.broadcast_to(times, given.shape)
        if len(given) > 1 and not (given[1:] > given[:-1]).all():  # MuJoCo's batch takes characters in order
            indices, order = np.unique(given, return_inverse=True)
            if len(indices) != len(given):
                raise ValueError(f"reset names a character more than once: {given.tolist()}")
            times = times[np.argsort(order)]
        else:
            indices, order = given, None
        self.start_time[indices] = times
        h = self.model.opt.timestep
        ticks = np.round(times / h).astype(np.int64)
        on = ticks * h == times
        self._start_tick[indices] = np.where(on, ticks, -1)
        self._tick[indices] = ticks
        self._on_grid = bool((self._start_tick >= 0).all())
        self.steps[indices] = 0
        self._state[indices] = self._reset_state  # what mj_resetData leaves (time, controls, warm start: 0)
        self._warnings[indices] = 0  # as mj_resetData clears them
        if on.all():
            self._sim.qpos[indices], self._sim.qvel[indices] = self._table.starts(ticks)
        else:
            self._sim.qpos[indices[on]], self._sim.qvel[indices[on]] = self._table.starts(ticks[on])
            for i in indices[~on]:  # off the grid: sampled each time
                self._sim.qpos[i], self._sim.qvel[i] = self._table.start_at(float(self.start_time[i]))
        self._stale[indices] = True
        obs = self._table.start_observations(ticks, on, lambda rows: self._observe(indices[rows]))
        self.last_obs[indices] = obs
        self._mirror()
        return obs if order is None else obs[order]

    def reference_state(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference ``(qpos, qvel)`` of character ``i`` at its current time (copies)."""
        self._refresh()
        return self._ref.qpos[i].copy(), self._ref.qvel[i].copy()

    def reference_data(self, i: int) -> mujoco.MjData:
        """An ``MjData`` in character ``i``'s reference state at its current time, kinematics done (for drawing it)."""
        if i not in range(self.n):
            raise IndexError(f"character {i} out of range: the batch has {self.n}")
        if -1 - i not in self._scratch:  # negative keys: the references' data
            self._scratch[-1 - i] = mujoco.MjData(self.model)
        r = self._scratch[-1 - i]
        self._refresh()
        r.qpos[:], r.qvel[:] = self._ref.qpos[i], self._ref.qvel[i]
        forward_kinematics(self.model, r)
        return r

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Put character ``i`` in state ``(qpos, qvel)`` at its current reference time; return its observation.

        Its clock is unchanged, so the next step's reward compares with the reference one step later.
        """
        self._sim.qpos[i], self._sim.qvel[i] = qpos, qvel
        self._stale[i] = True  # its forward runs before the observation
        obs = self._observe(np.array([i]))[0]
        self.last_obs[i] = obs
        self._mirror()
        return obs

    def next_reference_angles(self) -> np.ndarray:
        """(N, 28) reference joint angles one control step on: what the next step's ``residual`` actions offset."""
        on = self._start_tick >= 0
        if on.all():  # the usual case
            return self._table.angles(self._ticks(1))
        out = np.empty((self.n, character.ACTION_SIZE))
        if on.any():
            out[on] = self._table.angles(self._ticks(1)[on])
        for i in np.flatnonzero(~on):  # off the grid: sampled each time, at the time the next step's reference has
            out[i] = self._table.angles_at(float(self.start_time[i] + (self.steps[i] + 1) * self.dt))
        return out

    def _references(self, indices: np.ndarray | None = None) -> None:
        """Fill the reference arrays of characters ``indices`` (default all) at their current times."""
        if indices is None:
            if self._on_grid:  # the usual case
                self._table.read(slice(None), self._tick, self._ref)
                return
            indices = np.arange(self.n)
        on = self._start_tick[indices] >= 0
        if on.all():  # the usual case
            self._table.read(indices, self._ticks()[indices], self._ref)
            return
        if on.any():
            self._table.read(indices[on], self._ticks()[indices[on]], self._ref)
        for i in indices[~on]:
            t = float(self.start_time[i] + self.steps[i] * self.dt)
            self._table.compute(t, self._ref, i)

    def _observe(self, indices: np.ndarray) -> np.ndarray:
        self._refresh()
        s = self._sim
        yaw, c, sin = heading_frames(s.xquat[indices, 0])
        obs = observations(self.phases(self.time[indices]), s.xpos[indices], s.xquat[indices], s.cvel[indices],
                           s.subtree_com[indices], yaw, c, sin)
        return self._with_target(obs, indices, yaw, c, sin)

    def _with_target(self, obs: np.ndarray, rows, yaw: np.ndarray, c: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """``obs`` of characters ``rows`` (an index array or a slice) with the target block appended when the batch
        observes it; otherwise ``obs`` itself."""
        if not self.target_observation:
            return obs
        s, r = self._sim, self._ref
        target = target_observations(s.xpos[rows], yaw, c, sin, r.xpos[rows], r.heading[rows])
        return np.concatenate((obs, target), axis=1)

    def observe(self) -> np.ndarray:
        """(N, :attr:`observation_size`) observations of the current states (the reference arrays must be at the
        characters' current times, as they are after :meth:`reset` and :meth:`step`)."""
        return self._observe(np.arange(self.n))

    # ------------------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> BatchStep:
        """Apply ``actions`` (N, 28), clipped to [-1, 1], for one control step to every character."""
        a = np.array(actions, dtype=np.float64)
        if a.shape != (self.n, character.ACTION_SIZE):
            raise ValueError(f"actions must have shape ({self.n}, {character.ACTION_SIZE}), got {a.shape}")
        invalid = ~np.isfinite(a.sum(axis=1))
        if invalid.any():
            a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(a, -1.0, 1.0, out=a)
        if self.action_mode == "pd_target":
            self._inputs[:] = a * ACTION_SCALE
        elif self.action_mode == "residual":
            self._inputs[:] = self.next_reference_angles() + (RESIDUAL_SCALE * ACTION_SCALE) * a
        else:
            self._inputs[:, self.index.action_dofs] = self._torques(a)
        # the physics of every character, in MuJoCo's threads: frame_skip steps, then the position and velocity
        # stages at the new state (mj_step1, which the next step continues from), which the reward and the
        # observation read, with the batch sensors (contacts, centre-of-mass velocity); if MuJoCo raises, the
        # clocks stay where they were
        self._mjb.step(nstep=self.frame_skip, stage=mujoco.mjtStage.mjSTAGE_VEL)
        self._stale[:] = False  # the step computed every character's kinematics, and the references follow
        self.steps += 1
        self._tick += self.frame_skip
        times = self.time
        # MuJoCo resets diverged data on its own and counts a warning (BADQPOS, BADQVEL, BADQACC): one counted
        # since the last step (a state set by hand may have diverged at once), or non-finite velocities, mean the
        # state blew up; the counts start again from 0 for the next step
        nonfinite = self._warnings[:, _DIVERGED, 1].any(axis=1) | ~np.isfinite(self._sim.qvel.sum(axis=1))
        if nonfinite.any():
            self._warnings[:, _DIVERGED, 1] = 0
            self._mjb.forward(np.flatnonzero(nonfinite))
        self._references()
        out = self._finish(invalid, times, nonfinite)
        self._mirror()
        return out

    def _finish(self, invalid: np.ndarray, times: np.ndarray, nonfinite: np.ndarray) -> BatchStep:
        s, r, n = self._sim, self._ref, self.n
        phase = self.phases(times)
        obs = np.empty((n, self.observation_size), dtype=np.float32)
        reward, terms, error = np.empty(n), np.empty((n, len(TERMS))), np.empty(n)
        deviated, touched = np.zeros(n, dtype=bool), np.empty(n, dtype=bool)
        _step_rows(phase, s.xpos, s.xquat, s.cvel, s.subtree_com, s.qpos, s.qvel, s.com_velocity, s.sensordata,
                   self._fall_sensors, self._ee_index, r.qpos, r.qvel, r.xpos, r.end_effectors, r.com_velocity,
                   r.heading, *self._kernel_weights, self.target_observation, self.termination_distance or 0.0,
                   obs, terms, reward, error, deviated, touched)
        clip_end = np.zeros(n, dtype=bool) if self.clip.loop else times >= self.clip.duration - 1e-9
        if nonfinite.any():  # a diverged state counts as a fall and nothing else; its observation is the last good one
            obs[nonfinite] = self.last_obs[nonfinite]
            reward[nonfinite], terms[nonfinite], error[nonfinite] = 0.0, 0.0, np.nan
            clip_end &= ~nonfinite
            deviated &= ~nonfinite
        fell = (deviated | touched if self.early_termination else deviated) | nonfinite
        self.last_obs[:] = obs
        return BatchStep(obs, reward, terms, error, fell, clip_end, nonfinite, invalid, times, phase, deviated)

    def _torques(self, a: np.ndarray) -> np.ndarray:
        tau = a * self.index.torque_limits
        triplets = BALL_ACTIONS
        limits = self.index.torque_limits[triplets[:, 0]]
        ball = tau[:, triplets]  # (N, balls, 3)
        norms = np.linalg.norm(ball, axis=2)
        tau[:, triplets] = ball * np.minimum(1.0, limits / np.maximum(norms, 1e-12))[:, :, None]
        return tau

    def close(self) -> None:
        """Nothing to release: MuJoCo's batch frees its threads with the object (kept for the envs' close)."""


#: MuJoCo's warnings of a diverged state, after which it resets the data.
_DIVERGED: slice | list[int] = sorted(int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                                                        mujoco.mjtWarning.mjWARN_BADQACC))
if _DIVERGED == list(range(_DIVERGED[0], _DIVERGED[-1] + 1)):  # consecutive (they are): a slice, not a fancy index
    _DIVERGED = slice(_DIVERGED[0], _DIVERGED[-1] + 1)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _sensor_columns(model: mujoco.MjModel, names: list[str]) -> np.ndarray:
    """The ``sensordata`` column of each named one-number sensor (an error naming what to do if one is missing)."""
    try:
        return np.array([int(model.sensor(name).adr[0]) for name in names], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"the model has no sensor {err}: load the character with sb3_mimic.character.load_model(), "
                         "which adds the sensors the batch reads") from None


class _Arrays:
    """Reference states, N of them, in one (N, width) array (so that one row copy moves a whole state), with views
    per field: ``qpos``, ``qvel``, the ``xpos`` of the character's bodies (model bodies 1..15), the root subtree's
    ``com_velocity``, and what the reward reads of them, the root's ``heading`` and the ``end_effectors``
    (:func:`sb3_mimic.reward.end_effectors`)."""

    def __init__(self, n: int, nq: int, nv: int, ee_index: np.ndarray) -> None:
        shapes = {"qpos": (nq,), "qvel": (nv,), "xpos": (N_BODIES, 3), "com_velocity": (3,), "heading": (),
                  "end_effectors": (len(ee_index), 3)}
        sizes = [math.prod(shape) for shape in shapes.values()]
        self.packed = np.zeros((n, sum(sizes)))
        self._ee_index = ee_index
        for (name, shape), start, size in zip(shapes.items(), np.cumsum([0, *sizes]), sizes, strict=False):
            setattr(self, name, self.packed[:, start : start + size].reshape(n, *shape))

    def set_row(self, i: int, d: mujoco.MjData) -> None:
        """Row ``i`` := ``d``'s fields (its kinematics done)."""
        self.qpos[i], self.qvel[i] = d.qpos, d.qvel
        self.xpos[i], self.com_velocity[i] = d.xpos[1 : N_BODIES + 1], d.subtree_linvel[1]
        self.heading[i] = heading(d.xquat[1])
        self.end_effectors[i] = end_effectors(self.xpos[i, self._ee_index], self.xpos[i, 0], self.heading[i])


class _BatchArrays:
    """Views of a MuJoCo batch's live arrays, with the field names of :class:`_Arrays`: the state rows (``qpos``,
    ``qvel``) and outputs that MuJoCo refreshes after every call (the bodies' ``xpos``, ``xquat``, ``cvel``, the
    root's ``subtree_com``, and ``sensordata`` with ``com_velocity`` in it)."""

    def __init__(self, batch: mujoco.batch.Batch, index: character.CharacterIndex, model: mujoco.MjModel) -> None:
        self.qpos, self.qvel = batch.bind("qpos"), batch.bind("qvel")
        bodies = slice(int(index.body_ids[0]), int(index.body_ids[-1]) + 1)
        self.xpos, self.xquat = batch.bind("xpos")[:, bodies], batch.bind("xquat")[:, bodies]
        self.cvel = batch.bind("cvel")[:, bodies]
        self.subtree_com = batch.bind("subtree_com")[:, bodies.start]
        self.sensordata = batch.bind("sensordata")
        velocity = _sensor_columns(model, [character.COM_VELOCITY_SENSOR])[0]
        self.com_velocity = self.sensordata[:, velocity : velocity + 3]


@jit
def _all_filled(filled, ticks):  # pragma: no cover - compiled
    """Whether ``filled[k]`` holds for every tick ``k`` of ``ticks`` (ticks beyond ``filled`` are not)."""
    for k in ticks:
        if k >= len(filled) or not filled[k]:
            return False
    return True


class _ReferenceTable:
    """A batch's reference states at the physics ticks ``t = k * timestep``, each computed on first use, with the
    start state of an episode begun there (the reference, lifted clear of the floor if it sinks into it).

    A character that starts on the grid reads its reference from here at every step, with one array lookup for
    the whole batch; the entry is what :meth:`compute` gives at that time, so both ways agree to the bit.  Ticks
    beyond :data:`MAX_TICKS` are computed each time.
    """

    MAX_TICKS = 24_000  # 100 s at 240 Hz: about 50 MB with the first observations

    def __init__(self, batch: CharacterBatch) -> None:
        self.model, self.clip, self.index = batch.model, batch.clip, batch.index
        self.h = batch.model.opt.timestep
        self._scratch = mujoco.MjData(batch.model)
        self._floor = FloorProbe(batch.model)
        self._diff = np.zeros(batch.model.nv)
        self._ee_index = batch._ee_index
        self.rows = _Arrays(0, batch.model.nq, batch.model.nv, self._ee_index)
        self._angles = np.zeros((0, character.ACTION_SIZE))
        self._lift = np.zeros(0)
        self._filled = np.zeros(0, dtype=bool)
        self._obs = np.zeros((0, batch.observation_size), dtype=np.float32)  # an episode's first observation
        self._obs_known = np.zeros(0, dtype=bool)

    def compute(self, t: float, into: _Arrays, i: int) -> np.ndarray:
        """Write the reference at time ``t`` into row ``i`` of ``into``; return its joint angles (action layout)."""
        r = self._scratch
        _, qvel = self.clip.sample(t, r.qpos)
        r.qvel[:] = qvel
        forward_kinematics(self.model, r)
        into.set_row(i, r)
        return joint_angles(self.model, r.qpos, self.index, out=self._diff)

    def angles_at(self, t: float) -> np.ndarray:
        """The reference's joint angles (action layout) at time ``t``: what :meth:`compute` returns, without the
        kinematics."""
        self.clip.sample(t, self._scratch.qpos)
        return joint_angles(self.model, self._scratch.qpos, self.index, out=self._diff)

    def start_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos, qvel)`` an episode starting at time ``t`` begins in: the reference's, lifted clear of the floor."""
        qpos = np.zeros(self.model.nq)
        _, qvel = self.clip.sample(t, qpos)
        qpos[2] += self._floor.clearance(qpos, self._scratch)
        return qpos, qvel

    def _fill(self, ticks: np.ndarray) -> np.ndarray | None:
        """Compute the table's missing entries among ``ticks``; return which ticks the table holds (None: all)."""
        if _all_filled(self._filled, ticks):
            return None  # the usual case, once the episodes' ticks have been seen
        held = ticks < self.MAX_TICKS
        top = int(ticks[held].max(initial=-1)) + 1
        if top > len(self._filled):
            size = min(self.MAX_TICKS, max(top, 2 * len(self._filled), 256))
            grown = _Arrays(size, self.model.nq, self.model.nv, self._ee_index)
            k = len(self._filled)
            grown.packed[:k] = self.rows.packed
            self.rows = grown
            self._angles = np.concatenate((self._angles, np.zeros((size - k, character.ACTION_SIZE))))
            self._lift = np.concatenate((self._lift, np.zeros(size - k)))
            self._obs = np.concatenate((self._obs, np.zeros((size - k, self._obs.shape[1]), dtype=np.float32)))
            self._obs_known = np.concatenate((self._obs_known, np.zeros(size - k, dtype=bool)))
            self._filled = np.concatenate((self._filled, np.zeros(size - k, dtype=bool)))
        for k in np.unique(ticks[held][~self._filled[ticks[held]]]):
            self._angles[k] = self.compute(float(k * self.h), self.rows, int(k))
            self._lift[k] = self._floor.clearance(self.rows.qpos[k], self._scratch)
            self._filled[k] = True
        return None if held.all() else held

    def read(self, indices: np.ndarray | slice, ticks: np.ndarray, into: _Arrays) -> None:
        """Rows ``indices`` (an index array, or ``slice(None)``: all) of ``into`` := the references at ``ticks``."""
        held = self._fill(ticks)
        if held is not None:  # ticks beyond the table: computed each time
            indices = np.arange(len(into.packed))[indices]
            for i, k in zip(indices[~held], ticks[~held], strict=True):
                self.compute(float(k * self.h), into, int(i))
            indices, ticks = indices[held], ticks[held]
        if isinstance(indices, slice):
            np.take(self.rows.packed, ticks, axis=0, out=into.packed)
        else:
            into.packed[indices] = self.rows.packed[ticks]

    def starts(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos, qvel)`` (len(ticks), ...) the episodes starting at ``ticks`` begin in (see :meth:`start_at`)."""
        held = self._fill(ticks)
        if held is not None:  # ticks beyond the table: sampled each time
            starts = [self.start_at(float(k * self.h)) for k in ticks[~held]]
            qpos, qvel = np.empty((len(ticks), self.model.nq)), np.empty((len(ticks), self.model.nv))
            qpos[held], qvel[held] = self.starts(ticks[held])
            if starts:
                qpos[~held], qvel[~held] = (np.array(column) for column in zip(*starts, strict=True))
            return qpos, qvel
        qpos = self.rows.qpos[ticks]
        qpos[:, 2] += self._lift[ticks]
        return qpos, self.rows.qvel[ticks]

    def start_observations(self, ticks: np.ndarray, on: np.ndarray, observe) -> np.ndarray:
        """The first observations of episodes started at ``ticks`` (where ``on``; elsewhere off the grid), from
        ``observe(rows)`` (what the batch computes for those rows now) the first time a tick starts an episode and
        from this table after: the start state, and so its observation, is a function of the tick alone."""
        rows = np.flatnonzero(on)
        kept = rows[ticks[rows] < len(self._obs_known)]
        known = np.zeros(len(ticks), dtype=bool)
        known[kept] = self._obs_known[ticks[kept]]
        obs = np.empty((len(ticks), self._obs.shape[1]), dtype=np.float32)
        obs[known] = self._obs[ticks[known]]
        if not known.all():
            fresh = np.flatnonzero(~known)
            obs[fresh] = observe(fresh)
            store = np.intersect1d(fresh, kept)
            self._obs[ticks[store]], self._obs_known[ticks[store]] = obs[store], True
        return obs

    def angles(self, ticks: np.ndarray) -> np.ndarray:
        """(len(ticks), 28) reference joint angles at ``ticks``."""
        held = self._fill(ticks)
        if held is None:
            return self._angles[ticks]
        out = np.empty((len(ticks), character.ACTION_SIZE))
        out[held] = self._angles[ticks[held]]
        for j in np.flatnonzero(~held):
            out[j] = self.angles_at(float(ticks[j] * self.h))
        return out


__all__ = ["TARGET_STRUCTURE", "TERMS", "BatchStep", "CharacterBatch", "heading_frames", "mpjpe", "observation_structure",
           "observations", "target_observations"]
