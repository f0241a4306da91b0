"""Every wallwm_msgs interface imports, has a loadable typesupport, and agrees with wallwm_core."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from rclpy.type_support import check_for_type_support

from wallwm_core.outcome import Outcome, PolicyState

MSGS_DIR = Path(__file__).resolve().parents[1] / "wallwm_msgs"
INTERFACE_FILES = sorted(
    p for kind in ("msg", "srv", "action") for p in (MSGS_DIR / kind).glob(f"*.{kind}")
)


def test_every_interface_file_is_generated() -> None:
    cmake = (MSGS_DIR / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"((?:msg|srv|action)/\w+\.(?:msg|srv|action))"', cmake))
    on_disk = {str(p.relative_to(MSGS_DIR)) for p in INTERFACE_FILES}
    assert listed == on_disk
    assert {"action/ExecuteEvent.action", "action/ExecuteTask.action"} <= on_disk
    assert {"msg/ActionChunk.msg", "msg/PolicyStatus.msg"} <= on_disk


@pytest.mark.parametrize("path", INTERFACE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_interface_imports_with_typesupport(path: Path) -> None:
    module = importlib.import_module(f"wallwm_msgs.{path.parent.name}")
    interface = getattr(module, path.stem)
    check_for_type_support(interface)  # raises if the C typesupport library cannot be loaded
    if path.parent.name == "action":
        for part in ("Goal", "Result", "Feedback"):
            getattr(interface, part)()
    elif path.parent.name == "srv":
        interface.Request()
        interface.Response()
    else:
        interface()


def test_outcome_codes_match_core() -> None:
    from wallwm_msgs.action import ExecuteEvent, ExecuteTask
    from wallwm_msgs.msg import EventOutcome

    for holder in (EventOutcome, ExecuteEvent.Result, ExecuteTask.Result):
        assert {o.name: getattr(holder, o.name) for o in Outcome} == {
            o.name: o.value for o in Outcome
        }


def test_policy_states_match_core() -> None:
    from wallwm_msgs.msg import PolicyStatus

    assert {s.name: getattr(PolicyStatus, s.name) for s in PolicyState} == {
        s.name: s.value for s in PolicyState
    }
