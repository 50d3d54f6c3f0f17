"""Motion clips: loading, conversion, sampling, lift and error reporting, checked against the raw files.

Expected values come from DeepMimic's clip files parsed here with ``json`` and converted with numpy code
written in this file: positions (x, y, z) -> (x, -z, y), quaternions (w, x, y, z) -> (w, x, -z, y).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import pytest

import sb3_mimic
from sb3_mimic import character
from sb3_mimic.motion import floor_clearance, load_clip

ALL_CLIPS = [
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump", "kick",
    "punch", "roll", "run", "spin", "spinkick", "walk",
]  # fmt: skip

# DeepMimic's frame layout (DEEPMIMIC.md): column of each joint's values after duration, root pos, root quat
LAYOUT = [
    ("chest", "ball", 8),
    ("neck", "ball", 12),
    ("right_hip", "ball", 16),
    ("right_knee", "hinge", 20),
    ("right_ankle", "ball", 21),
    ("right_shoulder", "ball", 25),
    ("right_elbow", "hinge", 29),
    ("left_hip", "ball", 30),
    ("left_knee", "hinge", 34),
    ("left_ankle", "ball", 35),
    ("left_shoulder", "ball", 39),
    ("left_elbow", "hinge", 43),
]
BALLS = [name for name, kind, _ in LAYOUT if kind == "ball"]
HINGES = [name for name, kind, _ in LAYOUT if kind == "hinge"]


# --------------------------------------------------------------------------------------------------------
# independent numpy helpers


def unit(q):
    q = np.asarray(q, dtype=float)
    return q / np.linalg.norm(q)


def dm_quat_to_mj(q):
    w, x, y, z = q
    return np.array([w, x, -z, y])


def quat_mul(a, b):
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q):
    return np.array([q[0], -q[1], -q[2], -q[3]])


def slerp(q0, q1, s):
    """Shortest-path spherical interpolation of unit quaternions."""
    q0, q1 = unit(q0), unit(q1)
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    theta = math.acos(min(d, 1.0))
    if theta < 1e-12:
        return q0
    return (math.sin((1 - s) * theta) * q0 + math.sin(s * theta) * q1) / math.sin(theta)


def rotation_vector(q):
    """Axis * angle of a unit quaternion, angle in (-pi, pi]."""
    q = unit(q)
    if q[0] < 0:
        q = -q
    v = q[1:]
    n = np.linalg.norm(v)
    if n < 1e-15:
        return 2 * v
    return 2 * math.atan2(n, q[0]) * v / n


def same_rotation(a, b, atol=1e-9):
    return min(np.abs(a - b).max(), np.abs(a + b).max()) < atol


def quat_to_mat(q):
    w, x, y, z = unit(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


@pytest.fixture(scope="module")
def model():
    return character.load_model()


def addr(model, name):
    j = model.joint(name)
    return int(j.qposadr[0]), int(j.dofadr[0])


def raw_frames(raw_clip, name) -> np.ndarray:
    return np.array(raw_clip(name)["Frames"], dtype=float)


def raw_times(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])


def expected_qpos(model, frame: np.ndarray, lift: float) -> np.ndarray:
    """The MuJoCo qpos of one raw DeepMimic frame, converted here by name."""
    q = np.full(model.nq, np.nan)
    root_adr, _ = addr(model, "root")
    q[root_adr : root_adr + 3] = [frame[1], -frame[3], frame[2] + lift]
    q[root_adr + 3 : root_adr + 7] = dm_quat_to_mj(unit(frame[4:8]))
    for name, kind, col in LAYOUT:
        a, _ = addr(model, name)
        if kind == "ball":
            q[a : a + 4] = dm_quat_to_mj(unit(frame[col : col + 4]))
        else:
            q[a] = frame[col]
    assert not np.isnan(q).any()
    return q


def root_quat_adr(model):
    return addr(model, "root")[0] + 3


# --------------------------------------------------------------------------------------------------------
# loading


def test_load_by_name_prefixed_name_and_path_agree(tmp_path, dm_clip_file):
    path = dm_clip_file("walk")
    by_name = load_clip("walk")
    copy = tmp_path / "my_walk.txt"
    copy.write_bytes(path.read_bytes())
    for other in (load_clip("humanoid3d_walk"), load_clip(str(path)), load_clip(path), load_clip(str(copy))):
        np.testing.assert_array_equal(other.qpos, by_name.qpos)
        np.testing.assert_array_equal(other.times, by_name.times)
        assert other.loop == by_name.loop
    assert load_clip(copy).name == "my_walk"
    assert by_name.name == "walk"


def test_a_clip_carries_its_catalogue_entry_and_a_file_gets_explicit_defaults(tmp_path, dm_clip_file):
    from sb3_mimic._resources import data_path

    raw = json.loads(data_path("motions", "catalogue.json").read_text())
    crawl = load_clip("crawl")
    assert crawl.info.fall_bodies == tuple(raw["clips"]["crawl"]["fall_bodies"]) and crawl.info.from_catalogue
    assert crawl.env_id == "MimicHumanoidCrawl-v0"
    assert load_clip("run").info.mpc == tuple(sorted(raw["clips"]["run"]["mpc"].items()))
    copy = tmp_path / "my_crawl.txt"  # crawl's frames in a file the catalogue does not name
    copy.write_bytes(dm_clip_file("crawl").read_bytes())
    mine = load_clip(copy)
    assert not mine.info.from_catalogue and mine.info.name == "my_crawl" and mine.env_id == "MimicHumanoid-v0"
    assert mine.info.fall_bodies == tuple(raw["default_fall_bodies"]) and mine.info.mpc == ()
    env = gymnasium.make("MimicHumanoid-v0", motion=str(copy))
    assert env.unwrapped.clip is mine  # resolved once, by load_clip, and cached
    fall = {env.unwrapped.model.body(int(b)).name for b in env.unwrapped.model.geom_bodyid[env.unwrapped.fall_geoms]}
    assert fall == set(raw["default_fall_bodies"])
    assert load_clip(mine) is mine


def test_a_copy_of_a_catalogue_file_elsewhere_is_a_generic_clip_file(tmp_path, dm_clip_file, monkeypatch):
    from sb3_mimic.experts.settings import MPCSettings

    run = load_clip("run")
    assert run.info.mpc and run.info.from_catalogue  # run's catalogue entry overrides the MPC's defaults
    assert load_clip(dm_clip_file("run")).info is run.info  # the catalogue's own file, given by path: run's entry
    copy = tmp_path / "x" / "humanoid3d_run.txt"  # run's file saved elsewhere under its catalogue name
    copy.parent.mkdir()
    copy.write_bytes(dm_clip_file("run").read_bytes())
    monkeypatch.chdir(copy.parent)
    for given in (copy, str(copy), "humanoid3d_run.txt"):  # the last: a bare file name that exists here
        clip = load_clip(given)
        assert clip.path == str(copy.resolve()) and not clip.info.from_catalogue
        assert clip.info.mpc == () and MPCSettings.for_clip(clip) == MPCSettings()
        assert clip.env_id == "MimicHumanoid-v0"
        np.testing.assert_array_equal(clip.qpos, run.qpos)  # the same frames, only the settings differ
    assert load_clip("run").info is run.info and load_clip("humanoid3d_run").info is run.info  # names: the catalogue


def test_catalogue_lists_all_deepmimic_clips():
    assert sorted(sb3_mimic.available_clips()) == sorted(ALL_CLIPS)


@pytest.mark.parametrize("name", ALL_CLIPS)
def test_clip_matches_file(name, raw_clip, model):
    raw = raw_clip(name)
    frames = raw_frames(raw_clip, name)
    clip = load_clip(name)
    assert isinstance(clip, sb3_mimic.MotionClip)
    assert clip.num_frames == len(frames)
    assert clip.qpos.shape == (len(frames), model.nq)
    assert clip.qvel.shape == (len(frames), model.nv)
    assert clip.duration == pytest.approx(frames[:-1, 0].sum(), abs=1e-9)
    np.testing.assert_allclose(clip.times, raw_times(frames), atol=1e-9)
    assert raw["Loop"] in ("wrap", "none")
    assert clip.loop is (raw["Loop"] == "wrap")
    # every frame converted by name, lifted by clip.lift
    expected = np.array([expected_qpos(model, f, clip.lift) for f in frames])
    np.testing.assert_allclose(clip.qpos, expected, atol=1e-12)
    # cycle offset: the horizontal root displacement from the first to the last frame, converted
    if clip.loop:
        d = frames[-1, 1:4] - frames[0, 1:4]
        np.testing.assert_allclose(clip.cycle_offset, [d[0], -d[2], 0.0], atol=1e-12)
    else:
        np.testing.assert_array_equal(clip.cycle_offset, 0.0)


def test_clip_arrays_are_read_only():
    clip = load_clip("walk")
    for name in ("qpos", "qvel", "times", "cycle_offset"):
        arr = getattr(clip, name)
        with pytest.raises(ValueError):
            arr[0] = 1.0
        with pytest.raises(ValueError):
            arr.flat[-1] = 1.0
    with pytest.raises(AttributeError):
        clip.lift = 0.0  # frozen dataclass


def test_walk_root_height_and_quaternion_conversion(raw_clip, model):
    frames = raw_frames(raw_clip, "walk")
    clip = load_clip("walk")
    root_adr, _ = addr(model, "root")
    # root height = file's y + lift; horizontal (x, y) = (x, -z)
    assert clip.qpos[0, root_adr + 2] == pytest.approx(frames[0, 2] + clip.lift, abs=1e-12)
    np.testing.assert_allclose(clip.qpos[0, root_adr : root_adr + 2], [frames[0, 1], -frames[0, 3]], atol=1e-12)
    f = 17
    w, x, y, z = frames[f, 4:8] / np.linalg.norm(frames[f, 4:8])
    np.testing.assert_allclose(clip.qpos[f, root_adr + 3 : root_adr + 7], [w, x, -z, y], atol=1e-12)
    a, _ = addr(model, "right_hip")
    w, x, y, z = frames[f, 16:20] / np.linalg.norm(frames[f, 16:20])
    np.testing.assert_allclose(clip.qpos[f, a : a + 4], [w, x, -z, y], atol=1e-12)
    a, _ = addr(model, "left_knee")
    assert clip.qpos[f, a] == frames[f, 34]


# --------------------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("name", ["walk", "roll", "kick", "backflip"])
def test_sample_at_frame_times_returns_the_frames(name, raw_clip, model):
    frames = raw_frames(raw_clip, name)
    times = raw_times(frames)
    clip = load_clip(name)
    last = len(frames) if not clip.loop else len(frames) - 1  # a wrap clip's end time is the next cycle's start
    for i in range(last):
        q, _ = clip.sample(float(times[i]))
        np.testing.assert_allclose(q, expected_qpos(model, frames[i], clip.lift), atol=1e-9, err_msg=f"frame {i}")


@pytest.mark.parametrize("name", ["walk", "backflip", "roll"])
@pytest.mark.parametrize("s", [0.5, 0.3])
def test_sample_between_frames_lerps_hinges_and_slerps_quaternions(name, s, raw_clip, model):
    frames = raw_frames(raw_clip, name)
    times = raw_times(frames)
    clip = load_clip(name)
    root_adr = addr(model, "root")[0]
    for i in range(len(frames) - 1):
        a, b = frames[i], frames[i + 1]
        q, _ = clip.sample(float(times[i] + s * (times[i + 1] - times[i])))
        exp_pos = (1 - s) * a[1:4] + s * b[1:4]
        np.testing.assert_allclose(
            q[root_adr : root_adr + 3], [exp_pos[0], -exp_pos[2], exp_pos[1] + clip.lift], atol=1e-9
        )
        exp = dm_quat_to_mj(slerp(a[4:8], b[4:8], s))
        assert same_rotation(q[root_adr + 3 : root_adr + 7], exp), f"root, segment {i}"
        for jname, kind, col in LAYOUT:
            adr = addr(model, jname)[0]
            if kind == "hinge":
                assert q[adr] == pytest.approx((1 - s) * a[col] + s * b[col], abs=1e-9), f"{jname}, segment {i}"
            else:
                exp = dm_quat_to_mj(slerp(a[col : col + 4], b[col : col + 4], s))
                assert same_rotation(q[adr : adr + 4], exp), f"{jname}, segment {i}"


def test_slerp_check_is_not_a_lerp(raw_clip):
    """The halfway test above can tell slerp from a normalised lerp on backflip's big rotations."""
    frames = raw_frames(raw_clip, "backflip")
    worst = 0.0
    for i in range(len(frames) - 1):
        a, b = unit(frames[i, 4:8]), unit(frames[i + 1, 4:8])
        if np.dot(a, b) < 0:
            b = -b
        s = 0.3
        nlerp = unit((1 - s) * a + s * b)
        worst = max(worst, np.abs(nlerp - slerp(a, b, s)).max())
    assert worst > 1e-6


