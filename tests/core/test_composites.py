"""Parallel, map and dag steps, run one branch after another (in this process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from magnus import Dag, Map, Parallel, Pipeline, PythonTask, ShellTask, Stub, entrypoints
from magnus.building import build_graph, load_pipeline_file
from magnus.exceptions import PipelineValidationError
from magnus.graph import dag_hash, find_branch, find_node
from magnus.internal_names import branch_name_of, enclosing_branches, resolve
from magnus.plugins import get_plugins

FUNCTIONS = """
import json
import os


def values(items):
    return {"items": items}


def element(item, offset: int = 0):
    print("element", item)
    return {"doubled": item * 2 + offset, "seen_env": json.loads(os.environ["MAGNUS_MAP_VARIABLE"])}


def fail_on(item, bad: int = 2):
    if item == bad:
        raise ValueError(f"element {item} is bad")
    return {"ok": item}


def add_all(values):
    return sum(values) if all(isinstance(v, int) for v in values) else values


def broken(values):
    raise KeyError("no reduction today")


def echo_pair(outer, inner):
    return {"pair": f"{outer}-{inner}"}
"""


def run_yaml(
    project: Path,
    text: str,
    run_id: str,
    parameters: dict[str, Any] | None = None,
    config: str | None = None,
) -> Any:
    (project / "p.yaml").write_text(text)
    if parameters is not None:
        (project / "params.yaml").write_text(yaml.safe_dump(parameters))
    prepared = entrypoints.prepare_run(
        pipeline_file="p.yaml",
        parameters_file="params.yaml" if parameters is not None else "",
        run_id=run_id,
        configuration_file=config,
    )
    return entrypoints.execute(prepared)


MAP_PIPELINE = """
dag:
  start_at: fan
  steps:
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: after
      branch:
        start_at: work
        steps:
          work: {type: task, command: fns.element, next: success}
          success: {type: success}
          fail: {type: fail}
    after: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def test_branch_names_from_values() -> None:
    assert [branch_name_of(v) for v in (0, 10, "abc", "A_b-9", True)] == [
        "0",
        "10",
        "abc",
        "A_b-9",
        "True",
    ]
    escaped = [branch_name_of(v) for v in (0.5, "a.b", "with space", "", "50%", "ü", "x~y")]
    assert escaped == ["0~2e5", "a~2eb", "with~20space", "~", "50~25", "~c3~bc", "x~7ey"]
    for name in escaped:
        assert "." not in name and "%" not in name
    assert resolve(
        "m.map_variable_placeholder.n.map_variable_placeholder.x", {"a": 1, "b": 0.5}
    ) == ("m.1.n.0~2e5.x")
    assert enclosing_branches("a.b.c.d.e") == ["a.b", "a.b.c.d"]


