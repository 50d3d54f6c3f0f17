"""The tracking MPC expert: it must beat plain PD tracking from the same start, on a tiny budget."""

from __future__ import annotations


import gymnasium
import numpy as np
import pytest

from sb3_mimic.experts import MPCExpert, PDExpert

STEPS = 45  # 1.5 s: PD tracking of walk falls after about 1 s


def survival(env, act, start: float) -> int:
    obs, _ = env.reset(options={"start_time": start})
    for step in range(1, STEPS + 1):
        obs, _, terminated, _, _ = env.step(act(obs))
        if terminated:
            return step
    return STEPS


@pytest.mark.parametrize("settings", [{"samples": 12}, {"stateless": True, "iterations": 3}], ids=["warm", "stateless"])
def test_mpc_outlasts_pd_tracking_from_the_same_start(settings):
    env = gymnasium.make("MimicHumanoidWalk-v0")
    pd = PDExpert.for_env(env)
    mpc = MPCExpert(env, seed=0, **settings)
    start = 0.1
    pd_steps = survival(env, lambda o: pd.predict(o, deterministic=True)[0], start)
    mpc_steps = survival(env, lambda o: mpc.predict(o, deterministic=True)[0], start)
    mpc.close()
    assert pd_steps < STEPS and mpc_steps == STEPS, (pd_steps, mpc_steps)


def test_mpc_is_reproducible_and_validates_its_arguments():
    env = gymnasium.make("MimicHumanoidWalk-v0")
    runs = []
    for _ in range(2):  # two experts with the same seed, two warm-started steps each, from the same state
        mpc = MPCExpert(env, samples=4, horizon=4, seed=3)
        obs, _ = env.reset(options={"start_time": 0.5})
        first = mpc.predict(obs)[0]
        second = mpc.predict(env.step(first)[0])[0]
        runs.append(np.stack([first, second]))
        mpc.close()
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].shape == (2, 28) and np.abs(runs[0]).max() <= 1
    with pytest.raises(ValueError, match="horizon"):
        MPCExpert(env, horizon=1)
    with pytest.raises(ValueError, match="decay"):
        MPCExpert(env, decay=0.0)
    with pytest.raises(ValueError, match="pd_target"):
        MPCExpert(gymnasium.make("MimicHumanoidWalk-v0", action_mode="torque"))


def test_in_a_residual_env_the_mpc_sets_the_same_pd_targets_as_residual_actions():
    """The MPC plans PD targets; in a residual env it acts with the residual action that sets them, so from the same
    start the two envs follow the same trajectory (to float rounding)."""
    absolute = gymnasium.make("MimicHumanoidWalk-v0")
    residual = gymnasium.make("MimicHumanoidWalk-v0", action_mode="residual")
    experts = [MPCExpert(e, samples=4, horizon=4, seed=3, nthread=1) for e in (absolute, residual)]
    obs = [e.reset(seed=4)[0] for e in (absolute, residual)]
    for _ in range(10):
        a_abs, a_res = (x.predict(o, deterministic=True)[0] for x, o in zip(experts, obs, strict=True))
        np.testing.assert_allclose(residual.unwrapped.encode_pd_targets(a_abs, "residual"), a_res, atol=1e-4)
        obs = [absolute.step(a_abs)[0], residual.step(a_res)[0]]
        np.testing.assert_allclose(obs[0], obs[1], atol=1e-4)
    for x in experts:
        x.close()


def test_queries_that_do_not_commit_leave_the_carried_plan_alone():
    env = gymnasium.make("MimicHumanoidWalk-v0")
    mpc = MPCExpert(env, samples=4, horizon=4, seed=3, nthread=1)
    fresh = MPCExpert(env, samples=4, horizon=4, seed=5, nthread=1)
    env.reset(options={"start_time": 0.4})
    for _ in range(3):
        env.step(mpc.plan())
    queries = []
    for warm in (True, True, False):
        mpc.rng = np.random.default_rng(11)
        queries.append(mpc.plan(warm=warm, commit=False))
    fresh.rng = np.random.default_rng(11)
    cold = fresh.plan()  # an expert with no plan to carry, same random draws
    np.testing.assert_array_equal(queries[0], queries[1])  # the first query did not move the carried plan
    np.testing.assert_array_equal(queries[2], cold)
    assert np.abs(queries[0] - cold).max() > 1e-4  # the carried plan matters
    mpc.close(), fresh.close()


