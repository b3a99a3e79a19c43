"""The Python SDK: build a pipeline from step objects and run it.

``Pipeline(steps=[a, b, c])`` links the steps in list order (a -> b -> c -> success) unless a step
says otherwise (``next=``, ``a >> b``, ``terminate_with_success``/``terminate_with_failure``).
The SDK produces the same definition a YAML file would and builds the graph through the same
code, so a YAML pipeline and its SDK twin record the same ``dag`` and ``dag_hash``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from magnus.exceptions import ConfigurationError
from magnus.nodes import CatalogSettings
from magnus.runlog.models import RunLog

if TYPE_CHECKING:
    from magnus.entrypoints import PreparedRun

logger = logging.getLogger(__name__)

#: When set, ``Pipeline.execute`` writes the pipeline's definition (YAML) to this file and ends
#: the script instead of running it: how ``magnus dag -f script.py`` draws an SDK pipeline.
DEFINITION_FILE_VARIABLE = "MAGNUS_DAG_DEFINITION_FILE"


#: Files a step gets from the catalog before it runs and puts into it after it succeeds: the
#: same model as a YAML step's ``catalog`` block.
Catalog = CatalogSettings


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    next_node: str = Field(default="", alias="next")
    on_failure: str = ""
    terminate_with_success: bool = False
    terminate_with_failure: bool = False

    @model_validator(mode="after")
    def _one_ending(self) -> _Step:
        if self.terminate_with_success and self.terminate_with_failure:
            raise ValueError(
                f"step {self.name!r}: terminate_with_success and terminate_with_failure "
                "are mutually exclusive"
            )
        if (self.terminate_with_success or self.terminate_with_failure) and self.next_node:
            raise ValueError(f"step {self.name!r}: a terminating step cannot also have a next")
        return self

    # Linking, as in 0.5: ``a >> b`` runs b after a; ``a << b`` runs b before a.
    def __rshift__(self, other: _Step) -> _Step:
        self._link(other)
        return other

    def __lshift__(self, other: _Step) -> _Step:
        other._link(self)
        return other

    def depends_on(self, other: _Step) -> _Step:
        """Run this step after ``other``."""
        other._link(self)
        return self

    def _link(self, following: _Step) -> None:
        if self.next_node:
            raise ConfigurationError(f"step {self.name!r} already has a next node")
        self.next_node = following.name

    def definition(
        self, following: str, success: str = "success", fail: str = "fail"
    ) -> dict[str, Any]:
        """The YAML ``steps`` entry of this step.

        ``following`` is its next unless it says otherwise; ``success``/``fail`` are the names
        of the pipeline's terminal steps, where ``terminate_with_*`` leads.
        """
        ending = (
            success
            if self.terminate_with_success
            else fail
            if self.terminate_with_failure
            else self.next_node
        )
        entry: dict[str, Any] = {"type": self._node_type(), "next": ending or following}
        if self.on_failure:
            entry["on_failure"] = self.on_failure
        entry.update(self._fields())
        return entry

    def _node_type(self) -> str:
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        return {}


class _Executable(_Step):
    catalog: Catalog | None = None
    overrides: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(default=1, ge=1)
    #: reuse an earlier result with the same fingerprint (``None``: as the run says)
    cache: bool | None = None

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.cache is not None:
            fields["cache"] = self.cache
        if self.catalog is not None:
            fields["catalog"] = self.catalog.model_dump()
        if self.overrides:
            fields["overrides"] = dict(self.overrides)
        if self.max_attempts != 1:
            fields["max_attempts"] = self.max_attempts
        return fields


def function_path(function: Callable[..., Any] | str) -> str:
    """The importable ``module.function`` path of a function, checked.

    Other processes (parallel branches, containers, pods) import the function by this path, so
    lambdas, nested functions and bound methods are refused.
    """
    if isinstance(function, str):
        return function
    qualname = getattr(function, "__qualname__", "")
    module = getattr(function, "__module__", "")
    if not qualname or not module or "<lambda>" in qualname or "<locals>" in qualname:
        raise ConfigurationError(
            f"{function!r} cannot be a task: other processes must import it by name, so it has "
            "to be a module-level function (no lambdas, closures or nested functions)"
        )
    if "." in qualname:
        raise ConfigurationError(
            f"{qualname} is a method; give a module-level function or a 'module.function' string"
        )
    if module == "__main__":
        module = _main_module_name()
    return f"{module}.{qualname}"


def _main_module_name() -> str:
    main = sys.modules["__main__"]
    path = getattr(main, "__file__", None)
    if not path:
        raise ConfigurationError(
            "Functions defined in an interactive session cannot be tasks: put them in a module"
        )
    try:
        relative = Path(path).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        raise ConfigurationError(
            f"{path} is outside the working directory; run it from the project folder so its "
            "functions can be imported by name"
        ) from None
    name = ".".join(relative.with_suffix("").parts)
    # In this process the script is already loaded as __main__: importing it again under its
    # own name would run it twice.
    sys.modules.setdefault(name, main)
    return name


class PythonTask(_Executable):
    """Calls a python function: a module-level callable or a ``"package.module.function"``."""

    function: Any

    @field_validator("function")
    @classmethod
    def _importable(cls, value: Any) -> str:
        return function_path(value)

    def _node_type(self) -> str:
        return "task"

    def _fields(self) -> dict[str, Any]:
        return {"command_type": "python", "command": self.function, **super()._fields()}


class ShellTask(_Executable):
    """Runs a shell command."""

    command: str

    def _node_type(self) -> str:
        return "task"

    def _fields(self) -> dict[str, Any]:
        return {"command_type": "shell", "command": self.command, **super()._fields()}


class NotebookTask(_Executable):
    """Runs a Jupyter notebook (needs ``magnus-core[notebook]``).

    Parameters are injected into its ``parameters``-tagged cell; cells tagged ``output_cell_tag``
    print dicts that become parameters; the executed notebook goes to the catalog.
    """

    notebook: str
    notebook_output_path: str | None = None
    output_cell_tag: str | None = None
    optional_ploomber_args: dict[str, Any] | None = None

    def _node_type(self) -> str:
        return "task"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"command_type": "notebook", "command": self.notebook}
        for key in ("notebook_output_path", "output_cell_tag", "optional_ploomber_args"):
            if getattr(self, key) is not None:
                fields[key] = getattr(self, key)
        return {**fields, **super()._fields()}


class Task(_Executable):
    """0.5's generic task: ``command`` with a ``command_type`` (python, shell, ...)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    command: str
    command_type: str = "python"

    def _node_type(self) -> str:
        return "task"

    def _fields(self) -> dict[str, Any]:
        extra = {k: v for k, v in (self.model_extra or {}).items() if v is not None}
        return {
            "command_type": self.command_type,
            "command": self.command,
            **extra,
            **super()._fields(),
        }


