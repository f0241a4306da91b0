"""Small 7-DoF arms with a parallel gripper, for tests and benchmarks without a robot package.

The real robot description comes from the ``robot_description`` parameter or the simulation's
URDF; this one exists so the controller can be exercised with no other package, including with
several arms on one base (bimanual chunks). Each arm is a generic shoulder-elbow-wrist chain
(yaw, pitch, roll, pitch, roll, pitch, roll) with a ``tool0`` frame between the fingers (tool z
points out of the hand) and one prismatic finger joint plus a mimic.
"""

from __future__ import annotations

DEMO_ARM_TOOL_FRAME = "tool0"
DEMO_ARM_FINGER_OPEN = 0.04  # metres per finger
DEMO_ARM_HOME = (0.0, 0.3, 0.0, 1.9, 0.0, 0.94, 0.0)  # elbow bent, tool pointing down

# (parent link, child link, origin xyz, axis, lower, upper, velocity limit rad/s)
_JOINTS = (
    ("base", "link1", (0.0, 0.0, 0.30), (0, 0, 1), -2.8, 2.8, 2.2),
    ("link1", "link2", (0.0, 0.0, 0.05), (0, 1, 0), -1.7, 1.7, 2.2),
    ("link2", "link3", (0.0, 0.0, 0.30), (0, 0, 1), -2.8, 2.8, 2.2),
    ("link3", "link4", (0.08, 0.0, 0.05), (0, 1, 0), 0.1, 3.0, 2.2),
    ("link4", "link5", (-0.08, 0.0, 0.30), (0, 0, 1), -2.8, 2.8, 2.6),
    ("link5", "link6", (0.0, 0.0, 0.05), (0, 1, 0), -0.1, 3.7, 2.6),
    ("link6", "link7", (0.08, 0.0, 0.0), (0, 0, 1), -2.8, 2.8, 2.6),
)


def demo_arm_joints(prefix: str = "") -> tuple[str, ...]:
    """The seven arm joint names of the arm with ``prefix``."""
    return tuple(f"{prefix}joint{i}" for i in range(1, 8))


def demo_arm_tool_frame(prefix: str = "") -> str:
    return f"{prefix}{DEMO_ARM_TOOL_FRAME}"


def demo_arm_finger_joint(prefix: str = "") -> str:
    return f"{prefix}finger_joint"


def _link(name: str, mass: float = 1.0) -> str:
    return (
        f'  <link name="{name}"><inertial><mass value="{mass}"/><origin xyz="0 0 0"/>'
        '<inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial></link>\n'
    )


def _joint(
    name: str, kind: str, parent: str, child: str, xyz: tuple[float, ...], extra: str = ""
) -> str:
    return (
        f'  <joint name="{name}" type="{kind}"><parent link="{parent}"/><child link="{child}"/>'
        f'<origin xyz="{xyz[0]} {xyz[1]} {xyz[2]}" rpy="0 0 0"/>{extra}</joint>\n'
    )


def _arm(prefix: str, y_offset: float) -> str:
    p = prefix
    parts = [
        _link(f"{p}base", 0.5),
        _joint(f"{p}mount_joint", "fixed", "base_link", f"{p}base", (0, y_offset, 0)),
    ]
    for joint_name, (parent, child, xyz, axis, lower, upper, velocity) in zip(
        demo_arm_joints(p), _JOINTS, strict=True
    ):
        parts.append(_link(f"{p}{child}"))
        limit = (
            f'<axis xyz="{axis[0]} {axis[1]} {axis[2]}"/>'
            f'<limit lower="{lower}" upper="{upper}" effort="50" velocity="{velocity}"/>'
        )
        parts.append(_joint(joint_name, "revolute", f"{p}{parent}", f"{p}{child}", xyz, limit))
    finger_limit = f'<limit lower="0" upper="{DEMO_ARM_FINGER_OPEN}" effort="20" velocity="0.1"/>'
    parts += [
        _link(f"{p}hand", 0.5),
        _joint(f"{p}hand_joint", "fixed", f"{p}link7", f"{p}hand", (0, 0, 0.10)),
        _link(f"{p}finger_left", 0.05),
        _link(f"{p}finger_right", 0.05),
        _joint(
            demo_arm_finger_joint(p),
            "prismatic",
            f"{p}hand",
            f"{p}finger_left",
            (0, 0, 0.05),
            '<axis xyz="0 1 0"/>' + finger_limit,
        ),
        _joint(
            f"{p}finger_joint_mimic",
            "prismatic",
            f"{p}hand",
            f"{p}finger_right",
            (0, 0, 0.05),
            '<axis xyz="0 -1 0"/>' + finger_limit + f'<mimic joint="{demo_arm_finger_joint(p)}"/>',
        ),
        _link(demo_arm_tool_frame(p), 0.0),
        _joint(f"{p}tool_joint", "fixed", f"{p}hand", demo_arm_tool_frame(p), (0, 0, 0.10)),
    ]
    return "".join(parts)


def demo_arm_urdf(prefixes: tuple[str, ...] = ("",), spacing: float = 0.8) -> str:
    """URDF (no meshes) with one demo arm per prefix on a shared ``base_link``, ``spacing`` m
    apart along y (the first at y = 0, the next at -spacing, ...)."""
    body = "".join(_arm(prefix, -index * spacing) for index, prefix in enumerate(prefixes))
    return f'<?xml version="1.0"?>\n<robot name="wallwm_demo_arm">\n{_link("base_link", 5.0)}{body}</robot>\n'
