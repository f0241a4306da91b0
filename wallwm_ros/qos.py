"""QoS profiles used by the wallwm nodes, named for what they carry."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Action chunks and commands: every message matters.
COMMANDS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)

# Latched state (PolicyStatus): a late subscriber gets the latest value.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# Camera images and joint states: best effort, newest wins.
SENSORS = qos_profile_sensor_data

# The e-stop must never be lost: reliable, kept in a queue (a quick press-and-release must not
# overwrite the press before it is read), and a late-joining controller sees recent values.
ESTOP = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
