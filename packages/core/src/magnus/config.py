"""The configuration file: which service runs each of the five roles, and with what config.

Resolution, per service independently: the block in the run's configuration file, else the block
under ``defaults:`` in ``magnus-config.yaml`` of the working directory, else the built-in default.
The configuration file is ``-c``/``configuration_file=``; ``MAGNUS_CONFIGURATION_FILE`` selects it
for the command line when ``-c`` is not given, and overrides the SDK argument (as in 0.5, so a
deployment can redirect a script without editing it).
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from magnus.exceptions import ConfigurationError
from magnus.services import SERVICE_ROLES, SERVICE_TYPES, describe_validation_error
from magnus.yaml_reader import read_yaml

CONFIGURATION_FILE_ENV = "MAGNUS_CONFIGURATION_FILE"
VARIABLE_PREFIX = "MAGNUS_VAR_"
PROJECT_DEFAULTS_FILE = "magnus-config.yaml"


class ServiceBlock(BaseModel):
    """One service block: ``type`` picks the service, ``config`` configures it."""

    model_config = ConfigDict(extra="forbid")

    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    #: the file the block was read from ("" for a built-in default), for error messages
    _source: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        """The file the block was read from (``""`` for a built-in default)."""
        return self._source


#: A configuration file: up to five service blocks, one per service role, and ``reuse``.
ConfigurationFile = create_model(
    "ConfigurationFile",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A configuration file: up to five service blocks, and whether steps are reused.",
    # reuse: a step whose fingerprint matches an earlier success is not run again (a step's
    # own ``cache`` decides for it).
    reuse=(bool | None, None),
    **{key: (ServiceBlock | None, None) for key in SERVICE_TYPES},  # type: ignore[call-overload]
)


def _parse(document: Any, source: str) -> ConfigurationFile:
    if document is None:
        return ConfigurationFile()
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: a configuration file must be a mapping")
    # An empty block (``catalog:`` with nothing under it) means "not configured here".
    cleaned = {k: v for k, v in document.items() if v not in (None, {})}
    for block in cleaned.values():
        if isinstance(block, dict) and block.get("config") is None:
            block.pop("config", None)
    try:
        return ConfigurationFile.model_validate(cleaned)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, source)) from None


def load_configuration_file(path: str | Path) -> ConfigurationFile:
    """Read and check one configuration file."""
    return _parse(read_yaml(path, "configuration file"), str(path))


def _project_defaults(workdir: Path) -> ConfigurationFile:
    path = workdir / PROJECT_DEFAULTS_FILE
    if not path.is_file():
        return ConfigurationFile()
    document = read_yaml(path, "project configuration")
    if document is None:
        return ConfigurationFile()
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: expected a single top-level key 'defaults'")
    unknown = sorted(set(document) - {"defaults"}, key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigurationError(
            f"{path}: unknown top-level key {names}; expected a single top-level key 'defaults'"
        )
    return _parse(document.get("defaults"), f"{path} (defaults)")


def resolve_services(
    configuration_file: str | None, workdir: str | Path = "."
) -> dict[str, ServiceBlock]:
    """The block each service will be built from, after the resolution order."""
    chosen = load_configuration_file(configuration_file) if configuration_file else None
    project_file = Path(workdir) / PROJECT_DEFAULTS_FILE
    project = _project_defaults(Path(workdir))
    resolved = {}
    for role in SERVICE_ROLES:
        key = role.key
        block = getattr(chosen, key, None) if chosen else None
        if block is not None:
            block._source = str(configuration_file)
        else:
            block = getattr(project, key)
            if block is not None:
                block._source = f"{project_file} (defaults)"
            else:
                block = ServiceBlock(type=role.default)
        resolved[key] = block
    return resolved


def resolve_reuse(configuration_file: str | None, workdir: str | Path = ".") -> bool:
    """``reuse`` of the run's configuration file, else of ``magnus-config.yaml``'s defaults."""
    chosen = load_configuration_file(configuration_file) if configuration_file else None
    given = getattr(chosen, "reuse", None)
    if given is not None:
        return bool(given)
    return bool(getattr(_project_defaults(Path(workdir)), "reuse", None))


def configuration_file_for_cli(explicit: str | None) -> str | None:
    """``-c`` when given, else ``MAGNUS_CONFIGURATION_FILE``, else none."""
    return explicit or os.environ.get(CONFIGURATION_FILE_ENV) or None


def configuration_file_for_sdk(argument: str | None) -> str | None:
    """``MAGNUS_CONFIGURATION_FILE`` when set (it overrides the argument), else the argument."""
    return os.environ.get(CONFIGURATION_FILE_ENV) or argument or None


def collect_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``MAGNUS_VAR_<name>`` as ``{name: value}``, case kept. Variables are not secret."""
    environ = os.environ if environ is None else environ
    return {
        key[len(VARIABLE_PREFIX) :]: value
        for key, value in environ.items()
        if key.startswith(VARIABLE_PREFIX)
    }


def substitute_variables(data: Any, variables: Mapping[str, str], where: str) -> Any:
    """Fill ``$name``/``${name}`` placeholders in every string of ``data``.

    An undefined variable is an error naming it and where it was used (``$$`` escapes a dollar).
    """
    if isinstance(data, str):
        try:
            return string.Template(data).substitute(variables)
        except KeyError as exc:
            name = exc.args[0]
            raise ConfigurationError(
                f"{where}: variable ${name} is not defined; set MAGNUS_VAR_{name}"
            ) from None
        except ValueError as exc:
            raise ConfigurationError(f"{where}: bad placeholder in {data!r}: {exc}") from None
    if isinstance(data, dict):
        return {k: substitute_variables(v, variables, f"{where}.{k}") for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_variables(v, variables, f"{where}[{i}]") for i, v in enumerate(data)]
    return data
