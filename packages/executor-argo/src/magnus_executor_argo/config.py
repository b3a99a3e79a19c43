"""The ``argo`` executor's configuration, and what one step of the workflow gets from it.

:class:`ArgoConfig` holds every key; :func:`step_settings` resolves the settings of one step (the
executor's keys, the override the step selects, ``MAGNUS_VAR_`` placeholders filled) and
:func:`filled` the workflow-wide keys, both when the workflow is rendered.

Every model forbids unknown keys, so a typo in a configuration file is an error naming the key
instead of a setting silently ignored. Keys are written in snake_case as in magnus 0.5; the
Kubernetes/Argo spelling (``retryPolicy``, ``maxDuration``, ``tolerationSeconds``) is accepted
too, because users copy these blocks from Kubernetes manifests.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from magnus.config import substitute_variables
from magnus.exceptions import ConfigurationError
from magnus.nodes import BaseNode
from magnus.services import describe_validation_error

#: the executor's type in configuration files, and its key in a step's ``overrides``
EXECUTOR_NAME = "argo"
#: where a configuration problem is, in error messages
_WHERE = f"executor service {EXECUTOR_NAME!r}"

#: what a Kubernetes quantity may be written as in YAML (``cpu: 1``, ``cpu: 250m``, ``0.5``)
QuantityValue = str | int | float


class ConfigModel(BaseModel):
    """Strict configuration block: unknown keys are errors; field or alias names both work."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Limits(ConfigModel):
    """Resource limits of a container; ``gpu`` is rendered as ``nvidia.com/gpu``."""

    memory: QuantityValue = "1Gi"
    cpu: QuantityValue = "250m"
    gpu: QuantityValue | None = None


class Requests(ConfigModel):
    """Resource requests of a container."""

    memory: QuantityValue = "1Gi"
    cpu: QuantityValue = "250m"


class Resources(ConfigModel):
    """``resources``: limits and requests both default to 1Gi of memory and 250m of cpu."""

    limits: Limits = Field(default_factory=Limits)
    requests: Requests = Field(default_factory=Requests)


class Backoff(ConfigModel):
    """Argo's retry backoff: seconds (or Argo durations such as ``2m``) and an integer factor.

    No ``max_duration`` by default: Argo counts it from the step's first attempt, so a step
    running longer than it would never be retried; ``limit`` (or ``max_attempts``) bounds retries.
    """

    duration: int | str = 10
    factor: int = Field(default=2, ge=1)
    max_duration: int | str | None = Field(default=None, alias="maxDuration")


RetryPolicy = Literal["Always", "OnFailure", "OnError", "OnTransientError"]


class RetryStrategy(ConfigModel):
    """``retry_strategy``: Argo's retryStrategy.

    ``limit`` retries the containers magnus itself runs around composites (fan-out, fan-in);
    a task step is retried ``max_attempts - 1`` times whatever ``limit`` says, so that magnus
    knows which attempt is the last one (see the README).
    """

    limit: int = Field(default=0, ge=0)
    retry_policy: RetryPolicy = Field(default="Always", alias="retryPolicy")
    backoff: Backoff = Field(default_factory=Backoff)


