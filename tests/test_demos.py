"""Demonstrations: teacher forcing, expert rollouts, and demonstration files with their metadata."""

from __future__ import annotations

import json
import gymnasium
import numpy as np
import pytest

import sb3_mimic  # noqa: F401  (registers the env ids)
from sb3_mimic.demos import DemoMetadata, dart_rollouts, expert_rollouts, load_demos, save_demos, teacher_forcing
from sb3_mimic.experts import JointDecoder, PDExpert
from imitation.data.types import Trajectory, Transitions

WALK = "MimicHumanoidWalk-v0"
HINGES = [9, 13, 20, 24]  # right knee, right elbow, left knee, left elbow


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


def test_dart_executes_the_label_plus_the_injected_noise_and_records_the_clean_label(walk):
    """DART: each step executes clip(label + N(0, noise)) while the recorded action is the expert's clean label, so
    executed and recorded differ by the injected noise (std as asked, independent of the state)."""
    from sb3_mimic.experts import MPCSettings, make_expert

    noise = 0.05
    expert = make_expert("mpc", walk, settings=MPCSettings(horizon=4, samples=4, iterations=1, knots=2), seed=0, nthread=1)
    (episode,) = dart_rollouts(walk, expert, 1, noise, seed=3, max_steps=25, progress_bar=False)
    expert.close()
    executed = np.stack([info["executed"] for info in episode.infos])
    labels = np.stack([info["label_pd_target"] for info in episode.infos])
    np.testing.assert_array_equal(episode.acts, labels)  # pd_target labels are recorded as they are
    inside = np.abs(labels) < 0.8  # away from the clip at +-1
    gap = (executed - labels)[inside]
    assert len(episode.acts) == 25 and abs(gap.std() - noise) < 0.006 and abs(gap.mean()) < 0.005
    assert np.all(np.abs(executed) <= 1.0)
    # the episode really ran the executed actions: replaying them from the same start gives the same states
    replay = gymnasium.make(WALK)
    obs, _ = replay.reset(seed=3)
    np.testing.assert_array_equal(obs, episode.obs[0])
    for k, action in enumerate(executed[:10]):
        obs, *_ = replay.step(action)
        np.testing.assert_allclose(obs, episode.obs[k + 1], atol=1e-6)
    # each label's recorded physics state is the one it was observed in: its clip time is the step's, and the
    # env put in that state at that time observes what the label was given for
    times = [info["state"][0] for info in episode.infos]
    np.testing.assert_allclose(np.diff(times), walk.unwrapped.dt, atol=1e-12)
    base = replay.unwrapped
    for k in (0, 7, 24):
        t, qpos, qvel = episode.infos[k]["state"]
        replay.reset(options={"start_time": t})
        np.testing.assert_array_equal(base.set_physics_state(qpos, qvel), episode.obs[k])
    replay.close()


def test_dart_states_are_saved_as_start_states_and_a_teacher_forcing_file_has_none(walk, tmp_path):
    from imitation.data.rollout import flatten_trajectories

    from sb3_mimic.demos import load_start_states

    expert = PDExpert.for_env(walk)
    episodes = dart_rollouts(walk, expert, 2, 0.02, seed=5, max_steps=6, progress_bar=False)
    meta = DemoMetadata(clip="walk", env_id=WALK, action_mode="pd_target", lookahead=1, kind="rollouts")
    path = save_demos(tmp_path / "dart.npz", flatten_trajectories(episodes), meta)
    states = load_start_states(path, env_id=WALK)
    recorded = [info["state"] for episode in episodes for info in episode.infos]
    assert len(states.time) == 12 and states.clip == "walk"
    np.testing.assert_array_equal(states.time, [t for t, _, _ in recorded])
    np.testing.assert_array_equal(states.qpos, np.stack([q for _, q, _ in recorded]))
    np.testing.assert_array_equal(states.qvel, np.stack([v for _, _, v in recorded]))
    with pytest.raises(ValueError, match="MimicHumanoidWalk-v0"):
        load_start_states(path, env_id="MimicHumanoidRun-v0")
    tf = save_demos(tmp_path / "tf.npz", teacher_forcing(walk, expert, 5, seed=1, progress_bar=False),
                    DemoMetadata(clip="walk", env_id=WALK, action_mode="pd_target", lookahead=1, kind="teacher_forcing"))
    with pytest.raises(ValueError, match=r"holds no physics states .*--save_demos"):
        load_start_states(tf)


def test_dart_labels_for_a_residual_policy_are_the_same_pd_targets_off_the_next_reference(walk):
    from sb3_mimic.envs.actions import ACTION_SCALE, RESIDUAL_SCALE

    expert = PDExpert.for_env(walk)  # pd_target labels; the residual encoding of a PD-tracking label is 0
    (episode,) = dart_rollouts(walk, expert, 1, 0.02, seed=1, action_mode="residual", max_steps=12, progress_bar=False)
    assert np.abs(episode.acts).max() < 1e-5
    residual = gymnasium.make(WALK, action_mode="residual")
    obs, _ = residual.reset(seed=1)
    for k in range(12):  # executing the recorded residual label + the executed offset reproduces the episode
        offset = (episode.infos[k]["executed"] - episode.infos[k]["label_pd_target"]) / RESIDUAL_SCALE
        obs, *_ = residual.step(episode.acts[k] + offset)
        np.testing.assert_allclose(obs, episode.obs[k + 1], atol=1e-4)
    residual.close()
    assert ACTION_SCALE * RESIDUAL_SCALE == pytest.approx(np.pi / 4)
    with pytest.raises(ValueError, match="noise std"):
        dart_rollouts(walk, expert, 1, -0.1, progress_bar=False)
    torque = gymnasium.make(WALK, action_mode="torque")
    with pytest.raises(ValueError, match="pd_target mode"):
        dart_rollouts(torque, expert, 1, 0.1, progress_bar=False)
    torque.close()


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


def test_demo_file_with_foreign_metadata_is_refused(tmp_path):
    from sb3_mimic.demos import DEMO_FORMAT

    path = tmp_path / "odd.npz"
    meta = {"format": DEMO_FORMAT, "clip": "walk", "unexpected": 1}
    empty = np.zeros((1, 1), dtype=np.float32)
    np.savez(path, obs=empty, acts=empty, next_obs=empty, dones=np.zeros(1, bool), metadata=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="unexpected demonstration metadata"):
        load_demos(path)
