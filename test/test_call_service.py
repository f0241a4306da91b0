"""call_service over real rclpy/DDS: a lost response is re-requested, a silent server times out."""

from __future__ import annotations

import pytest
from rclpy.node import Node
from std_srvs.srv import Trigger

from wallwm_ros.closed_loop.sim_episode import call_service
from wallwm_ros.send_goal import NoServerError


def _trigger_server(node: Node, lose: int) -> list[int]:
    """A Trigger service whose first ``lose`` responses are never sent (as Fast DDS drops a
    response to a client it has not matched yet). Returns the served request count, growing."""
    served: list[int] = []

    def answer(_request, response):
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


def test_a_server_that_never_answers_times_out(ros_context, spinner, namespace):
    server = spinner.add(Node("server", namespace=namespace, context=ros_context))
    served = _trigger_server(server, lose=10**6)
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    with pytest.raises(NoServerError, match=r"did not answer in 2\.0 s"):
        call_service(
            client, Trigger, "trigger", Trigger.Request(), timeout_s=2.0, resend_after_s=0.5
        )
    assert len(served) >= 2  # it was asked again before giving up
