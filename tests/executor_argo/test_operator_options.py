"""What an Argo operator configures, and what a large map costs the cluster.

The golden workflow ``operator.yaml`` holds every option at once; these tests say what each one
does, and what it must not touch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_helpers import (
    CONFIGS,
    PIPELINES,
    Renderer,
    command_of,
    containers,
    env_of,
    option,
    schema_errors,
    tasks_by_name,
    templates_by_name,
    validator_for_kind,
)

from magnus.exceptions import ConfigurationError

OPERATOR = CONFIGS / "argo-operator.yaml"
#: Argo's limit on the size of a Workflow object (etcd's request size)
ARGO_OBJECT_LIMIT = 1024 * 1024
#: bytes one node takes in a Workflow's status: id, name, displayName, type, templateName,
#: phase, boundaryID, times, progress, resourcesDuration, children, outputs (measured on Argo
#: 3.5 nodes of this renderer's templates: 600 to 900 bytes; rounded up)
NODE_STATUS_BYTES = 1000


@pytest.fixture(scope="module")
def published(published_schema: dict[str, Any]) -> dict[str, Any]:
    """Validators of Argo's schema as published, unpatched, by kind."""
    return {
        kind: validator_for_kind(published_schema, kind) for kind in ("Workflow", "CronWorkflow")
    }


@pytest.fixture
def operator(render: Renderer, published: dict[str, Any]) -> dict[str, Any]:
    document = render(PIPELINES / "operator.yaml", config_file=OPERATOR)
    assert schema_errors(published["CronWorkflow"], document) == []
    return document


def test_workflow_level_options(operator: dict[str, Any]) -> None:
    assert operator["metadata"] == {
        "name": "operator",  # after the pipeline file
        "labels": {"magnus/pipeline": "operator"},
        "namespace": "pipelines",
    }
    cron = operator["spec"]
    assert (cron["concurrencyPolicy"], cron["timezone"]) == ("Forbid", "Europe/London")
    assert (cron["startingDeadlineSeconds"], cron["successfulJobsHistoryLimit"]) == (600, 3)
    assert cron["failedJobsHistoryLimit"] == 10
    spec = cron["workflowSpec"]
    assert spec["podGC"] == {"strategy": "OnPodSuccess", "deleteDelayDuration": "600s"}
    assert spec["ttlStrategy"] == {"secondsAfterSuccess": 3600, "secondsAfterFailure": 604800}
    assert spec["archiveLogs"] is True
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000}
    assert spec["podPriorityClassName"] == "batch-low"
    assert spec["podSpecPatch"] == '{"terminationGracePeriodSeconds": 120}'
    assert spec["affinity"]["nodeAffinity"]
    # Every pod and every Workflow the CronWorkflow starts carry the pipeline's label.
    assert spec["podMetadata"]["labels"] == {"magnus/pipeline": "operator", "team": "data"}
    assert spec["podMetadata"]["annotations"] == {"owner": "data-team@example.com"}
    assert spec["workflowMetadata"]["labels"] == {"magnus/pipeline": "operator", "team": "data"}


def test_every_pod_is_labelled_with_the_run_and_its_step(operator: dict[str, Any]) -> None:
    for template in containers(operator):
        assert template["metadata"]["labels"] == {
            "magnus/run-id": "{{workflow.parameters.run_id}}",
            "magnus/step": template["name"],
        }


def test_a_read_only_root_filesystem_gets_a_writable_tmp(operator: dict[str, Any]) -> None:
    spec = operator["spec"]["workflowSpec"]
    defaults = spec["templateDefaults"]["container"]
    assert defaults["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "magnus-tmp", "mountPath": "/tmp"} in defaults["volumeMounts"]
    assert {"name": "magnus-tmp", "emptyDir": {}} in spec["volumes"]
    # The fan-out writes its output file there.
    fan_out = templates_by_name(operator)["each-fan-out"]
    assert env_of(fan_out)["MAGNUS_MAP_INDICES_FILE"].startswith("/tmp/")


def test_container_options_are_said_once_and_an_override_changes_its_step_only(
    operator: dict[str, Any],
) -> None:
    templates = templates_by_name(operator)
    defaults = operator["spec"]["workflowSpec"]["templateDefaults"]["container"]
    assert defaults["envFrom"] == [{"configMapRef": {"name": "project-settings"}}]
    crunch = templates["crunch"]
    assert crunch["priorityClassName"] == "batch-high"
    assert crunch["podSpecPatch"] == '{"terminationGracePeriodSeconds": 600}'
    assert crunch["affinity"]["nodeAffinity"] != operator["spec"]["workflowSpec"]["affinity"]
    assert crunch["container"]["envFrom"] == [{"secretRef": {"name": "heavy-credentials"}}]
    assert crunch["container"]["resources"]["limits"] == {"memory": "8Gi", "cpu": "4"}
    assert crunch["container"]["securityContext"]["runAsUser"] == 2000
    # An override's env replaces the executor's (merged one level deep, as every key).
    assert env_of(crunch)["THREADS"] == "4" and "DATA_ROOT" not in env_of(crunch)
    for name in ("list", "each-fan-out", "each-batch"):
        template = templates[name]
        assert env_of(template)["DATA_ROOT"] == "/mnt/data"
        for key in ("priorityClassName", "podSpecPatch", "affinity"):
            assert key not in template, (name, key)
        for key in ("envFrom", "resources", "securityContext"):
            assert key not in template["container"], (name, key)


def test_a_misspelt_kubernetes_key_is_refused_naming_it(render: Renderer) -> None:
    config = {"image": "i", "security_context": {"readOnlyRootFilesytem": True}}
    with pytest.raises(ConfigurationError, match="unknown key 'readOnlyRootFilesytem'"):
        render("examples/python-tasks.yaml", config)


def test_cron_options_need_a_schedule(render: Renderer) -> None:
    with pytest.raises(ConfigurationError, match="timezone applies to a schedule"):
        render("examples/python-tasks.yaml", {"image": "i", "timezone": "UTC"})


def test_pod_gc_can_be_turned_off(render: Renderer) -> None:
    document = render("examples/python-tasks.yaml", {"image": "i", "pod_gc": None})
    assert "podGC" not in document["spec"]


def test_an_absolute_pipeline_path_is_a_warning_naming_it(
    render: Renderer, in_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = str(in_repo / "examples" / "python-tasks.yaml")
    with caplog.at_level(logging.WARNING, logger="magnus_executor_argo"):
        render(pipeline, config_file="tests/executor_argo/configs/argo.yaml")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if pipeline in w and "absolute path" in w], warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="magnus_executor_argo"):
        render("examples/python-tasks.yaml", config_file="tests/executor_argo/configs/argo.yaml")
    assert not [r for r in caplog.records if "absolute path" in r.getMessage()]


