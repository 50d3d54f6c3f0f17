"""Batched simulation: N characters of one clip stepped together, physics on every core.

:class:`CharacterBatch` holds one ``MjModel`` and, per character, an ``MjData`` for the simulated body.  A step
runs each character's physics (``mj_step2``, the remaining substeps, ``mj_step1``) in ``threads`` threads: MuJoCo
releases the GIL inside those calls, so the physics of different characters runs at once in C.  The workers take
characters one at a time and only step them; the calling thread meanwhile reads the references, then steps
characters too, and between its own copies the results of those the workers finished (short calls stay in one
thread, because every call hands the GIL over and many short hand-overs between busy threads cost more than they
save; and no thread waits on a fixed share of the characters).  References are a function of time alone: a
character whose start lies on the physics grid (the envs' random starts do) reads them from a table filled once
per physics tick.  What the step returns (observations, reward terms, MPJPE, falls) is then computed as array
operations over the whole batch by the functions of this module and of :mod:`sb3_mimic.reward`, which the single
env (:class:`~sb3_mimic.envs.MimicHumanoidEnv`, a batch of one) uses too.
"""

from __future__ import annotations

import itertools
import math
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import mujoco
import numpy as np

from sb3_mimic import character
from sb3_mimic._util import available_cores
from sb3_mimic.envs.actions import ACTION_MODES, ACTION_SCALE, BALL_ACTIONS, RESIDUAL_SCALE, joint_angles
from sb3_mimic.motion import FloorProbe, MotionClip, load_clip
from sb3_mimic.reward import (
    TERMS,
    batch_errors,
    batch_reward_terms,
    end_effectors,
    forward_kinematics,
    heading,
    pose_weights,
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


def heading_frames(root_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The root's heading (rad, :func:`sb3_mimic.reward.heading`) and the world-to-heading-frame matrices.

    :param root_quat: (N, 4) root orientations
    :return: ``heading`` (N,) and ``rot`` (N, 3, 3) with ``v_heading = v_world @ rot[i]``
    """
    yaw = heading(root_quat)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((len(yaw), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return yaw, rot


def observations(
    phase: np.ndarray, xpos: np.ndarray, xquat: np.ndarray, cvel: np.ndarray, subtree_com: np.ndarray,
    heading: np.ndarray, rot: np.ndarray,
) -> np.ndarray:
    """DeepMimic's observation of N characters (see the env's table), float32 (N, 197).

    :param phase: (N,) clip phase
    :param xpos, xquat, cvel: (N, 15, ...) the character's bodies (model bodies 1..15, in ``character.BODIES`` order)
    :param subtree_com: (N, 3) centre of mass of the root's subtree (``cvel``'s linear part is taken there)
    :param heading, rot: from :func:`heading_frames`
    """
    n = len(phase)
    ang = cvel[:, :, :3]
    arm = xpos - subtree_com[:, None, :]
    lin = cvel[:, :, 3:] + np.cross(ang, arm)  # linear velocity of each body origin
    vec = np.einsum("nbi,nij->nbj", np.concatenate((xpos - xpos[:, :1], lin, ang), axis=1), rot)
    # body orientations in the heading frame: conj(heading quaternion) * q, with w >= 0
    hc, hs = np.cos(0.5 * heading), np.sin(0.5 * heading)
    w, x, y, z = (xquat[..., k] for k in range(4))
    hc, hs = hc[:, None], hs[:, None]
    quat = np.stack((hc * w + hs * z, hc * x + hs * y, hc * y - hs * x, hc * z - hs * w), axis=-1)
    quat *= np.copysign(1.0, quat[..., :1])
    nb = N_BODIES
    return np.concatenate(
        (phase[:, None], xpos[:, 0, 2:3], vec[:, :nb].reshape(n, -1), quat.reshape(n, -1), vec[:, nb : 2 * nb].reshape(n, -1),
         vec[:, 2 * nb :].reshape(n, -1)),
        axis=1,
    ).astype(np.float32)


def target_observations(
    sim_xpos: np.ndarray, sim_heading: np.ndarray, rot: np.ndarray, ref_xpos: np.ndarray, ref_heading: np.ndarray,
) -> np.ndarray:
    """The target block of N characters, float32 (N, 50): the reference seen from each character's heading frame.

    ``target_root_offset`` (3): the reference's root minus the character's, m; ``target_heading`` (2): cosine and
    sine of the reference's heading minus the character's; ``target_body_positions`` (45): each reference body
    relative to the reference's root, m.  The last minus the character's own ``body_positions`` block is the
    per-body error MPJPE averages, turned into the character's heading frame.

    :param sim_xpos, ref_xpos: (N, 15, 3) body positions of the characters and of their references
    :param sim_heading, rot: the characters' :func:`heading_frames`
    :param ref_heading: (N,) the references' headings
    """
    n = len(sim_heading)
    offsets = np.concatenate((ref_xpos[:, :1] - sim_xpos[:, :1], ref_xpos - ref_xpos[:, :1]), axis=1)
    vec = np.einsum("nbi,nij->nbj", offsets, rot)
    turn = ref_heading - sim_heading
    return np.concatenate(
        (vec[:, 0], np.cos(turn)[:, None], np.sin(turn)[:, None], vec[:, 1:].reshape(n, -1)), axis=1,
    ).astype(np.float32)


def mpjpe(sim_xpos: np.ndarray, ref_xpos: np.ndarray) -> np.ndarray:
    """(N,) mean per-joint position error (m) of the 14 non-root bodies, root-relative."""
    diff = (sim_xpos[:, 1:] - ref_xpos[:, 1:]) - (sim_xpos[:, :1] - ref_xpos[:, :1])
    return np.sqrt(np.einsum("nbi,nbi->nb", diff, diff)).sum(axis=1) / diff.shape[1]


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
    :param threads: threads that step the characters (default: one per core; 1 steps them in the caller's thread)
    :param model: an existing model to share (the single env passes its own); by default one is loaded
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
        datas: list[mujoco.MjData] | None = None,
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
        self.datas = datas if datas is not None else [mujoco.MjData(model) for _ in range(self.n)]
        self.refs = [mujoco.MjData(model) for _ in range(self.n)]
        if len(self.datas) != self.n:
            raise ValueError("datas must hold one MjData per character")
        fall_ids = [model.body(b).id for b in self.clip.info.fall_bodies]
        self.fall_geoms = np.isin(model.geom_bodyid, fall_ids)
        self.fall_geoms.flags.writeable = False
        self._floor = FloorProbe(model)
        self._ee_index = self.index.end_effector_ids - 1  # model body id -> index among bodies 1..15
        self.start_time = np.zeros(self.n)
        self._start_tick = np.full(self.n, -1, dtype=np.int64)  # start time / timestep, -1 when off the grid
        self.steps = np.zeros(self.n, dtype=np.int64)
        nq, nv = model.nq, model.nv
        self._sim = _Arrays(self.n, nq, nv, self.datas)
        self._ref = _Arrays(self.n, nq, nv, self.refs)
        self._table = _ReferenceTable(self)
        self._weights = pose_weights(model, self.index)
        self._fall = np.zeros(self.n, dtype=bool)
        self._behind = np.zeros(self.n, dtype=bool)
        self._due: list[float] = [0.0] * self.n
        self.last_obs = np.zeros((self.n, self.observation_size), dtype=np.float32)
        self.threads = min(int(threads), self.n)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None

    # ------------------------------------------------------------------------------------------------
    @property
    def time(self) -> np.ndarray:
        """(N,) reference time of each character's current state, s: ``tick * timestep`` for a start on the physics
        grid (see :meth:`grid_time`), else ``start_time + steps * dt``."""
        return np.where(self._start_tick >= 0, self._ticks() * self.model.opt.timestep,
                        self.start_time + self.steps * self.dt)

    def _ticks(self, ahead: int = 0) -> np.ndarray:
        """(N,) physics ticks of the characters' times ``ahead`` control steps on (meaningless off the grid)."""
        return self._start_tick + (self.steps + ahead) * self.frame_skip

    def grid_time(self, t: float) -> float:
        """``t`` (s) rounded to the physics grid (a multiple of the timestep): starts drawn there, as the envs' random
        starts are, read their references from a table computed once per tick instead of computing them each
        step; any other start time works too, at that cost."""
        return round(t / self.model.opt.timestep) * self.model.opt.timestep

    def phases(self, times: np.ndarray) -> np.ndarray:
        if self.clip.loop:
            return (times / self.clip.duration) % 1.0
        return np.clip(times / self.clip.duration, 0.0, 1.0)

    # ------------------------------------------------------------------------------------------------
    def reset(self, indices: np.ndarray, start_times: np.ndarray) -> np.ndarray:
        """Put characters ``indices`` in the reference state at ``start_times`` (s); return their observations."""
        indices = np.asarray(indices, dtype=np.int64)
        self.start_time[indices] = start_times
        h = self.model.opt.timestep
        ticks = np.round(self.start_time[indices] / h).astype(np.int64)
        self._start_tick[indices] = np.where(ticks * h == self.start_time[indices], ticks, -1)
        self.steps[indices] = 0

        def work(chunk):
            m = self.model
            for i in chunk:
                d = self.datas[i]
                mujoco.mj_resetData(m, d)
                _, qvel = self.clip.sample(float(self.start_time[i]), d.qpos)
                # a reference frame that sinks into the floor starts lifted clear of it (the reference is not moved;
                # refs[i] is only scratch here)
                d.qpos[2] += self._floor.clearance(d.qpos, self.refs[i])
                d.qvel[:] = qvel
                mujoco.mj_forward(m, d)
                mujoco.mj_subtreeVel(m, d)
                self._sim.gather(i)

        work(indices)
        self._references(indices)  # in this thread: short calls only (see the module docstring)
        obs = self._observe(indices)
        self.last_obs[indices] = obs
        return obs

    def reference_state(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference ``(qpos, qvel)`` of character ``i`` at its current time (copies)."""
        return self._ref.qpos[i].copy(), self._ref.qvel[i].copy()

    def reference_data(self, i: int) -> mujoco.MjData:
        """An ``MjData`` in character ``i``'s reference state at its current time, kinematics done (for drawing it)."""
        r = self.refs[i]
        r.qpos[:], r.qvel[:] = self._ref.qpos[i], self._ref.qvel[i]
        forward_kinematics(self.model, r)
        return r

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Put character ``i`` in state ``(qpos, qvel)`` at its current reference time; return its observation.

        Its clock is unchanged, so the next step's reward compares with the reference one step later.
        """
        d = self.datas[i]
        d.qpos[:], d.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, d)
        mujoco.mj_subtreeVel(self.model, d)
        self._sim.gather(i)
        obs = self._observe(np.array([i]))[0]
        self.last_obs[i] = obs
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

    def _references(self, indices: np.ndarray) -> None:
        """Fill the reference arrays of characters ``indices`` at their current times."""
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
        s = self._sim
        yaw, rot = heading_frames(s.xquat[indices, 0])
        obs = observations(self.phases(self.time[indices]), s.xpos[indices], s.xquat[indices], s.cvel[indices],
                           s.subtree_com[indices], yaw, rot)
        return self._with_target(obs, indices, yaw, rot)

    def _with_target(self, obs: np.ndarray, rows, yaw: np.ndarray, rot: np.ndarray,
                     ref_yaw: np.ndarray | None = None) -> np.ndarray:
        """``obs`` of characters ``rows`` (an index array or a slice) with the target block appended when the batch
        observes it (``ref_yaw``: the references' headings, when already computed); otherwise ``obs`` itself."""
        if not self.target_observation:
            return obs
        s, r = self._sim, self._ref
        if ref_yaw is None:
            ref_yaw = heading(r.xquat[rows, 0])
        return np.concatenate((obs, target_observations(s.xpos[rows], yaw, rot, r.xpos[rows], ref_yaw)), axis=1)

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
            a *= ACTION_SCALE
        elif self.action_mode == "residual":
            a = self.next_reference_angles() + (RESIDUAL_SCALE * ACTION_SCALE) * a
        else:
            a = self._torques(a)
        self.steps += 1
        times = self.time
        m, skip, dofs = self.model, self.frame_skip, self.index.action_dofs
        half_step = 0.5 * m.opt.timestep

        datas, servo = self.datas, self.action_mode != "torque"

        def physics(i):  # only long MuJoCo calls: each releases the GIL for its whole duration
            d = datas[i]
            if servo:
                d.ctrl[:] = a[i]
            else:
                d.qfrc_applied[dofs] = a[i]
            # mj_step1 ran at the end of the previous step (or mj_forward at reset), so what the reward and the
            # observation see belongs to the final state, at no extra cost
            mujoco.mj_step2(m, d)
            if skip > 1:
                mujoco.mj_step(m, d, nstep=skip - 1)
            mujoco.mj_step1(m, d)
            mujoco.mj_subtreeVel(m, d)  # the centre-of-mass velocity the reward reads

        n = self.n
        self._due = (self.steps * self.dt - half_step).tolist()  # each clock's least value after this step
        if self._pool is None:
            for i in range(n):
                physics(i)
                self._result(i)
            self._references(np.arange(n))
            return self._finish(invalid, times)
        # the workers take characters one at a time and only step them; this thread computes the references
        # meanwhile, then takes characters too, and between its own it gathers the results of those the workers
        # finished: the GIL's short calls stay in one thread, and no thread waits on a fixed share
        tasks, finished = itertools.count(), queue.SimpleQueue()

        def worker():
            while (i := next(tasks)) < n:
                physics(i)
                finished.put(i)

        running = [self._pool.submit(worker) for _ in range(self.threads - 1)]
        self._references(np.arange(n))
        for _ in range(n):
            try:
                i = finished.get_nowait()
            except queue.Empty:
                i = next(tasks)
                if i < n:
                    physics(i)
                else:
                    i = self._next_finished(finished, running)
            self._result(i)
        for future in running:
            future.result()
        return self._finish(invalid, times)

    @staticmethod
    def _next_finished(finished: queue.SimpleQueue, running: list) -> int:
        """The next character a worker finished (re-raising a worker's error instead of waiting forever)."""
        while True:
            try:
                return finished.get(timeout=0.05)
            except queue.Empty:
                failed = next((f for f in running if f.done() and f.exception() is not None), None)
                if failed is not None:
                    raise failed.exception() from None

    def _result(self, i: int) -> None:
        """Character ``i`` after its physics: divergence, the arrays of its state, its falls."""
        d = self.datas[i]
        # MuJoCo resets diverged data on its own (warning BADQPOS/BADQVEL/BADQACC), which also resets its clock:
        # a clock behind this step's end, or non-finite velocities, mean the state blew up
        behind = d.time < self._due[i] or not math.isfinite(self._sim.qvel_of(i).sum())
        self._behind[i] = behind
        if behind:
            mujoco.mj_forward(self.model, d)
            return
        self._sim.gather(i)
        ncon = d.ncon
        self._fall[i] = self.early_termination and ncon > 0 and bool(self.fall_geoms[d.contact.geom[:ncon]].any())

    def _finish(self, invalid: np.ndarray, times: np.ndarray) -> BatchStep:
        s, r = self._sim, self._ref
        yaw, rot = heading_frames(s.xquat[:, 0])
        ref_yaw = heading(r.xquat[:, 0])
        ee, ref_ee = (end_effectors(a.xpos[:, self._ee_index], a.xpos[:, 0], h) for a, h in ((s, yaw), (r, ref_yaw)))
        errors = batch_errors(self._weights, self.index, s.qpos, r.qpos, r.qvel - s.qvel, ref_ee - ee,
                              r.com_velocity - s.com_velocity)
        reward, terms = batch_reward_terms(errors)
        phase = self.phases(times)
        obs = self._with_target(observations(phase, s.xpos, s.xquat, s.cvel, s.subtree_com, yaw, rot), slice(None),
                                yaw, rot, ref_yaw)
        error = mpjpe(s.xpos, r.xpos)
        deviated = np.zeros(self.n, dtype=bool)
        if self.termination_distance is not None:
            deviated = np.linalg.norm(s.xpos - r.xpos, axis=2).max(axis=1) > self.termination_distance
        nonfinite = self._behind.copy()
        if nonfinite.any():
            obs[nonfinite] = self.last_obs[nonfinite]
            reward[nonfinite], terms[nonfinite], error[nonfinite] = 0.0, 0.0, np.nan
        self.last_obs[:] = obs
        clip_end = np.zeros(self.n, dtype=bool) if self.clip.loop else times >= self.clip.duration - 1e-9
        clip_end &= ~nonfinite
        deviated &= ~nonfinite
        fell = (self._fall | deviated) & ~nonfinite | nonfinite
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
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _Arrays:
    """Per-character copies of the MjData fields the batch functions read (from ``datas``, one per character)."""

    FIELDS = ("qpos", "qvel", "xpos", "xquat", "cvel", "subtree_com", "com_velocity")

    def __init__(self, n: int, nq: int, nv: int, datas: list[mujoco.MjData]) -> None:
        self.qpos, self.qvel = np.zeros((n, nq)), np.zeros((n, nv))
        self.xpos, self.xquat = np.zeros((n, N_BODIES, 3)), np.zeros((n, N_BODIES, 4))
        self.cvel = np.zeros((n, N_BODIES, 6))
        self.subtree_com, self.com_velocity = np.zeros((n, 3)), np.zeros((n, 3))
        # views into each MjData's own buffers, made once: building them costs more than the copies
        self._views = [(d.qpos, d.qvel, d.xpos[1:], d.xquat[1:], d.cvel[1:], d.subtree_com[1], d.subtree_linvel[1])
                       for d in datas]

    def qvel_of(self, i: int) -> np.ndarray:
        """Character ``i``'s ``MjData.qvel`` itself (a view)."""
        return self._views[i][1]

    def gather(self, i: int) -> None:
        """Copy character ``i``'s ``MjData`` fields into row ``i``."""
        qpos, qvel, xpos, xquat, cvel, com, com_velocity = self._views[i]
        self.qpos[i], self.qvel[i] = qpos, qvel
        self.xpos[i], self.xquat[i], self.cvel[i] = xpos, xquat, cvel
        self.subtree_com[i], self.com_velocity[i] = com, com_velocity


class _ReferenceTable:
    """A batch's reference states at the physics ticks ``t = k * timestep``, each computed on first use.

    A character that starts on the grid reads its reference from here at every step, with one array lookup for
    the whole batch; the entry is what :meth:`compute` gives at that time, so both ways agree to the bit.  Ticks
    beyond :data:`MAX_TICKS` are computed each time.
    """

    MAX_TICKS = 24_000  # 100 s at 240 Hz, about 40 MB

    def __init__(self, batch: CharacterBatch) -> None:
        self.model, self.clip, self.index = batch.model, batch.clip, batch.index
        self.h = batch.model.opt.timestep
        self._scratch = mujoco.MjData(batch.model)
        self._one = _Arrays(1, batch.model.nq, batch.model.nv, [self._scratch])
        self._diff = np.zeros(batch.model.nv)
        self.rows = _Arrays(0, batch.model.nq, batch.model.nv, [])
        self._angles = np.zeros((0, character.ACTION_SIZE))
        self._filled = np.zeros(0, dtype=bool)

    def compute(self, t: float, into: _Arrays, i: int) -> np.ndarray:
        """Write the reference at time ``t`` into row ``i`` of ``into``; return its joint angles (action layout)."""
        r = self._scratch
        _, qvel = self.clip.sample(t, r.qpos)
        r.qvel[:] = qvel
        forward_kinematics(self.model, r)
        self._one.gather(0)
        for name in _Arrays.FIELDS:
            getattr(into, name)[i] = getattr(self._one, name)[0]
        return joint_angles(self.model, r.qpos, self.index, out=self._diff)

    def angles_at(self, t: float) -> np.ndarray:
        """The reference's joint angles (action layout) at time ``t``: what :meth:`compute` returns, without the
        kinematics."""
        self.clip.sample(t, self._scratch.qpos)
        return joint_angles(self.model, self._scratch.qpos, self.index, out=self._diff)

    def _fill(self, ticks: np.ndarray) -> np.ndarray | None:
        """Compute the table's missing entries among ``ticks``; return which ticks the table holds (None: all)."""
        if ticks.max() < len(self._filled) and self._filled[ticks].all():
            return None  # the usual case, once the episodes' ticks have been seen
        held = ticks < self.MAX_TICKS
        top = int(ticks[held].max(initial=-1)) + 1
        if top > len(self._filled):
            size = min(self.MAX_TICKS, max(top, 2 * len(self._filled), 256))
            grown = _Arrays(size, self.model.nq, self.model.nv, [])
            k = len(self._filled)
            for name in _Arrays.FIELDS:
                getattr(grown, name)[:k] = getattr(self.rows, name)
            self.rows = grown
            self._angles = np.concatenate((self._angles, np.zeros((size - k, character.ACTION_SIZE))))
            self._filled = np.concatenate((self._filled, np.zeros(size - k, dtype=bool)))
        for k in np.unique(ticks[held][~self._filled[ticks[held]]]):
            self._angles[k] = self.compute(float(k * self.h), self.rows, int(k))
            self._filled[k] = True
        return None if held.all() else held

    def read(self, indices: np.ndarray, ticks: np.ndarray, into: _Arrays) -> None:
        """Rows ``indices`` of ``into`` := the references at ``ticks``."""
        held = self._fill(ticks)
        if held is not None:  # ticks beyond the table: computed each time
            for i, k in zip(indices[~held], ticks[~held], strict=True):
                self.compute(float(k * self.h), into, int(i))
            indices, ticks = indices[held], ticks[held]
        for name in _Arrays.FIELDS:
            getattr(into, name)[indices] = getattr(self.rows, name)[ticks]

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
