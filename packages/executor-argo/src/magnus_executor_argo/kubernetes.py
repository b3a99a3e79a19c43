"""Configuration blocks as the Kubernetes and Argo objects of hera's models.

Fields Kubernetes types as "int or string" (IntOrString, Quantity) are always written as strings:
Argo's published schema types them as strings only, and a workflow must pass it unpatched.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from hera.workflows import models as m
from pydantic import BaseModel, ValidationError

from magnus.exceptions import ConfigurationError
from magnus_executor_argo.config import (
    KubernetesObject,
    PodGC,
    Resources,
    RetryStrategy,
    Toleration,
    TTLStrategy,
)

GPU_RESOURCE = "nvidia.com/gpu"
ModelT = TypeVar("ModelT", bound=BaseModel)


def int_or_string(value: int | str) -> m.IntOrString:
    """An IntOrString field, written as a string (the published schema's type)."""
    return m.IntOrString(str(value))


def duration(value: int | str) -> str:
    """An Argo duration: a number of seconds becomes ``<n>s``; ``10m`` stays as it is."""
    return f"{value}s" if isinstance(value, int) or str(value).isdigit() else str(value)


def retry_strategy(strategy: RetryStrategy, limit: int | None = None) -> m.RetryStrategy:
    """Argo's retryStrategy; ``limit`` replaces the block's own (a task step's attempts)."""
    backoff = strategy.backoff
    return m.RetryStrategy(
        limit=int_or_string(strategy.limit if limit is None else limit),
        retry_policy=strategy.retry_policy,
        backoff=m.Backoff(
            duration=duration(backoff.duration),
            factor=int_or_string(backoff.factor),
            max_duration=None if backoff.max_duration is None else duration(backoff.max_duration),
        ),
    )


def pod_gc(config: PodGC | None) -> m.PodGC | None:
    """``spec.podGC``; ``None`` (``pod_gc: null``) keeps every pod."""
    if config is None:
        return None
    delay = config.delete_delay_duration
    return m.PodGC(
        strategy=config.strategy,
        delete_delay_duration=None if delay is None else duration(delay),
    )


def ttl_strategy(config: TTLStrategy | None) -> m.TTLStrategy | None:
    """``spec.ttlStrategy``, or ``None`` when not configured."""
    if config is None:
        return None
    return m.TTLStrategy(
        seconds_after_completion=config.seconds_after_completion,
        seconds_after_success=config.seconds_after_success,
        seconds_after_failure=config.seconds_after_failure,
    )


def kubernetes_object(model: type[ModelT], raw: KubernetesObject, where: str) -> ModelT:
    """``raw`` (a block as written in a Kubernetes manifest) as the hera model ``model``.

    hera's models ignore keys they do not know; here an unknown or misspelt key is an error
    naming it, as for every other key of the configuration.
    """
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        at = ".".join(str(part) for part in problem["loc"])
        raise ConfigurationError(f"{where}: {at}: {problem['msg']}") from None
    unknown = _unknown_key(raw, parsed.model_dump(mode="json", by_alias=True, exclude_none=True))
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {unknown!r}")
    return parsed


def _unknown_key(raw: Any, kept: Any, path: str = "") -> str:
    """The first key of ``raw`` that ``kept`` (its parsed and dumped copy) lost, or ``""``."""
    if isinstance(raw, dict) and isinstance(kept, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept:
                return where
            found = _unknown_key(value, kept[key], where)
            if found:
                return found
    if isinstance(raw, list) and isinstance(kept, list):
        for index, (value, copy) in enumerate(zip(raw, kept, strict=False)):
            found = _unknown_key(value, copy, f"{path}[{index}]")
            if found:
                return found
    return ""


def env_vars(env: dict[str, str]) -> list[m.EnvVar]:
    """Plain environment variables, in the order configured."""
    return [m.EnvVar(name=name, value=str(value)) for name, value in env.items()]


def env_from(sources: list[KubernetesObject], where: str) -> list[m.EnvFromSource] | None:
    """``envFrom`` sources (config maps, secrets), or ``None`` when there are none."""
    return [kubernetes_object(m.EnvFromSource, source, where) for source in sources] or None


def pod_spec_patch(patch: str | KubernetesObject | None) -> str | None:
    """A ``podSpecPatch`` as Argo takes it: text; a mapping is written as JSON."""
    if patch is None or isinstance(patch, str):
        return patch
    return json.dumps(patch, sort_keys=True)


def _quantity(value: str | int | float) -> m.Quantity:
    return m.Quantity(str(value))


def resources(resources: Resources, no_gpu_as_zero: bool = False) -> m.ResourceRequirements:
    """A container's resources; a ``gpu`` limit is Kubernetes' ``nvidia.com/gpu``.

    ``no_gpu_as_zero``: write a missing ``gpu`` as ``0``, for a template whose resources are
    merged over defaults that ask for one (Kubernetes merges limits key by key).
    """
    limits = {
        "memory": _quantity(resources.limits.memory),
        "cpu": _quantity(resources.limits.cpu),
    }
    if resources.limits.gpu is not None:
        limits[GPU_RESOURCE] = _quantity(resources.limits.gpu)
    elif no_gpu_as_zero:
        limits[GPU_RESOURCE] = _quantity(0)
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
