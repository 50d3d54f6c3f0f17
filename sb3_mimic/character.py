"""DeepMimic's humanoid3d character in MuJoCo: the model file and the facts the clip, env and reward share.

The MJCF (``envs/humanoid3d.xml``) is generated from DeepMimic's ``humanoid3d.txt`` by
``tools/build_humanoid_mjcf.py``.  Bodies are named after DeepMimic's joints; body frames sit at the
joints.  Everything indexed "in DeepMimic order" follows :data:`JOINTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sb3_mimic._resources import data_path

MODEL_FILE = "humanoid3d.xml"

#: Actuated joints in DeepMimic's order (clip columns, action layout): name and kind.
JOINTS: tuple[tuple[str, str], ...] = (
    ("chest", "ball"),
    ("neck", "ball"),
    ("right_hip", "ball"),
    ("right_knee", "hinge"),
    ("right_ankle", "ball"),
    ("right_shoulder", "ball"),
    ("right_elbow", "hinge"),
    ("left_hip", "ball"),
    ("left_knee", "hinge"),
    ("left_ankle", "ball"),
    ("left_shoulder", "ball"),
    ("left_elbow", "hinge"),
)

#: The 15 bodies in the model's (depth-first) order, which is the observation's body order.
BODIES: tuple[str, ...] = (
    "root",
    "chest",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
)

END_EFFECTORS: tuple[str, ...] = ("right_ankle", "right_wrist", "left_ankle", "left_wrist")

#: DeepMimic's ``DiffWeight`` per joint (humanoid3d.txt); the reward uses them divided by their sum (4.8).
DIFF_WEIGHTS: dict[str, float] = {
    "root": 1.0,
    "chest": 0.5,
    "neck": 0.3,
    "right_hip": 0.5,
    "right_knee": 0.3,
    "right_ankle": 0.2,
    "right_shoulder": 0.3,
    "right_elbow": 0.2,
    "right_wrist": 0.0,
    "left_hip": 0.5,
    "left_knee": 0.3,
    "left_ankle": 0.2,
    "left_shoulder": 0.3,
    "left_elbow": 0.2,
    "left_wrist": 0.0,
}

#: Torque limits (N m) from humanoid3d.txt, DeepMimic order.
TORQUE_LIMITS: dict[str, float] = {
    "chest": 200.0,
    "neck": 50.0,
    "right_hip": 200.0,
    "right_knee": 150.0,
    "right_ankle": 90.0,
    "right_shoulder": 100.0,
    "right_elbow": 60.0,
    "left_hip": 200.0,
    "left_knee": 150.0,
    "left_ankle": 90.0,
    "left_shoulder": 100.0,
    "left_elbow": 60.0,
}

ACTION_SIZE = sum(3 if kind == "ball" else 1 for _, kind in JOINTS)  # 28


def model_path() -> str:
    """Path of the character's MJCF file inside the installed package."""
    return str(data_path("envs", MODEL_FILE))


#: Name of the sensor that reports whether any contact touches body ``b``'s geoms (``CONTACT_SENSOR.format(b)``).
CONTACT_SENSOR = "contact_{}"
#: Name of the sensor of the centre-of-mass velocity of the root's subtree (the whole character), m/s.
COM_VELOCITY_SENSOR = "com_velocity"


def load_model() -> mujoco.MjModel:
    """A fresh copy of the character model (callers may change its options).

    It is the MJCF file's model with sensors added for the batched simulation, which MuJoCo evaluates in its own
    threads at every step: per body of :data:`BODIES`, a contact sensor (``found``: the number of contacts that touch
    one of the body's geoms, at most 1) named :data:`CONTACT_SENSOR`, and the root subtree's linear velocity named
    :data:`COM_VELOCITY_SENSOR` (``subtree_linvel`` of the root).  Sensors do not change the physics.
    """
    spec = mujoco.MjSpec.from_file(model_path())
    for body in BODIES:
        sensor = spec.add_sensor(name=CONTACT_SENSOR.format(body), type=mujoco.mjtSensor.mjSENS_CONTACT,
                                 objtype=mujoco.mjtObj.mjOBJ_BODY, objname=body)
        # intprm: which data (bit field of mjtConDataField: found only), reduction (none), contacts reported (1)
        sensor.intprm[:3] = [1 << int(mujoco.mjtConDataField.mjCONDATA_FOUND), 0, 1]
    spec.add_sensor(name=COM_VELOCITY_SENSOR, type=mujoco.mjtSensor.mjSENS_SUBTREELINVEL,
                    objtype=mujoco.mjtObj.mjOBJ_BODY, objname=BODIES[0])
    return spec.compile()


