"""Building a pipeline's graph from its definition, and checking it.

A definition comes from a pipeline YAML file (``dag`` steps may include other files), from the
SDK, or from ``run_config.dag`` (a run log alone is enough to rebuild its pipeline). Each step is
built by its node kind (:meth:`magnus.nodes.BaseNode.from_definition`), chosen by ``type`` from
the :class:`NodeKinds` handed in -- the composition root gathers them from the plugins -- and
composite steps ask the builder for their branch graphs.

Validation reports every problem of every graph at once, each naming the step and the graph.
Nothing here recurses per step, so a 10,000-step pipeline validates like a 10-step one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from magnus.composites import BUILT_IN_REDUCERS, MapNode, composite_steps
from magnus.exceptions import MagnusError, PipelineValidationError
from magnus.graph import Graph
from magnus.jobs import (
    DEFAULT_NAME,
    default_job_name,
    is_job_document,
    job_error,
    job_graph_definition,
)
from magnus.nodes import (
    COMPUTED_FIELDS,
    BaseNode,
    GraphBuilder,
    NodeDefinitionError,
    RoutedNode,
)
from magnus.tasks import BaseTaskType, import_function
from magnus.yaml_reader import read_yaml

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


@dataclass(frozen=True)
class NodeKinds:
    """What a graph is built with: node kinds by ``type``, task types by ``command_type``."""

    node_types: Mapping[str, type[BaseNode]] = dataclasses.field(default_factory=dict)
    task_types: Mapping[str, type[BaseTaskType]] = dataclasses.field(default_factory=dict)


class KindsSource(Protocol):
    """Whatever knows the node kinds installed (the plugin manager)."""

    def kinds(self) -> NodeKinds: ...


def _kinds_of(kinds: NodeKinds | KindsSource) -> NodeKinds:
    return kinds if isinstance(kinds, NodeKinds) else kinds.kinds()


def step_builder(kinds: NodeKinds | KindsSource) -> GraphBuilder:
    """What a node kind builds a single step with, outside a whole graph (a patched step)."""
    return _Builder(_kinds_of(kinds))


class _Builder:
    """What node kinds ask for while they build (:class:`magnus.nodes.GraphBuilder`)."""

    def __init__(self, kinds: NodeKinds) -> None:
        self.kinds = kinds

    def build(
        self, definition: Any, internal_branch_name: str, problems: list[str], from_dump: bool
    ) -> Graph | None:
        return _build(definition, self, internal_branch_name, problems, from_dump)

    def task_type(self, command_type: str) -> type[BaseTaskType]:
        try:
            return self.kinds.task_types[command_type]
        except KeyError:
            known = ", ".join(sorted(self.kinds.task_types))
            raise NodeDefinitionError(
                [f"unknown command_type {command_type!r} (known: {known})"]
            ) from None

    def branch(
        self, definition: Any, internal_branch_name: str, problems: list[str], from_dump: bool
    ) -> Graph | None:
        return _build(definition, self, internal_branch_name, problems, from_dump)

    def included(self, path: str, internal_branch_name: str, problems: list[str]) -> Graph | None:
        return _build_included(path, self, internal_branch_name, problems)


def _where(internal_branch_name: str) -> str:
    return f"branch {internal_branch_name!r}" if internal_branch_name else "the pipeline"


def build_graph(
    definition: Any,
    kinds: NodeKinds | KindsSource,
    internal_branch_name: str = "",
    source: str = "",
    from_dump: bool = False,
) -> Graph:
    """Build and validate a graph; raise ``PipelineValidationError`` listing every problem.

    ``kinds``: the node kinds and task types to build with, or what provides them (the plugin
    manager's ``kinds()``).
    """
    problems: list[str] = []
    builder = _Builder(_kinds_of(kinds))
    try:
        graph = builder.build(definition, internal_branch_name, problems, from_dump)
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
    builder: _Builder,
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
        node_cls = builder.kinds.node_types.get(str(node_type))
        if node_cls is None:
            known = ", ".join(sorted(builder.kinds.node_types))
            problems.append(f"{label}: unknown type {node_type!r} (known: {known})")
            continue
        try:
            nodes[name] = node_cls.from_definition(
                name, step, internal_branch_name, builder, from_dump
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
    if not isinstance(node, RoutedNode):
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


def load_pipeline_file(path: str | Path, kinds: NodeKinds | KindsSource) -> Graph:
    """Build the graph of a pipeline YAML file (its ``dag`` block)."""
    with _reading_file(path):
        document = read_yaml(path, "pipeline file")
        return build_graph(_dag_of(document, str(path)), kinds, source=str(path))


def _dag_of(document: Any, path: str) -> Any:
    """The ``dag`` block of a pipeline file; ``PipelineValidationError`` if it has none.

    A job file (``magnus.jobs``) gives its one-step graph's definition: wherever a pipeline
    file is read (an orchestrator's containers, ``validate``, ``dag``), a job file is too.
    """
    if is_job_document(document):
        return job_graph_definition(document, path, default_job_name(path))
    if not isinstance(document, dict) or "dag" not in document:
        raise PipelineValidationError(["the file must have a top-level 'dag' mapping"], path)
    unknown = sorted(set(document) - PIPELINE_KEYS, key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise PipelineValidationError(
            [f"unknown top-level key {names}: a pipeline file holds only 'dag'"], path
        )
    return document["dag"]


def load_job_file(path: str | Path, kinds: NodeKinds | KindsSource) -> Graph:
    """Build the one-step graph of a job file (``magnus.jobs``); a pipeline file is refused."""
    document = read_yaml(path, "job file")
    return build_job_graph(document, kinds, str(path), default_job_name(path))


def build_job_graph(
    document: Any, kinds: NodeKinds | KindsSource, source: str, default_name: str = DEFAULT_NAME
) -> Graph:
    """Build the one-step graph of a job (a job file's content); its problems in one line."""
    definition = job_graph_definition(document, source, default_name)
    try:
        return build_graph(definition, kinds, source=source)
    except PipelineValidationError as exc:
        raise job_error(exc.problems, source, definition["start_at"]) from None


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


def _build_included(
    path: str,
    builder: _Builder,
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
        return _build(definition, builder, internal_branch_name, problems, False)


def _map_variable_problems(graph: Graph) -> list[str]:
    """Nested maps and loops must add different map variables: the inner one would hide the
    outer one."""
    return [
        f"step {node.internal_name!r}: {node.branch_variable!r} is already the map variable of "
        f"the enclosing step {outer[node.branch_variable]!r}; nested maps and loops need "
        "different names (iterate_as, index_as)"
        for node, outer in composite_steps(graph)
        if node.branch_variable is not None and node.branch_variable in outer
    ]


def reducer_problems(graph: Graph) -> list[str]:
    """Map steps whose reducer function cannot be imported (this imports the user's modules)."""
    problems: list[str] = []
    for node, _ in composite_steps(graph):
        if isinstance(node, MapNode) and node.reducer not in BUILT_IN_REDUCERS:
            try:
                import_function(node.reducer)
            except MagnusError as exc:
                problems.append(f"step {node.internal_name!r}: reducer: {exc}")
    return problems


def graph_from_dump(dump: dict[str, Any], kinds: NodeKinds | KindsSource) -> Graph:
    """Rebuild a graph from ``run_config.dag``: a run log alone is enough to re-run it."""
    return build_graph(
        dump,
        kinds,
        internal_branch_name=str(dump.get("internal_branch_name", "")),
        source="run_config.dag",
        from_dump=True,
    )
