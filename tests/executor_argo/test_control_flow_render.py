"""Conditional and loop steps on Argo: `when` tasks and a recursive iteration template.

The first tests check the harness' `when` evaluator and the rendering (every workflow checked
against the strict schema and hera's models by the ``render`` fixture). The played tests render
a pipeline, play it with the harness as Argo would, run it locally, and compare the run logs as
``test_harness.py`` does: one rendered workflow plays several cases through submit-time
arguments (``argo submit -p size=...``), the local runs getting the same values.
"""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_harness import (
    FAILED,
    OMITTED,
    SKIPPED,
    SUCCEEDED,
    HarnessError,
    Result,
    evaluate_when,
    play,
)
from executor_argo.argo_helpers import Renderer
from executor_argo.test_harness import Stage, _played, _write, assert_same_run
from executor_argo.test_harness import stage as stage  # a fixture, requested by name

from magnus.exceptions import ConfigurationError

# ============================================================================ the harness' when


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'small' == 'small'", True),
        ("'large' == 'small'", False),
        ("'0' != ''", True),
        ("'' != ''", False),
        ("\"big one\" == 'big one'", True),  # either quote; spaces inside
        ("'a\\'b' == 'a\\'b'", True),  # a backslash escapes
        ("!('a' == 'b') && ('1' == '1' || false)", True),
        ("'1' == '1' && '2' == '3'", False),
        ("1 == 1.0", True),
        ("heads == 'heads'", True),  # Argo reads a bare word as a string
    ],
)
def test_when_expressions(expression: str, expected: bool) -> None:
    assert evaluate_when(expression) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "'small' == 'small",
        "'big one' == big one",  # two bare words in a row
        "'a' ==",
        "'a'",
        "('a' == 'a'",
        "'a' = 'a'",
        "'x' == \"a'b\"",  # either quote ends a string: the last one is left open
    ],
)
def test_a_when_argo_would_reject_is_an_error(expression: str) -> None:
    with pytest.raises(HarnessError):
        evaluate_when(expression)


def test_a_template_calls_itself_until_its_when_is_false(tmp_path: Path) -> None:
    # A countdown: each level writes the next number, or "" at zero, and recurses on it.
    step = {
        "name": "step",
        "inputs": {"parameters": [{"name": "n"}]},
        "outputs": {"parameters": [{"name": "next", "valueFrom": {"path": "/tmp/next"}}]},
        "container": {
            "image": "python",
            "command": [
                sys.executable,
                "-c",
                "import sys; n = int(sys.argv[1]); open(sys.argv[2], 'w').write(str(n - 1) if n else '')",
                "{{inputs.parameters.n}}",
                "/tmp/next",
            ],
        },
    }
    next_number = "{{tasks.step.outputs.parameters.next}}"
    count = {
        "name": "count",
        "inputs": {"parameters": [{"name": "n"}]},
        "dag": {
            "tasks": [
                {
                    "name": "step",
                    "template": "step",
                    "arguments": {
                        "parameters": [{"name": "n", "value": "{{inputs.parameters.n}}"}]
                    },
                },
                {
                    "name": "again",
                    "template": "count",
                    "depends": "step.Succeeded",
                    "when": f"'{next_number}' != ''",
                    "arguments": {"parameters": [{"name": "n", "value": next_number}]},
                },
            ]
        },
    }
    main = {
        "name": "main",
        "dag": {
            "tasks": [
                {
                    "name": "count",
                    "template": "count",
                    "arguments": {"parameters": [{"name": "n", "value": "2"}]},
                }
            ]
        },
    }
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "countdown-"},
        "spec": {"entrypoint": "main", "templates": [main, count, step]},
    }
    result = play(workflow, cwd=tmp_path)
    assert result.phase == SUCCEEDED, result.trace()
    assert [node.outputs["next"] for node in result.containers()] == ["1", "0", ""]
    assert [(node.name, node.phase) for node in result.nodes if node.kind == "Task"] == [
        ("countdown-harness.count.again.again.again", SKIPPED)
    ]