def test_sampled_quaternions_are_unit(model):
    rng = np.random.default_rng(1)
    index = character.character_index(model)
    for name in ALL_CLIPS:
        clip = load_clip(name)
        for t in rng.uniform(-0.5 * clip.duration, 2.5 * clip.duration, size=40):
            q, _ = clip.sample(float(t))
            norms = np.linalg.norm(q[index.quat_qpos], axis=1)
            np.testing.assert_allclose(norms, 1.0, atol=1e-9, err_msg=f"{name} at t={t}")


@pytest.mark.parametrize("name", ["walk", "dance_a", "roll"])
def test_looping_adds_cycle_offset(name, model):
    clip = load_clip(name)
    assert clip.loop
    assert np.linalg.norm(clip.cycle_offset[:2]) > 0.1  # a non-trivial offset: the check below can fail
    root_adr = addr(model, "root")[0]
    for t in (0.013, 0.37 * clip.duration, 0.81 * clip.duration):
        base, vbase = clip.sample(t)
        for k in (1, 2, 5, -1):
            q, v = clip.sample(t + k * clip.duration)
            expected = base.copy()
            expected[root_adr : root_adr + 2] += k * clip.cycle_offset[:2]
            np.testing.assert_allclose(q, expected, atol=1e-9, err_msg=f"t={t}, k={k}")
            np.testing.assert_allclose(v, vbase, atol=1e-9, err_msg=f"t={t}, k={k}")
    # continuous root position across the seam
    eps = 1e-7
    before, _ = clip.sample(clip.duration - eps)
    after, _ = clip.sample(clip.duration + eps)
    np.testing.assert_allclose(before[root_adr : root_adr + 3], after[root_adr : root_adr + 3], atol=1e-5)


