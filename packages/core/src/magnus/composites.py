"""Composite steps: parallel, map and dag. Each runs one or more branch graphs.

Every composite does three things, whichever executor runs it:

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, ValidationError

from magnus import scopes
from magnus.naming import MAP_PLACEHOLDER, branch_name_of, resolve
from magnus.nodes import BaseNode, NodeDefinitionError, _problems, internal_name_of
from magnus.runlog.models import FAIL, PROCESSING, SUCCESS, BranchLog, StepLog

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.graph import Graph
    from magnus.plugins import MagnusPlugins

logger = logging.getLogger(__name__)


@dataclass
class BranchRun:
    """One branch to run: its graph, the map values in force, its resolved log name."""

    graph: Graph
    name: str
    map_variables: dict[str, Any] = field(default_factory=dict)


class CompositeNode(BaseNode):
    """A step made of branch graphs."""

    is_composite: ClassVar[bool] = True

    next_node: str = Field(alias="next")
    on_failure: str = ""
    overrides: dict[str, str] = Field(default_factory=dict)

    def definition(self) -> dict[str, Any]:
        return {
            "next": self.next_node,
            "on_failure": self.on_failure,
            "overrides": dict(self.overrides),
        }

    # --------------------------------------------------------------- building

    @classmethod
    def _build_branch(
        cls,
        definition: Any,
        branch_name: str,
        plugins: MagnusPlugins,
        problems: list[str],
        from_dump: bool,
    ) -> Graph | None:
        from magnus.graph import _build

        return _build(definition, plugins, branch_name, problems, from_dump)

    @classmethod
    def from_definition(
        cls,
        name: str,
        definition: dict[str, Any],
        internal_branch_name: str,
        plugins: MagnusPlugins,
        from_dump: bool = False,
    ) -> BaseNode:
        definition = dict(definition)
        internal_name = internal_name_of(name, internal_branch_name)
        problems: list[str] = []
        graphs = cls._branches_from(definition, internal_name, plugins, problems, from_dump)
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
        plugins: MagnusPlugins,
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
        self, context: RunContext, map_variables: dict[str, Any], step_log: StepLog
    ) -> list[BranchRun] | str:
        """The branches to run, or a message saying why there are none to run."""
        raise NotImplementedError

    def fan_out(self, context: RunContext, map_variables: dict[str, Any]) -> list[BranchRun]:
        """Create a PROCESSING branch log per branch; return the branches to run.

        The composite's step log must exist. When the branches cannot be known (a map whose
        parameter is missing), the step log is marked FAIL with a message and nothing is run.
        """
        store = context.run_log_store
        step_name = resolve(self.internal_name, map_variables)
        step_log = store.get_step_log(step_name, context.run_id, full=False)
        runs = self.branch_runs(context, map_variables, step_log)
        if isinstance(runs, str):
            # Composite steps have no line of their own on the console: say why here.
            logger.error("%s", runs)
            step_log.status = FAIL
            step_log.message = runs
            store.add_step_log(step_log, context.run_id)
            return []
        store.add_step_log(step_log, context.run_id)  # branch_runs may have recorded on it
        for run in runs:
            branch_log = store.create_branch_log(run.name)
            branch_log.status = PROCESSING
            self._describe_branch(branch_log, run)
            store.add_branch_log(branch_log, context.run_id)
        return runs

    def _describe_branch(self, branch_log: BranchLog, run: BranchRun) -> None:
        """Record on a new branch log what identifies it (map: its element)."""

    def fan_in(self, context: RunContext, map_variables: dict[str, Any]) -> StepLog:
        """Decide the composite's status from its branches and merge their parameters."""
        store = context.run_log_store
        step_name = resolve(self.internal_name, map_variables)
        step_log = store.get_step_log(step_name, context.run_id, full=True)
        if step_log.status == FAIL and not step_log.branches:
            return step_log  # fan-out already failed and said why
        # What fan-out was to create, not what happens to be there: a fan-out that crashed
        # half-way, or a store that lost a record, must not pass for a composite with fewer
        # branches.
        expected = self.expected_branch_names(step_log, map_variables)
        missing: list[str] = []
        if isinstance(expected, str):
            problem = expected
        else:
            missing = [name for name in expected if name not in step_log.branches]
            problem = _missing_summary(missing, len(expected)) if missing else ""
        branches = [] if problem else [step_log.branches[name] for name in expected]
        failed = [b for b in branches if b.status != SUCCESS]
        if problem:
            step_log.status = FAIL
            step_log.message = problem
            logger.error("%s: %s", step_name, problem)
        elif failed:
            step_log.status = FAIL
            step_log.message = _failure_summary(failed)
        else:
            try:
                merged = self.merge_parameters(branches, step_log)
            except Exception as exc:  # a user's reducer: its failure fails the step
                step_log.status = FAIL
                step_log.message = f"merging the branches' parameters failed: {exc}"
                logger.error("%s: %s", step_name, step_log.message)
            else:
                step_log.status = SUCCESS
                step_log.message = ""
                # Recorded so a re-run that reuses this step can carry the same values over.
                step_log.output_parameters = merged  # type: ignore[attr-defined]
                scopes.write_parameters(store, context.run_id, step_name, merged)
        # the branches are stored on their own; the step's own record is all that changes
        store.add_step_log(step_log.model_copy(update={"branches": {}}), context.run_id)
        return step_log

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        """The branch logs fan-out creates, in order, or why they cannot be known."""
        return [resolve(graph.internal_branch_name, map_variables) for graph in self._graphs()]

    def _graphs(self) -> list[Graph]:
        """The branch graphs of a composite whose branches do not depend on parameters."""
        raise NotImplementedError

    def merge_parameters(self, branches: list[BranchLog], step_log: StepLog) -> dict[str, Any]:
        """What the composite contributes to the enclosing scope (all branches succeeded)."""
        merged: dict[str, Any] = {}
        for branch in branches:
            merged.update(branch.parameters)
        return merged


