"""The pipeline graph: building it from a definition, validating it, naming and hashing it.

Validation reports every problem of every graph at once, each naming the step and the graph.
Nothing here recurses per step, so a 10,000-step pipeline validates like a 10-step one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from magnus.composites import COMPOSITE_TYPES, CompositeNode, MapNode
from magnus.exceptions import MagnusError, PipelineValidationError
from magnus.nodes import (
    COMPUTED_FIELDS,
    LEAF_TYPES,
    BaseNode,
    ExecutableNode,
    NodeDefinitionError,
)

NODE_TYPES: dict[str, type[BaseNode]] = {**LEAF_TYPES, **COMPOSITE_TYPES}

if TYPE_CHECKING:
    from magnus.plugins import MagnusPlugins

logger = logging.getLogger(__name__)

GRAPH_KEYS = {"start_at", "steps", "name", "description", "max_time"}
ILLEGAL_NAME_CHARACTERS = (".", "%")


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
        assert isinstance(node, (ExecutableNode, CompositeNode))
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


def _where(internal_branch_name: str) -> str:
    return f"branch {internal_branch_name!r}" if internal_branch_name else "the pipeline"


def build_graph(
    definition: Any,
    plugins: MagnusPlugins,
    internal_branch_name: str = "",
    source: str = "",
    from_dump: bool = False,
) -> Graph:
    """Build and validate a graph; raise ``PipelineValidationError`` listing every problem."""
    problems: list[str] = []
    graph = _build(definition, plugins, internal_branch_name, problems, from_dump)
    if problems or graph is None:
        raise PipelineValidationError(problems, source)
    for warning in graph.warnings:
        logger.warning(warning)
    return graph


def _build(
    definition: Any,
    plugins: MagnusPlugins,
    internal_branch_name: str,
    problems: list[str],
    from_dump: bool,
) -> Graph | None:
    where = _where(internal_branch_name)
    if not isinstance(definition, dict):
        problems.append(f"{where}: a graph must be a mapping with start_at and steps")
        return None
    allowed = GRAPH_KEYS | ({"internal_branch_name"} if from_dump else set())
    for key in sorted(set(definition) - allowed, key=str):
        problems.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(GRAPH_KEYS))})")
    steps = definition.get("steps")
    start_at = definition.get("start_at")
    if not isinstance(steps, dict) or not steps:
        problems.append(f"{where}: 'steps' must be a non-empty mapping of step name to step")
        steps = {}
    if not isinstance(start_at, str) or not start_at:
        problems.append(f"{where}: 'start_at' must name the first step")
        start_at = ""

    nodes: dict[str, BaseNode] = {}
    raw_types: dict[str, str] = {}
    raw_edges: dict[str, list[tuple[str, str]]] = {}
    for raw_name, step in steps.items():
        name = str(raw_name)
        label = f"step {name!r} in {where}"
        bad = [c for c in ILLEGAL_NAME_CHARACTERS if c in name]
        if bad or not name.strip():
            problems.append(f"{label}: a step name cannot be empty or contain '.' or '%'")
            continue
        if not isinstance(step, dict):
            problems.append(f"{label}: a step must be a mapping with a 'type'")
            continue
        step = dict(step)
        raw_types[name] = str(step.get("type"))
        raw_edges[name] = [(key, str(step[key])) for key in ("next", "on_failure") if step.get(key)]
        if from_dump:
            for key in COMPUTED_FIELDS:
                step.pop(key, None)
        node_type = step.pop("type", None)
        if node_type is None:
            problems.append(f"{label}: missing required key 'type'")
            continue
        node_cls = NODE_TYPES.get(str(node_type))
        if node_cls is None:
            known = ", ".join(sorted(NODE_TYPES))
            problems.append(f"{label}: unknown type {node_type!r} (known: {known})")
            continue
        try:
            nodes[name] = node_cls.from_definition(
                name, step, internal_branch_name, plugins, from_dump
            )
        except NodeDefinitionError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)

    _check_structure(raw_types, raw_edges, start_at, where, problems)
    if problems or not nodes:
        return None
    graph = Graph(
        start_at=start_at,
        name=str(definition.get("name") or ""),
        description=str(definition.get("description") or ""),
        max_time=int(definition.get("max_time") or 86400),
        internal_branch_name=internal_branch_name,
        nodes=nodes,
    )
    graph.warnings.extend(_unreachable(graph, where))
    return graph


def _edges(node: BaseNode, fail_name: str) -> list[str]:
    if not isinstance(node, (ExecutableNode, CompositeNode)):
        return []
    return [t for t in (node.next_node, node.on_failure or fail_name) if t]


def _check_structure(
    types: dict[str, str],
    edges: dict[str, list[tuple[str, str]]],
    start_at: str,
    where: str,
    problems: list[str],
) -> None:
    for node_type in ("success", "fail"):
        count = sum(1 for t in types.values() if t == node_type)
        if count != 1:
            problems.append(f"{where}: there should be exactly one {node_type} step, found {count}")
    if start_at and types and start_at not in types:
        problems.append(f"{where}: start_at names {start_at!r}, which is not a step of the graph")

    missing = False
    for name, targets in edges.items():
        for field, target in targets:
            if target not in types:
                missing = True
                problems.append(
                    f"step {name!r} in {where}: {field} names {target!r}, "
                    "which is not a step of the graph"
                )
    if not missing:
        cycle = _find_cycle({name: [t for _, t in targets] for name, targets in edges.items()})
        if cycle:
            problems.append(f"{where}: the steps form a cycle: {' -> '.join(cycle)}")


def _find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """An iterative depth-first search; returns one cycle as a list of names, or []."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in edges:
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                state[name] = 1
                path.append(name)
            targets = edges.get(name, [])
            if index < len(targets):
                stack.append((name, index + 1))
                target = targets[index]
                if state.get(target) == 1:
                    return [*path[path.index(target) :], target]
                if target not in state:
                    stack.append((target, 0))
            else:
                state[name] = 2
                path.pop()
    return []


