"""SFT: the PD expert's labels, demonstrations, behaviour cloning into TRPO, saved policies and evaluation."""

from __future__ import annotations

import dataclasses
import itertools
import json

import gymnasium
import mujoco
import numpy as np
import pytest
import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic import sft
from sb3_mimic.demos import DemoMetadata, expert_rollouts, load_demos, save_demos, teacher_forcing
from sb3_mimic.evaluation import EvalResult, evaluate, policy_actor
from sb3_mimic.experts import JointDecoder, PDExpert
from sb3_mimic.sft import PolicyLoadError
from imitation.data.types import Trajectory, Transitions

WALK = "MimicHumanoidWalk-v0"
RIGHT_KNEE = 9  # action index: chest 0-2, neck 3-5, right hip 6-8, right knee 9
RIGHT_HIP = slice(6, 9)
HINGES = [9, 13, 20, 24]  # right knee, right elbow, left knee, left elbow
WALK_META = {"env_id": WALK, "env_kwargs": {}, "clip": "walk", "action_mode": "pd_target", "lookahead": 1}


@pytest.fixture
def walk():
    env = gymnasium.make(WALK)
    yield env
    env.close()


@pytest.fixture(scope="module")
def walk_demos():
    """Perturbed teacher-forced walk demonstrations, split 80/20."""
    env = gymnasium.make(WALK)
    demos = teacher_forcing(env, PDExpert.for_env(env), 300, seed=0, qpos_noise=0.05, qvel_noise=0.2, progress_bar=False)
    env.close()
    return sft.split_transitions(demos, 0.2, seed=0)


def _model(env, hidden=16, layers=1, seed=0):
    return sft.make_trpo(DummyVecEnv([lambda: env]), hidden, layers, seed=seed)


def _state_dicts_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert th.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------------------------------------
# the PD expert


@pytest.mark.parametrize("env_id", [WALK, "MimicHumanoidDanceA-v0"])
@pytest.mark.parametrize("lookahead", [1, 3])
def test_pd_target_label_is_the_future_reference_pose(env_id, lookahead):
    env = gymnasium.make(env_id)
    u = env.unwrapped
    expert = PDExpert.for_env(env, lookahead=lookahead)
    duration = u.clip.duration
    # the last time makes the target wrap past the clip's end; the one past the duration is in the second cycle
    for t in (0.0, 0.37, 0.5 * duration, duration - 0.5 * u.dt, duration + 0.21):
        obs, _ = env.reset(options={"start_time": t})
        label = expert.label(obs)[0]
        expected = u.pd_target_action(u.clip.sample(t + lookahead * u.dt)[0])
        np.testing.assert_allclose(label, expected, atol=1e-5)
        if lookahead == 3:  # three steps ahead is a different pose than one step ahead
            assert np.abs(label - u.pd_target_action(u.clip.sample(t + u.dt)[0])).max() > 1e-3
    env.close()


def test_pd_target_label_depends_only_on_phase(walk):
    u = walk.unwrapped
    expert = PDExpert.for_env(walk)
    rng = np.random.default_rng(0)
    for t in (0.2, 0.9):
        obs, _ = walk.reset(options={"start_time": t})
        label = expert.label(obs)
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        mujoco.mj_integratePos(u.model, qpos, np.r_[np.zeros(6), rng.normal(0, 0.3, u.model.nv - 6)], 1.0)
        perturbed = u.set_physics_state(qpos, qvel + rng.normal(0, 1.0, u.model.nv))
        assert perturbed[0] == obs[0] and np.abs(perturbed - obs).max() > 0.1
        np.testing.assert_array_equal(expert.label(perturbed), label)


@pytest.mark.parametrize("env_id", [WALK, "MimicHumanoidDanceA-v0"])
def test_joint_decoder_recovers_joint_angles_and_rates(env_id):
    env = gymnasium.make(env_id)
    u = env.unwrapped
    m = u.model
    decoder = JointDecoder(m)
    rng = np.random.default_rng(1)
    obs_batch, angles, rates = [], [], []
    env.reset(seed=3)
    diff = np.zeros(m.nv)
    for _ in range(5):
        obs, *_ = env.step(rng.uniform(-0.4, 0.4, 28).astype(np.float32))
        obs_batch.append(obs)
        mujoco.mj_differentiatePos(m, diff, 1.0, m.qpos0, u.data.qpos)
        angles.append(diff[u.index.action_dofs].copy())
        rates.append(u.data.qvel[u.index.action_dofs].copy())
    got_angles, got_rates = decoder.decode(np.array(obs_batch))
    assert got_angles.shape == got_rates.shape == (5, 28)
    assert np.abs(np.array(rates)).max() > 0.5  # the joints are really moving
    np.testing.assert_allclose(got_angles, np.array(angles), atol=1e-4)
    np.testing.assert_allclose(got_rates, np.array(rates), atol=1e-4)
    env.close()


