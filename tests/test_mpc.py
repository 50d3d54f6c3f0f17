"""The tracking MPC expert: it must beat plain PD tracking from the same start, on a tiny budget."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from sb3_mimic.experts import PDExpert
from sb3_mimic.mpc import MPCExpert

STEPS = 45  # 1.5 s: PD tracking of walk falls after about 1 s


def survival(env, act, start: float) -> int:
    obs, _ = env.reset(options={"start_time": start})
    for step in range(1, STEPS + 1):
        obs, _, terminated, _, _ = env.step(act(obs))
        if terminated:
            return step
    return STEPS


def test_mpc_outlasts_pd_tracking_from_the_same_start():
    env = gymnasium.make("MimicHumanoidWalk-v0")
    pd = PDExpert.for_env(env)
    mpc = MPCExpert(env, samples=12, seed=0)
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
    with pytest.raises(ValueError, match="pd_target"):
        MPCExpert(gymnasium.make("MimicHumanoidWalk-v0", action_mode="torque"))
