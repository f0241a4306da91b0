"""One node of a bringup in a child Python process, as ``ros2 launch`` would start it.

The in-process bringup runs its nodes as threads of one interpreter. The policy node's inference
then competes for the interpreter lock with the simulation and the 500 Hz controller loop; in its
own process it does not (docs/inference.md, "Latency in the policy node", has the measurements).
The child runs the node module's ``main()`` with the node's resolved parameters in a params file,
on the parent's ROS domain; its log lines go to the parent's terminal. On Linux the child gets
SIGTERM when the thread that started it ends (``PR_SET_PDEATHSIG``), so a parent killed with
SIGKILL leaves no node behind; start node processes from a thread that outlives them (the main
thread).

    python -m wallwm_ros.closed_loop.node_process PARENT_PID MODULE [--ros-args ...]

is how the child starts (the parent-death signal first, then ``MODULE``'s ``__main__``).
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from wallwm_core.config_loading import ConfigError
from wallwm_ros.bringup import NodeSpec, resolved_parameters

# What marks a node as serving (the service that comes up last in its constructor); a node not
# listed here is ready once it is in the ROS graph.
READY_SERVICES = {"policy_node": "execute_task/_action/send_goal"}
START_TIMEOUT_S = 180.0  # import, checkpoint load and warm-up on a loaded 2-core machine
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class NodeProcess:
    """Starts ``spec``'s node as ``python -m <module> --ros-args ...`` in a child process."""

    def __init__(self, spec: NodeSpec, namespace: str, domain_id: int) -> None:
        self.spec = spec
        self.namespace = namespace
        self._folder = tempfile.TemporaryDirectory(prefix=f"wallwm_{spec.name}_")
        params = Path(self._folder.name) / "params.yaml"
        params.write_text(
            yaml.safe_dump({"/**": {"ros__parameters": resolved_parameters(spec)}}, sort_keys=False)
        )
        module = spec.node_class.partition(":")[0]
        command = [sys.executable, "-m", __name__, str(os.getpid()), module]
        command += ["--ros-args", "-r", f"__node:={spec.name}"]
        if namespace:
            command += ["-r", f"__ns:={namespace}"]
        command += ["--params-file", str(params)]
        environment = {**os.environ, "ROS_DOMAIN_ID": str(domain_id)}
        self._process = subprocess.Popen(command, env=environment)

    @property
    def pid(self) -> int:
        return self._process.pid

    def fault(self) -> str:
        """Why the node is gone (it exited), empty while it runs."""
        code = self._process.poll()
        if code is None:
            return ""
        return f"the {self.spec.name} process exited with code {code} (its log is above)"

    def wait_until_ready(
        self, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Wait until ``ready()``; ConfigError when the child exits first or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if (code := self._process.poll()) is not None:
                raise ConfigError(
                    f"the {self.spec.name} process exited with code {code} while starting "
                    "(its log is above)"
                )
            if time.monotonic() > deadline:
                raise ConfigError(f"the {self.spec.name} process did not start in {timeout_s} s")
            time.sleep(0.1)

    def close(self) -> None:
        """SIGINT (the node ends its goal and tells its clients), then SIGKILL if it hangs."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._folder.cleanup()


def run_child(argv: list[str]) -> int:
    """The child's entry: ``PARENT_PID MODULE [ARGS...]``; runs ``MODULE`` as ``__main__``."""
    parent, module, *rest = argv
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        return 1  # the parent ended before the signal was armed
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1:]))
