"""Composite steps: parallel, map and dag. Each runs one or more branch graphs.

This module says what a composite *is*: its definition, its branch graphs, which branches a run
of it has, and how their parameters merge. Running one -- fan-out, the branches, fan-in, and
what each writes to the run log -- is the engine's (``magnus.executors.fanning``), whichever
executor runs it:

* **fan out** -- create one branch log per branch (status PROCESSING);
* run the branches (one after another, or in parallel processes, or as orchestrator tasks);
* **fan in** -- the composite is SUCCESS only if every branch is; on success, what the branches
  produced is merged into the enclosing parameter scope by a deterministic rule:

  - ``parallel``: branches are merged in declaration order; when several branches produce the
    same parameter, the last declared one wins (a warning names them);
  - ``map``: each parameter a branch produced becomes, by default, the list of every element's
    value in element order (``None`` for an element that did not produce it). ``reducer`` names
    another rule: ``first`` or ``last`` (of the elements that produced it), or a function
    ``package.module.function`` called with that list;
  - ``dag``: its single branch's parameters pass through as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from magnus.graph import Graph, find_node
from magnus.internal_names import MAP_PLACEHOLDER, branch_name_of, resolve
from magnus.nodes import (
    BaseNode,
    GraphBuilder,
    NodeDefinitionError,
    RoutedNode,
    _problems,
    internal_name_of,
)
from magnus.runlog.models import BranchLog, StepLog
from magnus.tasks import import_function

logger = logging.getLogger(__name__)


@dataclass
class BranchRun:
    """One branch to run: its graph, the map values in force, its resolved log name."""

    graph: Graph
    name: str
    map_variables: dict[str, Any] = field(default_factory=dict)
    #: the parameters that chose this branch (a conditional's value), to be recorded
    chosen_by: dict[str, Any] = field(default_factory=dict)


class CompositeNode(RoutedNode):
    """A step made of branch graphs."""

    is_composite: ClassVar[bool] = True
    #: whether the branches to run depend on the parameters in scope (a map's list)
    reads_parameters: ClassVar[bool] = False
    #: whether more branches may follow those fan-out started (a loop's iterations)
    repeats: ClassVar[bool] = False

    # --------------------------------------------------------------- building

    @classmethod
    def from_definition(
        cls,
        name: str,
        definition: dict[str, Any],
        internal_branch_name: str,
        builder: GraphBuilder,
        from_dump: bool = False,
    ) -> BaseNode:
        definition = dict(definition)
        internal_name = internal_name_of(name, internal_branch_name)
        problems: list[str] = []
        graphs = cls._branches_from(definition, internal_name, builder, problems, from_dump)
        try:
            node = cls.model_validate(
                {
                    **definition,
                    **graphs,
                    "name": name,
                    "internal_name": internal_name,
                    "internal_branch_name": internal_branch_name,
                }
            )
        except ValidationError as exc:
            problems[:0] = _problems(exc)
            raise NodeDefinitionError(problems) from None
        if problems:
            raise NodeDefinitionError(problems)
        return node

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        """Pop the branch definitions from ``definition`` and build their graphs."""
        raise NotImplementedError

    # --------------------------------------------------------------- locating

    def branch_graph(self, key: str) -> Graph:
        """The branch graph selected by the middle segment of an internal name."""
        raise NotImplementedError

    # --------------------------------------------------------------- running

    def branch_runs(
        self, parameters: dict[str, Any], map_variables: dict[str, Any]
    ) -> list[BranchRun] | str:
        """The branches to run, or a message saying why there are none to run.

        ``parameters`` are those in scope, read only for kinds that ``reads_parameters``.
        """
        return [
            BranchRun(graph, resolve(graph.internal_branch_name, map_variables), map_variables)
            for graph in self.branch_graphs()
        ]

    def record_fan_out(self, step_log: StepLog, runs: list[BranchRun]) -> None:
        """Record on the step's log what fan-out decided (a map: its elements)."""

    def describe_branch(self, branch_log: BranchLog, run: BranchRun) -> None:
        """Record on a new branch log what identifies it (a map: its element)."""

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        """The branch logs fan-out creates, in order, or why they cannot be known."""
        return [
            resolve(graph.internal_branch_name, map_variables) for graph in self.branch_graphs()
        ]

    def branch_graphs(self) -> list[Graph]:
        """Every branch graph of the step, as defined (a map's one graph, not its runs)."""
        raise NotImplementedError

    @property
    def branch_variable(self) -> str | None:
        """The name each branch run adds to the map variables (a map's ``iterate_as``), if any.

        Such a composite's branch graph is named with the placeholder, which each run's value
        replaces (:func:`magnus.internal_names.resolve`).
        """
        return None

    def next_runs(
        self,
        step_log: StepLog,
        last: BranchLog,
        map_variables: dict[str, Any],
        scope_in: Callable[[str], dict[str, Any]],
    ) -> list[BranchRun] | str:
        """After ``last`` (the latest branch run) ended: more branches to run, ``[]`` when done.

        ``map_variables`` are the composite's own; ``scope_in(branch_name)`` reads the
        parameters seen inside a branch. Only a loop runs more; a message says why the step
        cannot go on.
        """
        return []

    def carried_parameters(self, previous: BranchLog | None) -> dict[str, Any]:
        """What a new branch log starts with, given the branch run before it (a loop's next
        iteration starts with what the last one ended with)."""
        return {}

    def end_problem(
        self,
        step_log: StepLog,
        branches: list[BranchLog],
        scope_in: Callable[[str], dict[str, Any]],
    ) -> str:
        """Why the step fails although every branch succeeded ("" when it does not)."""
        return ""

    def recorded_decision(self, step_log: StepLog) -> dict[str, Any] | None:
        """The parameters a recorded fan-out decided on, to decide the same way again when a
        re-run reaches the step with nothing before it run again (a conditional's value)."""
        return None

    def merge_parameters(self, branches: list[BranchLog], step_log: StepLog) -> dict[str, Any]:
        """What the composite contributes to the enclosing scope (all branches succeeded)."""
        merged: dict[str, Any] = {}
        for branch in branches:
            merged.update(branch.parameters)
        return merged


