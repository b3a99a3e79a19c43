"""Every configuration key lands where magnus 0.5 put it; overrides, variables, schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_helpers import (
    Renderer,
    command_of,
    containers,
    env_of,
    tasks_by_name,
    templates_by_name,
)

from magnus.exceptions import ConfigurationError

EVERY_KEY: dict[str, Any] = {
    "image": "registry.example.com/app:2.1",
    "name": "nightly-",
    "annotations": {"team": "data"},
    "labels": {"app": "magnus"},
    "max_workflow_duration_in_seconds": 3600,
    "node_selector": {"disk": "ssd"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "parallelism": 4,
    "service_account_name": "runner",
    "resources": {
        "limits": {"memory": "2Gi", "cpu": 1, "gpu": 1},
        "requests": {"memory": "1Gi", "cpu": "500m"},
    },
    "retry_strategy": {
        "limit": 1,
        "retry_policy": "OnFailure",
        "backoff": {"duration": 30, "factor": 3, "max_duration": "1h"},
    },
    "max_step_duration_in_seconds": 600,
    "image_pull_policy": "IfNotPresent",
    "expose_parameters_as_inputs": True,
    "secrets_from_k8s": [
        {"environment_variable": "DB_PASSWORD", "secret_name": "db", "secret_key": "password"}
    ],
    "persistent_volumes": [
        {"name": "data-claim", "mount_path": "/data"},
        {"name": "logs-claim", "mount_path": "/logs"},
    ],
    "output_file": "out/workflow.yaml",
}


@pytest.fixture
def every_key(render: Renderer) -> dict[str, Any]:
    return render("examples/map.yaml", EVERY_KEY)


def test_defaults(render: Renderer) -> None:
    document = render("examples/python-tasks.yaml", {"image": "img:1"})
    spec = document["spec"]
    # Named after the pipeline file, and labelled with it.
    assert document["metadata"] == {
        "generateName": "python-tasks-",
        "labels": {"magnus/pipeline": "python-tasks"},
    }
    assert spec["activeDeadlineSeconds"] == 172800
    # What every container shares is said once; IntOrString fields are strings.
    assert spec["templateDefaults"] == {
        "activeDeadlineSeconds": "7200",
        "container": {
            "image": "img:1",
            "resources": {
                "limits": {"memory": "1Gi", "cpu": "250m"},
                "requests": {"memory": "1Gi", "cpu": "250m"},
            },
        },
    }
    # No workflow-wide retries with limit 0; failed pods keep their logs.
    assert "retryStrategy" not in spec
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    for key in ("parallelism", "nodeSelector", "tolerations", "serviceAccountName", "volumes"):
        assert key not in spec
    template = templates_by_name(document)["prepare"]
    assert template["timeout"] == "10800s"  # the step deadline and an hour
    container = template["container"]
    assert container["image"] == "img:1"
    for key in ("resources", "imagePullPolicy", "volumeMounts"):
        assert key not in container


def test_workflow_level_keys(every_key: dict[str, Any]) -> None:
    metadata, spec = every_key["metadata"], every_key["spec"]
    assert metadata == {
        "generateName": "nightly-",
        "annotations": {"team": "data"},
        "labels": {"magnus/pipeline": "map", "app": "magnus"},
    }
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"effect": "NoSchedule", "key": "gpu", "operator": "Exists"}]
    assert spec["parallelism"] == 4
    assert spec["serviceAccountName"] == "runner"
    assert spec["retryStrategy"] == {
        "backoff": {"duration": "30s", "factor": "3", "maxDuration": "1h"},
        "limit": "1",
        "retryPolicy": "OnFailure",
    }
    assert spec["templateDefaults"] == {
        "activeDeadlineSeconds": "600",
        "container": {
            "image": "registry.example.com/app:2.1",
            "imagePullPolicy": "IfNotPresent",
            "resources": {
                "limits": {"memory": "2Gi", "cpu": "1", "nvidia.com/gpu": "1"},
                "requests": {"memory": "1Gi", "cpu": "500m"},
            },
            "volumeMounts": [
                {"name": "executor-0", "mountPath": "/data"},
                {"name": "executor-1", "mountPath": "/logs"},
            ],
        },
    }
    assert spec["volumes"] == [
        {"name": "executor-0", "persistentVolumeClaim": {"claimName": "data-claim"}},
        {"name": "executor-1", "persistentVolumeClaim": {"claimName": "logs-claim"}},
    ]


def test_container_level_keys_reach_every_container(every_key: dict[str, Any]) -> None:
    templates = containers(every_key)
    # 4 steps + fan-out + fan-in of the map + the exit handler's; success steps are folded
    assert len(templates) == 7
    for template in templates:
        container = template["container"]
        assert container["image"] == "registry.example.com/app:2.1"
        # Taken from templateDefaults: the same as the workflow's, not repeated.
        for key in ("imagePullPolicy", "resources", "volumeMounts"):
            assert key not in container
        assert env_of(template)["DB_PASSWORD"] == {
            "secretKeyRef": {"key": "password", "name": "db"}
        }
        # The image is part of the fingerprint of every step run in it.
        assert env_of(template)["MAGNUS_IMAGE"] == "registry.example.com/app:2.1"
        assert template["timeout"] == "4200s"
        # Equal to the workflow's: not repeated on the template.
        for key in ("activeDeadlineSeconds", "tolerations", "nodeSelector"):
            assert key not in template


def test_secrets_are_references_never_values(
    render: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2-very-secret")
    config = {
        "image": "img:1",
        "secrets_from_k8s": [
            {"environment_variable": "DB_PASSWORD", "secret_name": "db", "secret_key": "pw"}
        ],
    }
    document = render("examples/python-tasks.yaml", config)
    assert "hunter2" not in yaml.safe_dump(document)
    for template in containers(document):
        entry = next(e for e in template["container"]["env"] if e["name"] == "DB_PASSWORD")
        assert entry == {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"key": "pw", "name": "db"}},
        }


def test_output_file_is_where_the_workflow_is_written(
    render_context: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "workflow.yaml"
    config = {"image": "img:1", "output_file": str(output)}
    prepared = render_context("examples/python-tasks.yaml", config)
    prepared.executor.execute_graph(prepared.context, prepared.context.dag)
    assert yaml.safe_load(output.read_text())["kind"] == "Workflow"
    assert output.read_text() == prepared.executor.render(prepared.context)
    assert str(output) in capsys.readouterr().out


def test_rendering_creates_no_run_log(
    render_context: Any, tmp_path: Path, write_yaml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_yaml(
        "config.yaml",
        {
            "executor": {"type": "argo", "config": {"image": "img:1"}},
            "run_log_store": {"type": "chunked-fs", "config": {"log_folder": "logs"}},
            "catalog": {"type": "file-system", "config": {"catalog_location": "catalog"}},
        },
    )
    pipeline = write_yaml(
        "pipeline.yaml",
        {
            "dag": {
                "start_at": "a",
                "steps": {
                    "a": {"type": "stub", "next": "success"},
                    "success": {"type": "success"},
                    "fail": {"type": "fail"},
                },
            }
        },
    )
    prepared = render_context(pipeline, config_file=config)
    prepared.executor.execute_graph(prepared.context, prepared.context.dag)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "argo-pipeline.yaml",
        "config.yaml",
        "pipeline.yaml",
    ]


# ---------------------------------------------------------------------------- overrides


OVERRIDES: dict[str, Any] = {
    "image": "img:1",
    "node_selector": {"pool": "default"},
    "overrides": {
        "big": {
            "image": "img:gpu",
            "resources": {"limits": {"gpu": 2}},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "node_selector": {"pool": "gpu"},
            "max_step_duration_in_seconds": 60,
            "image_pull_policy": "Always",
            "retry_strategy": {"retry_policy": "OnError"},
        },
        "sequential": {"parallelism": 1, "fail_fast": False},
        "same": {"image": "img:1"},
    },
}


def _overridden(render: Renderer) -> dict[str, dict[str, Any]]:
    graph = {
        "start_at": "train",
        "steps": {
            "train": {
                "type": "task",
                "command_type": "shell",
                "command": "true",
                "overrides": {"argo": "big"},
                "next": "each",
            },
            "each": {
                "type": "map",
                "iterate_on": "xs",
                "iterate_as": "x",
                "overrides": {"argo": "sequential"},
                "next": "plain",
                "branch": {
                    "start_at": "work",
                    "steps": {
                        "work": {"type": "stub", "next": "success"},
                        "success": {"type": "success"},
                        "fail": {"type": "fail"},
                    },
                },
            },
            "plain": {"type": "stub", "overrides": {"argo": "same"}, "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    return templates_by_name(render(graph, OVERRIDES))


def test_an_override_changes_its_step_only(render: Renderer) -> None:
    templates = _overridden(render)
    train = templates["train"]
    assert train["container"]["image"] == env_of(train)["MAGNUS_IMAGE"] == "img:gpu"
    assert train["container"]["imagePullPolicy"] == "Always"
    # Shallow merge (0.5): the override's resources replace the executor's whole block.
    assert train["container"]["resources"]["limits"] == {
        "memory": "1Gi",
        "cpu": "250m",
        "nvidia.com/gpu": "2",
    }
    assert train["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert train["nodeSelector"] == {"pool": "gpu"}
    assert train["activeDeadlineSeconds"] == "60"
    assert train["timeout"] == "3660s"
    for name in ("plain", "each-fan-out", "each-map-work"):
        template = templates[name]
        assert template["container"]["image"] == env_of(template)["MAGNUS_IMAGE"] == "img:1"
        for key in ("tolerations", "nodeSelector", "activeDeadlineSeconds", "retryStrategy"):
            assert key not in template, (name, key)


def test_a_composite_override_sets_its_parallelism_and_fail_fast(render: Renderer) -> None:
    templates = _overridden(render)
    assert templates["each"]["parallelism"] == 1
    assert templates["each"]["dag"]["failFast"] is False
    # A branch of one step calls that step's container directly: no DAG of its own.
    assert "each-map" not in templates
    assert tasks_by_name(templates["each"])["map"]["template"] == "each-map-work"


def test_a_fan_container_takes_its_composites_retry_override(render: Renderer) -> None:
    config = {
        "image": "img:1",
        "overrides": {"stubborn": {"retry_strategy": {"limit": 3}}},
    }
    templates = templates_by_name(
        render(
            {
                "start_at": "each",
                "steps": {
                    "each": {
                        "type": "map",
                        "iterate_on": "xs",
                        "iterate_as": "x",
                        "overrides": {"argo": "stubborn"},
                        "next": "success",
                        "branch": {
                            "start_at": "work",
                            "steps": {
                                "work": {"type": "stub", "next": "success"},
                                "success": {"type": "success"},
                                "fail": {"type": "fail"},
                            },
                        },
                    },
                    "success": {"type": "success"},
                    "fail": {"type": "fail"},
                },
            },
            config,
        )
    )
    assert templates["each-fan-out"]["retryStrategy"]["limit"] == "3"
    assert templates["each-fan-in"]["retryStrategy"]["limit"] == "3"


def test_an_unknown_override_key_is_refused() -> None:
    from magnus_executor_argo.executor import ArgoExecutor

    with pytest.raises(ConfigurationError, match=r"unknown key 'overrides.big.imag'"):
        ArgoExecutor.from_config({"image": "i", "overrides": {"big": {"imag": "x"}}})


def test_a_step_selecting_a_missing_override_is_refused(render: Renderer) -> None:
    graph = {
        "start_at": "a",
        "steps": {
            "a": {"type": "stub", "overrides": {"argo": "huge"}, "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    with pytest.raises(ConfigurationError, match="no override of key: huge found"):
        render(graph, {"image": "img:1", "overrides": {"big": {"image": "x"}}})


def test_overrides_for_other_executors_are_ignored(render: Renderer) -> None:
    graph = {
        "start_at": "a",
        "steps": {
            "a": {"type": "stub", "overrides": {"local-container": "huge"}, "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    assert templates_by_name(render(graph))["a"]["container"]["image"] == "img:1"


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"image": "i", "imagee": "x"}, "unknown key 'imagee'"),
        ({"image": "i", "pod_gc": {"strategy": "Sometimes"}}, "pod_gc.strategy"),
        (
            {"image": "i", "resources": {"limits": {"gpus": 1}}},
            "unknown key 'resources.limits.gpus'",
        ),
        (
            {"image": "i", "retry_strategy": {"retry_policy": "Sometimes"}},
            "retry_strategy.retry_policy",
        ),
        ({}, "missing required key 'image'"),
        ({"image": "i", "parallelism": 0}, "key 'parallelism'"),
        (
            {
                "image": "i",
                "persistent_volumes": [
                    {"name": "c", "mount_path": "/a"},
                    {"name": "c", "mount_path": "/b"},
                ],
            },
            "duplicate persistent_volumes claim name 'c'",
        ),
        ({"image": "i", "persistent_volumes": [{"name": "c", "mount_path": "data"}]}, "absolute"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_key(
    config: dict[str, Any], message: str
) -> None:
    from magnus_executor_argo.executor import ArgoExecutor

    with pytest.raises(ConfigurationError, match="executor service 'argo'") as error:
        ArgoExecutor.from_config(config)
    assert message in str(error.value)


def test_an_invalid_workflow_name_is_refused(render: Renderer) -> None:
    with pytest.raises(ConfigurationError, match="key 'name'"):
        render("examples/python-tasks.yaml", {"image": "i", "name": "My_Workflow"})


def test_the_executor_is_a_plugin() -> None:
    from magnus_executor_argo.executor import ArgoExecutor

    from magnus.plugins import get_plugins

    plugins = get_plugins()
    assert plugins.service_class("executor", "argo") is ArgoExecutor
    executor = ArgoExecutor.from_config({"image": "i"})
    assert executor.traverses is False
    assert executor.runs_in_one_process is False


# ---------------------------------------------------------------------------- variables


def test_variables_fill_the_configuration(
    render: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGNUS_VAR_image", "registry.example.com/app:3")
    monkeypatch.setenv("MAGNUS_VAR_claim", "shared")
    monkeypatch.setenv("MAGNUS_VAR_gpu_image", "registry.example.com/app:3-gpu")
    config = {
        "image": "$image",
        "labels": {"price": "$$5"},  # $$ is a literal dollar
        "persistent_volumes": [{"name": "${claim}-claim", "mount_path": "/mnt"}],
        "overrides": {"gpu": {"image": "$gpu_image"}, "unused": {"image": "$nowhere"}},
    }
    graph = {
        "start_at": "a",
        "steps": {
            "a": {"type": "stub", "overrides": {"argo": "gpu"}, "next": "b"},
            "b": {"type": "stub", "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    document = render(graph, config)
    templates = templates_by_name(document)
    assert templates["a"]["container"]["image"] == "registry.example.com/app:3-gpu"
    assert templates["b"]["container"]["image"] == "registry.example.com/app:3"
    assert document["metadata"]["labels"] == {"magnus/pipeline": "pipeline", "price": "$5"}
    assert document["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "shared-claim"}


def test_an_undefined_variable_is_an_error_naming_it(render: Renderer) -> None:
    with pytest.raises(ConfigurationError, match=r"variable \$argo_image is not defined"):
        render("examples/python-tasks.yaml", {"image": "$argo_image"})


def test_an_undefined_variable_in_a_selected_override_names_the_step(render: Renderer) -> None:
    graph = {
        "start_at": "a",
        "steps": {
            "a": {"type": "stub", "overrides": {"argo": "gpu"}, "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    config = {"image": "i", "overrides": {"gpu": {"image": "$gpu_image"}}}
    with pytest.raises(
        ConfigurationError, match=r"override 'gpu' of step 'a'.*MAGNUS_VAR_gpu_image"
    ):
        render(graph, config)


def test_placeholders_stay_unfilled_where_steps_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # In a pod the same configuration builds the executor again, without the variables.
    from magnus_executor_argo.executor import ArgoExecutor

    executor = ArgoExecutor.from_config({"image": "$image"})
    assert executor.image == "$image"


# ---------------------------------------------------------------------------- schedules


def test_a_schedule_renders_a_cron_workflow(render: Renderer) -> None:
    config = {"image": "img:1", "schedule": "0 2 * * *", "labels": {"app": "x"}}
    document = render("examples/map.yaml", config)
    assert document["kind"] == "CronWorkflow"
    # Named after the pipeline file.
    assert document["metadata"] == {"name": "map", "labels": {"magnus/pipeline": "map", "app": "x"}}
    assert document["spec"]["schedules"] == ["0 2 * * *"]
    workflow_spec = document["spec"]["workflowSpec"]
    assert workflow_spec["entrypoint"] == "magnus-dag"
    assert workflow_spec["arguments"]["parameters"][0] == {
        "name": "run_id",
        "value": "{{workflow.uid}}",
    }
    assert set(tasks_by_name(templates_by_name(document)["magnus-dag"])) == {
        "make-chunks",
        "render-all",
        "summarise",
    }


def test_several_schedules(render: Renderer) -> None:
    config = {"image": "img:1", "name": "reports", "schedule": ["0 2 * * *", "0 14 * * *"]}
    document = render("examples/python-tasks.yaml", config)
    assert document["metadata"]["name"] == "reports"
    assert document["spec"]["schedules"] == ["0 2 * * *", "0 14 * * *"]


def test_a_cron_workflow_keeps_every_command(render: Renderer) -> None:
    document = render("examples/python-tasks.yaml", {"image": "img:1", "schedule": "@daily"})
    assert command_of(templates_by_name(document)["prepare"])[:2] == [
        "magnus",
        "execute_single_node",
    ]
