"""Which steps of a graph become Argo tasks, in which order, and what each task depends on."""

from __future__ import annotations

import heapq
from collections.abc import Hashable

from magnus.composites import CompositeNode, DagNode, MapNode, ParallelNode
from magnus.control_flow import ConditionalNode, LoopNode
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus.nodes import BaseNode, ExecutableNode


def success_is_folded(graph: Graph) -> bool:
    """Whether ``graph``'s success step runs in the containers of the steps leading to it.

    It records only the graph's end, so it costs no pod of its own: each step whose ``next`` is
    the success step runs it once it succeeded. It is a task only when an ``on_failure`` leads
    to it (or the graph starts there).
    """
    success = graph.success_node.name
    if graph.start_at == success:
        return False
    return not any(
        target == success and on_failure
        for node in graph.nodes.values()
        for target, on_failure in _edges(node)
    )


def leads_to_folded_success(graph: Graph, node: BaseNode) -> bool:
    """Whether ``node``'s container also runs ``graph``'s success step (its ``next``)."""
    edges = _edges(node)
    return bool(edges) and edges[0] == (graph.success_node.name, False) and success_is_folded(graph)


def rendered_nodes(graph: Graph, start: str = "") -> list[BaseNode]:
    """The steps of ``graph`` that become tasks, from ``start_at`` (or ``start``: a re-run's
    first step to run again) along next and on_failure.

    An ``on_failure`` into the graph's own fail step is not followed: the failing step's
    container runs the fail step itself. The fail step is a task only when a ``next`` leads
    to it. The success step is a task only when it is not folded (:func:`success_is_folded`).
    """
    fail_name = graph.fail_node.name
    skipped = graph.success_node.name if success_is_folded(graph) else None

    def targets(name: str) -> list[str]:
        return [
            target
            for target, on_failure in _edges(graph.nodes[name])
            if not (on_failure and target == fail_name) and target != skipped
        ]

    # Breadth-first discovery fixes an order; then each step is listed after every step it
    # depends on (Kahn's algorithm, earliest discovered first), so the DAG reads top-down.
    start = start or graph.start_at
    found = [start]
    rank = {start: 0}
    index = 0
    while index < len(found):
        for target in targets(found[index]):
            if target not in rank:
                rank[target] = len(found)
                found.append(target)
        index += 1
    waiting = dict.fromkeys(found, 0)
    for name in found:
        for target in targets(name):
            waiting[target] += 1
    ready = [(0, start)]
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for target in targets(name):
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (rank[target], target))
    return [graph.nodes[name] for name in order]


def single_leaf(graph: Graph) -> BaseNode | None:
    """The only task of ``graph`` when it is one leaf step (a branch needing no DAG), else None."""
    nodes = rendered_nodes(graph)
    if len(nodes) == 1 and not isinstance(nodes[0], CompositeNode) and not nodes[0].is_terminal:
        return nodes[0]
    return None


def _edges(node: BaseNode) -> list[tuple[str, bool]]:
    """``(target, is_on_failure)`` of a step; terminal steps have none."""
    edges: list[tuple[str, bool]] = []
    if isinstance(node, (ExecutableNode, CompositeNode)):
        edges.append((node.next_node, False))
        if node.on_failure:
            edges.append((node.on_failure, True))
    return edges


def branch_graphs(node: CompositeNode) -> list[Graph]:
    """A composite's branch graphs, in declaration order."""
    if isinstance(node, ParallelNode):
        return list(node.branches.values())
    if isinstance(node, (MapNode, DagNode)):
        return [node.branch]
    if isinstance(node, (ConditionalNode, LoopNode)):
        return node.branch_graphs()  # a conditional's default last
    raise ConfigurationError(f"Step {node.internal_name!r}: the argo executor cannot render it")


def dependencies(
    nodes: list[BaseNode], task_names: dict[Hashable, str], graph: Graph
) -> dict[str, str]:
    """Each step's ``depends``: ``<step>.Succeeded`` per ``next`` into it, ``<step>.Failed ||
    <step>.Errored`` per ``on_failure`` (except into the graph's fail step, which the failing
    container runs): a pod that is evicted, OOM-killed or deleted is ``Errored`` in Argo."""
    fail_name = graph.fail_node.name
    conditions: dict[str, list[str]] = {}
    for source in nodes:
        for target, on_failure in _edges(source):
            if on_failure and target == fail_name:
                continue
            task = task_names[source.name]
            states = ("Failed", "Errored") if on_failure else ("Succeeded",)
            conditions.setdefault(target, []).extend(f"{task}.{state}" for state in states)
    return {target: " || ".join(found) for target, found in conditions.items()}