class Toleration(ConfigModel):
    """A Kubernetes toleration."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")


class SecretFromK8s(ConfigModel):
    """An environment variable filled from a key of a Kubernetes secret (never a value)."""

    environment_variable: str = Field(min_length=1)
    secret_name: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)


class PersistentVolume(ConfigModel):
    """A PersistentVolumeClaim mounted at ``mount_path`` in every container."""

    name: str = Field(min_length=1, description="the name of the PersistentVolumeClaim")
    mount_path: str = Field(min_length=1)

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        # Kubernetes only mounts at absolute paths; a relative one would fail at submit time.
        if not value.startswith(("/", "$")):
            raise ValueError(f"mount_path must be an absolute path, not {value!r}")
        return value


PullPolicy = Literal["", "Always", "IfNotPresent", "Never"]

#: a Kubernetes object written as in a manifest (``readOnlyRootFilesystem``, ``nodeAffinity``);
#: checked against hera's models of Kubernetes when the workflow is rendered
KubernetesObject = dict[str, Any]

PodGCStrategy = Literal[
    "OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess"
]


class PodGC(ConfigModel):
    """``pod_gc``: when Argo deletes the pods of a workflow (failed pods keep their logs)."""

    strategy: PodGCStrategy = "OnPodSuccess"
    #: seconds (or an Argo duration such as ``10m``) a finished pod is kept before deletion
    delete_delay_duration: int | str | None = Field(default=None, alias="deleteDelayDuration")


class TTLStrategy(ConfigModel):
    """``ttl_strategy``: seconds a finished Workflow object is kept before Argo deletes it."""

    seconds_after_completion: int | None = Field(default=None, ge=0, alias="secondsAfterCompletion")
    seconds_after_success: int | None = Field(default=None, ge=0, alias="secondsAfterSuccess")
    seconds_after_failure: int | None = Field(default=None, ge=0, alias="secondsAfterFailure")


class Metadata(ConfigModel):
    """Labels and annotations (of every pod, or of the Workflow objects a run creates)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
#: the keys that only mean something for a ``CronWorkflow`` (a ``schedule``)
CRON_KEYS = (
    "concurrency_policy",
    "timezone",
    "starting_deadline_seconds",
    "successful_jobs_history_limit",
    "failed_jobs_history_limit",
)


class StepSettings(ConfigModel):
    """The effective configuration of one step: the executor's, with the step's override.

    These are the keys that can differ between templates; ``ArgoConfig`` declares the same keys
    with the same defaults, and an override names a subset of them.
    """

    image: str
    tolerations: list[Toleration] | None = None
    max_step_duration_in_seconds: int = Field(default=7200, gt=0)
    node_selector: dict[str, str] | None = None
    parallelism: int | None = Field(default=None, gt=0)
    resources: Resources = Field(default_factory=Resources)
    image_pull_policy: PullPolicy = ""
    retry_strategy: RetryStrategy = Field(default_factory=RetryStrategy)
    fail_fast: bool | None = None
    security_context: KubernetesObject | None = None
    affinity: KubernetesObject | None = None
    priority_class_name: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_from: list[KubernetesObject] = Field(default_factory=list)
    pod_spec_patch: str | KubernetesObject | None = None
    batch_size: int | None = Field(default=None, gt=0)
    label_map_elements: bool = False


STEP_KEYS = tuple(StepSettings.model_fields)


class ArgoOverride(ConfigModel):
    """What a step may override (magnus 0.5's list, plus ``fail_fast`` for map steps)."""

    image: str | None = None
    tolerations: list[Toleration] | None = None
    max_step_duration_in_seconds: int | None = Field(default=None, gt=0)
    node_selector: dict[str, str] | None = None
    parallelism: int | None = Field(default=None, gt=0)
    resources: Resources | None = None
    image_pull_policy: PullPolicy | None = None
    retry_strategy: RetryStrategy | None = None
    fail_fast: bool | None = None
    security_context: KubernetesObject | None = None
    affinity: KubernetesObject | None = None
    priority_class_name: str | None = None
    env: dict[str, str] | None = None
    env_from: list[KubernetesObject] | None = None
    pod_spec_patch: str | KubernetesObject | None = None
    batch_size: int | None = Field(default=None, gt=0)
    label_map_elements: bool | None = None