class Stub(_Executable):
    """Does nothing and succeeds; any extra field is kept, for sketching pipelines."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def _node_type(self) -> str:
        return "stub"

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), **(self.model_extra or {})}


class Step(_Step):
    """A step of any node kind installed, by its ``type``: a third party's, say.

    Its other fields are the kind's own, written as a pipeline YAML would::

        Step(name="greet", type="echo", message="hello")
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    node_type: str = Field(alias="type")

    def _node_type(self) -> str:
        return self.node_type

    def _fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class _Composite(_Step):
    overrides: dict[str, str] = Field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        return {"overrides": dict(self.overrides)} if self.overrides else {}


class Parallel(_Composite):
    """Runs named branches, each a :class:`Pipeline`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    branches: dict[str, Any]

    def _node_type(self) -> str:
        return "parallel"

    def _fields(self) -> dict[str, Any]:
        return {
            "branches": {key: branch.definition() for key, branch in self.branches.items()},
            **super()._fields(),
        }


class Map(_Composite):
    """Runs ``branch`` (a :class:`Pipeline`) for each element of the list ``iterate_on``.

    ``reducer`` decides what the branches' parameters become: ``list`` (default), ``first``,
    ``last``, or a ``package.module.function`` called with the list of values.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    branch: Any
    iterate_on: str
    iterate_as: str
    reducer: Any = "list"

    @field_validator("reducer")
    @classmethod
    def _importable_reducer(cls, value: Any) -> str:
        return value if value in ("list", "first", "last") else function_path(value)

    def _node_type(self) -> str:
        return "map"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "iterate_on": self.iterate_on,
            "iterate_as": self.iterate_as,
            "branch": self.branch.definition(),
        }
        if self.reducer != "list":
            fields["reducer"] = self.reducer
        return {**fields, **super()._fields()}