def test_a_stateless_expert_labels_a_state_whatever_it_labelled_before():
    env = gymnasium.make("MimicHumanoidWalk-v0")
    settings = {"samples": 4, "horizon": 4, "iterations": 2, "stateless": True, "nthread": 1}
    seasoned = MPCExpert(env, seed=3, **settings)
    env.reset(options={"start_time": 0.4})
    for _ in range(3):
        env.step(seasoned.plan())  # a history, and its random stream moved on
    fresh = MPCExpert(env, seed=3, **settings)
    label = fresh.plan()
    np.testing.assert_array_equal(seasoned.plan(), label)
    np.testing.assert_array_equal(seasoned.plan(warm=False, commit=False), label)
    other_seed = MPCExpert(env, seed=4, **settings)
    assert np.abs(other_seed.plan() - label).max() > 1e-4  # the fixed perturbations come from the seed
    env.step(label)
    assert np.abs(fresh.plan() - label).max() > 1e-4  # a new state, a new label
    with pytest.raises(ValueError, match="stateless must be True or False"):
        MPCExpert(env, stateless="no")
    for expert in (seasoned, fresh, other_seed):
        expert.close()


def test_an_ensemble_label_is_the_mean_of_separately_seeded_stateless_experts():
    env = gymnasium.make("MimicHumanoidWalk-v0")
    settings = {"samples": 4, "horizon": 4, "iterations": 2, "stateless": True, "nthread": 1}
    env.reset(options={"start_time": 0.7})
    members = [MPCExpert(env, seed=seed, **settings) for seed in (3, 4, 5)]
    ensemble = MPCExpert(env, seed=3, ensemble=3, **settings)
    labels = np.array([member.plan() for member in members])
    np.testing.assert_allclose(ensemble.plan(), labels.mean(axis=0), rtol=0, atol=1e-6)
    assert np.abs(labels[0] - labels[1]).max() > 1e-4  # the members differ, so the mean is not one of them
    assert ensemble.settings.ensemble == 3
    with pytest.raises(ValueError, match="also pass stateless=True"):
        MPCExpert(env, ensemble=2)
    with pytest.raises(ValueError, match="ensemble must be a whole number >= 1"):
        MPCExpert(env, stateless=True, ensemble=1.5)
    for expert in (*members, ensemble):
        expert.close()


def test_the_expert_plans_with_its_clips_settings_unless_given():
    import json

    from sb3_mimic._resources import data_path

    raw = json.loads(data_path("motions", "catalogue.json").read_text())["clips"]
    run = MPCExpert(gymnasium.make("MimicHumanoidRun-v0"), samples=4, nthread=1)
    assert run.samples == 4 and run.horizon == raw["run"]["mpc"]["horizon"] and run.settings.samples == 4
    run.close()
    walk = MPCExpert(gymnasium.make("MimicHumanoidWalk-v0"), nthread=1)
    assert (walk.horizon, walk.samples, walk.iterations, walk.decay) == (15, 16, 1, 0.95)
    walk.close()


def test_mpc_cost_equals_the_env_reward_errors_state_by_state():
    """The vectorised planner cost (sensors + qpos/qvel of rolled-out states) against ``imitation_errors``."""
    import mujoco

    from sb3_mimic.reward import reward_features
    from sb3_mimic.reward import PoseFeatures, imitation_errors

    env = gymnasium.make("MimicHumanoidWalk-v0")
    base = env.unwrapped
    mpc = MPCExpert(env, horizon=5, samples=3, seed=1)
    env.reset(seed=2)
    for _ in range(3):
        env.step(mpc.plan(0))
    ref_qpos, ref_qvel, ref_ee, ref_com, targets = mpc._reference(base)
    actions = np.clip(targets[None] + np.random.default_rng(0).normal(0, 0.3, (3, 5, 28)), -1, 1)
    mujoco.mj_getState(base.model, base.data, mpc._state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    qpos, qvel, sensors = mpc._rollout(actions)
    errors, lowest = mpc._cost.errors(qpos, qvel, sensors, ref_qpos, ref_qvel, ref_ee, ref_com)
    mpc.close()
    fall_geoms = np.flatnonzero(base.fall_geoms & (base.model.geom_bodyid != 0))
    sim, ref = mujoco.MjData(base.model), mujoco.MjData(base.model)
    for i in range(3):
        for k in range(5):
            sim.qpos[:], sim.qvel[:] = qpos[i, k], qvel[i, k]
            ref.qpos[:], ref.qvel[:] = ref_qpos[k], ref_qvel[k]
            feats = [PoseFeatures(d.qpos, d.qvel, np.zeros((4, 3)), np.zeros(3)) for d in (sim, ref)]
            for d, f in zip((sim, ref), feats, strict=True):
                reward_features(base.model, d, base.index.end_effector_ids, f)
            expected = imitation_errors(base.model, feats[0], feats[1], base.index)
            np.testing.assert_allclose(errors[i, k], expected, rtol=1e-9, atol=1e-12)
            # lowest point of the fall geoms (spheres and capsules) straight from MuJoCo's geom frames
            size = base.model.geom_size[fall_geoms]
            capsule = base.model.geom_type[fall_geoms] == mujoco.mjtGeom.mjGEOM_CAPSULE
            bottom = sim.geom_xpos[fall_geoms, 2] - size[:, 0] - capsule * np.abs(sim.geom_xmat[fall_geoms, 8]) * size[:, 1]
            assert lowest[i, k] == pytest.approx(bottom.min(), abs=1e-12)