def test_non_looping_clip_holds_its_end_poses(raw_clip, model):
    clip = load_clip("kick")
    assert not clip.loop
    frames = raw_frames(raw_clip, "kick")
    last = expected_qpos(model, frames[-1], clip.lift)
    first = expected_qpos(model, frames[0], clip.lift)
    for t in (clip.duration, clip.duration + 1e-3, clip.duration + 0.5, clip.duration + 10.0):
        np.testing.assert_allclose(clip.sample(t)[0], last, atol=1e-9, err_msg=f"t={t}")
    for t in (-1e-3, -2.0):
        np.testing.assert_allclose(clip.sample(t)[0], first, atol=1e-9, err_msg=f"t={t}")
    assert clip.phase(clip.duration + 3.0) == 1.0


def test_non_looping_clip_is_at_rest_past_its_end(model):
    """Past the end the held pose does not move, so its velocity is zero (as in DeepMimic's
    ``cMotion::CalcFrameVel``: ``if (!EnableLoop() && time >= GetDuration()) out_vel = 0``)."""
    clip = load_clip("kick")
    h = 1e-3
    for t in (clip.duration + 0.1, clip.duration + 5.0):
        qa, _ = clip.sample(t - h)
        qb, v = clip.sample(t + h)
        fd = np.zeros(model.nv)
        mujoco.mj_differentiatePos(model, fd, 2 * h, qa, qb)
        np.testing.assert_array_equal(fd, 0.0)
        np.testing.assert_allclose(v, 0.0, atol=1e-12, err_msg=f"qvel of the held end pose at t={t}")