def test_torque_label_is_the_clipped_pd_rule():
    env = gymnasium.make(WALK, action_mode="torque")
    u = env.unwrapped
    m = u.model
    expert = PDExpert.for_env(env, lookahead=1)  # kp=1, kd=0.1
    t = 0.4
    obs, _ = env.reset(options={"start_time": t})
    assert np.abs(expert.label(obs)).max() <= 1.0
    stiff = PDExpert.for_env(env, kp=100.0)
    saturated = stiff.label(obs)
    assert np.abs(saturated).max() <= 1.0 and np.isclose(np.abs(saturated), 1.0).any()

    target, _ = u.clip.sample(t + u.dt)
    zero_vel = np.zeros(m.nv)
    # at the target pose and at rest there is nothing to correct
    np.testing.assert_allclose(expert.label(u.set_physics_state(target, zero_vel))[0], 0.0, atol=1e-4)

    knee = m.joint("right_knee")
    bent = target.copy()
    bent[knee.qposadr[0]] -= 0.1  # knee 0.1 rad short of its target: push it forward
    label = expert.label(u.set_physics_state(bent, zero_vel))[0]
    assert label[RIGHT_KNEE] == pytest.approx(0.1, abs=1e-4)
    np.testing.assert_allclose(np.delete(label, RIGHT_KNEE), 0.0, atol=1e-4)

    moving = zero_vel.copy()
    moving[knee.dofadr[0]] = 1.0  # on target but moving forward at 1 rad/s: kd brakes it
    label = expert.label(u.set_physics_state(target, moving))[0]
    assert label[RIGHT_KNEE] == pytest.approx(-0.1, abs=1e-4)

    hip = m.joint("right_hip")
    delta = np.array([0.05, -0.08, 0.03])
    rotated = target.copy()
    step = np.zeros(m.nv)
    step[hip.dofadr[0] : hip.dofadr[0] + 3] = delta  # q = q_target * exp(delta): the error is -delta
    mujoco.mj_integratePos(m, rotated, step, 1.0)
    label = expert.label(u.set_physics_state(rotated, zero_vel))[0]
    np.testing.assert_allclose(label[RIGHT_HIP], -delta, atol=1e-4)
    env.close()