class Conditional(_Composite):
    """Runs the one branch (a :class:`Pipeline`) named by the value of ``parameter``.

    ``default`` runs when the value names none of ``branches``; without it, the step fails.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    parameter: str
    branches: dict[str, Any]
    default: Any = None

    def _node_type(self) -> str:
        return "conditional"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "parameter": self.parameter,
            "branches": {key: branch.definition() for key, branch in self.branches.items()},
        }
        if self.default is not None:
            fields["default"] = self.default.definition()
        return {**fields, **super()._fields()}


class Loop(_Composite):
    """Runs ``branch`` (a :class:`Pipeline`) until the boolean parameter ``break_on`` is true.

    After ``max_iterations`` iterations the step fails, or succeeds with
    ``on_exhausted="succeed"``. The iteration number (from 0) reaches the branch's steps as the
    map variable ``index_as`` (an argument of that name), ``MAGNUS_LOOP_ITERATION`` and
    :func:`magnus.get_loop_iteration`.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    branch: Any
    break_on: str
    max_iterations: int
    on_exhausted: str = "fail"
    index_as: str = "loop_iteration"

    def _node_type(self) -> str:
        return "loop"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "branch": self.branch.definition(),
            "break_on": self.break_on,
            "max_iterations": self.max_iterations,
        }
        if self.on_exhausted != "fail":
            fields["on_exhausted"] = self.on_exhausted
        if self.index_as != "loop_iteration":
            fields["index_as"] = self.index_as
        return {**fields, **super()._fields()}


class Dag(_Composite):
    """Runs the pipeline of another YAML file (``dag_definition``) as a step."""

    dag_definition: str

    def _node_type(self) -> str:
        return "dag"

    def _fields(self) -> dict[str, Any]:
        return {"dag_definition": self.dag_definition, **super()._fields()}


class Success(BaseModel):
    """The success step of a pipeline."""

    name: str = "success"


class Fail(BaseModel):
    """The fail step of a pipeline."""

    name: str = "fail"


