"""Configuration blocks as the Kubernetes and Argo objects of hera's models."""

from __future__ import annotations

from hera.workflows import models as m

from magnus_executor_argo.config import Resources, RetryStrategy, Toleration

GPU_RESOURCE = "nvidia.com/gpu"


def retry_strategy(strategy: RetryStrategy, limit: int | None = None) -> m.RetryStrategy:
    """Argo's retryStrategy; ``limit`` replaces the block's own (a task step's attempts)."""
    backoff = strategy.backoff
    return m.RetryStrategy(
        limit=m.IntOrString(strategy.limit if limit is None else limit),
        retry_policy=strategy.retry_policy,
        backoff=m.Backoff(
            duration=str(backoff.duration),
            factor=m.IntOrString(backoff.factor),
            max_duration=str(backoff.max_duration),
        ),
    )


def _quantity(value: str | int | float) -> m.Quantity:
    return m.Quantity(str(value))


def resources(resources: Resources) -> m.ResourceRequirements:
    """A container's resources; a ``gpu`` limit is Kubernetes' ``nvidia.com/gpu``."""
    limits = {
        "memory": _quantity(resources.limits.memory),
        "cpu": _quantity(resources.limits.cpu),
    }
    if resources.limits.gpu is not None:
        limits[GPU_RESOURCE] = _quantity(resources.limits.gpu)
    requests = {
        "memory": _quantity(resources.requests.memory),
        "cpu": _quantity(resources.requests.cpu),
    }
    return m.ResourceRequirements(limits=limits, requests=requests)


def tolerations(tolerations: list[Toleration] | None) -> list[m.Toleration] | None:
    """Kubernetes tolerations; ``None`` (none configured) stays ``None``."""
    if tolerations is None:
        return None
    return [
        m.Toleration(
            key=t.key,
            operator=t.operator,
            value=t.value,
            effect=t.effect,
            toleration_seconds=t.toleration_seconds,
        )
        for t in tolerations
    ]