def _unreachable(graph: Graph, where: str) -> list[str]:
    fail_name = graph.fail_node.name
    seen = {graph.start_at}
    frontier = [graph.start_at]
    while frontier:
        for target in _edges(graph.nodes[frontier.pop()], fail_name):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return [
        f"step {name!r} in {where} is never reached from start_at {graph.start_at!r}"
        for name, node in graph.nodes.items()
        if name not in seen and not (node.is_terminal and name == fail_name)
    ]


# ------------------------------------------------------------------------------ files and dumps


def read_yaml(path: str | Path, what: str) -> Any:
    """Load a YAML file; errors name the file (and the line, for syntax errors)."""
    import yaml

    from magnus.exceptions import ConfigurationError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the {what} {str(path)!r}: {exc.strerror}") from None
    # libyaml's loader, when PyYAML was built with it, reads a large pipeline ~10x faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            f"The {what} {str(path)!r} is not valid YAML{line}: {problem}"
        ) from None


def load_pipeline_file(path: str | Path, plugins: MagnusPlugins) -> Graph:
    """Build the graph of a pipeline YAML file (its ``dag`` block)."""
    document = read_yaml(path, "pipeline file")
    if not isinstance(document, dict) or "dag" not in document:
        raise PipelineValidationError(["the file must have a top-level 'dag' mapping"], str(path))
    return build_graph(document["dag"], plugins, source=str(path))


def graph_from_dump(dump: dict[str, Any], plugins: MagnusPlugins) -> Graph:
    """Rebuild a graph from ``run_config.dag``: a run log alone is enough to re-run it."""
    return build_graph(
        dump,
        plugins,
        internal_branch_name=str(dump.get("internal_branch_name", "")),
        source="run_config.dag",
        from_dump=True,
    )


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
        if not isinstance(node, CompositeNode):
            raise MagnusError(f"Step {node.internal_name!r} has no branches ({internal_name!r})")
        try:
            current = node.branch_graph(parts[index + 1])
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
    if not isinstance(node, CompositeNode):
        raise MagnusError(f"Step {node.internal_name!r} has no branches")
    try:
        return node.branch_graph(key)
    except KeyError:
        raise MagnusError(f"Step {node.internal_name!r} has no branch {key!r}") from None


def enclosing_maps(graph: Graph, internal_name: str) -> list[MapNode]:
    """The map steps around a step, outermost first."""
    parts = internal_name.split(".")
    found: list[MapNode] = []
    for end in range(1, len(parts) - 1, 2):
        _, node = find_node(graph, ".".join(parts[:end]))
        if isinstance(node, MapNode):
            found.append(node)
    return found