def test_sample_writes_into_given_array():
    clip = load_clip("run")
    out = np.zeros(43)
    q, _ = clip.sample(0.31, qpos=out)
    assert q is out
    np.testing.assert_array_equal(out, clip.sample(0.31)[0])


@pytest.mark.parametrize("name", ["walk", "backflip", "dance_a"])
def test_sample_velocity_matches_finite_differences(name, model):
    """qvel: root linear velocity (world), root angular velocity (root frame), ball joints local, hinge rates."""
    clip = load_clip(name)
    root_adr, root_dof = addr(model, "root")
    h = 1e-6
    times = clip.times
    for i in range(0, clip.num_frames - 1, 3):
        t = 0.5 * (times[i] + times[i + 1])
        q_minus, _ = clip.sample(t - h)
        q_plus, _ = clip.sample(t + h)
        _, v = clip.sample(t)
        fd = (q_plus[root_adr : root_adr + 3] - q_minus[root_adr : root_adr + 3]) / (2 * h)
        np.testing.assert_allclose(v[root_dof : root_dof + 3], fd, atol=1e-5, err_msg=f"root linear, segment {i}")
        # root angular velocity in the root frame: q(t+h) = q(t-h) * exp(w 2h)
        qa, qb = q_minus[root_adr + 3 : root_adr + 7], q_plus[root_adr + 3 : root_adr + 7]
        w_body = rotation_vector(quat_mul(quat_conj(qa), qb)) / (2 * h)
        np.testing.assert_allclose(v[root_dof + 3 : root_dof + 6], w_body, atol=1e-4, err_msg=f"root ang, seg {i}")
        for jname in BALLS:
            a, d = addr(model, jname)
            w_local = rotation_vector(quat_mul(quat_conj(q_minus[a : a + 4]), q_plus[a : a + 4])) / (2 * h)
            np.testing.assert_allclose(v[d : d + 3], w_local, atol=1e-4, err_msg=f"{jname}, segment {i}")
        for jname in HINGES:
            a, d = addr(model, jname)
            assert v[d] == pytest.approx((q_plus[a] - q_minus[a]) / (2 * h), abs=1e-4), f"{jname}, segment {i}"