class ArgoConfig(ConfigModel):
    """Every key of the ``argo`` executor, each described in the package README.

    String values may hold ``$name`` placeholders, filled from ``MAGNUS_VAR_name`` when the
    workflow is rendered (:func:`filled`, :func:`step_settings`), never when the configuration
    is read: a pod builds the executor again from the same file, without those variables.
    """

    image: str = Field(min_length=1)
    #: ``None``: derived from the pipeline file's name
    name: str | None = None
    namespace: str | None = None
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
    pod_gc: PodGC | None = Field(default_factory=PodGC)
    ttl_strategy: TTLStrategy | None = None
    archive_logs: bool | None = None
    pod_metadata: Metadata = Field(default_factory=Metadata)
    workflow_metadata: Metadata = Field(default_factory=Metadata)
    image_pull_secrets: list[str] = Field(default_factory=list)
    pod_security_context: KubernetesObject | None = None
    security_context: KubernetesObject | None = None
    affinity: KubernetesObject | None = None
    priority_class_name: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_from: list[KubernetesObject] = Field(default_factory=list)
    pod_spec_patch: str | KubernetesObject | None = None
    batch_size: int | None = Field(default=None, gt=0)
    #: a map's items carry a label of their element: its value shows in Argo's UI and status
    label_map_elements: bool = False
    #: a cron schedule (or several): render a ``CronWorkflow`` instead of a ``Workflow``
    schedule: str | list[str] | None = None
    concurrency_policy: ConcurrencyPolicy | None = None
    timezone: str | None = None
    starting_deadline_seconds: int | None = Field(default=None, ge=0)
    successful_jobs_history_limit: int | None = Field(default=None, ge=0)
    failed_jobs_history_limit: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _no_duplicates(self) -> ArgoConfig:
        claims = [volume.name for volume in self.persistent_volumes]
        _refuse_duplicates(claims, "persistent_volumes claim name")
        _refuse_duplicates([v.mount_path for v in self.persistent_volumes], "mount_path")
        _refuse_duplicates(
            [s.environment_variable for s in self.secrets_from_k8s],
            "secrets_from_k8s environment_variable",
        )
        if isinstance(self.schedule, list) and not self.schedule:
            raise ValueError("schedule must name at least one cron schedule")
        if self.schedule is None:
            for key in CRON_KEYS:
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} applies to a schedule: set schedule too")
        return self


ConfigT = TypeVar("ConfigT", bound=ArgoConfig)


# ---------------------------------------------------------------------------- resolution
#
# Placeholders are filled and overrides merged only here, when rendering: what a step gets is
# the executor's keys, the override it selects one level deep over them, then MAGNUS_VAR_ values.


def filled(config: ConfigT, variables: dict[str, str] | None = None) -> ConfigT:
    """``config`` (of the same type) with its ``$name`` placeholders filled from ``variables``.

    Overrides are left as they are: they are filled per step (:func:`step_settings`), so one
    that no step selects may keep a placeholder nobody defines.
    """
    raw = substitute_variables(config.model_dump(exclude={"overrides"}), variables or {}, _WHERE)
    validated: ConfigT = _validated(type(config), {**raw, "overrides": config.overrides}, _WHERE)
    return validated


def override_key(config: ArgoConfig, node: BaseNode | None) -> str | None:
    """The override ``node`` selects (``overrides: {argo: <key>}``), checked to exist."""
    if node is None or node.is_terminal:
        return None  # terminal steps use the plain configuration (as in 0.5)
    selected: dict[str, str] = getattr(node, "overrides", None) or {}
    key = selected.get(EXECUTOR_NAME)
    if key is None:
        return None
    if key not in config.overrides:
        raise ConfigurationError(
            f"Step {node.internal_name!r}: no override of key: {key} found in the "
            f"overrides section of the {EXECUTOR_NAME!r} executor"
        )
    return key


def step_settings(
    config: ArgoConfig, node: BaseNode | None, variables: dict[str, str] | None = None
) -> StepSettings:
    """The effective configuration of ``node`` (the executor's own for ``None``).

    The step's selected override is merged over the executor's keys, one level deep as in
    magnus 0.5, then ``$name`` placeholders are filled from ``variables`` (strictly: an
    undefined one is an error naming it and where it was used).
    """
    where = _WHERE
    raw: dict[str, Any] = config.model_dump(include=set(STEP_KEYS))
    key = override_key(config, node)
    if key is not None and node is not None:
        where = f"{where}, override {key!r} of step {node.internal_name!r}"
        raw.update(config.overrides[key].model_dump(exclude_unset=True))
    settings: StepSettings = _validated(
        StepSettings, substitute_variables(raw, variables or {}, where), where
    )
    return settings


def _refuse_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def _validated(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    """``model`` built from ``data``; a problem is a ``ConfigurationError`` saying where."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, where)) from None
