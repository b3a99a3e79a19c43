"""The pieces of the ``argo`` executor's configuration that are more than a scalar.

Every model forbids unknown keys, so a typo in a configuration file is an error naming the key
instead of a setting silently ignored. Keys are written in snake_case as in magnus 0.5; the
Kubernetes/Argo spelling (``retryPolicy``, ``maxDuration``, ``tolerationSeconds``) is accepted
too, because users copy these blocks from Kubernetes manifests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    """Argo's retry backoff: seconds (or Argo durations such as ``2m``) and an integer factor."""

    duration: int | str = 120
    factor: int = Field(default=2, ge=1)
    max_duration: int | str = Field(default=3600, alias="maxDuration")


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


class StepSettings(ConfigModel):
    """The effective configuration of one step: the executor's, with the step's override.

    These are the keys that can differ between templates; the executor declares the same keys
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