def test_a_pipeline_of_one_task_is_a_one_pod_workflow(render: Renderer) -> None:
    document = render(PIPELINES / "one-task.yaml", {"image": "i"})
    exit_tasks = tasks_by_name(templates_by_name(document)[document["spec"]["onExit"]])
    exit_containers = {task["template"] for task in exit_tasks.values()}
    pods = [t for t in containers(document) if t["name"] not in exit_containers]
    assert [t["name"] for t in pods] == ["hello"]
    assert command_of(pods[0])[-1] == "--then-success"  # it also ends the run


# ---------------------------------------------------------------------------- scale


def status_nodes(document: dict[str, Any], elements: int) -> int:
    """How many nodes the Workflow's status holds once it ran, a map over ``elements``.

    Argo's status model: a node per DAG template called and per pod; a template with a
    retryStrategy adds a Retry node above its pod(s); a task expanded with ``withParam`` adds a
    TaskGroup node above one child per item. A map's fan-out writes one item per element, or
    one per batch of ``--batch-size`` elements; the exit handler is one more call.
    """
    spec = document["spec"].get("workflowSpec", document["spec"])
    templates = templates_by_name(document)

    def called(name: str) -> int:
        template = templates[name]
        if "container" in template:
            retried = "retryStrategy" in template or "retryStrategy" in spec
            return 2 if retried else 1
        tasks = tasks_by_name(template)
        total = 1
        for task in tasks.values():
            nodes = called(task["template"])
            if "withParam" in task:
                fan_out = command_of(templates[tasks["fan-out"]["template"]])
                batch = int(option(fan_out, "--batch-size") or 1)
                total += 1 + -(-elements // batch) * nodes
            else:
                total += nodes
        return total

    return called(spec["entrypoint"]) + called(spec["onExit"])


def test_a_map_over_10000_elements_in_batches_fits_argo(
    render: Renderer, write_yaml: Callable[[str, Any], Path]
) -> None:
    parameters = write_yaml("parameters.yaml", {"items": list(range(10_000))})
    pipeline = PIPELINES / "operator.yaml"
    overrides: dict[str, Any] = {"batches": {}, "heavy": {}}
    one_each = render(
        pipeline, {"image": "i", "overrides": overrides}, parameters_file=str(parameters)
    )
    overrides["batches"] = {"batch_size": 100}
    batched = render(
        pipeline, {"image": "i", "overrides": overrides}, parameters_file=str(parameters)
    )
    # Elements never travel in the manifest: its size does not grow with them.
    text = yaml.safe_dump(batched)
    assert len(text.encode()) < 20_000
    # The live object: one node per element overflows Argo's 1 MB; 100 batches do not.
    assert status_nodes(one_each, 10_000) * NODE_STATUS_BYTES > ARGO_OBJECT_LIMIT
    nodes = status_nodes(batched, 10_000)
    # entry DAG, list, each (DAG, fan-out, TaskGroup + 100 batches, fan-in), crunch, and the
    # exit handler (its DAG, end-run and its fallback: one node each, or two when retried)
    assert 1 + 1 + (1 + 1 + 1 + 100 + 1) + 1 + 3 <= nodes <= 1 + 1 + 104 + 1 + 5
    assert nodes * NODE_STATUS_BYTES + len(text.encode()) < ARGO_OBJECT_LIMIT / 4
    assert command_of(templates_by_name(batched)["each-batch"])[-2:] == ["--batch-size", "100"]


def test_map_elements_are_labelled_only_when_asked(render: Renderer) -> None:
    plain = templates_by_name(render("examples/map.yaml", {"image": "i"}))
    assert "--labelled" not in command_of(plain["render-all-fan-out"])
    config = {"image": "i", "label_map_elements": True}
    labelled = templates_by_name(render("examples/parallel.yaml", config))
    assert "--labelled" not in command_of(labelled["train-fan-out"])  # a parallel has no items
    labelled = templates_by_name(render("examples/map.yaml", config))
    assert command_of(labelled["render-all-fan-out"])[-1] == "--labelled"