def test_root_angular_velocity_is_not_world_frame(model):
    """Sanity for the check above: on backflip the world-frame and root-frame angular velocities differ."""
    clip = load_clip("backflip")
    root_adr, root_dof = addr(model, "root")
    diff = 0.0
    for i in range(clip.num_frames - 1):
        q, v = clip.sample(0.5 * (clip.times[i] + clip.times[i + 1]))
        w_body = v[root_dof + 3 : root_dof + 6]
        w_world = quat_to_mat(q[root_adr + 3 : root_adr + 7]) @ w_body
        diff = max(diff, np.abs(w_world - w_body).max())
    assert diff > 0.1


# --------------------------------------------------------------------------------------------------------
# lift


def lowest_geom_point(model, data) -> float:
    """Lowest point of the character's spheres, capsules and boxes (floor excluded), computed here."""
    lowest = np.inf
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == 0:
            continue
        center, rot, size = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g]
        kind = model.geom_type[g]
        if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            low = center[2] - size[0]
        elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            ends = [center + sgn * size[1] * rot[:, 2] for sgn in (-1, 1)]
            low = min(e[2] for e in ends) - size[0]
        elif kind == mujoco.mjtGeom.mjGEOM_BOX:
            corners = [center + rot @ ((2 * np.array(sg) - 1) * size[:3]) for sg in np.ndindex(2, 2, 2)]
            low = min(c[2] for c in corners)
        else:
            raise AssertionError(f"unexpected geom type {kind}")
        lowest = min(lowest, low)
    return float(lowest)