class Pipeline(BaseModel):
    """A pipeline built from steps; ``execute`` runs it and returns the run log."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    steps: list[Any]
    start_at: Any = None
    name: str = ""
    description: str = ""
    add_terminal_nodes: bool = True

    def definition(self) -> dict[str, Any]:
        """The ``dag`` mapping a YAML pipeline file would hold."""
        steps: dict[str, Any] = {}
        ordinary = [s for s in self.steps if isinstance(s, _Step)]
        terminals = [s for s in self.steps if isinstance(s, (Success, Fail))]
        success_name = next((s.name for s in terminals if isinstance(s, Success)), "success")
        fail_name = next((s.name for s in terminals if isinstance(s, Fail)), "fail")
        for index, step in enumerate(ordinary):
            following = ordinary[index + 1].name if index + 1 < len(ordinary) else success_name
            steps[step.name] = step.definition(following, success_name, fail_name)
        for terminal in terminals:
            steps[terminal.name] = {"type": "success" if isinstance(terminal, Success) else "fail"}
        if self.add_terminal_nodes:
            if not any(isinstance(t, Success) for t in terminals):
                steps.setdefault("success", {"type": "success"})
            if not any(isinstance(t, Fail) for t in terminals):
                steps.setdefault("fail", {"type": "fail"})
        if self.start_at is not None:
            start = self.start_at.name
        else:
            start = ordinary[0].name if ordinary else ""
        definition: dict[str, Any] = {"start_at": start, "steps": steps}
        if self.description:
            definition["description"] = self.description
        if self.name:
            definition["name"] = self.name
        return definition

    def execute(
        self,
        configuration_file: str = "",
        run_id: str = "",
        tag: str = "",
        parameters_file: str = "",
        use_cached: str = "",
        log_level: str = "WARNING",
        output_pipeline_definition: str = "magnus-pipeline.yaml",
        reuse: bool | None = None,
    ) -> RunLog | None:
        """Run the pipeline; returns the run log (it does not raise when the run fails).

        ``reuse``: reuse the result of an earlier run of a step with the same fingerprint
        (``None``: as the configuration says; a step's own ``cache`` decides for it).
        """
        document = {"dag": self.definition()}
        _stop_for_picture(document)
        from magnus import config as config_mod
        from magnus import entrypoints
        from magnus.building import build_graph
        from magnus.plugins import get_plugins

        logging.getLogger("magnus").setLevel(log_level.upper())
        plugins = get_plugins()
        graph = build_graph(document["dag"], plugins, source="the SDK pipeline")
        run = entrypoints.prepare_run(
            configuration_file=config_mod.configuration_file_for_sdk(configuration_file),
            graph=graph,
            parameters_file=parameters_file,
            run_id=run_id,
            tag=tag,
            use_cached=use_cached,
            reuse=reuse,
        )
        return _run(run, document, output_pipeline_definition)


def _stop_for_picture(document: dict[str, Any]) -> None:
    """Under `magnus dag -f script.py`, which wants the picture, not a run: write the definition
    and stop the script here, before anything after execute() runs."""
    definition_file = os.environ.get(DEFINITION_FILE_VARIABLE)
    if definition_file:
        import yaml

        Path(definition_file).write_text(yaml.safe_dump(document, sort_keys=False))
        raise SystemExit(0)


def _run(run: PreparedRun, document: dict[str, Any], output_file: str) -> RunLog | None:
    """Run a prepared pipeline or job; an orchestrator's executor renders it instead (its
    containers load it from ``output_file``, written here) and ``None`` is returned."""
    from magnus import entrypoints
    from magnus.console import run_with_reporter

    if not run.executor.traverses:
        import yaml

        Path(output_file).write_text(yaml.safe_dump(document, sort_keys=False))
        run.context.pipeline_file = output_file
        entrypoints.execute(run)
        return None
    run_log = run_with_reporter(run, summary=os.environ.get("MAGNUS_QUIET") is None)
    assert run_log is not None  # a traversing executor always returns the run log
    return run_log


# ------------------------------------------------------------------------------ jobs


class _Job(_Executable):
    """A single task run without a pipeline (``magnus.jobs``): ``execute`` runs it alone.

    Its run log is a pipeline's (code identity, parameters, catalog, attempts), recorded as
    ``execution_plan: unchained``; ``magnus retry`` re-runs a failed job.
    """

    #: the job's step name in the run log
    name: str = "job"

    @model_validator(mode="after")
    def _leads_nowhere(self) -> _Job:
        if self.next_node or self.on_failure:
            raise ValueError(f"job {self.name!r}: a job is a single step and leads to no other")
        if self.terminate_with_success or self.terminate_with_failure:
            raise ValueError(f"job {self.name!r}: a job ends with its task; it has no terminate")
        return self

    def job_definition(self) -> dict[str, Any]:
        """The ``job`` mapping a job YAML file would hold."""
        step = self.definition(following="success")
        for key in ("type", "next"):
            step.pop(key, None)
        return {"name": self.name, **step}

    def execute(
        self,
        configuration_file: str = "",
        run_id: str = "",
        tag: str = "",
        parameters_file: str = "",
        log_level: str = "WARNING",
        output_job_definition: str = "magnus-job.yaml",
        reuse: bool | None = None,
    ) -> RunLog | None:
        """Run the job; returns the run log (it does not raise when the job fails).

        As :meth:`Pipeline.execute`: an orchestrator's executor renders it instead (the job's
        containers load it from ``output_job_definition``) and ``None`` is returned.
        """
        document = {"job": self.job_definition()}
        _stop_for_picture(document)
        from magnus import config as config_mod
        from magnus import entrypoints
        from magnus.building import build_job_graph
        from magnus.plugins import get_plugins

        logging.getLogger("magnus").setLevel(log_level.upper())
        graph = build_job_graph(document, get_plugins(), "the SDK job")
        run = entrypoints.prepare_job(
            configuration_file=config_mod.configuration_file_for_sdk(configuration_file),
            graph=graph,
            parameters_file=parameters_file,
            run_id=run_id,
            tag=tag,
            reuse=reuse,
        )
        return _run(run, document, output_job_definition)


class PythonJob(_Job, PythonTask):
    """A python function run as a job: ``PythonJob(function=train).execute()``."""


class ShellJob(_Job, ShellTask):
    """A shell command run as a job."""


class NotebookJob(_Job, NotebookTask):
    """A Jupyter notebook run as a job (needs ``magnus-core[notebook]``)."""