class NamedBranchesNode(CompositeNode):
    """A composite whose ``branches`` are named graphs, declared in its definition."""

    #: what ``branches`` maps, said when it is missing
    branches_role: ClassVar[str] = "a mapping of name to graph"

    branches: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _key_of(cls, raw: Any) -> str:
        """The branch name a key of ``branches`` gives."""
        return str(raw)

    @classmethod
    def _key_problem(cls, key: str) -> str:
        """Why ``key`` cannot name a branch of this kind ("" when it can)."""
        if "." in key or "%" in key or not key.strip():
            return f"branch name {key!r} cannot be empty or contain '.' or '%'"
        return ""

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw = definition.pop("branches", None)
        if not isinstance(raw, dict) or not raw:
            problems.append(f"a {cls.node_type} step needs 'branches': {cls.branches_role}")
            return {}
        graphs = {}
        for raw_key, branch in raw.items():
            key = cls._key_of(raw_key)
            problem = cls._key_problem(key)
            if problem:
                problems.append(problem)
                continue
            graph = builder.branch(branch, f"{internal_name}.{key}", problems, from_dump)
            if graph is not None:
                graphs[key] = graph
        return {"branches": graphs}

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "branches": {key: graph.dump() for key, graph in self.branches.items()},
        }

    def branch_graph(self, key: str) -> Graph:
        return self.branches[key]

    def branch_graphs(self) -> list[Graph]:
        return list(self.branches.values())


class ParallelNode(NamedBranchesNode):
    """Runs named branches, each a full graph."""

    node_type: ClassVar[str] = "parallel"

    def merge_parameters(self, branches: list[BranchLog], step_log: StepLog) -> dict[str, Any]:
        # Branch logs come in creation order, which fan-out made the declaration order.
        merged: dict[str, Any] = {}
        writers: dict[str, list[str]] = {}
        for branch in branches:
            for key, value in branch.parameters.items():
                if key in merged and merged[key] != value:
                    writers.setdefault(key, []).append(branch.internal_name)
                merged[key] = value
        for key, names in writers.items():
            logger.warning(
                "Parallel step %s: several branches set parameter %r; the last declared (%s) wins",
                step_log.internal_name,
                key,
                names[-1],
            )
        return merged


class OneBranchNode(CompositeNode):
    """A composite with one branch graph (a map's, a loop's, a dag's)."""

    branch: Any = None

    def branch_graph(self, key: str) -> Graph:
        return self.branch

    def branch_graphs(self) -> list[Graph]:
        return [self.branch]


class IteratingNode(OneBranchNode):
    """Runs its one branch graph several times, each run adding a map variable (a map's
    element, a loop's iteration): the graph is named with the placeholder, which each run's
    value replaces."""

    #: what the branch is, said when it is missing
    branch_role: ClassVar[str] = "the graph to run"

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw = definition.pop("branch", None)
        if raw is None:
            problems.append(f"a {cls.node_type} step needs 'branch': {cls.branch_role}")
            return {}
        graph = builder.branch(raw, f"{internal_name}.{MAP_PLACEHOLDER}", problems, from_dump)
        return {"branch": graph} if graph is not None else {}


BUILT_IN_REDUCERS = ("list", "first", "last")