class ParallelNode(CompositeNode):
    """Runs named branches, each a full graph."""

    node_type: ClassVar[str] = "parallel"

    branches: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        plugins: MagnusPlugins,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw = definition.pop("branches", None)
        if not isinstance(raw, dict) or not raw:
            problems.append("a parallel step needs 'branches': a mapping of name to graph")
            return {}
        graphs = {}
        for key, branch in raw.items():
            key = str(key)
            if "." in key or "%" in key or not key.strip():
                problems.append(f"branch name {key!r} cannot be empty or contain '.' or '%'")
                continue
            name = f"{internal_name}.{key}"
            graph = cls._build_branch(branch, name, plugins, problems, from_dump)
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

    def _graphs(self) -> list[Graph]:
        return list(self.branches.values())

    def branch_runs(
        self, context: RunContext, map_variables: dict[str, Any], step_log: StepLog
    ) -> list[BranchRun]:
        return [
            BranchRun(graph, resolve(graph.internal_branch_name, map_variables), map_variables)
            for graph in self.branches.values()
        ]

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


BUILT_IN_REDUCERS = ("list", "first", "last")


class MapNode(CompositeNode):
    """Runs its branch graph once per element of a list parameter."""

    node_type: ClassVar[str] = "map"

    iterate_on: str
    iterate_as: str
    reducer: str = "list"
    branch: Any = None

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        plugins: MagnusPlugins,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw = definition.pop("branch", None)
        if raw is None:
            problems.append("a map step needs 'branch': the graph to run for each element")
            return {}
        reducer = definition.get("reducer", "list")
        if reducer not in BUILT_IN_REDUCERS and "." not in str(reducer):
            problems.append(
                f"reducer {reducer!r} is neither one of {', '.join(BUILT_IN_REDUCERS)} "
                "nor a package.module.function"
            )
        graph = cls._build_branch(
            raw, f"{internal_name}.{MAP_PLACEHOLDER}", plugins, problems, from_dump
        )
        return {"branch": graph} if graph is not None else {}

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "iterate_on": self.iterate_on,
            "iterate_as": self.iterate_as,
            "reducer": self.reducer,
            "branch": self.branch.dump(),
        }

    def branch_graph(self, key: str) -> Graph:
        return self.branch

    def branch_runs(
        self, context: RunContext, map_variables: dict[str, Any], step_log: StepLog
    ) -> list[BranchRun] | str:
        step_name = step_log.internal_name
        parameters = scopes.read_parameters(context.run_log_store, context.run_id, step_name)
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
        # The list is recorded once, on the map step; each branch records its own element.
        step_log.map_values = values  # type: ignore[attr-defined]
        runs = []
        for value in values:
            variables = {**map_variables, self.iterate_as: value}
            name = resolve(self.branch.internal_branch_name, variables)
            runs.append(BranchRun(self.branch, name, variables))
        return runs

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        values = getattr(step_log, "map_values", None)
        if not isinstance(values, list):
            return (
                f"map {step_log.internal_name!r} has no recorded elements (map_values): its "
                "fan-out did not complete"
            )
        return [
            resolve(self.branch.internal_branch_name, {**map_variables, self.iterate_as: value})
            for value in values
        ]

    def _describe_branch(self, branch_log: BranchLog, run: BranchRun) -> None:
        element = {self.iterate_as: run.map_variables[self.iterate_as]}
        branch_log.map_variable = element  # type: ignore[attr-defined]

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
        from magnus.tasks import import_function

        try:
            return import_function(self.reducer)(values)
        except Exception as exc:
            raise RuntimeError(
                f"reducer {self.reducer} raised {type(exc).__name__}: {exc} for parameter {key!r}"
            ) from exc


