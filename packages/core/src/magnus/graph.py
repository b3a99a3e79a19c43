"""The pipeline graph: steps and how they lead on, its canonical hash, finding steps in it.

A graph is the pipeline itself or a branch of a composite step. Building one from a definition
(a YAML file, the SDK, ``run_config.dag``) and checking it is ``magnus.building``'s.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field

from magnus.exceptions import MagnusError
from magnus.nodes import BaseNode, RoutedNode


class _Branching(Protocol):
    """A composite step, as far as finding the graphs inside it goes."""

    def branch_graph(self, key: str) -> Graph: ...


class Graph(BaseModel):
    """One graph: the pipeline itself or a branch of a composite step."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    start_at: str
    name: str = ""
    description: str = ""
    max_time: int = 86400
    internal_branch_name: str = ""
    nodes: dict[str, BaseNode] = Field(default_factory=dict)
    #: things worth telling the user that do not stop a run (unreachable steps, ...)
    warnings: list[str] = Field(default_factory=list, exclude=True)

    def node(self, name: str) -> BaseNode:
        """The step called ``name`` in this graph."""
        return self.nodes[name]

    @property
    def start_node(self) -> BaseNode:
        return self.nodes[self.start_at]

    def _terminal(self, node_type: str) -> BaseNode:
        return next(n for n in self.nodes.values() if n.node_type == node_type)

    @property
    def success_node(self) -> BaseNode:
        return self._terminal("success")

    @property
    def fail_node(self) -> BaseNode:
        return self._terminal("fail")

    def next_after(self, node: BaseNode, failed: bool) -> BaseNode:
        """The step traversal moves to after ``node`` succeeded or failed."""
        assert isinstance(node, RoutedNode)
        if failed:
            return self.nodes[node.on_failure] if node.on_failure else self.fail_node
        return self.nodes[node.next_node]

    def dump(self) -> dict[str, Any]:
        """The full graph as ``run_config.dag`` records it."""
        return {
            "start_at": self.start_at,
            "name": self.name,
            "description": self.description,
            "max_time": self.max_time,
            "internal_branch_name": self.internal_branch_name,
            "steps": {name: node.dump() for name, node in self.nodes.items()},
        }


def dag_hash(graph: Graph) -> str:
    """SHA-1 of the canonical JSON of the full graph: equal for a YAML pipeline and its SDK twin."""
    canonical = json.dumps(graph.dump(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ locating


def find_node(graph: Graph, internal_name: str) -> tuple[Graph, BaseNode]:
    """The step at ``internal_name`` (resolved or with placeholders) and the graph holding it.

    Even segments name steps, odd ones select a branch of the composite before them; a map's
    single branch matches whatever the segment says.
    """
    parts = internal_name.split(".")
    current = graph
    for index in range(0, len(parts), 2):
        node = current.nodes.get(parts[index])
        if node is None:
            where = current.internal_branch_name or "the pipeline"
            raise MagnusError(
                f"No step {parts[index]!r} in {where} (looking for {internal_name!r})"
            )
        if index + 1 == len(parts):
            return current, node
        if not node.is_composite:
            raise MagnusError(f"Step {node.internal_name!r} has no branches ({internal_name!r})")
        try:
            current = cast(_Branching, node).branch_graph(parts[index + 1])
        except KeyError:
            raise MagnusError(
                f"Step {node.internal_name!r} has no branch {parts[index + 1]!r}"
            ) from None
    raise MagnusError(f"{internal_name!r} is not a step name")


def find_branch(graph: Graph, internal_branch_name: str) -> Graph:
    """The branch graph at ``internal_branch_name`` (resolved or with placeholders)."""
    step_name, _, key = internal_branch_name.rpartition(".")
    if not step_name:
        raise MagnusError(f"{internal_branch_name!r} is not a branch name")
    _, node = find_node(graph, step_name)
    if not node.is_composite:
        raise MagnusError(f"Step {node.internal_name!r} has no branches")
    try:
        return cast(_Branching, node).branch_graph(key)
    except KeyError:
        raise MagnusError(f"Step {node.internal_name!r} has no branch {key!r}") from None
