"""The launch files' nodes in one process, each on its own executor thread (no launch_ros needed).

Used by the tests and the README's main job. The nodes are the ones :mod:`wallwm_ros.bringup`
lists, with the same parameters the launch files pass; they still talk over DDS like separately
launched nodes (rclpy has no intra-process shortcut). Nodes named in ``processes`` run in child
processes instead (:mod:`~wallwm_ros.closed_loop.node_process`): the main job runs the policy
node so, because its inference is several times slower while the simulation and controller loops
of the same interpreter hold the interpreter lock (docs/inference.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Sequence

import rclpy
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import NodeSpec, resolved_parameters
from wallwm_ros.closed_loop.node_process import READY_SERVICES, NodeProcess

# rclpy's MultiThreadedExecutor busy-waits on the interpreter lock under high-rate topics (a
# 500 Hz joint-state subscription in one measured it delivering under 100 messages/s and starving
# the simulation thread); a single-threaded executor per node, each in its own thread, does not.
# The policy node's goals await the inference worker, so one thread serves it too.
MULTI_THREADED_NODES: dict[str, int] = {}


def node_class(spec: NodeSpec) -> type[Node]:
    module_name, _, class_name = spec.node_class.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class InProcessBringup:
    """Starts every node of ``specs`` (in order) and spins them in a background thread; the
    nodes named in ``processes`` start in child processes (in :attr:`processes`, not
    :attr:`nodes`), and the bringup waits until they serve.

    If a node fails to start, the ones already started are destroyed and the error propagates.
    """

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        namespace: str = "",
        context: rclpy.Context | None = None,
        processes: Collection[str] = (),
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self.processes: dict[str, NodeProcess] = {}
        self._namespace = namespace
        self._context = context
        self._in_processes = frozenset(processes)
        self._spinners: dict[str, BackgroundSpinner] = {}
        try:
            for spec in specs:
                self._start(spec)
        except BaseException:
            self.close()
            raise

    def _start(self, spec: NodeSpec) -> None:
        if spec.name in self.nodes or spec.name in self.processes:
            raise ValueError(f"a node named {spec.name!r} already runs in this bringup")
        if spec.name in self._in_processes:
            self._start_process(spec)
            return
        overrides = [
            Parameter(name, value=value) for name, value in resolved_parameters(spec).items()
        ]
        node = node_class(spec)(
            node_name=spec.name,
            namespace=self._namespace,
            context=self._context,
            parameter_overrides=overrides,
        )
        spinner = BackgroundSpinner(_executor_for(spec.name, self._context))
        self._spinners[spec.name] = spinner
        self.nodes[spec.name] = spinner.add(node)

    def _start_process(self, spec: NodeSpec) -> None:
        context = self._context or rclpy.get_default_context()
        child = NodeProcess(spec, self._namespace, context.get_domain_id())
        self.processes[spec.name] = child
        probe = rclpy.create_node(f"wallwm_probe_{spec.name}", context=context)
        try:
            child.wait_until_ready(lambda: _serves(probe, spec.name, self._namespace))
        finally:
            probe.destroy_node()

    def restart(self, spec: NodeSpec) -> Node | NodeProcess:
        """Stop the node named ``spec.name`` and start it again from ``spec`` (e.g. the policy
        node with another policy); the other nodes keep running."""
        spinner = self._spinners.pop(spec.name, None)
        self.nodes.pop(spec.name, None)
        if spinner is not None:
            spinner.close()
        child = self.processes.pop(spec.name, None)
        if child is not None:
            child.close()
        self._start(spec)
        return self.nodes.get(spec.name) or self.processes[spec.name]

    def fault(self) -> str:
        """Why a node process is gone (empty while all run); in-process nodes cannot exit."""
        return next((f for child in self.processes.values() if (f := child.fault())), "")

    def close(self) -> None:
        """Stop the child processes; stop spinning, then destroy the nodes (their threads are
        joined by destroy_node)."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).close()
        for name in reversed(list(self._spinners)):
            self._spinners.pop(name).close()
        self.nodes.clear()

    def __enter__(self) -> InProcessBringup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serves(probe: Node, name: str, namespace: str) -> bool:
    """Whether node ``name`` is in the ROS graph and offers its READY_SERVICES entry."""
    namespace = namespace or "/"
    if (name, namespace) not in probe.get_node_names_and_namespaces():
        return False
    service = READY_SERVICES.get(name)
    if service is None:
        return True
    services = probe.get_service_names_and_types_by_node(name, namespace)
    return any(found.endswith(f"/{service}") for found, _ in services)


def _executor_for(node_name: str, context: rclpy.Context | None) -> Executor:
    threads = MULTI_THREADED_NODES.get(node_name)
    if threads:
        return MultiThreadedExecutor(num_threads=threads, context=context)
    return SingleThreadedExecutor(context=context)
