"""The strict schema used to check every rendered workflow is itself right.

The published schema lets typos through and refuses valid integers; the strict one must not.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from executor_argo.argo_helpers import hera_round_trip, schema_errors, validator_for_kind

MINIMAL: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "w-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "retryStrategy": {"limit": "3"},
                "container": {
                    "image": "busybox",
                    "command": ["true"],
                    "resources": {"limits": {"cpu": "250m", "memory": "1Gi"}},
                },
            }
        ],
    },
}


def _with(path: list[Any], key: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(MINIMAL)
    target: Any = document
    for part in path:
        target = target[part]
    target[key] = value
    return document


@pytest.fixture(scope="module")
def published_validator(published_schema: dict[str, Any]) -> Any:
    return validator_for_kind(published_schema, "Workflow")


def test_a_minimal_workflow_is_valid(strict_validators: dict[str, Any]) -> None:
    assert schema_errors(strict_validators["Workflow"], MINIMAL) == []


def test_strict_schema_rejects_a_misspelt_field(
    strict_validators: dict[str, Any], published_validator: Any
) -> None:
    document = _with(["spec"], "entrypont", "main")
    # The published schema lets the typo through: the reason for the strict one.
    assert schema_errors(published_validator, document) == []
    errors = schema_errors(strict_validators["Workflow"], document)
    assert any("entrypont" in error for error in errors), errors


def test_strict_schema_rejects_a_misspelt_field_deep_inside(
    strict_validators: dict[str, Any],
) -> None:
    document = _with(["spec", "templates", 0, "container"], "imagePullPolice", "Always")
    errors = schema_errors(strict_validators["Workflow"], document)
    assert errors and "spec/templates/0/container" in errors[0]


def test_strict_schema_accepts_an_integer_retry_limit(
    strict_validators: dict[str, Any], published_validator: Any
) -> None:
    document = _with(["spec", "templates", 0, "retryStrategy"], "limit", 3)
    # Published, IntOrString is a string only: Kubernetes accepts 3, the schema does not.
    assert schema_errors(published_validator, document)
    assert schema_errors(strict_validators["Workflow"], document) == []


@pytest.mark.parametrize("cpu", [1, 0.5, "2"])
def test_strict_schema_accepts_numeric_quantities(
    strict_validators: dict[str, Any], cpu: Any
) -> None:
    document = _with(["spec", "templates", 0, "container", "resources", "limits"], "cpu", cpu)
    assert schema_errors(strict_validators["Workflow"], document) == []


def test_strict_schema_still_rejects_wrong_types(strict_validators: dict[str, Any]) -> None:
    assert schema_errors(strict_validators["Workflow"], _with(["spec"], "parallelism", "two"))
    assert schema_errors(
        strict_validators["Workflow"],
        _with(["spec", "templates", 0, "retryStrategy"], "limit", 1.5),
    )
    assert schema_errors(strict_validators["Workflow"], _with([], "kind", "Pod"))


def test_free_form_objects_stay_free_form(strict_validators: dict[str, Any]) -> None:
    # Labels, node selectors and resource maps are maps of any key.
    document = _with(["metadata"], "labels", {"any/key": "v"})
    document["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert schema_errors(strict_validators["Workflow"], document) == []


def test_the_cron_workflow_validator_wants_schedules(strict_validators: dict[str, Any]) -> None:
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"schedules": ["0 1 * * *"], "workflowSpec": MINIMAL["spec"]},
    }
    assert schema_errors(strict_validators["CronWorkflow"], cron) == []
    del cron["spec"]["schedules"]
    assert schema_errors(strict_validators["CronWorkflow"], cron)


def test_the_hera_round_trip_shows_a_key_hera_does_not_know() -> None:
    assert hera_round_trip(MINIMAL) == MINIMAL
    document = _with(["spec"], "entrypont", "main")
    assert hera_round_trip(document) != document