class MapNode(IteratingNode):
    """Runs its branch graph once per element of a list parameter."""

    node_type: ClassVar[str] = "map"
    reads_parameters: ClassVar[bool] = True
    branch_role: ClassVar[str] = "the graph to run for each element"

    iterate_on: str
    iterate_as: str
    reducer: str = "list"

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        reducer = definition.get("reducer", "list")
        if reducer not in BUILT_IN_REDUCERS and "." not in str(reducer):
            problems.append(
                f"reducer {reducer!r} is neither one of {', '.join(BUILT_IN_REDUCERS)} "
                "nor a package.module.function"
            )
        return super()._branches_from(definition, internal_name, builder, problems, from_dump)

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "iterate_on": self.iterate_on,
            "iterate_as": self.iterate_as,
            "reducer": self.reducer,
            "branch": self.branch.dump(),
        }

    @property
    def branch_variable(self) -> str | None:
        return self.iterate_as

    def branch_runs(
        self, parameters: dict[str, Any], map_variables: dict[str, Any]
    ) -> list[BranchRun] | str:
        step_name = resolve(self.internal_name, map_variables)
        if self.iterate_on not in parameters:
            return (
                f"map {step_name!r} iterates on parameter {self.iterate_on!r}, "
                "which is not set at this point of the pipeline"
            )
        values = parameters[self.iterate_on]
        if not isinstance(values, list):
            return (
                f"map {step_name!r} iterates on parameter {self.iterate_on!r}, which must be a "
                f"list, not {type(values).__name__}"
            )
        names = [branch_name_of(value) for value in values]
        if len(set(names)) < len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            return (
                f"map {step_name!r}: values of {self.iterate_on!r} give the same branch name "
                f"more than once ({', '.join(duplicates[:5])}); branch names must be unique"
            )
        runs = []
        for value in values:
            variables = {**map_variables, self.iterate_as: value}
            name = resolve(self.branch.internal_branch_name, variables)
            runs.append(BranchRun(self.branch, name, variables))
        return runs

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        values = step_log.map_values
        if not isinstance(values, list):
            return (
                f"map {step_log.internal_name!r} has no recorded elements (map_values): its "
                "fan-out did not complete"
            )
        return [
            resolve(self.branch.internal_branch_name, {**map_variables, self.iterate_as: value})
            for value in values
        ]

    def record_fan_out(self, step_log: StepLog, runs: list[BranchRun]) -> None:
        # The list is recorded once, on the map step; each branch records its own element.
        step_log.map_values = [run.map_variables[self.iterate_as] for run in runs]

    def describe_branch(self, branch_log: BranchLog, run: BranchRun) -> None:
        element = {self.iterate_as: run.map_variables[self.iterate_as]}
        branch_log.map_variable = element

    def merge_parameters(self, branches: list[BranchLog], step_log: StepLog) -> dict[str, Any]:
        # Branch logs come in creation order, which fan-out made the element order.
        keys: dict[str, None] = {}
        for branch in branches:
            keys.update(dict.fromkeys(branch.parameters))
        return {key: self._reduce(key, branches) for key in keys}

    def _reduce(self, key: str, branches: list[BranchLog]) -> Any:
        values = [branch.parameters.get(key) for branch in branches]
        present = [branch.parameters[key] for branch in branches if key in branch.parameters]
        if self.reducer == "list":
            return values
        if self.reducer == "first":
            return present[0]
        if self.reducer == "last":
            return present[-1]
        try:
            return import_function(self.reducer)(values)
        except Exception as exc:
            raise RuntimeError(
                f"reducer {self.reducer} raised {type(exc).__name__}: {exc} for parameter {key!r}"
            ) from exc


class DagNode(OneBranchNode):
    """Runs a pipeline defined in another YAML file as its single branch."""

    node_type: ClassVar[str] = "dag"

    dag_definition: str

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw = definition.pop("branch", None) if from_dump else None
        if raw is None:
            path = definition.get("dag_definition")
            if path is None:
                return {}  # reported as a missing required key
            if not isinstance(path, str) or not path.endswith((".yaml", ".yml")):
                problems.append("'dag_definition' must name a pipeline file ending in .yaml")
                return {}
            graph = builder.included(path, f"{internal_name}.dag", problems)
        else:
            graph = builder.branch(raw, f"{internal_name}.dag", problems, from_dump)
        return {"branch": graph} if graph is not None else {}

    def definition(self) -> dict[str, Any]:
        # The loaded graph travels too, so a run can be rebuilt without the file.
        return {
            **super().definition(),
            "dag_definition": self.dag_definition,
            "branch": self.branch.dump(),
        }


def composite_steps(graph: Graph) -> Iterator[tuple[CompositeNode, dict[str, str]]]:
    """Every composite step at any depth, with the maps and loops around it (the name each
    adds to the map variables -> the step's internal name)."""
    stack: list[tuple[Graph, dict[str, str]]] = [(graph, {})]
    while stack:
        current, outer = stack.pop()
        for node in current.nodes.values():
            if not isinstance(node, CompositeNode):
                continue
            yield node, outer
            variable = node.branch_variable
            inner = {**outer, variable: node.internal_name} if variable is not None else outer
            stack.extend((branch, inner) for branch in node.branch_graphs() if branch is not None)


def enclosing_maps(graph: Graph, internal_name: str) -> list[MapNode]:
    """The map steps around a step, outermost first."""
    return [
        node for node in enclosing_iterations(graph, internal_name) if isinstance(node, MapNode)
    ]


def enclosing_iterations(graph: Graph, internal_name: str) -> list[CompositeNode]:
    """The composites around a step whose runs add a map variable (maps, loops), outermost
    first: one per placeholder in the step's internal name."""
    parts = internal_name.split(".")
    found: list[CompositeNode] = []
    for end in range(1, len(parts) - 1, 2):
        _, node = find_node(graph, ".".join(parts[:end]))
        if isinstance(node, CompositeNode) and node.branch_variable is not None:
            found.append(node)
    return found
