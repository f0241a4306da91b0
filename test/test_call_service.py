"""call_service over real rclpy/DDS: a lost response is re-requested, a silent server times out."""

from __future__ import annotations

import time

import pytest
from conftest import wait_for
from rclpy.node import Node
from std_srvs.srv import Trigger

from wallwm_ros.closed_loop.sim_episode import call_service
from wallwm_ros.send_goal import NoServerError


def _trigger_server(node: Node, lose: int, first_takes_s: float = 0.0) -> list[int]:
    """A Trigger service whose first ``lose`` responses are never sent (as Fast DDS drops a
    response to a client it has not matched yet) and whose first request takes
    ``first_takes_s``. Returns the served request count, growing."""
    served: list[int] = []

    def answer(_request, response):
        if not served:
            time.sleep(first_takes_s)
        served.append(1)
        response.success, response.message = True, f"answer {len(served)}"
        return response

    service = node.create_service(Trigger, "trigger", answer)
    send = service.send_response
    service.send_response = lambda response, header: (
        None if len(served) <= lose else send(response, header)
    )
    return served


def test_a_lost_response_is_requested_again(ros_context, spinner, namespace):
    server = spinner.add(Node("server", namespace=namespace, context=ros_context))
    served = _trigger_server(server, lose=1)
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    response = call_service(client, Trigger, "trigger", Trigger.Request(), resend_after_s=1.0)
    assert response.success and response.message == "answer 2"  # the second request's answer
    assert len(served) >= 2


def test_a_slow_answer_is_not_followed_by_a_pending_repeat(ros_context, spinner, namespace):
    """A reset answered late after it was re-sent: the caller gets the last request's answer,
    so the repeated reset cannot land in the middle of the episode that follows."""
    server = spinner.add(Node("server", namespace=namespace, context=ros_context))
    served = _trigger_server(server, lose=0, first_takes_s=1.5)
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    response = call_service(client, Trigger, "trigger", Trigger.Request(), resend_after_s=0.5)
    count = len(served)
    assert count >= 2 and response.message == f"answer {count}"
    assert not wait_for(lambda: len(served) > count, timeout_s=1.0)  # nothing still pending


def test_a_server_that_never_answers_times_out(ros_context, spinner, namespace):
    server = spinner.add(Node("server", namespace=namespace, context=ros_context))
    served = _trigger_server(server, lose=10**6)
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    with pytest.raises(NoServerError, match=r"did not answer in 5\.0 s"):
        call_service(
            client, Trigger, "trigger", Trigger.Request(), timeout_s=5.0, resend_after_s=0.5
        )
    assert len(served) >= 2  # it was asked again before giving up
