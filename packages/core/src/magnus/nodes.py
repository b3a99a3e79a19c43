"""Step kinds: task, stub, success, fail -- and what every kind of step has in common.

A node is a pydantic model built from one entry of a graph's ``steps``. ``dump()`` gives the
definition back with the computed names, in the shape ``run_config.dag`` records, so a graph can
be rebuilt from a run log alone (``magnus.building.graph_from_dump``).

Node kinds are plugins: magnus' own register through the ``register_node_types`` hook like a
third party's. A kind builds itself from its definition with :meth:`BaseNode.from_definition`;
what it needs from outside (the task types installed, its branches built as graphs) it asks the
:class:`GraphBuilder` it is given, so nothing here knows the plugin manager.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from magnus.services import describe_validation_error
from magnus.tasks import BaseTaskType

#: fields ``dump()`` adds that a definition must not carry (stripped when rebuilding from a dump)
COMPUTED_FIELDS = ("name", "internal_name", "internal_branch_name", "is_composite")


class NodeDefinitionError(Exception):
    """One or more problems with a single step definition (collected by graph validation)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class GraphBuilder(Protocol):
    """What a node kind may ask of whoever builds the graph (``magnus.building``)."""

    def task_type(self, command_type: str) -> type[BaseTaskType]:
        """The task type of ``command_type``; ``NodeDefinitionError`` naming the known ones."""
        ...

    def branch(
        self, definition: Any, internal_branch_name: str, problems: list[str], from_dump: bool
    ) -> Any:
        """The graph of a branch (``None`` when it has problems, added to ``problems``)."""
        ...

    def included(self, path: str, internal_branch_name: str, problems: list[str]) -> Any:
        """The graph of the pipeline file at ``path`` as a branch (``None`` on problems)."""
        ...


class CatalogSettings(BaseModel):
    """A step's ``catalog`` block: glob patterns to get before and put after the step."""

    model_config = ConfigDict(extra="forbid")

    get: list[str] = Field(default_factory=list)
    put: list[str] = Field(default_factory=list)


class BaseNode(BaseModel):
    """What every step has: its name and where it sits in the pipeline."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    node_type: ClassVar[str] = ""
    is_composite: ClassVar[bool] = False
    is_terminal: ClassVar[bool] = False

    name: str
    internal_name: str
    internal_branch_name: str = ""

    def definition(self) -> dict[str, Any]:
        """The user-facing fields, as a pipeline YAML would write them."""
        return {}

    def dump(self) -> dict[str, Any]:
        """The definition with ``type`` and the computed names, for ``run_config.dag``."""
        return {
            "type": self.node_type,
            "name": self.name,
            "internal_name": self.internal_name,
            "internal_branch_name": self.internal_branch_name,
            "is_composite": self.is_composite,
            **self.definition(),
        }

    @classmethod
    def from_definition(
        cls,
        name: str,
        definition: dict[str, Any],
        internal_branch_name: str,
        builder: GraphBuilder,
        from_dump: bool = False,
    ) -> BaseNode:
        """Build the node from its ``steps`` entry (``type`` already removed).

        ``from_dump``: the entry comes from ``run_config.dag`` rather than a pipeline file.
        Problems are raised as one ``NodeDefinitionError`` listing them all.
        """
        fields = {
            **definition,
            "name": name,
            "internal_name": internal_name_of(name, internal_branch_name),
            "internal_branch_name": internal_branch_name,
        }
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise NodeDefinitionError(_problems(exc)) from None


def internal_name_of(name: str, internal_branch_name: str) -> str:
    """``<branch internal name>.<step>``, or the bare name at the top level."""
    return f"{internal_branch_name}.{name}" if internal_branch_name else name


def _problems(exc: ValidationError) -> list[str]:
    return describe_validation_error(exc, "").splitlines()


class RoutedNode(BaseNode):
    """A step that leads on: to ``next`` when it succeeds, to ``on_failure`` when it fails."""

    next_node: str = Field(alias="next")
    on_failure: str = ""
    overrides: dict[str, str] = Field(default_factory=dict)

    def definition(self) -> dict[str, Any]:
        return {
            "next": self.next_node,
            "on_failure": self.on_failure,
            "overrides": dict(self.overrides),
        }


class ExecutableNode(RoutedNode):
    """A leaf step that runs and then moves on: task and stub."""

    catalog: CatalogSettings | None = None
    max_attempts: int = Field(default=1, ge=1)
    #: reuse an earlier result with the same fingerprint: ``true``, ``false`` (never, e.g. a step
    #: with side effects), or unset (the run decides: ``--reuse``, the configuration's ``reuse``)
    cache: bool | None = None

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "catalog": self.catalog.model_dump() if self.catalog else None,
            "max_attempts": self.max_attempts,
            # Written only when set, so the recorded graph (and dag_hash) of a pipeline that
            # does not use it is what it was.
            **({"cache": self.cache} if self.cache is not None else {}),
        }

    def task(self) -> BaseTaskType | None:
        """What each attempt of the step runs (``None``: nothing, it succeeds at once).

        The leaf wrapper does the rest -- parameters, catalog, retries, the record -- so a new
        kind of leaf step only says what it runs.
        """
        return None


class TaskNode(ExecutableNode):
    """Runs a command of a task type chosen by ``command_type`` (default ``python``)."""

    node_type: ClassVar[str] = "task"

    command_type: str = "python"
    executable: BaseTaskType = Field(exclude=True)

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "command_type": self.command_type,
            **self.executable.model_dump(mode="json"),
        }

    def task(self) -> BaseTaskType:
        return self.executable

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
        command_type = definition.pop("command_type", "python")
        task_cls = builder.task_type(str(command_type))
        node_keys = {f.alias or n for n, f in cls.model_fields.items()} | set(cls.model_fields)
        task_part = {k: v for k, v in definition.items() if k not in node_keys}
        node_part = {k: v for k, v in definition.items() if k in node_keys}
        problems: list[str] = []
        task: BaseTaskType | None = None
        try:
            task = task_cls.model_validate(task_part)
        except ValidationError as exc:
            problems += _problems(exc)
        if task is None:
            # Still validate the node's own fields so every problem is reported at once.
            try:
                ExecutableNode.model_validate({**node_part, "name": name, "internal_name": name})
            except ValidationError as exc:
                problems += _problems(exc)
            raise NodeDefinitionError(problems)
        return super().from_definition(
            name,
            {**node_part, "command_type": command_type, "executable": task},
            internal_branch_name,
            builder,
        )


class StubNode(ExecutableNode):
    """Does nothing and succeeds; accepts any extra fields, for sketching pipelines."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    node_type: ClassVar[str] = "stub"

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), **(self.model_extra or {})}


class SuccessNode(BaseNode):
    """Ends its graph successfully: the enclosing run or branch becomes SUCCESS."""

    node_type: ClassVar[str] = "success"
    is_terminal: ClassVar[bool] = True


class FailNode(BaseNode):
    """Ends its graph in failure: the enclosing run or branch becomes FAIL."""

    node_type: ClassVar[str] = "fail"
    is_terminal: ClassVar[bool] = True
