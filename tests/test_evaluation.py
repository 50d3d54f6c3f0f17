"""Evaluation: returns, normalised returns, time to fall, counted against manual rollouts."""

from __future__ import annotations

import itertools
import json
import gymnasium
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.evaluation import EvalResult, evaluate, policy_actor
from sb3_mimic.experts import PDExpert

WALK = "MimicHumanoidWalk-v0"


def _zero(obs):
    return np.zeros(28, dtype=np.float32)


def test_evaluate_zero_action_falls_and_matches_a_manual_count(walk):
    result = evaluate(_zero, walk, episodes=3, seed=0)
    assert isinstance(result, EvalResult) and result.episodes == 3
    assert result.fall_rate == 1.0 and result.mean_survival_s < 3.0
    assert 0.0 <= result.normalized_return <= 1.0 and result.mpjpe_mm > 0
    u = walk.unwrapped
    returns, steps, mpjpe = [], [], []
    for episode in range(3):
        walk.reset(seed=episode)
        total, n, done, errors = 0.0, 0, False, []
        while not done:
            _, reward, terminated, truncated, info = walk.step(_zero(None))
            total, n, done = total + reward, n + 1, terminated or truncated
            errors.append(info["mpjpe"])
        returns.append(total)
        steps.append(n)
        mpjpe.append(1000 * np.mean(errors))
    assert result.mean_reward == pytest.approx(np.mean(returns))
    # the spread over the episodes (the plots' bands): population std, as std_reward
    assert result.std_survival_s == pytest.approx(np.std(steps) * u.dt) and result.std_survival_s > 0
    assert result.std_normalized_return == pytest.approx(np.std(returns) / 600)
    assert result.std_mpjpe_mm == pytest.approx(np.std(mpjpe)) and result.std_mpjpe_mm > 0
    assert result.std_reward == pytest.approx(np.std(returns))
    assert (result.min_reward, result.max_reward) == pytest.approx((min(returns), max(returns)))
    assert result.mean_survival_s == pytest.approx(np.mean(steps) * u.dt)
    # walk loops, so every episode could have lasted the 600-step time limit
    assert result.normalized_return == pytest.approx(result.mean_reward / 600)

    seen = []
    record = lambda *step: seen.append(step)  # noqa: E731
    assert evaluate(_zero, walk, episodes=3, seed=0, on_step=record).to_dict() == result.to_dict()
    assert len(seen) == sum(steps) and sum(s[2] for s in seen) == pytest.approx(sum(returns))
    assert [s[4] or s[5] for s in seen].count(True) == 3  # one episode end each
    assert all(np.array_equal(a[3], b[0]) for a, b in itertools.pairwise(seen) if not (a[4] or a[5]))
    assert evaluate(_zero, walk, episodes=3, seed=10).mean_reward != result.mean_reward
    assert evaluate(_zero, walk, episodes=2, seed=0).episodes == 2
    with pytest.raises(ValueError, match="episodes"):
        evaluate(_zero, walk, episodes=0)
    with pytest.raises(TypeError, match="MimicHumanoidEnv"):
        evaluate(_zero, gymnasium.make("Pendulum-v1"))


def test_evaluate_normalises_by_the_rest_of_a_non_looping_clip():
    env = gymnasium.make("MimicHumanoidKick-v0")
    u = env.unwrapped

    def follow(obs):  # PD targets on the reference one step ahead
        return u.pd_target_action(u.clip.sample(u.time + u.dt)[0])

    for seed in range(8):  # find an episode that reaches the clip's end standing
        env.reset(seed=seed)
        total, n, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(follow(None))
            total, n, done = total + reward, n + 1, terminated or truncated
        if info["clip_end"] and not info["fell"]:
            break
    else:
        pytest.fail("reference tracking never reached the end of the kick clip")
    result = evaluate(follow, env, episodes=1, seed=seed)
    assert result.fall_rate == 0.0 and result.mean_survival_s == pytest.approx(n * u.dt)
    assert result.normalized_return == pytest.approx(total / n) and result.normalized_return <= 1.0
    assert evaluate(policy_actor(PDExpert.for_env(env)), env, episodes=2, seed=0).normalized_return <= 1.0
    env.close()


def test_eval_result_json_keys():
    result = EvalResult(1.0, 0.0, 1.0, 1.0, 0.5, 2.0, 0.0, 10.0, 1, std_survival_s=0.25, std_normalized_return=0.125,
                        std_mpjpe_mm=3.0)
    assert json.loads(json.dumps(result.to_dict())) == {
        "mean_reward": 1.0, "std_reward": 0.0, "min_reward": 1.0, "max_reward": 1.0, "normalized_return": 0.5,
        "mean_survival_s": 2.0, "fall_rate": 0.0, "mpjpe_mm": 10.0, "episodes": 1, "std_survival_s": 0.25,
        "std_normalized_return": 0.125, "std_mpjpe_mm": 3.0,
    }
    block = result.format_block()
    assert "Mean Reward: 1.00 +/- 0.00" in block
    assert "Normalized return per step: 0.500 +/- 0.125" in block
    assert "Mean time to fall: 2.00 s +/- 0.25 s (fall rate 0%)" in block
    assert "Mean MPJPE: 10.0 mm +/- 3.0 mm" in block
    # made the old way (positional, without the spread), it still works: the spread is unknown
    old = EvalResult(1.0, 0.0, 1.0, 1.0, 0.5, 2.0, 0.0, 10.0, 1)
    assert np.isnan(old.std_survival_s) and "+/- nan" in old.format_block()


def test_evaluate_needs_a_step_limit_for_looping_clips():
    from sb3_mimic.envs import MimicHumanoidEnv

    with pytest.raises(ValueError, match="TimeLimit"):
        evaluate(_zero, MimicHumanoidEnv(motion="walk"), episodes=1)