def frame_lows(model, qpos_rows) -> np.ndarray:
    """(F,) lowest point of each pose, by :func:`lowest_geom_point` after ``mj_kinematics``."""
    data = mujoco.MjData(model)
    lows = []
    for q in qpos_rows:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        lows.append(lowest_geom_point(model, data))
    return np.array(lows)


def flight_frames(model, clip) -> np.ndarray:
    """(F,) ``True`` where the character is in free flight: its centre of mass (mass-weighted body positions,
    computed here) accelerates downward at more than 0.6 g, which only gravity acting alone can do; no height
    decides it, so the lift cannot move a frame in or out."""
    data, mass = mujoco.MjData(model), model.body_mass[1:]
    com = []
    for q in clip.qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        com.append(mass @ data.xipos[1:, 2] / mass.sum())
    return np.gradient(np.gradient(np.array(com), clip.times), clip.times) < -0.6 * 9.81


# Measured with benchmarks/clip_floor.py (mm, after the lift). The typical frame is the median over the frames in
# which the character is supported (not in free flight): within 4.5 mm of the floor for every clip (roll -4.5,
# dance_b 3.6, dance_a -3.4, getup_facedown 3.0; under the old rule 12-111 mm up, and getup_facedown's 6.8 mm under a
# 60 mm contact margin, which counted its rise onto the knees as flight). Over all frames, flight included, the median
# frame is within 3.7 mm too except for two clips with flight phases: run's at 17.9 mm is airborne (9 of its 25
# frames in flight; its median frame is the one before landing) and dance_b's at 9.4 mm is pulled up by two hops (21
# frames in free flight) that the capture lands on a foot 30-80 mm above the floor.
SUPPORTED_FRAME_TOLERANCE = 0.005
MEDIAN_FRAME_TOLERANCE = {"run": 0.020, "dance_b": 0.010}
DEFAULT_MEDIAN_FRAME_TOLERANCE = 0.005


@pytest.mark.parametrize("name", ALL_CLIPS)
def test_median_frame_stands_on_the_floor(name, model):
    clip = load_clip(name)
    lows, flight = frame_lows(model, clip.qpos), flight_frames(model, clip)
    assert (~flight).sum() > clip.num_frames / 2  # the typical frame is a supported one
    supported = np.median(lows[~flight])
    assert abs(supported) <= SUPPORTED_FRAME_TOLERANCE, f"median supported frame's lowest point at {1000 * supported:.1f} mm"
    tolerance = MEDIAN_FRAME_TOLERANCE.get(name, DEFAULT_MEDIAN_FRAME_TOLERANCE)
    assert abs(np.median(lows)) <= tolerance, f"median frame's lowest point at {1000 * np.median(lows):.1f} mm"


def test_flight_frames_are_the_airborne_ones(model):
    # the free-flight test above, on clips whose phases are known: walk never leaves the ground, run's flight frames
    # have no geom within 15 mm of the floor, and jump's take-off to landing (its lowest point 30-227 mm up) is flight
    assert not flight_frames(model, load_clip("walk")).any()
    run = load_clip("run")
    run_flight = flight_frames(model, run)
    assert run_flight.sum() >= 8 and (frame_lows(model, run.qpos)[run_flight] > 0.015).all()
    jump = load_clip("jump")
    jump_flight, jump_lows = flight_frames(model, jump), frame_lows(model, jump.qpos)
    assert (jump_lows > 0.1).sum() >= 20 and jump_flight[jump_lows > 0.1].all()
    assert not jump_flight[jump_lows < 0.0].any()


