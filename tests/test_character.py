"""The MuJoCo character against DeepMimic's own character files and an independent forward kinematics.

Every expected value here comes from DeepMimic's ``humanoid3d.txt`` / ``humanoid3d_ctrl.txt`` or the raw
clip files, processed with numpy code written in this file (no sb3_mimic conversion code is reused).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mujoco
import numpy as np
import pytest

from sb3_mimic import character
from sb3_mimic.motion import load_clip

REPO_ROOT = Path(__file__).resolve().parents[1]

# DeepMimic y-up -> MuJoCo z-up: (x, y, z) -> (x, -z, y)
P = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# number of clip values per DeepMimic joint type (the root's 7 follow the frame's duration)
PARAM_SIZE = {"none": 7, "spherical": 4, "revolute": 1, "fixed": 0}


# --------------------------------------------------------------------------------------------------------
# independent numpy helpers


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def attach(j: dict) -> np.ndarray:
    return np.array([j["AttachX"], j["AttachY"], j["AttachZ"]], dtype=float)


def deepmimic_fk(joints: list[dict], frame: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """World (position, rotation) of every joint of DeepMimic's skeleton, y-up, from one raw clip frame.

    Clip values follow the joints in file order, 7 for the root (position, quaternion), 4 per spherical
    joint (quaternion), 1 per revolute joint (angle about local z), none for fixed joints.
    """
    by_id = {j["ID"]: j for j in joints}
    col = 1  # frame[0] is the duration
    params = {}
    for j in sorted(joints, key=lambda j: j["ID"]):
        n = PARAM_SIZE[j["Type"]]
        params[j["ID"]] = frame[col : col + n]
        col += n
    assert col == len(frame) == 44, "the clip layout does not match humanoid3d.txt"

    world: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def transform(jid: int) -> tuple[np.ndarray, np.ndarray]:
        if jid in world:
            return world[jid]
        j = by_id[jid]
        p = params[jid]
        if j["Parent"] == -1:
            pos, rot = np.array(p[0:3]), quat_to_mat(p[3:7])
        else:
            ppos, prot = transform(j["Parent"])
            pos = ppos + prot @ attach(j)
            if j["Type"] == "spherical":
                local = quat_to_mat(p)
            elif j["Type"] == "revolute":
                local = rot_z(p[0])
            else:
                assert j["Type"] == "fixed"
                local = np.eye(3)
            rot = prot @ local
        world[jid] = (pos, rot)
        return world[jid]

    return {j["Name"]: transform(j["ID"]) for j in joints}


# --------------------------------------------------------------------------------------------------------
# forward kinematics of real clip frames


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return character.load_model()


@pytest.mark.parametrize("clip_name", ["walk", "run", "backflip", "dance_a"])
def test_fk_matches_deepmimic_skeleton(clip_name, dm_char, raw_clip, model):
    joints = dm_char["Skeleton"]["Joints"]
    for j in joints:  # the FK above assumes unrotated joint frames
        assert j["AttachThetaX"] == j["AttachThetaY"] == j["AttachThetaZ"] == 0
    raw = np.array(raw_clip(clip_name)["Frames"], dtype=float)
    clip = load_clip(clip_name)
    assert clip.num_frames == len(raw)
    data = mujoco.MjData(model)
    body_ids = {j["Name"]: model.body(j["Name"]).id for j in joints}

    pos_err = rot_err = 0.0
    for f in range(len(raw)):
        expected = deepmimic_fk(joints, raw[f])
        data.qpos[:] = clip.qpos[f]
        mujoco.mj_kinematics(model, data)
        for name, (p_dm, r_dm) in expected.items():
            b = body_ids[name]
            got = data.xpos[b].copy()
            got[2] -= clip.lift
            pos_err = max(pos_err, float(np.abs(got - P @ p_dm).max()))
            rot_err = max(rot_err, float(np.abs(data.xmat[b].reshape(3, 3) - P @ r_dm @ P.T).max()))
    assert pos_err < 1e-3, f"{clip_name}: joint positions differ from DeepMimic's FK by {pos_err:.3g} m"
    assert rot_err < 1e-6, f"{clip_name}: body orientations differ from DeepMimic's FK by {rot_err:.3g}"


def test_fk_check_detects_a_wrong_conversion(dm_char, raw_clip, model):
    """The FK comparison is sensitive: a y-up -> z-up mapping without the sign flip fails it."""
    joints = dm_char["Skeleton"]["Joints"]
    raw = np.array(raw_clip("walk")["Frames"], dtype=float)
    clip = load_clip("walk")
    data = mujoco.MjData(model)
    data.qpos[:] = clip.qpos[5]
    mujoco.mj_kinematics(model, data)
    wrong = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    expected = deepmimic_fk(joints, raw[5])
    err = max(
        np.abs(data.xpos[model.body(n).id] - [0, 0, clip.lift] - wrong @ p).max() for n, (p, _) in expected.items()
    )
    assert err > 1e-2


# --------------------------------------------------------------------------------------------------------
# model facts against humanoid3d.txt / humanoid3d_ctrl.txt


def test_bodies_masses_and_offsets(dm_char, model):
    joints = dm_char["Skeleton"]["Joints"]
    bodies = {b["ID"]: b for b in dm_char["BodyDefs"]}
    by_id = {j["ID"]: j for j in joints}
    assert len(joints) == 15
    assert model.nbody == 16  # world + 15
    assert {model.body(i).name for i in range(1, model.nbody)} == {j["Name"] for j in joints}

    root = model.body("root").id
    total = sum(b["Mass"] for b in bodies.values())
    assert total == pytest.approx(45.0)
    assert model.body_subtreemass[root] == pytest.approx(45.0, abs=1e-9)

    for j in joints:
        b = model.body(j["Name"])
        assert bodies[j["ID"]]["Name"] == j["Name"]
        assert b.mass[0] == pytest.approx(bodies[j["ID"]]["Mass"], abs=1e-9), j["Name"]
        if j["Parent"] == -1:
            assert b.parentid[0] == 0
            continue
        assert model.body(int(b.parentid[0])).name == by_id[j["Parent"]]["Name"], j["Name"]
        np.testing.assert_allclose(b.pos, P @ attach(j), atol=1e-9, err_msg=j["Name"])
        np.testing.assert_allclose(b.quat, [1, 0, 0, 0], atol=1e-12, err_msg=j["Name"])


def test_geoms_match_body_defs(dm_char, model):
    for bd in dm_char["BodyDefs"]:
        g = model.geom(bd["Name"])
        assert model.body(int(g.bodyid[0])).name == bd["Name"]
        np.testing.assert_allclose(g.pos, P @ attach(bd), atol=1e-9, err_msg=bd["Name"])
        np.testing.assert_allclose(g.quat, [1, 0, 0, 0], atol=1e-12, err_msg=bd["Name"])
        params = np.array([bd["Param0"], bd["Param1"], bd["Param2"]])
        if bd["Shape"] == "sphere":
            assert g.type[0] == mujoco.mjtGeom.mjGEOM_SPHERE
            assert g.size[0] == pytest.approx(params[0] / 2)
        elif bd["Shape"] == "capsule":  # along DeepMimic's y = MuJoCo's z: diameter, cylinder length
            assert g.type[0] == mujoco.mjtGeom.mjGEOM_CAPSULE
            np.testing.assert_allclose(g.size[:2], [params[0] / 2, params[1] / 2], atol=1e-9)
        else:
            assert bd["Shape"] == "box"
            assert g.type[0] == mujoco.mjtGeom.mjGEOM_BOX
            np.testing.assert_allclose(g.size, np.abs(P @ params) / 2, atol=1e-9)


def test_joints_types_axes_limits_and_damping(dm_char, dm_ctrl, model):
    gains = {c["Name"]: c for c in dm_ctrl["PDControllers"]}
    for j in dm_char["Skeleton"]["Joints"]:
        b = model.body(j["Name"])
        if j["Type"] == "fixed":
            assert b.jntnum[0] == 0, j["Name"]
            continue
        assert b.jntnum[0] == 1, j["Name"]
        jnt = model.joint(int(b.jntadr[0]))
        if j["Type"] == "none":
            assert jnt.type[0] == mujoco.mjtJoint.mjJNT_FREE
            continue
        assert jnt.name == j["Name"]
        ndof = 3 if j["Type"] == "spherical" else 1
        dofs = slice(int(jnt.dofadr[0]), int(jnt.dofadr[0]) + ndof)
        np.testing.assert_allclose(model.dof_damping[dofs], gains[j["Name"]]["Kd"], err_msg=j["Name"])
        if j["Type"] == "spherical":
            assert jnt.type[0] == mujoco.mjtJoint.mjJNT_BALL, j["Name"]
        else:
            assert j["Type"] == "revolute"
            assert jnt.type[0] == mujoco.mjtJoint.mjJNT_HINGE, j["Name"]
            np.testing.assert_allclose(jnt.axis, [0, -1, 0], atol=1e-12, err_msg=j["Name"])
            assert jnt.limited[0], j["Name"]
            np.testing.assert_allclose(jnt.range, [j["LimLow0"], j["LimHigh0"]], atol=1e-12, err_msg=j["Name"])


def test_joint_tables_in_character_module(dm_char):
    joints = sorted(dm_char["Skeleton"]["Joints"], key=lambda j: j["ID"])
    kinds = {"spherical": "ball", "revolute": "hinge"}
    expected = tuple((j["Name"], kinds[j["Type"]]) for j in joints if j["Type"] in kinds)
    assert character.JOINTS == expected
    assert len(character.BODIES) == 15 and set(character.BODIES) == {j["Name"] for j in joints}
    assert character.TORQUE_LIMITS == {j["Name"]: j["TorqueLim"] for j in joints if j["Type"] in kinds}
    assert character.DIFF_WEIGHTS == {j["Name"]: j["DiffWeight"] for j in joints}
    assert character.ACTION_SIZE == 28


def test_actuators_order_gains_and_limits(dm_char, dm_ctrl, model):
    limits = {j["Name"]: j["TorqueLim"] for j in dm_char["Skeleton"]["Joints"] if "TorqueLim" in j}
    gains = {c["Name"]: c for c in dm_ctrl["PDControllers"]}
    assert model.nu == 28
    assert model.nactuator == len(character.JOINTS) == 12
    ctrl = 0
    for a, (name, kind) in enumerate(character.JOINTS):
        act = model.actuator(a)
        assert act.name == name
        allowed = {int(mujoco.mjtTrn.mjTRN_JOINT)} | ({int(mujoco.mjtTrn.mjTRN_SO3)} if kind == "ball" else set())
        assert int(model.actuator_trntype[a]) in allowed, name
        assert model.joint(int(act.trnid[0])).name == name
        width = 3 if kind == "ball" else 1
        assert model.actuator_ctrladr[a] == ctrl and model.actuator_ctrlnum[a] == width, name
        ctrl += width
        assert act.gainprm[0] == pytest.approx(gains[name]["Kp"]), name
        assert act.forcelimited[0], name
        assert np.abs(act.forcerange).max() == pytest.approx(limits[name]), name
        if kind == "hinge":
            np.testing.assert_allclose(act.forcerange, [-limits[name], limits[name]])
    assert ctrl == 28


def test_actuator_behaviour_gain_and_norm_clamp(dm_char, dm_ctrl, model):
    """At the rest pose a small PD target gives Kp x target; a large one is clamped to TorqueLim (by norm)."""
    limits = {j["Name"]: j["TorqueLim"] for j in dm_char["Skeleton"]["Joints"] if "TorqueLim" in j}
    gains = {c["Name"]: c["Kp"] for c in dm_ctrl["PDControllers"]}
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    for a, (name, _kind) in enumerate(character.JOINTS):
        adr, n = int(model.actuator_ctrladr[a]), int(model.actuator_ctrlnum[a])
        dof = int(model.joint(name).dofadr[0])
        direction = rng.normal(size=n)
        direction /= np.linalg.norm(direction)
        small = direction * 0.2 * limits[name] / gains[name]
        large = direction * 3.0 * limits[name] / gains[name]
        for target, expect in ((small, gains[name] * small), (large, None)):
            mujoco.mj_resetData(model, data)
            data.ctrl[adr : adr + n] = target
            mujoco.mj_forward(model, data)
            force = data.qfrc_actuator[dof : dof + n]
            if expect is not None:
                np.testing.assert_allclose(force, expect, rtol=1e-9, atol=1e-9, err_msg=name)
            else:
                assert np.linalg.norm(force) == pytest.approx(limits[name], rel=1e-9), name
                np.testing.assert_allclose(force / np.linalg.norm(force), target / np.linalg.norm(target), atol=1e-9)
        assert np.count_nonzero(data.qfrc_actuator) == n, f"actuator {name} drives other dofs"


# --------------------------------------------------------------------------------------------------------
# the shipped MJCF is the generator's output


def test_generated_mjcf_is_up_to_date(dm_char, dm_ctrl):
    spec = importlib.util.spec_from_file_location("build_humanoid_mjcf", REPO_ROOT / "tools" / "build_humanoid_mjcf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build(dm_char, dm_ctrl).encode("utf-8")
    shipped = (REPO_ROOT / "envs" / "humanoid3d.xml").read_bytes()
    assert built == shipped, "envs/humanoid3d.xml is stale: rerun tools/build_humanoid_mjcf.py"
    assert Path(character.model_path()).resolve() == (REPO_ROOT / "envs" / "humanoid3d.xml").resolve()
