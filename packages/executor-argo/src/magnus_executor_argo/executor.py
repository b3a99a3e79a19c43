"""The ``argo`` executor: renders a pipeline as an Argo Workflow instead of running it.

Nothing runs where ``magnus execute -c argo.yaml`` is called: the workflow's containers call
magnus back, one step (``execute_single_node``) or one composite's fan-out/fan-in (``fan``) at
a time, so every step goes through the same leaf wrapper as a local run and the run log has the
same structure. Inside those containers the same configuration builds this executor again, and
it runs the one leaf step it is asked to run, in its own process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, model_validator

from magnus.executors.base import BaseExecutor
from magnus_executor_argo.config import (
    STEP_KEYS,
    ArgoOverride,
    PersistentVolume,
    PullPolicy,
    Resources,
    RetryStrategy,
    SecretFromK8s,
    StepSettings,
    Toleration,
)

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.graph import Graph
    from magnus.nodes import BaseNode

logger = logging.getLogger(__name__)


class ArgoExecutor(BaseExecutor):
    """Renders the pipeline as an Argo ``Workflow`` (or a ``CronWorkflow`` with ``schedule``).

    Every key is described in the package README. String values may use ``$name`` placeholders
    filled from ``MAGNUS_VAR_name`` when the workflow is rendered.
    """

    service_name: ClassVar[str] = "argo"
    #: a transpiler: ``execute`` renders the graph, an orchestrator runs it
    traverses: ClassVar[bool] = False

    image: str = Field(min_length=1)
    name: str = "magnus-dag-"
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    max_workflow_duration_in_seconds: int = Field(default=2 * 24 * 60 * 60, gt=0)
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    parallelism: int | None = Field(default=None, gt=0)
    service_account_name: str | None = None
    resources: Resources = Field(default_factory=Resources)
    retry_strategy: RetryStrategy = Field(default_factory=RetryStrategy)
    max_step_duration_in_seconds: int = Field(default=2 * 60 * 60, gt=0)
    image_pull_policy: PullPolicy = ""
    expose_parameters_as_inputs: bool = True
    secrets_from_k8s: list[SecretFromK8s] = Field(default_factory=list)
    persistent_volumes: list[PersistentVolume] = Field(default_factory=list)
    output_file: str = "argo-pipeline.yaml"
    overrides: dict[str, ArgoOverride] = Field(default_factory=dict)
    #: a cron schedule (or several): render a ``CronWorkflow`` instead of a ``Workflow``
    schedule: str | list[str] | None = None

    @model_validator(mode="after")
    def _no_duplicates(self) -> ArgoExecutor:
        claims = [volume.name for volume in self.persistent_volumes]
        _refuse_duplicates(claims, "persistent_volumes claim name")
        _refuse_duplicates([v.mount_path for v in self.persistent_volumes], "mount_path")
        _refuse_duplicates(
            [s.environment_variable for s in self.secrets_from_k8s],
            "secrets_from_k8s environment_variable",
        )
        if isinstance(self.schedule, list) and not self.schedule:
            raise ValueError("schedule must name at least one cron schedule")
        return self

    @property
    def runs_in_one_process(self) -> bool:
        """Every step runs in a pod of its own."""
        return False

    # ------------------------------------------------------------------ effective configuration

    def step_settings(
        self, node: BaseNode | None, variables: dict[str, str] | None = None
    ) -> StepSettings:
        """The effective configuration of ``node`` (the executor's own for ``None``).

        The step's selected override (``overrides: {argo: <key>}`` on the step) is merged over
        the executor's keys, one level deep as in magnus 0.5, then ``$name`` placeholders are
        filled from ``variables`` (strictly: an undefined one is an error naming it).
        """
        from magnus.config import substitute_variables

        where = f"executor service {self.service_name!r}"
        raw: dict[str, Any] = self.model_dump(include=set(STEP_KEYS))
        key = self.override_key(node)
        if key is not None and node is not None:
            where = f"{where}, override {key!r} of step {node.internal_name!r}"
            raw.update(self.overrides[key].model_dump(exclude_unset=True))
        filled = substitute_variables(raw, variables or {}, where)
        return _validated(StepSettings, filled, where)

    def override_key(self, node: BaseNode | None) -> str | None:
        """The override ``node`` selects for this executor, checked to exist."""
        from magnus.exceptions import ConfigurationError

        if node is None or node.is_terminal:
            return None  # terminal steps use the plain configuration (as in 0.5)
        selected: dict[str, str] = getattr(node, "overrides", None) or {}
        key = selected.get(self.service_name)
        if key is None:
            return None
        if key not in self.overrides:
            raise ConfigurationError(
                f"Step {node.internal_name!r}: no override of key: {key} found in the "
                f"overrides section of the {self.service_name!r} executor"
            )
        return key

    def filled(self, variables: dict[str, str] | None = None) -> ArgoExecutor:
        """This configuration with its ``$name`` placeholders filled from ``variables``."""
        from magnus.config import substitute_variables

        where = f"executor service {self.service_name!r}"
        # Overrides are filled per step (step_settings): one no step selects may stay unfilled.
        raw = substitute_variables(self.model_dump(exclude={"overrides"}), variables or {}, where)
        return _validated(type(self), {**raw, "overrides": self.overrides}, where)

    # ------------------------------------------------------------------ rendering

    def render(self, context: RunContext) -> str:
        """The workflow of ``context``'s pipeline as YAML. Nothing runs, nothing is written."""
        from magnus_executor_argo.render import render_yaml

        return render_yaml(self, context)

    def write(self, context: RunContext) -> Path:
        """Render and write the workflow to ``output_file``; returns its path."""
        text = self.render(context)
        path = Path(self.filled(context.variables).output_file)
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def execute_graph(
        self,
        context: RunContext,
        graph: Graph,
        map_variables: dict[str, Any] | None = None,
    ) -> None:
        """Render the pipeline (the whole graph only); a branch graph is traversed here.

        ``magnus execute`` hands the pipeline's graph: it is rendered and written, and nothing
        runs. A branch graph only reaches here through ``execute_single_branch`` in a pod,
        which the rendered workflow never calls; it is then run as the local executor would.
        """
        if graph is context.dag and not map_variables:
            path = self.write(context)
            print(f"Wrote the Argo workflow of {context.pipeline_file} to {path}")
            return
        super().execute_graph(context, graph, map_variables)


def _refuse_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def _validated(model: Any, data: dict[str, Any], where: str) -> Any:
    """``model`` built from ``data``; a problem is a ``ConfigurationError`` saying where."""
    from pydantic import ValidationError

    from magnus.exceptions import ConfigurationError
    from magnus.services import describe_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, where)) from None