@pytest.mark.parametrize("name", ALL_CLIPS)
def test_lift_puts_the_median_contact_frame_on_the_floor(name, model, raw_clip):
    # the documented rule, on poses converted here from the raw file: contact frames are those whose lowest point
    # is within 70 mm of the 10th percentile of the frames' lowest points; their median lands on the floor
    clip = load_clip(name)
    raw = frame_lows(model, [expected_qpos(model, f, 0.0) for f in raw_frames(raw_clip, name)])
    contact = raw <= np.percentile(raw, 10) + 0.070
    assert clip.lift == pytest.approx(-np.median(raw[contact]), abs=1e-9)
    lows = frame_lows(model, clip.qpos)
    np.testing.assert_allclose(lows, raw + clip.lift, atol=1e-9)  # the lift moves every geom by the same amount
    assert abs(np.median(lows[contact])) < 1e-9


def test_a_few_deep_frames_no_longer_float_the_clip(model):
    # in crawl's file, its last 5 frames sink 38-104 mm into the floor, the others at most 17 mm: the old rule (raise
    # the clip by its deepest frame) floated the median frame 111 mm above the floor; now the hands and knees touch it
    clip = load_clip("crawl")
    lows = frame_lows(model, clip.qpos)
    raw = lows - clip.lift
    assert (raw < -0.03).sum() == 5 and raw.min() < -0.1
    assert np.median(raw) - raw.min() > 0.1  # the median frame's height under the old rule
    assert abs(np.median(lows)) < 1e-9


def test_run_lift_value(model):
    # DEEPMIMIC.md: run sinks up to 6.75 cm into the floor; that deepest frame (a landing) no longer decides the lift
    # (the old rule's 0.0675): the median contact frame does, 13.3 mm (benchmarks/clip_floor.py)
    clip = load_clip("run")
    assert clip.lift == pytest.approx(0.0133, abs=1e-3)
    assert frame_lows(model, clip.qpos).min() - clip.lift == pytest.approx(-0.0675, abs=2e-3)


# --------------------------------------------------------------------------------------------------------
# floor clearance of a start state


@pytest.mark.parametrize(("name", "frame"), [("walk", 0), ("crawl", 170), ("getup_faceup", 50), ("backflip", 14)])
def test_floor_clearance_of_a_pose_above_the_floor_is_zero(name, frame, model):
    q = load_clip(name).qpos[frame].copy()
    q[2] += 0.003 - frame_lows(model, [q])[0]  # lowest point 3 mm above the floor
    before = q.copy()
    assert floor_clearance(model, q) == 0.0
    assert floor_clearance(model, q, mujoco.MjData(model)) == 0.0
    np.testing.assert_array_equal(q, before)


@pytest.mark.parametrize(("name", "frame"), [("walk", 0), ("crawl", 170), ("getup_faceup", 50), ("roll", 64)])
@pytest.mark.parametrize("depth", [1e-4, 0.0123, 0.25])
def test_floor_clearance_is_the_penetration_depth(name, frame, depth, model):
    q = load_clip(name).qpos[frame].copy()
    q[2] -= depth + frame_lows(model, [q])[0]  # lowest point exactly `depth` below the floor
    before = q.copy()
    data = mujoco.MjData(model)
    assert floor_clearance(model, q) == pytest.approx(depth, abs=1e-9)
    assert floor_clearance(model, q, data) == pytest.approx(depth, abs=1e-9)
    np.testing.assert_array_equal(q, before)
    q[2] += floor_clearance(model, q, data)
    assert frame_lows(model, [q])[0] == pytest.approx(0.0, abs=1e-9)  # raised by it, the pose touches the floor


# --------------------------------------------------------------------------------------------------------
# errors


def write_clip(tmp_path: Path, stem: str, frames, loop="wrap", **extra) -> Path:
    path = tmp_path / f"{stem}.txt"
    body = {"Loop": loop, "Frames": frames, **extra}
    path.write_text(json.dumps(body))  # json.dumps writes NaN literally
    return path


@pytest.fixture
def good_frames(raw_clip):
    return [list(f) for f in raw_clip("walk")["Frames"][:5]]


