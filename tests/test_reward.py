"""DeepMimic's reward: its terms against the released weights and scales, and the errors against hand-made poses."""

from __future__ import annotations

import numpy as np
import pytest

from sb3_mimic import character
from sb3_mimic.envs import MimicHumanoidEnv
from sb3_mimic.reward import TERMS, PoseFeatures, imitation_errors, imitation_reward, reward_terms


def test_reward_is_one_at_reference_state():
    model = character.load_model()
    index = character.character_index(model)
    env = MimicHumanoidEnv(motion="dance_a")
    for t in (0.0, 0.4, 1.3):
        env.reset(options={"start_time": t})
        env.set_physics_state(*env.reference_state())  # exactly the reference (a reset may lift a sinking frame)
        reward, terms = imitation_reward(model, env._sim_features, env._ref_features, index)
        assert reward == pytest.approx(1.0, abs=1e-9)
        assert set(terms) == set(TERMS)


def test_reward_terms_are_deepmimics_weights_and_scales():
    # DeepMimic's released humanoid reward (DeepMimic/learning/..., humanoid3d imitate task): weights and scales
    released = {"pose": (0.5, 2.0), "velocity": (0.05, 0.1), "end_effector": (0.15, 40.0), "root": (0.2, 5.0),
                "com": (0.1, 10.0)}
    reward, terms = reward_terms((0.0,) * 5)
    assert reward == pytest.approx(1.0, abs=1e-15) and list(terms) == list(TERMS) == list(released)
    errors = (0.1, 2.0, 0.003, 0.05, 0.02)
    reward, terms = reward_terms(errors)
    for (name, (weight, scale)), error in zip(released.items(), errors, strict=True):
        assert terms[name] == pytest.approx(weight * np.exp(-scale * error), rel=1e-14)
    assert reward == pytest.approx(sum(terms.values()), abs=1e-15)


def test_pose_error_of_a_bent_knee_is_its_weighted_squared_angle():
    model = character.load_model()
    index = character.character_index(model)
    env = MimicHumanoidEnv(motion="walk")
    env.reset(options={"start_time": 0.3})
    ref = env._ref_features
    sim = PoseFeatures(ref.qpos.copy(), ref.qvel.copy(), ref.end_effectors.copy(), ref.com_velocity.copy())
    knee = model.jnt_qposadr[model.joint("right_knee").id]
    sim.qpos[knee] += 0.3
    pose, velocity, _, root, _ = imitation_errors(model, sim, ref, index)
    # DeepMimic's DiffWeight of the knee (0.3) over the sum of all joints' weights (4.8), times the angle squared
    assert pose == pytest.approx(0.3 / 4.8 * 0.3**2, rel=1e-9)
    assert velocity == 0.0 and root == pytest.approx(0.0, abs=1e-20)  # the root and velocities are untouched
