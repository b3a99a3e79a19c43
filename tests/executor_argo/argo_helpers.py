"""Checking and reading rendered Argo workflows (imported by the tests of this folder).

Every rendered workflow is checked twice:

* against Argo's published JSON schema (v4.1.2, ``tests/executor_argo/workflow-schema.json``) made
  *strict*: the published schema has no ``additionalProperties: false`` anywhere (a misspelt
  ``entrypont`` passes) and types Kubernetes IntOrString/Quantity fields as strings only (the
  valid ``retryStrategy.limit: 3`` fails). ``strict_schema`` fixes both, and test_schema.py
  proves the fix rejects a misspelt field and accepts an integer limit;
* with hera's models: parsed and dumped again, the document must come back unchanged (hera
  silently drops fields it does not know, so a difference means a key Argo would not read).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCHEMA_PATH = Path(__file__).resolve().parent / "workflow-schema.json"
GOLDEN = HERE / "golden"
PIPELINES = HERE / "pipelines"
CONFIGS = HERE / "configs"

#: the ``render`` fixture: render a pipeline, check the workflow, return it as a mapping
Renderer = Callable[..., dict[str, Any]]

ARGO = "io.argoproj.workflow.v1alpha1"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def strict_schema(published: dict[str, Any]) -> dict[str, Any]:
    """A copy of Argo's schema that rejects unknown keys and accepts ints where Kubernetes does.

    * every object definition with declared properties gets ``additionalProperties: false``
      (free-form objects, which declare none, stay free-form);
    * IntOrString accepts integers, Quantity integers and numbers (``cpu: 1``, ``cpu: 0.5``).
    """
    schema = copy.deepcopy(published)
    for definition in schema["definitions"].values():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    schema["definitions"][INT_OR_STRING]["type"] = ["string", "integer"]
    schema["definitions"][QUANTITY]["type"] = ["string", "integer", "number"]
    return schema


def validator_for_kind(schema: dict[str, Any], kind: str) -> Any:
    """A validator of one resource kind (``Workflow``, ``CronWorkflow``) of ``schema``."""
    from jsonschema.validators import validator_for

    root = {
        "$schema": schema["$schema"],
        "definitions": schema["definitions"],
        "$ref": f"#/definitions/{ARGO}.{kind}",
    }
    cls = validator_for(root)
    return cls(root)


def schema_errors(validator: Any, document: dict[str, Any]) -> list[str]:
    """Every schema violation of ``document``, one line each with its path."""
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def hera_round_trip(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` parsed with hera's models and dumped again."""
    from hera.workflows import models as m

    model = m.CronWorkflow if document.get("kind") == "CronWorkflow" else m.Workflow
    parsed = model.model_validate(document)
    return parsed.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


def prepare_run(
    pipeline: str | Path,
    config: str | Path,
    parameters_file: str = "",
    tag: str = "",
    reuse: bool | None = None,
) -> Any:
    """The run ``magnus execute -f pipeline -c config [--reuse]`` prepares (nothing is written)."""
    from magnus import entrypoints

    return entrypoints.prepare_run(
        configuration_file=str(config),
        pipeline_file=str(pipeline),
        parameters_file=parameters_file,
        tag=tag,
        reuse=reuse,
    )


# ---------------------------------------------------------------------------- reading documents


def templates_by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The templates of a Workflow or CronWorkflow, by name."""
    spec = document["spec"]
    spec = spec.get("workflowSpec", spec)
    return {template["name"]: template for template in spec["templates"]}


def tasks_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The DAG tasks of a template, by name."""
    return {task["name"]: task for task in template["dag"]["tasks"]}


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container template."""
    return [t for t in templates_by_name(document).values() if "container" in t]


def env_of(template: dict[str, Any]) -> dict[str, Any]:
    """A container template's environment: name -> value (or valueFrom)."""
    return {
        item["name"]: item.get("value", item.get("valueFrom"))
        for item in template["container"].get("env", [])
    }


def command_of(template: dict[str, Any]) -> list[str]:
    """A container template's command."""
    return template["container"]["command"]  # type: ignore[no-any-return]


def option(command: list[str], name: str) -> str | None:
    """The value following ``name`` in a command, or None."""
    return command[command.index(name) + 1] if name in command else None
