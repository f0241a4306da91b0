"""Build the MuJoCo model: the arm from its URDF plus actuators, table scene, objects, cameras.

World frame = the arm's ``base_link`` frame; the table top is the plane z = 0. Every object the
task suite uses exists in the one model (so a single renderer serves every task); objects a task
does not use are parked under the table (:data:`PARKING_Z`). Static objects that tasks move (bin,
target zones, buttons, calibration marker) are mocap bodies, placed per episode via
``data.mocap_pos``.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import transforms3d

from wallwm_sim import description
from wallwm_sim.cameras import CAMERA_SPECS, OPENCV_FROM_MUJOCO_CAMERA

TIMESTEP_S = 0.002
FLOOR_Z = -0.75
PARKING_Z = FLOOR_Z + 0.02  # a parked cube rests on the floor

CUBE_HALF_SIZE = 0.02
NUM_CUBES = 4
CUBE_MASS = 0.05

BIN_INNER_HALF = 0.07
BIN_WALL_HEIGHT = 0.06
BIN_WALL_HALF_THICKNESS = 0.005

NUM_ZONES = 2
ZONE_RADIUS = 0.05

NUM_BUTTONS = 3
BUTTON_HOUSING_HALF = (0.035, 0.035, 0.01)
BUTTON_CAP_RADIUS = 0.025
BUTTON_CAP_HALF_HEIGHT = 0.01
BUTTON_TRAVEL = 0.012
# A button latches once its cap is pressed deeper than this (metres, positive down).
BUTTON_LATCH_DEPTH = 0.008
CALIBRATION_MARKER_RADIUS = 0.008
BUTTON_TOP_Z = 2 * BUTTON_HOUSING_HALF[2] + 2 * BUTTON_CAP_HALF_HEIGHT

# Position-servo gains per arm joint (N m / rad) and the gripper (N / m).
ARM_KP = (1500.0, 1500.0, 1000.0, 300.0, 300.0, 200.0)
ARM_ARMATURE = (0.05, 0.05, 0.05, 0.01, 0.01, 0.01)
GRIPPER_KP = 800.0
GRIPPER_FORCE_LIMIT = 20.0

TABLE_RGBA = (0.62, 0.5, 0.38, 1.0)
ARM_RGBA = (0.78, 0.78, 0.8, 1.0)
FINGER_RGBA = (0.2, 0.2, 0.22, 1.0)


def cube_name(index: int) -> str:
    return f"cube_{index}"


def zone_name(index: int) -> str:
    return f"zone_{index}"


def button_name(index: int) -> str:
    return f"button_{index}"


@dataclasses.dataclass(frozen=True)
class SceneIds:
    """MuJoCo ids of everything the simulation addresses, resolved once after compiling."""

    arm_qpos: np.ndarray  # [6] qpos addresses of the arm joints
    arm_dof: np.ndarray  # [6] dof addresses
    finger_qpos: np.ndarray  # [2] left, right finger qpos addresses
    finger_dof: np.ndarray
    arm_actuators: np.ndarray  # [6]
    gripper_actuator: int
    tool_body: int
    hand_body: int
    finger_geoms: np.ndarray  # geoms of both fingers
    left_finger_geom: int
    right_finger_geom: int
    arm_geoms: np.ndarray  # every geom of the moving arm (links, hand, fingers)
    table_geom: int
    cube_bodies: np.ndarray  # [NUM_CUBES]
    cube_geoms: np.ndarray
    cube_qpos: np.ndarray  # [NUM_CUBES] freejoint qpos addresses (7 values each)
    cube_dof: np.ndarray
    bin_mocap: int
    bin_geoms: np.ndarray
    zone_mocap: np.ndarray  # [NUM_ZONES]
    zone_geoms: np.ndarray
    button_mocap: np.ndarray  # [NUM_BUTTONS]
    button_qpos: np.ndarray  # cap slide joints
    button_dof: np.ndarray
    button_joints: np.ndarray
    button_cap_geoms: np.ndarray
    button_housing_geoms: np.ndarray
    marker_mocap: int
    cameras: dict[str, int]


def _camera_quat_mujoco(parent_from_optical: np.ndarray) -> np.ndarray:
    return transforms3d.quaternions.mat2quat(
        parent_from_optical[:3, :3] @ OPENCV_FROM_MUJOCO_CAMERA
    )


def _add_box(body: mujoco.MjsBody, name: str, half: tuple, pos: tuple, rgba: tuple) -> None:
    body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half), pos=list(pos), rgba=list(rgba)
    )


def build_spec(max_render_height: int = 720, max_render_width: int = 1280) -> mujoco.MjSpec:
    """The full scene as an ``MjSpec`` (URDF arm + scene), not yet compiled."""
    spec = mujoco.MjSpec.from_string(description.urdf_string())
    spec.modelname = "wallwm_tabletop"
    # The URDF's compiler tag discards its (duplicate) visual geoms; keep the scene's visual-only
    # geoms (zones, marker).
    spec.compiler.discardvisual = False
    spec.option.timestep = TIMESTEP_S
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offheight = max_render_height
    spec.visual.global_.offwidth = max_render_width
    spec.visual.quality.offsamples = 0  # multisampling costs 5-10x in software rendering

    for joint_name, kp, armature in zip(
        description.ARM_JOINT_NAMES, ARM_KP, ARM_ARMATURE, strict=True
    ):
        joint = spec.joint(joint_name)
        joint.armature = armature
        joint.damping = [2.0, 0.0, 0.0]
        effort = float(joint.actfrcrange[1]) if joint.actfrclimited else 0.0
        actuator = spec.add_actuator(
            name=f"{joint_name}_servo", target=joint_name, trntype=mujoco.mjtTrn.mjTRN_JOINT
        )
        actuator.set_to_position(kp=kp, dampratio=1.0)
        actuator.ctrlrange = list(joint.range)
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        if effort > 0:
            actuator.forcerange = [-effort, effort]
            actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    for finger in (description.GRIPPER_JOINT, description.GRIPPER_MIMIC_JOINT):
        spec.joint(finger).damping = [5.0, 0.0, 0.0]
        spec.joint(finger).armature = 0.01
    gripper = spec.add_actuator(
        name="gripper_servo", target=description.GRIPPER_JOINT, trntype=mujoco.mjtTrn.mjTRN_JOINT
    )
    gripper.set_to_position(kp=GRIPPER_KP, dampratio=1.0)
    gripper.ctrlrange = [0.0, description.FINGER_OPEN_POSITION]
    gripper.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    gripper.forcerange = [-GRIPPER_FORCE_LIMIT, GRIPPER_FORCE_LIMIT]
    gripper.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    spec.add_exclude(bodyname1="finger_left", bodyname2="finger_right")

    for link in description.ARM_LINK_NAMES:
        spec.body(link).gravcomp = 1.0
    for geom in spec.geoms:
        parent = geom.parent.name
        if parent in ("finger_left", "finger_right"):
            geom.name = f"{parent}_pad"
            geom.rgba = list(FINGER_RGBA)
            geom.friction = [1.5, 0.01, 0.0001]
            geom.condim = 4
        else:
            geom.rgba = list(ARM_RGBA)

    world = spec.worldbody
    world.add_light(
        name="sun",
        pos=[0.4, 0.0, 2.0],
        dir=[0.0, 0.0, -1.0],
        type=int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL),
        castshadow=0,
        diffuse=[0.45, 0.45, 0.45],
        specular=[0.05, 0.05, 0.05],
        ambient=[0.1, 0.1, 0.1],
    )
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.specular = [0.05, 0.05, 0.05]
    world.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3.0, 3.0, 0.1],
        pos=[0, 0, FLOOR_Z],
        rgba=[0.35, 0.37, 0.4, 1],
    )
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.6, 0.6, 0.02],
        pos=[0.35, 0.0, -0.02],
        rgba=list(TABLE_RGBA),
    )

    for index in range(NUM_CUBES):
        body = world.add_body(name=cube_name(index), pos=[-0.4, 0.1 * index, PARKING_Z])
        body.add_freejoint(name=f"{cube_name(index)}_free")
        body.add_geom(
            name=f"{cube_name(index)}_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[CUBE_HALF_SIZE] * 3,
            mass=CUBE_MASS,
            friction=[1.0, 0.01, 0.0001],
            condim=4,
            rgba=[0.5, 0.5, 0.5, 1],
        )

    bin_body = world.add_body(name="bin", mocap=True, pos=[-0.4, -0.4, FLOOR_Z])
    floor_half = BIN_INNER_HALF + 2 * BIN_WALL_HALF_THICKNESS
    bin_rgba = (0.3, 0.32, 0.36, 1.0)
    _add_box(bin_body, "bin_floor", (floor_half, floor_half, 0.003), (0, 0, 0.003), bin_rgba)
    wall_z = BIN_WALL_HEIGHT / 2
    offset = BIN_INNER_HALF + BIN_WALL_HALF_THICKNESS
    along = (floor_half, BIN_WALL_HALF_THICKNESS, wall_z)
    across = (BIN_WALL_HALF_THICKNESS, floor_half, wall_z)
    _add_box(bin_body, "bin_wall_px", across, (offset, 0, wall_z), bin_rgba)
    _add_box(bin_body, "bin_wall_nx", across, (-offset, 0, wall_z), bin_rgba)
    _add_box(bin_body, "bin_wall_py", along, (0, offset, wall_z), bin_rgba)
    _add_box(bin_body, "bin_wall_ny", along, (0, -offset, wall_z), bin_rgba)

    for index in range(NUM_ZONES):
        body = world.add_body(name=zone_name(index), mocap=True, pos=[-0.4, 0.3 + 0.1 * index, 0])
        body.add_geom(
            name=f"{zone_name(index)}_geom",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[ZONE_RADIUS, 0.0008, 0],
            pos=[0, 0, 0.0008],
            contype=0,
            conaffinity=0,
            rgba=[0.5, 0.5, 0.5, 0.6],
        )

    for index in range(NUM_BUTTONS):
        name = button_name(index)
        housing = world.add_body(name=name, mocap=True, pos=[-0.4, -0.2 + 0.1 * index, FLOOR_Z])
        _add_box(
            housing,
            f"{name}_housing",
            BUTTON_HOUSING_HALF,
            (0, 0, BUTTON_HOUSING_HALF[2]),
            (0.15, 0.15, 0.17, 1),
        )
        cap = housing.add_body(
            name=f"{name}_cap", pos=[0, 0, 2 * BUTTON_HOUSING_HALF[2] + BUTTON_CAP_HALF_HEIGHT]
        )
        cap.add_joint(
            name=f"{name}_press",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, 0, 1],
            range=[-BUTTON_TRAVEL, 0.0],
            stiffness=[60.0, 0.0, 0.0],
            damping=[2.0, 0.0, 0.0],
            springref=0.0,
        )
        cap.add_geom(
            name=f"{name}_cap_geom",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[BUTTON_CAP_RADIUS, BUTTON_CAP_HALF_HEIGHT, 0],
            mass=0.02,
            rgba=[0.5, 0.5, 0.5, 1],
        )

    # Emissive, so it renders as flat magenta whatever the lighting.
    spec.add_material(name="calibration_marker", emission=1.0, rgba=[1.0, 0.0, 1.0, 1.0])
    marker = world.add_body(name="calibration_marker", mocap=True, pos=[0, 0, FLOOR_Z - 1.0])
    marker.add_geom(
        name="calibration_marker_geom",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[CALIBRATION_MARKER_RADIUS, 0, 0],
        contype=0,
        conaffinity=0,
        material="calibration_marker",
    )

    for camera in CAMERA_SPECS:
        parent = world if camera.parent_body == "world" else spec.body(camera.parent_body)
        transform = camera.parent_from_optical()
        parent.add_camera(
            name=camera.name,
            pos=list(transform[:3, 3]),
            quat=list(_camera_quat_mujoco(transform)),
            fovy=camera.fovy_deg,
        )
    return spec


def _ids(model: mujoco.MjModel, kind: mujoco.mjtObj, names: list[str]) -> np.ndarray:
    ids = [mujoco.mj_name2id(model, kind, name) for name in names]
    missing = [name for name, i in zip(names, ids, strict=True) if i < 0]
    if missing:
        raise RuntimeError(f"scene model lacks {kind.name} {missing}")
    return np.asarray(ids, dtype=np.int64)


def resolve_ids(model: mujoco.MjModel) -> SceneIds:
    """Look up every id the simulation needs; raises if the model lacks one."""
    obj = mujoco.mjtObj
    arm_joints = _ids(model, obj.mjOBJ_JOINT, list(description.ARM_JOINT_NAMES))
    fingers = _ids(
        model, obj.mjOBJ_JOINT, [description.GRIPPER_JOINT, description.GRIPPER_MIMIC_JOINT]
    )
    cube_bodies = _ids(model, obj.mjOBJ_BODY, [cube_name(i) for i in range(NUM_CUBES)])
    cube_joints = _ids(model, obj.mjOBJ_JOINT, [f"{cube_name(i)}_free" for i in range(NUM_CUBES)])
    button_joints = _ids(
        model, obj.mjOBJ_JOINT, [f"{button_name(i)}_press" for i in range(NUM_BUTTONS)]
    )
    arm_bodies = _ids(model, obj.mjOBJ_BODY, list(description.ARM_LINK_NAMES))

    def mocap(name: str) -> int:
        body = mujoco.mj_name2id(model, obj.mjOBJ_BODY, name)
        return int(model.body_mocapid[body])

    bin_body = mujoco.mj_name2id(model, obj.mjOBJ_BODY, "bin")
    return SceneIds(
        arm_qpos=model.jnt_qposadr[arm_joints],
        arm_dof=model.jnt_dofadr[arm_joints],
        finger_qpos=model.jnt_qposadr[fingers],
        finger_dof=model.jnt_dofadr[fingers],
        arm_actuators=_ids(
            model, obj.mjOBJ_ACTUATOR, [f"{j}_servo" for j in description.ARM_JOINT_NAMES]
        ),
        gripper_actuator=int(_ids(model, obj.mjOBJ_ACTUATOR, ["gripper_servo"])[0]),
        tool_body=int(_ids(model, obj.mjOBJ_BODY, [description.TOOL_FRAME])[0]),
        hand_body=int(_ids(model, obj.mjOBJ_BODY, [description.HAND_LINK])[0]),
        finger_geoms=_ids(model, obj.mjOBJ_GEOM, ["finger_left_pad", "finger_right_pad"]),
        left_finger_geom=int(_ids(model, obj.mjOBJ_GEOM, ["finger_left_pad"])[0]),
        right_finger_geom=int(_ids(model, obj.mjOBJ_GEOM, ["finger_right_pad"])[0]),
        arm_geoms=np.flatnonzero(np.isin(model.geom_bodyid, arm_bodies)),
        table_geom=int(_ids(model, obj.mjOBJ_GEOM, ["table"])[0]),
        cube_bodies=cube_bodies,
        cube_geoms=_ids(model, obj.mjOBJ_GEOM, [f"{cube_name(i)}_geom" for i in range(NUM_CUBES)]),
        cube_qpos=model.jnt_qposadr[cube_joints],
        cube_dof=model.jnt_dofadr[cube_joints],
        bin_mocap=int(model.body_mocapid[bin_body]),
        bin_geoms=np.flatnonzero(model.geom_bodyid == bin_body),
        zone_mocap=np.asarray([mocap(zone_name(i)) for i in range(NUM_ZONES)]),
        zone_geoms=_ids(model, obj.mjOBJ_GEOM, [f"{zone_name(i)}_geom" for i in range(NUM_ZONES)]),
        button_mocap=np.asarray([mocap(button_name(i)) for i in range(NUM_BUTTONS)]),
        button_qpos=model.jnt_qposadr[button_joints],
        button_dof=model.jnt_dofadr[button_joints],
        button_joints=button_joints,
        button_cap_geoms=_ids(
            model, obj.mjOBJ_GEOM, [f"{button_name(i)}_cap_geom" for i in range(NUM_BUTTONS)]
        ),
        button_housing_geoms=_ids(
            model, obj.mjOBJ_GEOM, [f"{button_name(i)}_housing" for i in range(NUM_BUTTONS)]
        ),
        marker_mocap=mocap("calibration_marker"),
        cameras={
            spec.name: int(_ids(model, obj.mjOBJ_CAMERA, [spec.name])[0]) for spec in CAMERA_SPECS
        },
    )


def build_model(max_render_height: int = 720, max_render_width: int = 1280) -> mujoco.MjModel:
    """Compile the scene model."""
    return build_spec(max_render_height, max_render_width).compile()
