"""The structure of rendered workflows: tasks, dependencies, commands, map indices, retries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from executor_argo.argo_helpers import (
    Renderer,
    command_of,
    containers,
    env_of,
    option,
    tasks_by_name,
    templates_by_name,
)


def _linear(*names: str, **extra: Any) -> dict[str, Any]:
    """A graph of shell steps ``names`` in a row, then success; ``extra`` updates steps."""
    steps: dict[str, Any] = {}
    for name, following in zip(names, [*names[1:], "success"], strict=True):
        steps[name] = {
            "type": "task",
            "command_type": "shell",
            "command": "true",
            "next": following,
        }
        steps[name].update(extra.get(name, {}))
    steps["success"] = {"type": "success"}
    steps["fail"] = {"type": "fail"}
    return {"start_at": names[0], "steps": steps}


def _root(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return tasks_by_name(templates_by_name(document)["magnus-dag"])


# ---------------------------------------------------------------------------- the workflow


def test_a_linear_pipeline_is_a_chain_of_tasks(render: Renderer) -> None:
    document = render("examples/python-tasks.yaml")
    assert document["apiVersion"] == "argoproj.io/v1alpha1"
    assert document["kind"] == "Workflow"
    assert document["metadata"]["generateName"] == "python-tasks-"
    spec = document["spec"]
    assert spec["entrypoint"] == "magnus-dag"
    root = templates_by_name(document)["magnus-dag"]
    assert root["dag"]["failFast"] is True
    assert [(t["name"], t.get("depends")) for t in root["dag"]["tasks"]] == [
        ("prepare", None),
        ("train", "prepare.Succeeded"),
        ("report", "train.Succeeded"),
    ]
    # Neither terminal step is a task: a failing step runs the fail step in its own container,
    # the last step runs the success step in its own once it succeeded.
    assert "fail" not in templates_by_name(document)
    assert "success" not in templates_by_name(document)
    assert command_of(templates_by_name(document)["report"])[-1] == "--then-success"
    assert "--then-success" not in command_of(templates_by_name(document)["train"])


def test_the_run_id_is_the_workflow_uid_and_every_command_uses_it(render: Renderer) -> None:
    document = render("examples/python-tasks.yaml")
    arguments = document["spec"]["arguments"]["parameters"]
    assert arguments[0] == {"name": "run_id", "value": "{{workflow.uid}}"}
    for template in containers(document):
        assert command_of(template)[2] == "{{workflow.parameters.run_id}}"


def test_a_leaf_runs_execute_single_node_with_the_run_options(
    render: Renderer, write_yaml: Any, tmp_path: Path
) -> None:
    parameters = write_yaml("parameters.yaml", {"rows": 3})
    document = render(
        _linear("make data", "count"), parameters_file=str(parameters), tag="nightly run"
    )
    command = command_of(templates_by_name(document)["make-data"])
    assert command[:4] == [
        "magnus",
        "execute_single_node",
        "{{workflow.parameters.run_id}}",
        "make%data",  # spaces travel as % (0.5's convention)
    ]
    assert option(command, "--log-level") == "WARNING"
    assert option(command, "--file") == str(tmp_path / "pipeline.yaml")
    assert option(command, "--config-file") == str(tmp_path / "argo.yaml")
    assert option(command, "--parameters-file") == str(parameters)
    assert option(command, "--tag") == "nightly run"
    assert "--map-variable" not in command


def test_the_log_level_of_the_render_reaches_the_containers(render: Renderer) -> None:
    import logging

    logging.getLogger("magnus").setLevel(logging.DEBUG)
    document = render(_linear("a"))
    assert option(command_of(templates_by_name(document)["a"]), "--log-level") == "DEBUG"


def test_a_pipeline_without_a_file_cannot_be_rendered(render_context: Any) -> None:
    from magnus.exceptions import ConfigurationError

    prepared = render_context(_linear("a"))
    prepared.context.pipeline_file = ""
    with pytest.raises(ConfigurationError, match="magnus execute -f"):
        prepared.executor.render(prepared.context)


# ---------------------------------------------------------------------------- on_failure


def test_on_failure_becomes_a_failed_dependency(render: Renderer) -> None:
    document = render("examples/on-failure.yaml")
    root = _root(document)
    assert list(root) == ["flaky-step", "risky-step", "recover"]
    assert root["recover"]["depends"] == "risky-step.Failed || risky-step.Errored"
    templates = templates_by_name(document)
    # Both routes into success run it in their own container.
    assert "--then-success" in command_of(templates["risky-step"])
    assert "--then-success" in command_of(templates["recover"])
    # The target off the next chain has its container (0.5 rendered the task only).
    assert "container" in templates_by_name(document)["recover"]


def test_on_failure_into_the_fail_step_is_handled_in_the_container(render: Renderer) -> None:
    graph = _linear("a", "b", a={"on_failure": "fail"})
    document = render(graph)
    assert list(_root(document)) == ["a", "b"]
    assert "fail" not in templates_by_name(document)


def test_a_next_into_the_fail_step_renders_it(render: Renderer) -> None:
    graph = _linear("a", "b", a={"next": "success", "on_failure": "b"}, b={"next": "fail"})
    root = _root(render(graph))
    assert root["b"]["depends"] == "a.Failed || a.Errored"
    assert root["fail"]["depends"] == "b.Succeeded"
    assert "success" not in root


def test_an_on_failure_into_success_renders_it(render: Renderer) -> None:
    graph = _linear("a", "b", a={"on_failure": "success"})
    root = _root(render(graph))
    assert root["success"]["depends"] == "a.Failed || a.Errored || b.Succeeded"


def test_several_routes_into_one_step_are_joined(render: Renderer) -> None:
    graph = _linear("a", "b", "c", a={"on_failure": "c"}, b={"on_failure": "c"})
    assert _root(render(graph))["c"]["depends"] == (
        "a.Failed || a.Errored || b.Succeeded || b.Failed || b.Errored"
    )


# ---------------------------------------------------------------------------- retries


def test_max_attempts_becomes_argos_retry_limit_and_the_attempt_number(render: Renderer) -> None:
    document = render(_linear("flaky", "steady", flaky={"max_attempts": 3}))
    flaky = templates_by_name(document)["flaky"]
    assert flaky["retryStrategy"]["limit"] == "2"
    assert flaky["retryStrategy"]["retryPolicy"] == "Always"
    assert env_of(flaky)["MAGNUS_STEP_ATTEMPT"] == "{{=asInt(retries) + 1}}"
    steady = templates_by_name(document)["steady"]
    assert "retryStrategy" not in steady
    assert "MAGNUS_STEP_ATTEMPT" not in env_of(steady)


def test_a_workflow_wide_retry_limit_does_not_retry_task_steps(render: Renderer) -> None:
    config = {"image": "img:1", "retry_strategy": {"limit": 2}}
    document = render("examples/map.yaml", config)
    assert document["spec"]["retryStrategy"]["limit"] == "2"
    templates = templates_by_name(document)
    # Task steps get a limit of their own (max_attempts - 1), fan containers inherit the spec's.
    assert templates["make-chunks"]["retryStrategy"]["limit"] == "0"
    assert "MAGNUS_STEP_ATTEMPT" not in env_of(templates["make-chunks"])
    assert "retryStrategy" not in templates["render-all-fan-out"]


def test_a_retry_strategy_override_shapes_the_retries_of_a_task(render: Renderer) -> None:
    config = {
        "image": "img:1",
        "overrides": {
            "patient": {"retry_strategy": {"retryPolicy": "OnError", "backoff": {"duration": "1m"}}}
        },
    }
    graph = _linear("a", a={"max_attempts": 2, "overrides": {"argo": "patient"}})
    retry = templates_by_name(render(graph, config))["a"]["retryStrategy"]
    assert retry == {
        "backoff": {"duration": "1m", "factor": "2"},
        "limit": "1",
        "retryPolicy": "OnError",
    }


# ---------------------------------------------------------------------------- composites


def test_a_map_fans_out_indices_through_with_param(render: Renderer) -> None:
    document = render("examples/map.yaml")
    templates = templates_by_name(document)
    composite = tasks_by_name(templates["render-all"])
    assert list(composite) == ["fan-out", "map", "fan-in"]
    branch = composite["map"]
    assert branch["withParam"] == "{{tasks.fan-out.outputs.parameters.iterate-on}}"
    assert branch["depends"] == "fan-out.Succeeded"
    assert branch["arguments"]["parameters"] == [{"name": "chunk", "value": "{{item}}"}]
    assert composite["fan-in"]["depends"] == (
        "fan-out.Failed || fan-out.Errored || (map.Succeeded || map.Failed || map.Errored || map.Skipped)"
    )

    fan_out = templates["render-all-fan-out"]
    assert command_of(fan_out)[:6] == [
        "magnus",
        "fan",
        "{{workflow.parameters.run_id}}",
        "render%all",
        "--mode",
        "out",
    ]
    assert env_of(fan_out)["MAGNUS_MAP_INDICES_FILE"] == "/tmp/output.txt"
    assert fan_out["outputs"]["parameters"] == [
        {"name": "iterate-on", "valueFrom": {"default": "[]", "path": "/tmp/output.txt"}}
    ]
    assert option(command_of(templates["render-all-fan-in"]), "--mode") == "in"

    leaf = templates["render-all-map-render"]
    assert leaf["inputs"]["parameters"] == [{"name": "chunk"}]
    command = command_of(leaf)
    assert command[3] == "render%all.map_variable_placeholder.render"
    assert option(command, "--map-variable") == '{"chunk": {{inputs.parameters.chunk}}}'
    assert env_of(leaf)["MAGNUS_MAP_INDICES"] == "1"
    # Once Argo fills in an index, the map variable is JSON holding that index.
    filled = option(command, "--map-variable").replace("{{inputs.parameters.chunk}}", "3")  # type: ignore[union-attr]
    assert json.loads(filled) == {"chunk": 3}


def test_nested_maps_pass_every_enclosing_index_down(render: Renderer) -> None:
    document = render("tests/executor_argo/pipelines/nested.yaml")
    templates = templates_by_name(document)
    leaf = templates["outer-map-split-left-inner-map-leaf"]
    assert [p["name"] for p in leaf["inputs"]["parameters"]] == ["chunk", "item"]
    assert option(command_of(leaf), "--map-variable") == (
        '{"chunk": {{inputs.parameters.chunk}}, "item": {{inputs.parameters.item}}}'
    )
    inner_fan_out = templates["outer-map-split-left-inner-fan-out"]
    assert option(command_of(inner_fan_out), "--map-variable") == (
        '{"chunk": {{inputs.parameters.chunk}}}'
    )
    assert env_of(inner_fan_out) == {
        "MAGNUS_IMAGE": "img:1",
        "MAGNUS_MAP_INDICES": "1",
        "MAGNUS_MAP_INDICES_FILE": "/tmp/output.txt",
    }
    inner = tasks_by_name(templates["outer-map-split-left-inner"])
    assert inner["map"]["arguments"]["parameters"] == [
        {"name": "chunk", "value": "{{inputs.parameters.chunk}}"},
        {"name": "item", "value": "{{item}}"},
    ]
    # The parallel inside the outer map hands the outer index to each branch.
    split = tasks_by_name(templates["outer-map-split"])
    assert split["left"]["arguments"]["parameters"] == [
        {"name": "chunk", "value": "{{inputs.parameters.chunk}}"}
    ]
    # Outside every map, nothing about indices.
    assert env_of(templates["make-lists"]) == {"MAGNUS_IMAGE": "img:1"}


def test_a_parallel_runs_one_task_per_branch_and_fans_in_after_all(render: Renderer) -> None:
    templates = templates_by_name(render("examples/parallel.yaml"))
    train = tasks_by_name(templates["train"])
    assert list(train) == ["fan-out", "small", "large", "fan-in"]
    assert train["small"]["template"] == "train-small-fit"  # a branch of one step
    assert train["large"]["depends"] == "fan-out.Succeeded"
    assert train["fan-in"]["depends"] == (
        "fan-out.Failed || fan-out.Errored || ((small.Succeeded || small.Failed || small.Errored) && "
        "(large.Succeeded || large.Failed || large.Errored))"
    )
    assert "train-small" not in templates  # no DAG for a branch of one step
    assert command_of(templates["train-small-fit"])[-1] == "--then-success"
    assert command_of(templates["train-large-fit"])[3] == "train.large.fit"


def test_a_dag_step_runs_its_pipeline_as_one_branch(render: Renderer) -> None:
    templates = templates_by_name(render("examples/parallel.yaml"))
    report = tasks_by_name(templates["report"])
    assert list(report) == ["fan-out", "dag", "fan-in"]
    # One step: the branch task calls its container, which also runs the branch's success.
    assert report["dag"]["template"] == "report-dag-show-scores"
    command = command_of(templates["report-dag-show-scores"])
    assert command[3] == "report.dag.show%scores"
    assert command[-1] == "--then-success"


def test_nested_maps_with_the_same_iterate_as_are_refused(render: Renderer) -> None:
    # Refused when the pipeline is validated, for every executor, before anything is rendered.
    from magnus.exceptions import PipelineValidationError

    inner = {
        "type": "map",
        "iterate_on": "ys",
        "iterate_as": "x",
        "next": "success",
        "branch": _linear("leaf"),
    }
    outer = {
        "type": "map",
        "iterate_on": "xs",
        "iterate_as": "x",
        "next": "success",
        "branch": {
            "start_at": "inner",
            "steps": {"inner": inner, "success": {"type": "success"}, "fail": {"type": "fail"}},
        },
    }
    graph = {
        "start_at": "outer",
        "steps": {"outer": outer, "success": {"type": "success"}, "fail": {"type": "fail"}},
    }
    with pytest.raises(PipelineValidationError, match=r"'outer'.*need different names"):
        render(graph)


# ---------------------------------------------------------------------------- parameters


def test_scalar_parameters_become_workflow_arguments(
    render: Renderer, write_yaml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = write_yaml(
        "parameters.yaml",
        {"rows": 5, "ratio": 0.5, "flag": True, "name": "english", "code": "42", "data": [1, 2]},
    )
    monkeypatch.setenv("MAGNUS_PRM_name", '"french"')  # the environment wins, as at run time
    document = render(_linear("first", "second"), parameters_file=str(parameters))
    arguments = {p["name"]: p["value"] for p in document["spec"]["arguments"]["parameters"]}
    assert arguments == {
        "run_id": "{{workflow.uid}}",
        "code": '"42"',  # bare, 42 would come back as the number 42
        "flag": "true",
        "name": "french",
        "ratio": "0.5",
        "rows": "5",
    }
    # Only the first container starts the run: it alone carries the submit-time values.
    templates = templates_by_name(document)
    assert env_of(templates["first"]) == {
        "MAGNUS_IMAGE": "img:1",
        **{
            f"MAGNUS_PRM_{key}": f"{{{{workflow.parameters.{key}}}}}"
            for key in ("code", "flag", "name", "ratio", "rows")
        },
    }
    assert env_of(templates["second"]) == {"MAGNUS_IMAGE": "img:1"}


def test_argument_values_read_back_as_the_parameters(render: Renderer, write_yaml: Any) -> None:
    from magnus.parameters import from_environment

    values = {
        "rows": 5,
        "ratio": 0.5,
        "flag": False,
        "name": "english",
        "code": "42",
        "zero": "007",
        "n": "null",
    }
    parameters = write_yaml("parameters.yaml", values)
    document = render(_linear("a"), parameters_file=str(parameters))
    arguments = document["spec"]["arguments"]["parameters"][1:]
    environ = {f"MAGNUS_PRM_{p['name']}": p["value"] for p in arguments}
    assert from_environment(environ) == values


def test_a_composite_first_step_takes_the_parameters_on_its_fan_out(
    render: Renderer, write_yaml: Any
) -> None:
    parameters = write_yaml("parameters.yaml", {"chunks": [1, 2], "size": 3})
    graph = {
        "start_at": "each",
        "steps": {
            "each": {
                "type": "map",
                "iterate_on": "chunks",
                "iterate_as": "chunk",
                "next": "success",
                "branch": _linear("work"),
            },
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    templates = templates_by_name(render(graph, parameters_file=str(parameters)))
    assert env_of(templates["each-fan-out"])["MAGNUS_PRM_size"] == "{{workflow.parameters.size}}"
    assert "MAGNUS_PRM_chunks" not in env_of(templates["each-fan-out"])
    assert "MAGNUS_PRM_size" not in env_of(templates["each-map-work"])


def test_parameters_stay_unexposed_when_asked(render: Renderer, write_yaml: Any) -> None:
    parameters = write_yaml("parameters.yaml", {"rows": 5})
    config = {"image": "img:1", "expose_parameters_as_inputs": False}
    document = render(_linear("a"), config, parameters_file=str(parameters))
    assert document["spec"]["arguments"]["parameters"] == [
        {"name": "run_id", "value": "{{workflow.uid}}"}
    ]
    assert env_of(templates_by_name(document)["a"]) == {"MAGNUS_IMAGE": "img:1"}


def test_a_parameter_called_run_id_is_not_exposed(
    render: Renderer, write_yaml: Any, caplog: pytest.LogCaptureFixture
) -> None:
    parameters = write_yaml("parameters.yaml", {"run_id": "mine", "rows": 1})
    document = render(_linear("a"), parameters_file=str(parameters))
    names = [p["name"] for p in document["spec"]["arguments"]["parameters"]]
    assert names == ["run_id", "rows"]
    assert "run_id is magnus' own argument" in caplog.text