# ============================================================================ rendering


def _branch(*steps: str) -> dict[str, Any]:
    """A branch graph of stubs, one after the other."""
    names = [*steps, "success"]
    found: dict[str, Any] = {
        name: {"type": "stub", "next": following} for name, following in pairwise(names)
    }
    return {
        "start_at": names[0],
        "steps": {**found, "success": {"type": "success"}, "fail": {"type": "fail"}},
    }


def _conditional(branches: dict[str, Any], default: Any = None, **more: Any) -> dict[str, Any]:
    step = {"type": "conditional", "parameter": "route", "branches": branches, **more}
    if default is not None:
        step["default"] = default
    return step


def _loop(branch: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "loop", "break_on": "done", "max_iterations": 3, "branch": branch, **more}


def _dag(start_at: str, **steps: Any) -> dict[str, Any]:
    return {
        "start_at": start_at,
        "steps": {**steps, "success": {"type": "success"}, "fail": {"type": "fail"}},
    }


def _templates(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {template["name"]: template for template in document["spec"]["templates"]}


def _map_variable(template: dict[str, Any]) -> str:
    command = template["container"]["command"]
    return str(command[command.index("--map-variable") + 1])


#: a loop inside a map; inside the loop a conditional, whose chosen branch holds a map
NESTED = _dag(
    "each",
    each={
        "type": "map",
        "iterate_on": "items",
        "iterate_as": "item",
        "next": "success",
        "branch": _dag(
            "train",
            train=_loop(
                _dag(
                    "check",
                    check=_conditional(
                        {
                            "go": _dag(
                                "parts",
                                parts={
                                    "type": "map",
                                    "iterate_on": "parts",
                                    "iterate_as": "part",
                                    "next": "success",
                                    "branch": _branch("piece"),
                                },
                            )
                        },
                        default=_branch("other", "more"),
                        next="success",
                    ),
                ),
                index_as="round",
                next="success",
            ),
        ),
    },
)


def test_a_loop_in_a_map_hands_each_template_the_indices_in_force(render: Renderer) -> None:
    document = render(NESTED)
    templates = _templates(document)
    iteration = templates["each-map-train-iteration"]
    assert [p["name"] for p in iteration["inputs"]["parameters"]] == ["item", "round"]
    tasks = {task["name"]: task for task in iteration["dag"]["tasks"]}
    assert list(tasks) == ["branch", "fan-next", "next-iteration"]
    # The loop's own containers see the map around it; its branch sees the iteration too.
    assert _map_variable(templates["each-map-train-fan-next"]) == (
        '{"item": {{inputs.parameters.item}}}'
    )
    assert _map_variable(templates["each-map-train-map-check-fan-out"]) == (
        '{"item": {{inputs.parameters.item}}, "round": {{inputs.parameters.round}}}'
    )
    assert _map_variable(templates["each-map-train-map-check-go-parts-map-piece"]) == (
        '{"item": {{inputs.parameters.item}}, "round": {{inputs.parameters.round}}, '
        '"part": {{inputs.parameters.part}}}'
    )
    recurse = tasks["next-iteration"]
    assert recurse["template"] == iteration["name"]  # the template calls itself
    assert recurse["when"] == "'{{tasks.fan-next.outputs.parameters.iteration}}' != ''"
    assert recurse["arguments"]["parameters"] == [
        {"name": "item", "value": "{{inputs.parameters.item}}"},
        {"name": "round", "value": "{{tasks.fan-next.outputs.parameters.iteration}}"},
    ]
    # The conditional inside the loop: a task per branch, each run when chosen.
    check = {task["name"]: task for task in templates["each-map-train-map-check"]["dag"]["tasks"]}
    assert list(check) == ["fan-out", "go", "default", "fan-in"]
    assert check["default"]["when"] == (
        "'{{tasks.fan-out.outputs.parameters.branch}}' == 'default'"
    )
    assert "default.Skipped" in check["fan-in"]["depends"]
    # The same pipeline renders the same bytes.
    assert render(NESTED) == document


@pytest.mark.parametrize("key", ["it's", 'say "hi"', "back\\slash", "{{workflow}}"])
def test_a_branch_name_a_when_cannot_compare_is_refused_naming_it(
    render: Renderer, key: str
) -> None:
    pipeline = _dag("route", route=_conditional({key: _branch("a")}, next="success"))
    with pytest.raises(ConfigurationError) as raised:
        render(pipeline)
    assert str(raised.value).startswith(
        f"Conditional step 'route': branch name {key!r} cannot be compared in an Argo 'when'"
    )


# ============================================================================ played runs


CONTROL = """\
dag:
  start_at: route
  steps:
    route:
      type: conditional
      parameter: size
      branches:
        small: {start_at: note, steps: {note: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
        large: {start_at: note, steps: {note: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
      default: {start_at: note, steps: {note: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
      next: train
    train:
      type: loop
      break_on: done
      max_iterations: 2
      branch:
        start_at: grow
        steps:
          grow:
            type: task
            command_type: shell
            command: |
              total=$(( ${MAGNUS_PRM_total:-0} + MAGNUS_LOOP_ITERATION + 1 ))
              echo "iteration $MAGNUS_LOOP_ITERATION: total $total"
              export MAGNUS_PRM_total=$total
              [ "$total" -ge "$MAGNUS_PRM_stop_at" ] && done=true || done=false
              export MAGNUS_PRM_done=$done
            next: success
          success: {type: success}
          fail: {type: fail}
      next: success
    success: {type: success}
    fail: {type: fail}
"""


def _phases(result: Result, suffix: str) -> list[str]:
    """The phases of the nodes whose names end with ``suffix`` (``.route.small``...)."""
    return [node.phase for node in result.nodes if node.name.endswith(suffix)]


def _outputs(result: Result, template: str, name: str) -> list[str]:
    return [node.outputs[name] for node in result.containers(template)]


@pytest.fixture
def staged(request: pytest.FixtureRequest) -> Stage:
    """The played tests' project: ``test_harness.py``'s stage (moto-backed stores)."""
    return request.getfixturevalue("stage")


@pytest.fixture
def control(staged: Stage) -> tuple[str, str, dict[str, Any]]:
    """The pipeline, its parameters file, and its workflow (rendered once, played often)."""
    pipeline = _write(staged, "control.yaml", CONTROL)
    parameters = _write(staged, "params.yaml", "size: small\nstop_at: 1\n")
    return pipeline, parameters, staged.render(pipeline, parameters)


def _play_and_run_locally(
    staged: Stage, control: tuple[str, str, dict[str, Any]], phase: str, **values: str
) -> tuple[Result, dict[str, Any]]:
    """Play with ``values`` given at submit time, run locally with them; the argo run's log,
    once it equals the local one."""
    pipeline, parameters, document = control
    name = "-".join(values.values())
    result = _played(staged, document, phase, arguments={"run_id": f"argo-{name}", **values})
    env = {f"MAGNUS_PRM_{key}": value for key, value in values.items()}
    expected = 0 if phase == SUCCEEDED else 1
    assert staged.run_locally(pipeline, f"local-{name}", parameters, env) == expected
    return result, assert_same_run(staged, f"argo-{name}", f"local-{name}")


@pytest.mark.e2e
def test_a_chosen_branch_then_a_loop_that_breaks_run_as_locally(
    staged: Stage, control: tuple[str, str, dict[str, Any]]
) -> None:
    result, log = _play_and_run_locally(staged, control, SUCCEEDED, size="large")
    # Only the chosen branch ran: the others' `when` was false.
    assert [_phases(result, f".route.{key}") for key in ("small", "large", "default")] == [
        [SKIPPED],
        [SUCCEEDED],
        [SKIPPED],
    ]
    route = log["steps"]["route"]
    assert (route["chosen_branch"], list(route["branches"])) == ("large", ["route.large"])
    # total 1 >= stop_at 1 on the first iteration: the fan-next said no more, and the
    # recursion stopped there.
    assert _outputs(result, "train-fan-out", "iteration") == ["0"]
    assert _outputs(result, "train-fan-next", "iteration") == [""]
    train = log["steps"]["train"]
    assert (train["status"], train["iterations"], list(train["branches"])) == (
        "SUCCESS",
        1,
        ["train.0"],
    )
    assert log["status"] == "SUCCESS" and log["parameters"]["done"] is True


@pytest.mark.e2e
def test_the_default_branch_then_a_loop_at_max_iterations_run_as_locally(
    staged: Stage, control: tuple[str, str, dict[str, Any]]
) -> None:
    result, log = _play_and_run_locally(staged, control, FAILED, size="medium", stop_at="100")
    assert log["steps"]["route"]["chosen_branch"] == "default"
    # One recursion per iteration, max_iterations deep: the second fan-next ends it.
    assert _outputs(result, "train-fan-next", "iteration") == ["1", ""]
    assert [n.name.count("next-iteration") for n in result.containers("train-map-grow")] == [0, 1]
    train = log["steps"]["train"]
    assert train["status"] == "FAIL" and train["iterations"] == 2
    assert "max_iterations (2)" in train["message"]
    second = train["branches"]["train.1"]["steps"]["train.1.grow"]["attempts"][0]
    assert second["parameters"]["total"] == 1  # carried from the first iteration
    assert log["status"] == "FAIL" and list(log["steps"]) == ["route", "train", "fail"]


NO_MATCH = {
    "dag": _dag(
        "each",
        each={
            "type": "map",
            "iterate_on": "items",
            "iterate_as": "item",
            "next": "success",
            "branch": _dag(
                "train",
                train=_loop(
                    _dag("check", check=_conditional({"go": _branch("go")}, next="success")),
                    next="success",
                ),
            ),
        },
    )
}


@pytest.mark.e2e
def test_no_matching_branch_fails_the_iteration_the_loop_and_the_map_as_locally(
    staged: Stage,
) -> None:
    pipeline = _write(staged, "no-match.yaml", yaml.safe_dump(NO_MATCH, sort_keys=False))
    parameters = _write(staged, "no-match-params.yaml", "items: [x]\nroute: stay\n")
    document = staged.render(pipeline, parameters)
    result = _played(staged, document, FAILED, arguments={"run_id": "argo-no-match"})
    # The conditional's fan-out failed and wrote nothing: its branch never ran, its fan-in
    # did; the loop asked for no next iteration.
    check = result.containers("each-map-train-map-check-fan-out")
    assert [(n.phase, n.outputs["branch"]) for n in check] == [(FAILED, "")]
    assert _phases(result, ".check.go") == [OMITTED]
    assert _outputs(result, "each-map-train-fan-next", "iteration") == [""]
    assert staged.run_locally(pipeline, "local-no-match", parameters) == 1
    log = assert_same_run(staged, "argo-no-match", "local-no-match")
    branch = log["steps"]["each"]["branches"]["each.x"]
    train = branch["steps"]["each.x.train"]
    iteration = train["branches"]["each.x.train.0"]
    assert iteration["map_variable"] == {"loop_iteration": 0}
    step = iteration["steps"]["each.x.train.0.check"]
    assert step["status"] == "FAIL" and step["branches"] == {}
    assert "'stay'" in step["message"] and "(go)" in step["message"]
    assert (train["status"], iteration["status"], branch["status"], log["status"]) == (
        "FAIL",
        "FAIL",
        "FAIL",
        "FAIL",
    )
    assert json.loads(_map_variable_of(result, "each-map-train-map-check-fan-out")) == {
        "item": 0,
        "loop_iteration": 0,
    }


def _map_variable_of(result: Result, template: str) -> str:
    (node,) = result.containers(template)
    return node.command[node.command.index("--map-variable") + 1]
