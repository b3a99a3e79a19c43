"""The pipeline graph: building it from a definition, validating it, naming and hashing it.

Validation reports every problem of every graph at once, each naming the step and the graph.
Nothing here recurses per step, so a 10,000-step pipeline validates like a 10-step one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from magnus.composites import COMPOSITE_TYPES, CompositeNode, MapNode, ParallelNode
from magnus.exceptions import MagnusError, PipelineValidationError
from magnus.nodes import (
    COMPUTED_FIELDS,
    LEAF_TYPES,
    BaseNode,
    ExecutableNode,
    NodeDefinitionError,
)
from magnus.yaml_reader import read_yaml

NODE_TYPES: dict[str, type[BaseNode]] = {**LEAF_TYPES, **COMPOSITE_TYPES}

if TYPE_CHECKING:
    from magnus.plugins import MagnusPlugins

logger = logging.getLogger(__name__)

GRAPH_KEYS = {"start_at", "steps", "name", "description", "max_time"}
ILLEGAL_NAME_CHARACTERS = (".", "%")
#: characters a step name cannot hold either: files such as its execution log are named after it
PATH_CHARACTERS = ("/", "\\", "\0")
#: the only top-level key of a pipeline file
PIPELINE_KEYS = {"dag"}

#: The pipeline files being read, outermost first, each as (resolved path, path as given): a dag
#: step including one of them again would include itself for ever.
_files_being_read: ContextVar[tuple[tuple[str, str], ...]] = ContextVar(
    "files_being_read", default=()
)


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
    try:
        graph = _build(definition, plugins, internal_branch_name, problems, from_dump)
    except RecursionError:
        problems.append(f"{_where(internal_branch_name)}: composite steps nest too deeply")
        graph = None
    if graph is not None:
        problems.extend(_map_variable_problems(graph))
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
    raw_steps = definition.get("steps")
    start_at = definition.get("start_at")
    steps: dict[Any, Any] = raw_steps if isinstance(raw_steps, dict) else {}
    steps_given = bool(steps)
    if not steps_given:
        problems.append(f"{where}: 'steps' must be a non-empty mapping of step name to step")
    if not isinstance(start_at, str) or not start_at:
        problems.append(f"{where}: 'start_at' must name the first step")
        start_at = ""
    raw_max_time = definition.get("max_time") or 86400
    try:
        max_time = int(raw_max_time)
        if max_time < 1:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"{where}: 'max_time' must be a number of seconds, not {raw_max_time!r}")
        max_time = 86400

    nodes: dict[str, BaseNode] = {}
    raw_types: dict[str, str] = {}
    raw_edges: dict[str, list[tuple[str, str]]] = {}
    for raw_name, step in steps.items():
        name = str(raw_name)
        label = f"step {name!r} in {where}"
        # Known to the structure checks even when refused below, so a mistake is told once.
        raw_types[name] = str(step.get("type")) if isinstance(step, dict) else ""
        raw_edges[name] = [
            (key, step[key])
            for key in ("next", "on_failure")
            if isinstance(step, dict)
            and step.get("type") not in ("success", "fail")  # terminal steps lead nowhere
            and isinstance(step.get(key), str)
            and step[key]
        ]
        bad = [c for c in ILLEGAL_NAME_CHARACTERS if c in name]
        if bad or not name.strip():
            problems.append(f"{label}: a step name cannot be empty or contain '.' or '%'")
            continue
        if any(c in name for c in PATH_CHARACTERS):
            problems.append(
                f"{label}: a step name cannot contain '/', '\\' or NUL characters "
                "(files such as its execution log are named after it)"
            )
            continue
        if not isinstance(step, dict):
            problems.append(f"{label}: a step must be a mapping with a 'type'")
            continue
        step = dict(step)
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

    if steps_given:
        _check_structure(raw_types, raw_edges, start_at, where, problems)
    if problems or not nodes:
        return None
    graph = Graph(
        start_at=start_at,
        name=str(definition.get("name") or ""),
        description=str(definition.get("description") or ""),
        max_time=max_time,
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


def load_pipeline_file(path: str | Path, plugins: MagnusPlugins) -> Graph:
    """Build the graph of a pipeline YAML file (its ``dag`` block)."""
    with _reading_file(path):
        document = read_yaml(path, "pipeline file")
        return build_graph(_dag_of(document, str(path)), plugins, source=str(path))


def _dag_of(document: Any, path: str) -> Any:
    """The ``dag`` block of a pipeline file; ``PipelineValidationError`` if it has none."""
    if not isinstance(document, dict) or "dag" not in document:
        raise PipelineValidationError(["the file must have a top-level 'dag' mapping"], path)
    unknown = sorted(set(document) - PIPELINE_KEYS, key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise PipelineValidationError(
            [f"unknown top-level key {names}: a pipeline file holds only 'dag'"], path
        )
    return document["dag"]


@contextmanager
def _reading_file(path: str | Path) -> Iterator[list[str]]:
    """Mark ``path`` as being read; yields the inclusion chain if it is already being read."""
    chain = _files_being_read.get()
    try:
        resolved = os.path.realpath(path)
    except (OSError, ValueError):  # unreadable anyway: reading it will say why
        resolved = os.path.abspath(path)
    if any(resolved == seen for seen, _ in chain):
        yield [shown for _, shown in chain] + [str(path)]
        return
    token = _files_being_read.set((*chain, (resolved, str(path))))
    try:
        yield []
    finally:
        _files_being_read.reset(token)


def build_included_graph(
    path: str,
    plugins: MagnusPlugins,
    internal_branch_name: str,
    problems: list[str],
) -> Graph | None:
    """The graph of the pipeline file a ``dag`` step includes; problems go to ``problems``.

    A file that includes itself, directly or through other files, is refused with the chain.
    """
    with _reading_file(path) as cycle:
        if cycle:
            problems.append(f"dag_definition {path!r} includes itself: {' -> '.join(cycle)}")
            return None
        try:
            document = read_yaml(Path(path), "nested pipeline file")
            definition = _dag_of(document, path)
        except PipelineValidationError as exc:
            problems.extend(f"{path}: {problem}" for problem in exc.problems)
            return None
        except MagnusError as exc:
            problems.append(str(exc))
            return None
        return _build(definition, plugins, internal_branch_name, problems, False)


def _composite_steps(graph: Graph) -> Iterator[tuple[CompositeNode, dict[str, str]]]:
    """Every composite step at any depth, with the maps around it (``iterate_as`` -> map name)."""
    stack: list[tuple[Graph, dict[str, str]]] = [(graph, {})]
    while stack:
        current, outer = stack.pop()
        for node in current.nodes.values():
            if not isinstance(node, CompositeNode):
                continue
            yield node, outer
            if isinstance(node, ParallelNode):
                branches = list(node.branches.values())
            else:  # map and dag steps have a single branch
                branch = getattr(node, "branch", None)
                branches = [branch] if isinstance(branch, Graph) else []
            inner = (
                {**outer, node.iterate_as: node.internal_name}
                if isinstance(node, MapNode)
                else outer
            )
            stack.extend((branch, inner) for branch in branches)


def _map_variable_problems(graph: Graph) -> list[str]:
    """Nested maps must iterate as different names: the inner one would hide the outer one."""
    return [
        f"step {node.internal_name!r}: iterate_as {node.iterate_as!r} is already the "
        f"iterate_as of the enclosing map {outer[node.iterate_as]!r}; nested maps need "
        "different iterate_as names"
        for node, outer in _composite_steps(graph)
        if isinstance(node, MapNode) and node.iterate_as in outer
    ]


def reducer_problems(graph: Graph) -> list[str]:
    """Map steps whose reducer function cannot be imported (this imports the user's modules)."""
    from magnus.composites import BUILT_IN_REDUCERS
    from magnus.tasks import import_function

    problems: list[str] = []
    for node, _ in _composite_steps(graph):
        if isinstance(node, MapNode) and node.reducer not in BUILT_IN_REDUCERS:
            try:
                import_function(node.reducer)
            except MagnusError as exc:
                problems.append(f"step {node.internal_name!r}: reducer: {exc}")
    return problems


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