def test_map_runs_a_branch_per_element(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    run_log = run_yaml(project, MAP_PIPELINE, "map-run", {"items": [1, 2, 3], "offset": 100})
    assert run_log.status == "SUCCESS"
    fan = run_log.steps["fan"]
    assert fan.step_type == "map" and fan.status == "SUCCESS" and fan.attempts == []
    assert fan.map_values == [1, 2, 3]  # the list, recorded once, on the map step
    assert list(fan.branches) == ["fan.1", "fan.2", "fan.3"]
    branch = fan.branches["fan.2"]
    assert branch.status == "SUCCESS" and branch.map_variable == {"item": 2}
    work = branch.steps["fan.2.work"]
    assert work.name == "work"
    # the attempt records the element and what it used, not the iterated list
    assert work.attempts[0].parameters == {"item": 2, "offset": 100}
    assert work.attempts[0].output_parameters["seen_env"] == {"item": 2}
    assert [e.name for e in work.data_catalog] == ["work.execution.log_2"]
    assert "element 2" in (project / ".catalog" / "map-run" / "work.execution.log_2").read_text()
    # fan-in: each branch's value, collected into a list in element order
    assert run_log.parameters["doubled"] == [102, 104, 106]
    assert run_log.parameters["items"] == [1, 2, 3]
    assert list(run_log.steps) == ["fan", "after", "success"]


@pytest.mark.parametrize(
    ("reducer", "expected"),
    [("first", 102), ("last", 106), ("fns.add_all", 312)],
)
def test_map_reducers(project: Path, user_module: Any, reducer: str, expected: Any) -> None:
    user_module("fns", FUNCTIONS)
    text = MAP_PIPELINE.replace("iterate_as: item", f"iterate_as: item\n      reducer: {reducer}")
    run_log = run_yaml(
        project, text, f"reduce-{reducer.replace('.', '-')}", {"items": [1, 2, 3], "offset": 100}
    )
    assert run_log.parameters["doubled"] == expected


def test_a_failing_reducer_fails_the_map_step(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    text = MAP_PIPELINE.replace("iterate_as: item", "iterate_as: item\n      reducer: fns.broken")
    run_log = run_yaml(project, text, "bad-reducer", {"items": [1, 2]})
    fan = run_log.steps["fan"]
    assert fan.status == "FAIL"
    assert "reducer fns.broken raised KeyError" in fan.message
    assert "doubled" not in run_log.parameters
    assert run_log.status == "FAIL"


def test_map_values_that_are_not_plain_names(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS.replace("item * 2 + offset", "str(item) * 2"))
    run_log = run_yaml(project, MAP_PIPELINE, "odd-values", {"items": [0.5, "a.b", "with space"]})
    assert run_log.status == "SUCCESS", run_log.steps["fan"].message
    assert list(run_log.steps["fan"].branches) == ["fan.0~2e5", "fan.a~2eb", "fan.with~20space"]
    assert run_log.steps["fan"].branches["fan.a~2eb"].steps["fan.a~2eb.work"].status == "SUCCESS"
    assert run_log.parameters["doubled"] == ["0.50.5", "a.ba.b", "with spacewith space"]
    assert (project / ".catalog" / "odd-values" / "work.execution.log_with~20space").is_file()


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({}, "iterates on parameter 'items', which is not set"),
        ({"items": {"a": 1}}, "which must be a list, not dict"),
        ({"items": [1, "1", 2]}, "give the same branch name more than once (1)"),
    ],
)
def test_map_problems_fail_the_step_not_the_run(
    project: Path, user_module: Any, parameters: dict[str, Any], fragment: str
) -> None:
    user_module("fns", FUNCTIONS)
    run_log = run_yaml(project, MAP_PIPELINE, "bad-map", parameters)
    assert run_log.status == "FAIL"
    assert fragment in run_log.steps["fan"].message
    assert run_log.steps["fan"].status == "FAIL"
    assert list(run_log.steps) == ["fan", "fail"]


