"""What every configurable service has in common.

A service is a pydantic model whose fields are its configuration: unknown keys are rejected with a
message naming the service and the key. ``service_name`` (the ``type`` a configuration file uses)
and ``service_type`` (executor, run_log_store, catalog, secrets, experiment_tracker) are class
variables, so a plugin class declares both and nothing else is needed to register it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, SecretBytes, SecretStr, ValidationError

from magnus.exceptions import ConfigurationError

ServiceT = TypeVar("ServiceT", bound="BaseService")


@dataclass(frozen=True)
class ServiceRole:
    """One of the five services a configuration chooses.

    ``key`` is its configuration key and ``service_type``; ``default`` the built-in ``type``
    used when no configuration names one; ``recorded_as`` its key in ``run_config`` (0.5's).
    """

    key: str
    default: str
    recorded_as: str


#: The five services, said once: configuration, defaults, plugin families and ``run_config``
#: all derive from this.
SERVICE_ROLES = (
    ServiceRole("executor", "local", "executor"),
    ServiceRole("run_log_store", "chunked-fs", "run_log_store"),
    ServiceRole("catalog", "file-system", "catalog_handler"),
    ServiceRole("secrets", "do-nothing", "secrets_handler"),
    ServiceRole("experiment_tracker", "do-nothing", "experiment_tracker"),
)
SERVICE_TYPES = tuple(role.key for role in SERVICE_ROLES)


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret_annotation(arg) for arg in typing.get_args(annotation))


def describe_validation_error(error: ValidationError, what: str) -> str:
    """Turn a pydantic error into one readable line per problem, each naming the key."""
    prefix = f"{what}: " if what else ""
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{prefix}unknown key {key!r}")
        elif item["type"] == "missing":
            lines.append(f"{prefix}missing required key {key!r}")
        else:
            lines.append(f"{prefix}key {key!r}: {item['msg']}")
    return "\n".join(lines)


class BaseService(BaseModel):
    """Base of executors, run-log stores, catalogs, secrets providers and experiment trackers."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    service_name: ClassVar[str] = ""
    service_type: ClassVar[str] = ""
    #: whether ``$name`` placeholders in the configuration are left for the service to fill
    #: (an orchestrator's executor fills them per step); magnus fills all others at start
    fills_variables_itself: ClassVar[bool] = False

    @classmethod
    def from_config(cls: type[ServiceT], config: dict[str, Any] | None) -> ServiceT:
        """Build the service from the ``config`` mapping of its configuration block."""
        try:
            return cls.model_validate(config or {})
        except ValidationError as exc:
            raise ConfigurationError(
                describe_validation_error(exc, f"{cls.service_type} service {cls.service_name!r}")
            ) from None

    @classmethod
    def secret_field_names(cls) -> set[str]:
        """Fields never written to ``run_config``: secret-typed or excluded ones."""
        return {
            name
            for name, field in cls.model_fields.items()
            if field.exclude or _is_secret_annotation(field.annotation)
        }

    def record(self) -> dict[str, Any]:
        """What ``run_config`` records of this service: its names and public configuration."""
        public = self.model_dump(mode="json", exclude=self.secret_field_names())
        return {"service_name": self.service_name, "service_type": self.service_type, **public}