def test_expert_predict_on_a_batch_and_on_a_vec_env(walk):
    expert = PDExpert.for_env(walk)
    obs = np.stack([walk.reset(options={"start_time": t})[0] for t in (0.1, 0.5, 0.8, 1.1)])
    actions, state = expert.predict(obs, deterministic=True)
    assert actions.shape == (4, 28) and state is None
    np.testing.assert_allclose(actions, expert.label(obs), atol=1e-7)
    assert np.abs(actions[0] - actions[1]).max() > 1e-3
    vec = DummyVecEnv([lambda: gymnasium.make(WALK)])
    vec_expert = PDExpert.for_env(vec)
    np.testing.assert_allclose(vec_expert.predict(obs, deterministic=True)[0], actions, atol=1e-7)
    with pytest.raises(TypeError, match="MimicHumanoidEnv"):
        PDExpert.for_env(gymnasium.make("Pendulum-v1"))


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"lookahead": 0}, "lookahead"), ({"lookahead": 1.5}, "lookahead"),
                            ({"action_mode": "velocity"}, "action_mode")]
)
def test_expert_rejects_bad_arguments(walk, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PDExpert("walk", walk.observation_space, walk.action_space, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# demonstrations


def test_teacher_forcing_observes_reference_states(walk):
    u = walk.unwrapped
    expert = PDExpert.for_env(walk)
    demos = teacher_forcing(walk, expert, 40, seed=3, progress_bar=False)
    assert isinstance(demos, Transitions) and len(demos) == 40
    assert demos.obs.shape == demos.next_obs.shape == (40, 197) and demos.acts.shape == (40, 28)
    assert demos.dones.shape == (40,) and len(demos.infos) == 40
    for array in (demos.obs, demos.acts, demos.next_obs):
        assert np.isfinite(array).all()
    phases = demos.obs[:, 0]
    assert len(np.unique(phases)) == 40 and phases.min() < 0.2 and phases.max() > 0.8  # spread over the clip
    np.testing.assert_allclose(demos.next_obs[:, 0], (phases + u.dt / u.clip.duration) % 1.0, atol=1e-5)

    check = gymnasium.make(WALK)
    cu = check.unwrapped
    for i in (0, 17, 39):
        t = float(phases[i]) * cu.clip.duration
        obs, _ = check.reset(options={"start_time": t})
        np.testing.assert_allclose(demos.obs[i], obs, atol=1e-4)
        np.testing.assert_allclose(demos.acts[i], cu.pd_target_action(cu.clip.sample(t + cu.dt)[0]), atol=1e-5)
    check.close()

    again = teacher_forcing(walk, expert, 40, seed=3, progress_bar=False)
    for name in ("obs", "acts", "next_obs", "dones"):
        np.testing.assert_array_equal(getattr(again, name), getattr(demos, name))
    other = teacher_forcing(walk, expert, 40, seed=4, progress_bar=False)
    assert not np.allclose(other.obs[:, 0], phases)
    with pytest.raises(ValueError, match="n_samples"):
        teacher_forcing(walk, expert, 0, progress_bar=False)


def test_teacher_forcing_noise_perturbs_states_not_labels(walk):
    expert = PDExpert.for_env(walk)
    clean = teacher_forcing(walk, expert, 60, seed=0, progress_bar=False)
    noisy = teacher_forcing(walk, expert, 60, seed=0, qpos_noise=0.05, qvel_noise=0.2, progress_bar=False)
    np.testing.assert_array_equal(noisy.obs[:, 0], clean.obs[:, 0])  # same phases
    np.testing.assert_allclose(noisy.acts, clean.acts, atol=1e-6)  # pd_target labels depend on the phase only
    assert (np.abs(noisy.obs[:, 1:] - clean.obs[:, 1:]).max(axis=1) > 1e-3).all()
    # the hinge angles are off by the requested standard deviation
    decoder = JointDecoder(walk.unwrapped.model)
    error = decoder.decode(noisy.obs)[0][:, HINGES] - decoder.decode(clean.obs)[0][:, HINGES]
    assert 0.035 < error.std() < 0.065 and abs(error.mean()) < 0.015


def test_expert_rollouts_are_closed_loop_trajectories(walk):
    expert = PDExpert.for_env(walk)
    trajectories = expert_rollouts(walk, expert, 2, seed=5, max_steps=10, progress_bar=False)
    assert len(trajectories) == 2
    fresh = gymnasium.make(WALK)
    for i, trajectory in enumerate(trajectories):
        assert isinstance(trajectory, Trajectory)
        assert len(trajectory.obs) == len(trajectory.acts) + 1 == 11 and not trajectory.terminal
        np.testing.assert_array_equal(trajectory.obs[0], fresh.reset(seed=5 + i)[0])
        np.testing.assert_allclose(trajectory.acts, expert.label(trajectory.obs[:-1]), atol=1e-6)
    fresh.close()
    (full,) = expert_rollouts(walk, expert, 1, seed=0, progress_bar=False)
    assert len(full.obs) == len(full.acts) + 1 and full.terminal and len(full.acts) < 600
    assert full.infos[-1]["fell"] or full.infos[-1]["clip_end"]
    with pytest.raises(ValueError, match="n_episodes"):
        expert_rollouts(walk, expert, 0, progress_bar=False)


def test_demos_round_trip_and_refuse_other_envs(walk, tmp_path):
    demos = teacher_forcing(walk, PDExpert.for_env(walk), 20, seed=1, progress_bar=False)
    meta = DemoMetadata(
        clip="walk", env_id=WALK, action_mode="pd_target", lookahead=1, kind="teacher_forcing",
        extra={"seed": 1, "qpos_noise": 0.0},
    )
    path = save_demos(tmp_path / "demos", demos, meta)
    assert path == tmp_path / "demos.npz" and sorted(p.name for p in tmp_path.iterdir()) == ["demos.npz"]
    loaded, loaded_meta = load_demos(path, env_id=WALK, action_mode="pd_target")
    assert loaded_meta == meta
    for name in ("obs", "acts", "next_obs", "dones"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
        assert getattr(loaded, name).dtype == getattr(demos, name).dtype
    assert len(loaded.infos) == len(demos)

    with pytest.raises(ValueError, match="MimicHumanoidWalk-v0") as err:
        load_demos(path, env_id="MimicHumanoidRun-v0")
    assert "MimicHumanoidRun-v0" in str(err.value)
    with pytest.raises(ValueError, match="pd_target") as err:
        load_demos(path, action_mode="torque")
    assert "torque" in str(err.value)

    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(ValueError, match="not an sb3-mimic demonstration file"):
        load_demos(other)
    text = tmp_path / "text.npz"
    text.write_text("not numpy at all\n")
    with pytest.raises(ValueError, match="not an sb3-mimic demonstration file"):
        load_demos(text)
    with pytest.raises(FileNotFoundError):
        load_demos(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------------------------------------
# behaviour cloning into TRPO


def test_split_transitions(walk_demos):
    train, val = walk_demos
    assert len(train) == 240 and len(val) == 60
    rows = {row.tobytes() for row in np.concatenate([train.obs, val.obs])}
    assert len(rows) == 300  # a partition: nothing lost, nothing duplicated
    for split in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_split"):
            sft.split_transitions(train, split)


def test_bc_trains_the_trpo_policy_in_place(walk, walk_demos, tmp_path, monkeypatch):
    train, val = walk_demos
    model = _model(walk, hidden=32)
    policy = model.policy
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    untrained = sft.action_mse(policy, val.obs, val.acts)
    trainers = []

    class RecordingBC(sft.bc.BC):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(sft.bc, "BC", RecordingBC)
    result = sft.train_bc(model, train, val, epochs=3, batch_size=64, lr=3e-3, progress_bar=False)
    assert len(trainers) == 1 and trainers[0].policy is policy
    assert result.model is model and model.policy is policy
    assert any(not th.equal(before[k], v) for k, v in policy.state_dict().items())

    assert result.initial_val_loss == pytest.approx(untrained, rel=1e-9)
    assert len(result.history) == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
    losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(losses) == losses[result.best_epoch - 1]
    assert result.best_val_loss < 0.5 * result.initial_val_loss
    assert sft.action_mse(policy, val.obs, val.acts) == pytest.approx(result.best_val_loss, rel=1e-6)

    path = sft.save_policy(model, tmp_path / "bc", dict(WALK_META))
    assert path == tmp_path / "bc.zip" and path.is_file()
    loaded = TRPO.load(path, device="cpu")
    _state_dicts_equal(loaded.policy.state_dict(), policy.state_dict())
    assert loaded.sb3_mimic["action_mode"] == "pd_target" and loaded.sb3_mimic["format"] == sft.POLICY_FORMAT


def test_bc_keeps_the_best_validation_weights(walk, walk_demos):
    train, val = walk_demos
    # training pulls every action towards 0.5 while validation wants 0: each epoch makes validation worse
    train = dataclasses.replace(train, acts=np.full_like(train.acts, 0.5))
    val = dataclasses.replace(val, acts=np.zeros_like(val.acts))
    model = _model(walk)
    result = sft.train_bc(model, train, val, epochs=3, batch_size=32, lr=1e-3, progress_bar=False)
    losses = [h["val_loss"] for h in result.history]
    assert losses[0] < losses[1] < losses[2] and result.best_epoch == 1
    assert result.best_val_loss == losses[0]
    assert sft.action_mse(model.policy, val.obs, val.acts) == pytest.approx(losses[0], rel=1e-6)
    with pytest.raises(ValueError, match="epochs"):
        sft.train_bc(model, train, val, epochs=0, progress_bar=False)


# ------------------------------------------------------------------------------------------------------------
# saved policies


@pytest.fixture
def distinct_model(walk):
    """A walk TRPO model whose weights are unlike any fresh initialisation."""
    model = _model(walk)
    generator = th.Generator().manual_seed(7)
    with th.no_grad():
        for p in model.policy.parameters():
            p.add_(0.2 * th.randn(p.shape, generator=generator))
    return model


def test_zip_and_pth_load_back_with_equal_predictions(walk, distinct_model, tmp_path):
    obs = np.stack([walk.reset(seed=s)[0] for s in range(6)])
    expected, _ = distinct_model.predict(obs, deterministic=True)
    zip_path = sft.save_policy(distinct_model, tmp_path / "p.zip", dict(WALK_META))
    pth_path = sft.save_policy(distinct_model, tmp_path / "p.pth", dict(WALK_META))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pth", "p.zip"]  # no temporary files left
    for path in (zip_path, pth_path):
        loaded = sft.load_policy(path)  # the env comes from the metadata
        assert loaded.observation_space.shape == (197,) and loaded.sb3_mimic["env_id"] == WALK
        np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], expected, atol=1e-6)
        _state_dicts_equal(loaded.policy.state_dict(), distinct_model.policy.state_dict())
    checkpoint = th.load(pth_path, map_location="cpu", weights_only=True)
    _state_dicts_equal(checkpoint["state_dict"], distinct_model.policy.state_dict())
    assert checkpoint["metadata"]["action_mode"] == "pd_target"


def test_load_policy_errors(walk, tmp_path):
    with pytest.raises(PolicyLoadError, match="does not exist"):
        sft.load_policy(tmp_path / "missing.zip")
    for name in ("text.zip", "text.pth"):
        path = tmp_path / name
        path.write_text("this is not a policy\n")
        with pytest.raises(PolicyLoadError) as err:
            sft.load_policy(path, env=walk)
        assert str(path) in str(err.value)

    pendulum = gymnasium.make("Pendulum-v1")
    foreign = TRPO("MlpPolicy", pendulum, policy_kwargs={"net_arch": [16]}, device="cpu")
    foreign.save(tmp_path / "pendulum.zip")
    with pytest.raises(PolicyLoadError, match=r"Observation spaces do not match"):
        sft.load_policy(tmp_path / "pendulum.zip", env=walk)
    with pytest.raises(PolicyLoadError, match="no sb3-mimic metadata"):
        sft.load_policy(tmp_path / "pendulum.zip")
    sft.save_policy(foreign, tmp_path / "pendulum.pth", {"env_id": "Pendulum-v1"})
    with pytest.raises(PolicyLoadError, match="observations of size 3") as err:
        sft.load_policy(tmp_path / "pendulum.pth", env=walk)
    assert "197" in str(err.value)
    with pytest.raises(PolicyLoadError, match=r"spaces|observations"):
        sft.check_policy_fits(foreign, walk)


def test_check_policy_fits_refuses_another_action_mode(distinct_model, walk, tmp_path):
    path = sft.save_policy(distinct_model, tmp_path / "p.zip", dict(WALK_META))
    torque = gymnasium.make(WALK, action_mode="torque")
    model = sft.load_policy(path, env=torque)  # same spaces, so it loads ...
    with pytest.raises(PolicyLoadError, match="action_mode") as err:  # ... but it must not run there
        sft.check_policy_fits(model, torque)
    assert "pd_target" in str(err.value) and "torque" in str(err.value)
    sft.check_policy_fits(model, walk)  # the env it was made for is fine


# ------------------------------------------------------------------------------------------------------------
# evaluation


def _zero(obs):
    return np.zeros(28, dtype=np.float32)


def test_evaluate_zero_action_falls_and_matches_a_manual_count(walk):
    result = evaluate(_zero, walk, episodes=3, seed=0)
    assert isinstance(result, EvalResult) and result.episodes == 3
    assert result.fall_rate == 1.0 and result.mean_survival_s < 3.0
    assert 0.0 <= result.normalized_return <= 1.0 and result.mpjpe_mm > 0
    u = walk.unwrapped
    returns, steps = [], []
    for episode in range(3):
        walk.reset(seed=episode)
        total, n, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = walk.step(_zero(None))
            total, n, done = total + reward, n + 1, terminated or truncated
        returns.append(total)
        steps.append(n)
    assert result.mean_reward == pytest.approx(np.mean(returns))
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
    result = EvalResult(1.0, 0.0, 1.0, 1.0, 0.5, 2.0, 0.0, 10.0, 1)
    assert json.loads(json.dumps(result.to_dict())) == {
        "mean_reward": 1.0, "std_reward": 0.0, "min_reward": 1.0, "max_reward": 1.0, "normalized_return": 0.5,
        "mean_survival_s": 2.0, "fall_rate": 0.0, "mpjpe_mm": 10.0, "episodes": 1,
    }
    assert "Mean Reward: 1.00 +/- 0.00" in result.format_block()


def test_evaluate_needs_a_step_limit_for_looping_clips():
    from sb3_mimic.envs import MimicHumanoidEnv

    with pytest.raises(ValueError, match="TimeLimit"):
        evaluate(_zero, MimicHumanoidEnv(motion="walk"), episodes=1)


def test_demo_file_with_foreign_metadata_is_refused(tmp_path):
    from sb3_mimic.demos import DEMO_FORMAT

    path = tmp_path / "odd.npz"
    meta = {"format": DEMO_FORMAT, "clip": "walk", "unexpected": 1}
    empty = np.zeros((1, 1), dtype=np.float32)
    np.savez(path, obs=empty, acts=empty, next_obs=empty, dones=np.zeros(1, bool), metadata=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="unexpected demonstration metadata"):
        load_demos(path)
