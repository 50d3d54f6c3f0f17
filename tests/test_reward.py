"""DeepMimic's reward: its terms against the released weights and scales, and the errors against hand-made poses."""

from __future__ import annotations

import numpy as np
import pytest

from sb3_mimic import character
from sb3_mimic.envs import MimicHumanoidEnv
from sb3_mimic.reward import (
    SCALES,
    TERMS,
    WEIGHTS,
    PoseFeatures,
    end_effectors,
    heading,
    imitation_errors,
    imitation_reward,
    reward_terms,
)


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


def deepmimic_heading(q: np.ndarray) -> np.ndarray:
    """DeepMimic's heading (the formula before the inverted-clip fix): the root's x axis projected on the floor."""
    w, x, y, z = (q[..., k] for k in range(4))
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def about(axis: int, angle) -> np.ndarray:
    """Quaternions (..., 4) of rotations by ``angle`` about world axis ``axis`` (1: x, 2: y, 3: z)."""
    angle = np.asarray(angle, dtype=np.float64)
    q = np.zeros((*angle.shape, 4))
    q[..., 0], q[..., axis] = np.cos(0.5 * angle), np.sin(0.5 * angle)
    return q


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack((aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw), axis=-1)


def wrapped(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def random_quaternions(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_heading_is_deepmimics_while_the_x_axis_is_within_45_degrees_of_horizontal():
    q = random_quaternions(20000).reshape(100, 200, 4)  # any leading axes
    x_axis_z = 2.0 * (q[..., 1] * q[..., 3] - q[..., 0] * q[..., 2])
    near_horizontal = np.abs(x_axis_z) <= np.sin(np.radians(45))
    assert 0.6 < near_horizontal.mean() < 0.8
    new = heading(q)
    assert new.shape == (100, 200)
    assert np.abs(wrapped(new - deepmimic_heading(q)))[near_horizontal].max() <= 1e-12
    assert heading(q[0, 0]) == pytest.approx(float(new[0, 0]), abs=1e-15)  # one quaternion


def test_heading_is_continuous_when_the_x_axis_passes_vertical():
    # pitch sweeps through x up (-90) and x down (+90) in steps of 1 degree, with a yaw and a roll about the x axis
    # (which leaves it passing exactly through vertical)
    pitch = np.radians(np.arange(-100.0, 100.0) + 0.5)
    for yaw in (0.0, 0.7, -2.5):
        for roll in (0.0, 0.3, -1.0):
            q = multiply(multiply(about(3, np.full_like(pitch, yaw)), about(2, pitch)), about(1, np.full_like(pitch, roll)))
            new_steps = np.degrees(np.abs(wrapped(np.diff(heading(q)))))
            old_steps = np.degrees(np.abs(wrapped(np.diff(deepmimic_heading(q)))))
            assert new_steps.max() < 3.0, (yaw, roll)
            assert old_steps.max() > 179.0  # DeepMimic's flips as x passes vertical
            # and still faces along the yaw (the pitch and roll do not turn the character about the vertical)
            assert np.abs(wrapped(heading(q[100]) - yaw)) < np.radians(2.0)


def test_heading_turns_with_the_world():
    q = random_quaternions(5000, seed=1)
    turn = np.random.default_rng(2).uniform(-np.pi, np.pi, len(q))
    turned = multiply(about(3, turn), q)  # a world yaw: R_z(a) q
    np.testing.assert_allclose(wrapped(heading(turned) - heading(q) - turn), 0.0, atol=1e-9)


def test_first_step_reward_on_roll_keeps_the_end_effector_term_with_the_root_x_axis_vertical():
    env = MimicHumanoidEnv(motion="roll")
    start = env.clip.duration / 2  # a start of benchmarks/heading.py, the root's x axis pointing up
    env.reset(options={"start_time": start})
    w, x, y, z = env.reference_state()[0][3:7]
    assert 2.0 * (x * z - w * y) > 0.99  # the z component of the root's x axis
    _, reward, _, _, info = env.step(env.pd_target_action(env.clip.sample(env.time + env.dt)[0]))
    sim, ref, ee_ids = env.data, env._ref, env.index.end_effector_ids

    def term(yaw_of) -> float:  # the end-effector term with the heading yaw_of for the character and its reference
        dee = (end_effectors(ref.xpos[ee_ids], ref.xpos[1], yaw_of(ref.xquat[1]))
               - end_effectors(sim.xpos[ee_ids], sim.xpos[1], yaw_of(sim.xquat[1])))
        return WEIGHTS["end_effector"] * np.exp(-SCALES["end_effector"] * np.sum(dee * dee) / len(ee_ids))

    assert info["reward_end_effector"] == pytest.approx(term(heading), rel=1e-9)  # the env's term is this formula
    old_end_effector = term(deepmimic_heading)
    old_reward = reward - info["reward_end_effector"] + old_end_effector
    assert old_reward < 0.8 and old_end_effector < 0.01  # headings tens of degrees apart: the term is lost
    assert reward > 0.85 and info["reward_end_effector"] > 0.12