def load_error(path) -> str:
    with pytest.raises(sb3_mimic.MotionClipError) as info:
        load_clip(path)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def names_frame(msg: str, i: int) -> bool:
    return re.search(rf"\bframe {i}\b", msg) is not None


def test_valid_small_clip_loads(tmp_path, good_frames):
    frames = [list(f) for f in good_frames]
    frames[-1][0] = 0.0  # the last frame's duration is unused
    clip = load_clip(write_clip(tmp_path, "small_ok", frames))
    assert clip.num_frames == 5 and clip.name == "small_ok"
    assert clip.duration == pytest.approx(sum(f[0] for f in frames[:-1]))
    extra = load_clip(write_clip(tmp_path, "extra_keys", good_frames, RightJoints=[3, 4], CycleSyncTime=1.0))
    assert extra.num_frames == 5


def test_error_bad_json(tmp_path):
    path = tmp_path / "broken_json_clip.txt"
    path.write_text('{"Loop": "wrap", "Frames": [[0.1, 0.2,')
    msg = load_error(path)
    assert "broken_json_clip.txt" in msg


def test_error_frame_of_wrong_length(tmp_path, good_frames):
    frames = [list(f) for f in good_frames]
    frames[3] = frames[3][:-1]
    msg = load_error(write_clip(tmp_path, "short_frame_clip", frames))
    assert "short_frame_clip.txt" in msg and names_frame(msg, 3) and "44" in msg


def test_error_too_few_frames(tmp_path, good_frames):
    msg = load_error(write_clip(tmp_path, "one_frame_clip", good_frames[:1]))
    assert "one_frame_clip.txt" in msg
    msg = load_error(write_clip(tmp_path, "no_frame_clip", []))
    assert "no_frame_clip.txt" in msg


@pytest.mark.parametrize("duration", [0.0, -0.02])
def test_error_bad_duration(tmp_path, good_frames, duration):
    frames = [list(f) for f in good_frames]
    frames[2][0] = duration
    msg = load_error(write_clip(tmp_path, "bad_duration_clip", frames))
    assert "bad_duration_clip.txt" in msg and names_frame(msg, 2)


def test_error_nan(tmp_path, good_frames):
    frames = [list(f) for f in good_frames]
    frames[3][21] = float("nan")
    path = write_clip(tmp_path, "nan_clip", frames)
    assert "NaN" in path.read_text()
    msg = load_error(path)
    assert "nan_clip.txt" in msg and names_frame(msg, 3)


@pytest.mark.parametrize("col", [4, 35])  # root quaternion, left ankle quaternion
def test_error_zero_quaternion(tmp_path, good_frames, col):
    frames = [list(f) for f in good_frames]
    frames[2][col : col + 4] = [0.0, 0.0, 0.0, 0.0]
    msg = load_error(write_clip(tmp_path, f"zero_quat_clip_{col}", frames))
    assert f"zero_quat_clip_{col}.txt" in msg and names_frame(msg, 2)


def test_error_bad_loop(tmp_path, good_frames):
    msg = load_error(write_clip(tmp_path, "bad_loop_clip", good_frames, loop="forever"))
    assert "bad_loop_clip.txt" in msg and "forever" in msg


def test_error_non_numbers_and_missing_frames(tmp_path, good_frames):
    frames = [list(f) for f in good_frames]
    frames[1][5] = "x"
    assert "text_value_clip.txt" in load_error(write_clip(tmp_path, "text_value_clip", frames))
    path = tmp_path / "no_frames_key_clip.txt"
    path.write_text(json.dumps({"Loop": "wrap"}))
    assert "no_frames_key_clip.txt" in load_error(path)


def test_error_unknown_name_lists_clips():
    msg = load_error("wlak")
    assert "wlak" in msg and "walk" in msg and "backflip" in msg


def test_error_missing_path(tmp_path):
    missing = tmp_path / "does_not_exist_clip.txt"
    assert "does_not_exist_clip.txt" in load_error(missing)
    assert "does_not_exist_clip.txt" in load_error(str(missing))