class DagNode(CompositeNode):
    """Runs a pipeline defined in another YAML file as its single branch."""

    node_type: ClassVar[str] = "dag"

    dag_definition: str
    branch: Any = None

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        plugins: MagnusPlugins,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        from magnus.graph import build_included_graph

        raw = definition.pop("branch", None) if from_dump else None
        if raw is None:
            path = definition.get("dag_definition")
            if path is None:
                return {}  # reported as a missing required key
            if not isinstance(path, str) or not path.endswith((".yaml", ".yml")):
                problems.append("'dag_definition' must name a pipeline file ending in .yaml")
                return {}
            graph = build_included_graph(path, plugins, f"{internal_name}.dag", problems)
        else:
            graph = cls._build_branch(raw, f"{internal_name}.dag", plugins, problems, from_dump)
        return {"branch": graph} if graph is not None else {}

    def definition(self) -> dict[str, Any]:
        # The loaded graph travels too, so a run can be rebuilt without the file.
        return {
            **super().definition(),
            "dag_definition": self.dag_definition,
            "branch": self.branch.dump(),
        }

    def branch_graph(self, key: str) -> Graph:
        return self.branch

    def branch_runs(
        self, context: RunContext, map_variables: dict[str, Any], step_log: StepLog
    ) -> list[BranchRun]:
        name = resolve(self.branch.internal_branch_name, map_variables)
        return [BranchRun(self.branch, name, map_variables)]

    def _graphs(self) -> list[Graph]:
        return [self.branch]


def _missing_summary(missing: list[str], expected: int) -> str:
    names = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
    return (
        f"{len(missing)} of {expected} branches have no branch log ({names}): the fan-out did "
        "not complete or their records were lost"
    )


def _failure_summary(failed: list[BranchLog]) -> str:
    parts = []
    for branch in failed[:5]:
        state = "did not finish" if branch.status == PROCESSING else branch.status
        detail = f": {branch.message}" if branch.message else ""
        parts.append(f"branch {branch.internal_name} {state}{detail}")
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    return "; ".join(parts) + more


COMPOSITE_TYPES: dict[str, type[CompositeNode]] = {
    node.node_type: node for node in (ParallelNode, MapNode, DagNode)
}
