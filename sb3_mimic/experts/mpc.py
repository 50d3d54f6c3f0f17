"""A tracking MPC expert: MPPI over PD-target offsets around the reference, planned in MuJoCo itself.

Every control step the expert rolls out ``samples`` perturbed plans of ``horizon`` control steps from the
env's current physics state with MuJoCo's batched C rollouts (``mujoco.rollout``, one thread per core), scores
them with a linearised form of the env's imitation reward plus a fall penalty, and takes the MPPI average.
The plan is kept at full resolution (one PD-target offset per control step) and warm-started from the
previous step's, shifted by one step and shrunk a little towards the plain reference; that is what makes a
small number of samples work (see the project's MPC notes), so query it along an episode, not on isolated
states.

The planner is the env's own model (same physics rate) with sensors added for the cost, so predicted and
simulated motion agree exactly, and the cost of all samples is computed in one vectorised pass.  Its settings
are an :class:`MPCSettings` record: the defaults, the clip's catalogue overrides, then the caller's.
Measured figures (survival and cost per control step per clip) are in ``benchmarks/results/experts_*.md``.
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
import torch as th
from mujoco import rollout as mj_rollout

from sb3_mimic import _imitation  # noqa: F401
from sb3_mimic import character
from sb3_mimic._util import available_cores
from sb3_mimic.envs.actions import ACTION_SCALE, joint_angles
from sb3_mimic.envs.mimic_humanoid import MimicHumanoidEnv
from sb3_mimic.experts.settings import MPCSettings
from sb3_mimic.reward import (
    SCALES,
    TERMS,
    WEIGHTS,
    PoseFeatures,
    batch_errors,
    end_effectors,
    heading,
    pose_weights,
    reward_features,
)
from imitation.policies.base import NonTrainablePolicy

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
#: Linearised imitation cost: sum_t weight_t * scale_t * error_t (the first-order expansion of 1 - reward).
_LINEAR = np.array([WEIGHTS[t] * SCALES[t] for t in TERMS])


class _CostModel:
    """The planner's model (the env's plus sensors) and the vectorised imitation cost of rolled-out states.

    Sensors (end-effector positions, the root's subtree linear velocity, the fall geoms' positions and z axes)
    are evaluated by MuJoCo during the rollout; joint errors come from ``qpos``/``qvel`` in the rolled-out
    states; the errors themselves are :func:`sb3_mimic.reward.batch_errors`, the env's.
    """

    def __init__(self, env: MimicHumanoidEnv) -> None:
        base = env.model
        spec = mujoco.MjSpec.from_file(character.model_path())
        names = lambda ids, obj: [mujoco.mj_id2name(base, obj, int(i)) for i in ids]  # noqa: E731
        self.ee_names = names(env.index.end_effector_ids, mujoco.mjtObj.mjOBJ_BODY)
        fall = np.flatnonzero(env.fall_geoms & (base.geom_bodyid != 0))
        types = base.geom_type[fall]
        if not np.isin(types, [mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CAPSULE]).all():
            raise ValueError("MPCExpert's fall check handles sphere and capsule bodies only")
        self.fall_radius = base.geom_size[fall, 0]
        self.fall_half_length = np.where(types == mujoco.mjtGeom.mjGEOM_CAPSULE, base.geom_size[fall, 1], 0.0)

        def add(kind, objtype, name):
            sensor = spec.add_sensor()
            sensor.type, sensor.objtype, sensor.objname = kind, objtype, name

        for name in self.ee_names:
            add(mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtObj.mjOBJ_XBODY, name)
        root = names(env.index.body_ids[:1], mujoco.mjtObj.mjOBJ_BODY)[0]
        add(mujoco.mjtSensor.mjSENS_SUBTREELINVEL, mujoco.mjtObj.mjOBJ_BODY, root)
        for name in names(fall, mujoco.mjtObj.mjOBJ_GEOM):
            add(mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtObj.mjOBJ_GEOM, name)
            add(mujoco.mjtSensor.mjSENS_FRAMEZAXIS, mujoco.mjtObj.mjOBJ_GEOM, name)
        self.model = spec.compile()
        self.model.opt.timestep = base.opt.timestep
        if (self.model.nq, self.model.nv, self.model.nu) != (base.nq, base.nv, base.nu):
            raise RuntimeError("the planner model does not match the env's model")
        self.n_ee, self.n_fall = len(self.ee_names), len(fall)
        self.weights, self.index = pose_weights(base, env.index), env.index
        self.nq, self.nv = base.nq, base.nv

    def errors(self, qpos, qvel, sensors, ref_qpos, ref_qvel, ref_ee, ref_com) -> tuple[np.ndarray, np.ndarray]:
        """Imitation errors ``(..., 5)`` in :data:`TERMS` order and the lowest point of the fall geoms ``(...)``.

        :param qpos, qvel, sensors: rolled-out values, leading dims ``(..., H)``
        :param ref_qpos, ref_qvel, ref_ee, ref_com: the reference for each of the ``H`` steps
        """
        ee = sensors[..., : 3 * self.n_ee].reshape(*sensors.shape[:-1], self.n_ee, 3)
        sim_ee = end_effectors(ee, qpos[..., :3], heading(qpos[..., 3:7]))
        at = 3 * self.n_ee
        errors = batch_errors(self.weights, self.index, qpos, ref_qpos, ref_qvel - qvel, ref_ee - sim_ee,
                              ref_com - sensors[..., at : at + 3])
        geoms = sensors[..., at + 3 :].reshape(*sensors.shape[:-1], self.n_fall, 6)
        lowest = (geoms[..., 2] - self.fall_radius - np.abs(geoms[..., 5]) * self.fall_half_length).min(
            axis=-1, initial=math.inf
        )
        return errors, lowest


class MPCExpert(NonTrainablePolicy):
    """MPPI tracking expert for a :class:`~sb3_mimic.envs.MimicHumanoidEnv` in ``pd_target`` or ``residual`` mode
    (it plans PD targets; in a ``residual`` env it acts with the residual action that sets them).

    It reads the physics state and clip time of the env it is given (not the observation), so it labels
    whatever state that env is in; a vectorised env (``DummyVecEnv``) gets one plan per sub-env.

    The plan is warm-started from the previous control step's, so query it along an episode, not on isolated
    states (or set ``stateless``).  Its settings (:attr:`settings`) are ``settings`` if given, else
    :meth:`MPCSettings.for_clip` of the env's clip, with ``overrides`` applied on top.

    :param env: the env (or a ``DummyVecEnv`` of them) whose states it labels
    :param settings: the planner's settings (default: the clip's)
    :param nthread: rollout threads (default: one per core)
    :param seed: seeds the perturbations
    :param overrides: individual settings (``horizon=20``, ...; see :class:`MPCSettings`); ``None`` values are
        ignored
    """

    def __init__(
        self, env, settings: MPCSettings | None = None, *, nthread: int | None = None, seed: int = 0, **overrides: Any
    ) -> None:
        envs = [e.unwrapped for e in getattr(env, "envs", [env])]
        if not all(isinstance(e, MimicHumanoidEnv) for e in envs):
            raise TypeError("MPCExpert needs MimicHumanoidEnv envs (or a DummyVecEnv of them)")
        if envs[0].action_mode not in ("pd_target", "residual"):
            raise ValueError("MPCExpert plans PD targets: use an env with action_mode='pd_target' or 'residual'")
        base_settings = settings if settings is not None else MPCSettings.for_clip(envs[0].clip)
        self.settings: MPCSettings = base_settings.replace(**overrides)
        settings = self.settings
        super().__init__(envs[0].observation_space, envs[0].action_space)
        self.envs = envs
        self.horizon, self.samples, self.iterations, self.knots, self.ensemble = (
            int(getattr(settings, name)) for name in ("horizon", "samples", "iterations", "knots", "ensemble")
        )
        self.noise, self.temperature, self.fall_penalty = settings.noise, settings.temperature, settings.fall_penalty
        self.reanchor_heading, self.decay = settings.reanchor_heading, settings.decay
        self.stateless = bool(settings.stateless)
        self.rng = np.random.default_rng(seed)
        # stateless planning reuses one set of perturbations per ensemble member on every call (common random
        # numbers), the first sample of each iteration unperturbed like the random ones below
        self._fixed_eps = None
        if self.stateless:
            shape = (self.iterations, self.samples, self.knots, envs[0].index.action_dofs.size)
            self._fixed_eps = np.stack(
                [np.random.default_rng([seed + k, 1]).normal(0.0, self.noise / ACTION_SCALE, shape)
                 for k in range(self.ensemble)]
            )
            self._fixed_eps[:, :, 0] = 0.0
        base = envs[0]
        self.substeps, self.clip, self.dt, self.index = base.frame_skip, base.clip, base.dt, base.index
        self._cost = _CostModel(base)
        self.model = self._cost.model
        nthread = nthread or available_cores()
        self._pool = mj_rollout.Rollout(nthread=nthread)
        self._datas = [mujoco.MjData(self.model) for _ in range(nthread)]
        self._fk = mujoco.MjData(base.model)
        self._feat = PoseFeatures(self._fk.qpos, self._fk.qvel, np.zeros((4, 3)), np.zeros(3))
        self._state = np.zeros(mujoco.mj_stateSize(self.model, _STATE))
        self._plans: dict[int, tuple[tuple[int, float], int, np.ndarray]] = {}  # env index -> (key, step, plan)
        # the states after each control step, and the sensors that belong to them (computed one physics step
        # later: a rollout records the state after each step and the sensors of the state before it)
        self._at_state = np.arange(1, self.horizon + 1) * self.substeps - 1
        self._at_sensor = self._at_state + 1
        # knot interpolation matrix (horizon x knots): smooth perturbations
        grid = np.linspace(0, self.knots - 1, self.horizon)
        lower = np.minimum(np.floor(grid).astype(int), self.knots - 2)
        frac = grid - lower
        self._interp = np.zeros((self.horizon, self.knots))
        self._interp[np.arange(self.horizon), lower] = 1 - frac
        self._interp[np.arange(self.horizon), lower + 1] = frac

    # ------------------------------------------------------------------------------------------------
    def _reference(self, env: MimicHumanoidEnv):
        """Reference qpos, qvel, end effectors, centre-of-mass velocity and PD-target actions for the next
        ``horizon`` control steps, re-anchored so that the reference root starts where the character's root
        is (horizontally; and turned to its heading with ``reanchor_heading``)."""
        t0 = env.time
        now = self.clip.sample(t0)[0]
        turn = float(heading(env.data.qpos[3:7]) - heading(now[3:7])) if self.reanchor_heading else 0.0
        c, s = math.cos(turn), math.sin(turn)
        rot = np.array(((c, -s), (s, c)))
        zquat = np.array([math.cos(0.5 * turn), 0.0, 0.0, math.sin(0.5 * turn)])
        m = env.model
        qpos = np.empty((self.horizon, m.nq))
        qvel = np.empty((self.horizon, m.nv))
        ee = np.empty((self.horizon, 4, 3))
        com = np.empty((self.horizon, 3))
        targets = np.empty((self.horizon, self.index.action_dofs.size))
        diff = np.zeros(m.nv)
        for k in range(self.horizon):
            q, v = self.clip.sample(t0 + (k + 1) * self.dt, qpos[k])
            q[:2] = env.data.qpos[:2] + rot @ (q[:2] - now[:2])
            if turn:
                quat = q[3:7].copy()
                mujoco.mju_mulQuat(q[3:7], zquat, quat)
                v[:2] = rot @ v[:2]
            qvel[k] = v
            self._fk.qpos[:], self._fk.qvel[:] = q, v
            reward_features(m, self._fk, self.index.end_effector_ids, self._feat)
            ee[k], com[k] = self._feat.end_effectors, self._feat.com_velocity
            targets[k] = joint_angles(m, q, self.index, out=diff) / ACTION_SCALE
        return qpos, qvel, ee, com, targets

    def _rollout(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Roll ``(samples, horizon, 28)`` normalised actions out from ``self._state``; return ``qpos``, ``qvel``
        and sensor values after each control step, each ``(samples, horizon, ...)``."""
        controls = np.repeat(ACTION_SCALE * actions, self.substeps, axis=1)
        controls = np.concatenate([controls, controls[:, -1:]], axis=1)  # one more step for the sensors
        states, sensors = self._pool.rollout(
            self.model, self._datas, self._state, controls, control_spec=mujoco.mjtState.mjSTATE_CTRL
        )
        nq, nv = self._cost.nq, self._cost.nv
        at = states[:, self._at_state]
        return at[..., 1 : 1 + nq], at[..., 1 + nq : 1 + nq + nv], sensors[:, self._at_sensor]

    def _costs(self, rolled_out: tuple[np.ndarray, np.ndarray, np.ndarray], reference) -> np.ndarray:
        """Cost of each rollout: the linearised imitation cost summed over the horizon, plus the fall penalty
        for every planned step from the first one that ends with a fall geom below the floor."""
        errors, lowest = self._cost.errors(*rolled_out, *reference)
        fallen = np.logical_or.accumulate(lowest < 0.0, axis=1)
        return (errors @ _LINEAR).sum(axis=1) + self.fall_penalty * fallen.sum(axis=1)

    def plan(self, env_index: int = 0, *, warm: bool = True, commit: bool = True) -> np.ndarray:
        """One MPC step for sub-env ``env_index``: the normalised PD-target action to apply now.

        :param warm: start from the plan carried from the previous step of this episode (``False``: from the
            plain reference, as on an isolated state); a ``stateless`` expert always starts from the reference
        :param commit: keep the new plan for the next step; ``False`` asks what the expert would do now and
            leaves the carried plan as it was (its random stream still advances), e.g. to measure how much
            its labels vary
        """
        env = self.envs[env_index]
        ref_qpos, ref_qvel, ref_ee, ref_com, targets = self._reference(env)
        reference = (ref_qpos, ref_qvel, ref_ee, ref_com)
        mujoco.mj_getState(env.model, env.data, self._state, _STATE)
        start = np.zeros((self.horizon, self.index.action_dofs.size))
        if self.stateless:  # every member plans from the plain reference; the label is their mean
            actions = [self._optimise(start, targets, reference, member) for member in self._fixed_eps]
            mean = np.mean([np.clip(targets[0] + plan[0], -1.0, 1.0).astype(np.float32) for plan in actions], axis=0)
            return env.encode_pd_targets(mean, env.action_mode)
        key = (id(env), env.start_time)
        previous = self._plans.get(env_index)
        if warm and previous is not None and previous[0] == key and previous[1] == env.elapsed_steps - 1:
            start = previous[2]  # warm start: the previous plan, shifted by one step (done below)
        plan = self._optimise(start, targets, reference, None)
        if commit:
            self._plans[env_index] = (key, env.elapsed_steps, self.decay * np.vstack([plan[1:], plan[-1:]]))
        return env.encode_pd_targets(np.clip(targets[0] + plan[0], -1.0, 1.0).astype(np.float32), env.action_mode)

    def _optimise(self, plan: np.ndarray, targets: np.ndarray, reference, fixed_eps: np.ndarray | None) -> np.ndarray:
        """MPPI iterations from ``plan`` (offsets from ``targets``) and the state in ``self._state``; the
        perturbations are ``fixed_eps`` (one set per iteration) or fresh draws from :attr:`rng`."""
        sigma = self.noise / ACTION_SCALE
        for iteration in range(self.iterations):
            if fixed_eps is not None:
                eps = fixed_eps[iteration]
            else:
                eps = self.rng.normal(0.0, sigma, (self.samples, self.knots, plan.shape[1]))
                eps[0] = 0.0  # keep the current plan among the candidates
            candidates = plan[None] + np.einsum("hk,nka->nha", self._interp, eps)
            rolled_out = self._rollout(np.clip(targets[None] + candidates, -1.0, 1.0))
            costs = self._costs(rolled_out, reference)
            spread = max(float(costs.max() - costs.min()), 1e-9)
            weights = np.exp(-(costs - costs.min()) / (self.temperature * spread))
            plan = np.einsum("n,nha->ha", weights / weights.sum(), candidates)
        return plan

    def _choose_action(self, obs: np.ndarray) -> np.ndarray:
        return self.plan(0)

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        n = observation.shape[0]
        if n != len(self.envs):
            raise ValueError(f"MPCExpert was built for {len(self.envs)} env(s) but got {n} observations")
        actions = np.stack([self.plan(i) for i in range(n)])
        return th.as_tensor(actions, device=self.device)

    def close(self) -> None:
        self._pool.close()