@dataclass(frozen=True)
class CharacterIndex:
    """Index arrays that map DeepMimic's layout onto the model's ``qpos`` / ``qvel`` / bodies."""

    ball_qpos: np.ndarray
    """(8, 4) qpos addresses of the ball joints' quaternions, DeepMimic order."""
    hinge_qpos: np.ndarray
    """(4,) qpos addresses of the hinges, DeepMimic order."""
    action_dofs: np.ndarray
    """(28,) dof address of each action component (exp-map components of ball joints, hinge angles)."""
    body_ids: np.ndarray
    """(15,) body ids of :data:`BODIES`."""
    end_effector_ids: np.ndarray
    """(4,) body ids of :data:`END_EFFECTORS`."""
    quat_qpos: np.ndarray
    """(9, 4) qpos addresses of the root quaternion and the 8 ball joints' quaternions."""
    position_weights: np.ndarray
    """(2, nv) weights that turn squared position differences (``mj_differentiatePos``, reference minus
    simulation) into DeepMimic's pose error (row 0: w_j per joint dof, root rotation included) and the
    position part of its root error (row 1: 1 per root position dof, 0.1 per root rotation dof)."""
    velocity_weights: np.ndarray
    """(2, nv) the same for squared velocity differences: velocity error (row 0) and the velocity part of
    the root error (row 1: 0.01 per root linear dof, 0.001 per root angular dof)."""
    torque_limits: np.ndarray
    """(28,) torque limit per action component, N m."""


def character_index(model: mujoco.MjModel) -> CharacterIndex:
    """Build the index arrays for ``model`` (by name, so any body order in the MJCF works)."""
    total = sum(DIFF_WEIGHTS.values())
    ball_qpos, hinge_qpos, action_dofs, torque = [], [], [], []
    joint_w = np.zeros(model.nv)
    root = model.joint("root")
    root_dof = int(root.dofadr[0])
    joint_w[root_dof + 3 : root_dof + 6] = DIFF_WEIGHTS["root"] / total
    for name, kind in JOINTS:
        joint = model.joint(name)
        adr, dof = int(joint.qposadr[0]), int(joint.dofadr[0])
        width = 3 if kind == "ball" else 1
        joint_w[dof : dof + width] = DIFF_WEIGHTS[name] / total
        action_dofs.extend(range(dof, dof + width))
        torque.extend([TORQUE_LIMITS[name]] * width)
        if kind == "ball":
            ball_qpos.append(np.arange(adr, adr + 4))
        else:
            hinge_qpos.append(adr)
    root_pos_w, root_vel_w = np.zeros(model.nv), np.zeros(model.nv)
    root_pos_w[root_dof : root_dof + 3], root_pos_w[root_dof + 3 : root_dof + 6] = 1.0, 0.1
    root_vel_w[root_dof : root_dof + 3], root_vel_w[root_dof + 3 : root_dof + 6] = 0.01, 0.001
    root_adr = int(root.qposadr[0])
    return CharacterIndex(
        ball_qpos=np.array(ball_qpos),
        hinge_qpos=np.array(hinge_qpos),
        quat_qpos=np.vstack([np.arange(root_adr + 3, root_adr + 7)[None], np.array(ball_qpos)]),
        action_dofs=np.array(action_dofs),
        body_ids=np.array([model.body(b).id for b in BODIES]),
        end_effector_ids=np.array([model.body(b).id for b in END_EFFECTORS]),
        position_weights=np.stack([joint_w, root_pos_w]),
        velocity_weights=np.stack([joint_w, root_vel_w]),
        torque_limits=np.array(torque),
    )
