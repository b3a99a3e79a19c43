"""Which steps of a graph become Argo tasks, in which order, and what each task depends on."""

from __future__ import annotations

import heapq
from collections.abc import Hashable

from magnus.composites import CompositeNode, DagNode, MapNode, ParallelNode
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus.nodes import BaseNode, ExecutableNode


def rendered_nodes(graph: Graph) -> list[BaseNode]:
    """The steps of ``graph`` that become tasks, from ``start_at`` along next and on_failure.

    An ``on_failure`` into the graph's own fail step is not followed: the failing step's
    container runs the fail step itself. The fail step is a task only when a ``next`` leads
    to it.
    """
    fail_name = graph.fail_node.name

    def targets(name: str) -> list[str]:
        return [
            target
            for target, on_failure in _edges(graph.nodes[name])
            if not (on_failure and target == fail_name)
        ]

    # Breadth-first discovery fixes an order; then each step is listed after every step it
    # depends on (Kahn's algorithm, earliest discovered first), so the DAG reads top-down.
    found = [graph.start_at]
    rank = {graph.start_at: 0}
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
    ready = [(0, graph.start_at)]
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for target in targets(name):
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (rank[target], target))
    return [graph.nodes[name] for name in order]


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
    raise ConfigurationError(f"Step {node.internal_name!r}: the argo executor cannot render it")


def dependencies(
    nodes: list[BaseNode], task_names: dict[Hashable, str], graph: Graph
) -> dict[str, str]:
    """Each step's ``depends``: ``<step>.Succeeded`` per ``next`` into it, ``.Failed`` per
    ``on_failure`` (except into the graph's fail step, which the failing container runs)."""
    fail_name = graph.fail_node.name
    conditions: dict[str, list[str]] = {}
    for source in nodes:
        for target, on_failure in _edges(source):
            if on_failure and target == fail_name:
                continue
            state = "Failed" if on_failure else "Succeeded"
            conditions.setdefault(target, []).append(f"{task_names[source.name]}.{state}")
    return {target: " || ".join(found) for target, found in conditions.items()}