def test_an_empty_map_succeeds(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    run_log = run_yaml(project, MAP_PIPELINE, "empty-map", {"items": []})
    assert run_log.status == "SUCCESS"
    assert run_log.steps["fan"].branches == {}


def test_a_failing_element_fails_its_branch_and_the_map(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    text = (
        MAP_PIPELINE.replace("fns.element", "fns.fail_on")
        .replace("next: after", "next: after\n      on_failure: recover")
        .replace(
            "    after: {type: stub",
            "    recover: {type: stub, next: fail}\n    after: {type: stub",
        )
    )
    run_log = run_yaml(project, text, "one-bad", {"items": [1, 2, 3]})
    fan = run_log.steps["fan"]
    assert [b.status for b in fan.branches.values()] == ["SUCCESS", "FAIL", "SUCCESS"]
    bad = fan.branches["fan.2"]
    assert list(bad.steps) == ["fan.2.work", "fan.2.fail"]  # through its own fail node
    assert bad.steps["fan.2.work"].attempts[0].message == "ValueError: element 2 is bad"
    assert fan.status == "FAIL" and "branch fan.2 FAIL" in fan.message
    assert list(run_log.steps) == ["fan", "recover", "fail"]
    assert "ok" not in run_log.parameters  # a failed composite writes no parameter back
    assert run_log.status == "FAIL"


PARALLEL_PIPELINE = """
dag:
  start_at: train
  steps:
    train:
      type: parallel
      next: success
      branches:
        left:
          start_at: fit
          steps:
            fit: {type: task, command_type: shell, command: 'export MAGNUS_PRM_shared=\\"left\\" MAGNUS_PRM_left=1', next: success}
            success: {type: success}
            fail: {type: fail}
        right:
          start_at: fit
          steps:
            fit: {type: task, command_type: shell, command: 'export MAGNUS_PRM_shared=\\"right\\" MAGNUS_PRM_right=2', next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


def test_parallel_branches_and_their_parameters(project: Path, caplog: Any) -> None:
    run_log = run_yaml(project, PARALLEL_PIPELINE, "par")
    train = run_log.steps["train"]
    assert train.step_type == "parallel" and train.status == "SUCCESS"
    assert list(train.branches) == ["train.left", "train.right"]
    assert list(train.branches["train.left"].steps) == ["train.left.fit", "train.left.success"]
    assert train.branches["train.right"].parameters == {"shared": "right", "right": 2}
    # the last declared branch wins a parameter several branches set, with a warning
    assert run_log.parameters == {"shared": "right", "left": 1, "right": 2}
    assert "several branches set parameter 'shared'" in caplog.text


def test_a_failing_parallel_branch_lets_its_sibling_finish(project: Path) -> None:
    text = PARALLEL_PIPELINE.replace("MAGNUS_PRM_left=1'", "MAGNUS_PRM_left=1; exit 1'")
    run_log = run_yaml(project, text, "par-fail")
    train = run_log.steps["train"]
    assert train.branches["train.left"].status == "FAIL"
    assert train.branches["train.right"].status == "SUCCESS"
    assert list(train.branches["train.left"].steps) == ["train.left.fit", "train.left.fail"]
    assert train.status == "FAIL"
    assert run_log.status == "FAIL"
    assert run_log.parameters == {}


NESTED = """
dag:
  start_at: outer
  steps:
    outer:
      type: map
      iterate_on: outers
      iterate_as: outer
      next: success
      branch:
        start_at: inner par
        steps:
          inner par:
            type: parallel
            next: success
            branches:
              a:
                start_at: deep
                steps:
                  deep:
                    type: map
                    iterate_on: inners
                    iterate_as: inner
                    next: success
                    branch:
                      start_at: leaf
                      steps:
                        leaf: {type: task, command: fns.echo_pair, next: success}
                        success: {type: success}
                        fail: {type: fail}
                  success: {type: success}
                  fail: {type: fail}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


def test_nested_composites_are_named_as_0_5_names_them(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    run_log = run_yaml(project, NESTED, "nested", {"outers": [1, 2], "inners": ["x", "y"]})
    assert run_log.status == "SUCCESS"
    leaf = run_log.search_step_by_internal_name("outer.2.inner par.a.deep.y.leaf")
    assert leaf.attempts[0].output_parameters == {"pair": "2-y"}
    assert leaf.attempts[0].parameters == {"outer": 2, "inner": "y"}
    # inner maps reduce into their branch's scope; the outer map collects those lists
    assert run_log.parameters["pair"] == [["1-x", "1-y"], ["2-x", "2-y"]]

    graph = load_pipeline_file("p.yaml", get_plugins())
    _, node = find_node(graph, "outer.map_variable_placeholder.inner par.a.deep")
    assert node.internal_name == "outer.map_variable_placeholder.inner par.a.deep"
    _, same = find_node(graph, "outer.2.inner par.a.deep")  # a resolved name finds it too
    assert same is node
    branch = find_branch(graph, "outer.1.inner par.a.deep.x")
    assert branch.internal_branch_name == (
        "outer.map_variable_placeholder.inner par.a.deep.map_variable_placeholder"
    )


def test_dag_step_runs_another_file(project: Path) -> None:
    (project / "inner.yaml").write_text(
        "dag:\n  start_at: hello\n  steps:\n"
        "    hello: {type: task, command_type: shell, command: 'export MAGNUS_PRM_greeting=hi', next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    text = (
        "dag:\n  start_at: nested\n  steps:\n"
        "    nested: {type: dag, dag_definition: inner.yaml, next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    run_log = run_yaml(project, text, "dag-run")
    nested = run_log.steps["nested"]
    assert nested.step_type == "dag" and list(nested.branches) == ["nested.dag"]
    assert list(nested.branches["nested.dag"].steps) == ["nested.dag.hello", "nested.dag.success"]
    assert run_log.parameters == {"greeting": "hi"}
    # the nested graph travels in run_config.dag: no need for the file to rebuild the run
    dumped = run_log.run_config["dag"]["steps"]["nested"]
    assert dumped["branch"]["steps"]["hello"]["command"] == "export MAGNUS_PRM_greeting=hi"


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ("{type: parallel, next: success}", "a parallel step needs 'branches'"),
        (
            "{type: parallel, next: success, branches: {a.b: {start_at: x, steps: {}}}}",
            "branch name 'a.b' cannot be empty or contain '.'",
        ),
        ("{type: map, iterate_on: x, iterate_as: y, next: success}", "a map step needs 'branch'"),
        (
            "{type: map, iterate_as: y, next: success, branch: {start_at: s, steps: {s: {type: success}, f: {type: fail}}}}",
            "missing required key 'iterate_on'",
        ),
        (
            "{type: map, iterate_on: x, iterate_as: y, reducer: sum, next: success, branch: {start_at: s, steps: {s: {type: success}, f: {type: fail}}}}",
            "reducer 'sum' is neither",
        ),
        ("{type: dag, dag_definition: nowhere.yaml, next: success}", "nowhere.yaml"),
        ("{type: dag, dag_definition: x.json, next: success}", "must name a pipeline file"),
        (
            "{type: parallel, next: success, catalog: {get: []}, branches: {a: {start_at: s, steps: {s: {type: success}, f: {type: fail}}}}}",
            "unknown key 'catalog'",
        ),
        (
            "{type: parallel, next: success, branches: {a: {start_at: s, steps: {s: {type: success}}}}}",
            "branch 'c.a': there should be exactly one fail step",
        ),
    ],
)
def test_composite_definition_problems(step: str, fragment: str) -> None:
    definition = yaml.safe_load(
        f"start_at: c\nsteps:\n  c: {step}\n  success: {{type: success}}\n  fail: {{type: fail}}\n"
    )
    with pytest.raises(PipelineValidationError) as info:
        build_graph(definition, get_plugins())
    assert fragment in str(info.value)


def test_sdk_composites_build_the_yaml_graph(project: Path, user_module: Any) -> None:
    user_module("fns", FUNCTIONS)
    (project / "p.yaml").write_text(MAP_PIPELINE)
    yaml_graph = load_pipeline_file("p.yaml", get_plugins())
    branch = Pipeline(steps=[PythonTask(name="work", function="fns.element")])
    sdk = Pipeline(
        steps=[
            Map(name="fan", iterate_on="items", iterate_as="item", branch=branch),
            Stub(name="after"),
        ]
    )
    assert dag_hash(build_graph(sdk.definition(), get_plugins())) == dag_hash(yaml_graph)
    parallel = Pipeline(
        steps=[
            Parallel(
                name="p",
                branches={
                    "one": Pipeline(steps=[ShellTask(name="s", command="true")]),
                    "two": Pipeline(steps=[Stub(name="t")]),
                },
            ),
            Dag(name="d", dag_definition="p.yaml"),
        ]
    )
    graph = build_graph(parallel.definition(), get_plugins())
    assert graph.nodes["p"].dump()["branches"]["one"]["steps"]["s"]["internal_name"] == "p.one.s"
    assert graph.nodes["d"].dump()["branch"]["internal_branch_name"] == "d.dag"
    run_log = sdk.execute(run_id="sdk-map", parameters_file=_params(project, {"items": [5]}))
    assert run_log is not None and run_log.parameters["doubled"] == [10]


def _params(project: Path, parameters: dict[str, Any]) -> str:
    (project / "sdk-params.yaml").write_text(json.dumps(parameters))
    return "sdk-params.yaml"


def test_a_map_step_does_not_list_the_run_per_element(
    project: Path, user_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per element, the engine reads only records of its own: listings do not grow with N."""
    import os

    user_module("fns", FUNCTIONS)
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(str(path)) or real(path))
    run_yaml(project, MAP_PIPELINE, "listing", {"items": list(range(40))})
    step_listings = [p for p in listed if p.endswith(("steps", "branches"))]
    # fan-in of the map and the final assembly of the run log: a constant, not 40 or more
    assert len(step_listings) <= 8, len(step_listings)
