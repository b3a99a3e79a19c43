"""Pipeline graphs: building, validation (every problem at once), naming, dumps and hashes."""

from __future__ import annotations

from typing import Any

import pytest

from magnus.building import build_graph, graph_from_dump, load_pipeline_file
from magnus.exceptions import ConfigurationError, PipelineValidationError
from magnus.graph import dag_hash
from magnus.nodes import StubNode, TaskNode
from magnus.plugins import get_plugins


def _linear(n: int) -> dict[str, Any]:
    steps: dict[str, Any] = {
        f"s{i}": {"type": "stub", "next": f"s{i + 1}" if i + 1 < n else "success"} for i in range(n)
    }
    steps["success"] = {"type": "success"}
    steps["fail"] = {"type": "fail"}
    return {"start_at": "s0", "steps": steps}


def _problems(definition: Any) -> list[str]:
    with pytest.raises(PipelineValidationError) as info:
        build_graph(definition, get_plugins(), source="p.yaml")
    assert "p.yaml" in str(info.value)
    return info.value.problems


def test_a_valid_graph_builds_with_internal_names() -> None:
    graph = build_graph(_linear(3), get_plugins())
    assert list(graph.nodes) == ["s0", "s1", "s2", "success", "fail"]
    assert graph.start_node.name == "s0"
    assert isinstance(graph.nodes["s0"], StubNode)
    assert graph.success_node.internal_name == "success"
    assert graph.next_after(graph.nodes["s0"], failed=False).name == "s1"
    assert graph.next_after(graph.nodes["s0"], failed=True).name == "fail"


def test_ten_thousand_steps_validate_without_recursion() -> None:
    graph = build_graph(_linear(10_000), get_plugins())
    assert len(graph.nodes) == 10_002


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        {
            "start_at": "missing",
            "extra": 1,
            "steps": {
                "a.b": {"type": "task", "command": "x.y", "next": "c"},
                "a": {"type": "task", "command": "x.y", "next": "b", "on_failure": "nope"},
                "b": {"type": "task", "command": "x.y", "next": "a", "bogus": 1},
                "c": {"type": "task", "next": "success"},
                "d": {"type": "weird"},
                "e": {"next": "success"},
                "f": {"type": "task", "command_type": "rust", "command": "x", "next": "success"},
                "g": {"type": "task", "command": "m.f", "next": "success", "max_attempts": 0},
                "success": {"type": "success", "next": "a"},
                "fail": {"type": "fail"},
                "fail2": {"type": "fail"},
            },
        }
    )
    text = "\n".join(problems)
    expected = [
        "unknown key 'extra'",
        "step 'a.b' in the pipeline: a step name cannot be empty or contain '.' or '%'",
        "step 'b' in the pipeline: unknown key 'bogus'",
        "step 'c' in the pipeline: missing required key 'command'",
        "step 'd' in the pipeline: unknown type 'weird'",
        "step 'e' in the pipeline: missing required key 'type'",
        "step 'f' in the pipeline: unknown command_type 'rust' (known: notebook, python, shell)",
        "step 'g' in the pipeline: key 'max_attempts'",
        "step 'success' in the pipeline: unknown key 'next'",
        "there should be exactly one fail step, found 2",
        "start_at names 'missing'",
        "step 'a' in the pipeline: on_failure names 'nope'",
    ]
    for fragment in expected:
        assert fragment in text, fragment
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["steps"].pop("success"), "exactly one success step, found 0"),
        (lambda d: d["steps"].pop("fail"), "exactly one fail step, found 0"),
        (lambda d: d.update(start_at="nowhere"), "start_at names 'nowhere'"),
        (lambda d: d.pop("start_at"), "'start_at' must name the first step"),
        (lambda d: d.update(steps={}), "'steps' must be a non-empty mapping"),
        (
            lambda d: d["steps"]["s0"].pop("next"),
            "step 's0' in the pipeline: missing required key 'next'",
        ),
        (lambda d: d["steps"]["s1"].update(next="ghost"), "next names 'ghost'"),
        (lambda d: d["steps"].update({"with%": {"type": "stub", "next": "success"}}), "'with%'"),
        (
            lambda d: d["steps"]["s0"].update(catalog={"get": [], "nope": []}),
            "unknown key 'catalog.nope'",
        ),
        (
            lambda d: d["steps"]["success"].update(catalog={}),
            "step 'success' in the pipeline: unknown key 'catalog'",
        ),
    ],
)
def test_each_rule_names_the_step_and_graph(mutate: Any, fragment: str) -> None:
    definition = _linear(3)
    mutate(definition)
    assert any(fragment in p for p in _problems(definition)), _problems(definition)


def test_cycles_are_found_iteratively_and_named() -> None:
    definition = _linear(3)
    definition["steps"]["s2"]["next"] = "s0"
    problems = _problems(definition)
    assert problems == ["the pipeline: the steps form a cycle: s0 -> s1 -> s2 -> s0"]


def test_on_failure_edges_take_part_in_cycles() -> None:
    definition = _linear(3)
    definition["steps"]["s2"]["on_failure"] = "s1"
    assert "cycle" in _problems(definition)[0]


def test_unreachable_steps_are_warnings_not_errors(caplog: pytest.LogCaptureFixture) -> None:
    definition = _linear(2)
    definition["steps"]["orphan"] = {"type": "stub", "next": "success"}
    graph = build_graph(definition, get_plugins())
    assert graph.warnings == ["step 'orphan' in the pipeline is never reached from start_at 's0'"]
    assert "orphan" in caplog.text


def test_stub_keeps_extra_fields_and_task_gets_its_type() -> None:
    definition = _linear(1)
    definition["steps"]["s0"] = {"type": "stub", "next": "t", "sketch": {"todo": 1}}
    definition["steps"]["t"] = {
        "type": "task",
        "command_type": "shell",
        "command": "true",
        "next": "success",
        "max_attempts": 3,
    }
    graph = build_graph(definition, get_plugins())
    assert graph.nodes["s0"].dump()["sketch"] == {"todo": 1}
    task = graph.nodes["t"]
    assert isinstance(task, TaskNode)
    assert task.executable.service_name == "shell"
    assert task.max_attempts == 3


def test_dump_carries_everything_and_rebuilds_the_same_graph() -> None:
    definition = _linear(2)
    definition["steps"]["s0"] = {
        "type": "task",
        "command": "pkg.mod.func",
        "next": "s1",
        "on_failure": "s1",
        "catalog": {"get": ["a/*"], "put": ["b.csv"]},
        "max_attempts": 2,
    }
    graph = build_graph(definition, get_plugins())
    dump = graph.dump()
    step = dump["steps"]["s0"]
    assert step == {
        "type": "task",
        "name": "s0",
        "internal_name": "s0",
        "internal_branch_name": "",
        "is_composite": False,
        "next": "s1",
        "on_failure": "s1",
        "overrides": {},
        "catalog": {"get": ["a/*"], "put": ["b.csv"]},
        "max_attempts": 2,
        "command_type": "python",
        "command": "pkg.mod.func",
    }
    rebuilt = graph_from_dump(dump, get_plugins())
    assert rebuilt.dump() == dump
    assert dag_hash(rebuilt) == dag_hash(graph)


def test_the_hash_changes_with_any_field() -> None:
    first = build_graph(_linear(2), get_plugins())
    changed = _linear(2)
    changed["steps"]["s1"]["max_attempts"] = 2
    assert dag_hash(first) != dag_hash(build_graph(changed, get_plugins()))
    assert dag_hash(first) == dag_hash(build_graph(_linear(2), get_plugins()))


def test_pipeline_files_errors_name_the_file(tmp_path: Any) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("dag:\n  start_at: a\n  steps: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"broken.yaml.*not valid YAML at line"):
        load_pipeline_file(broken, get_plugins())
    no_dag = tmp_path / "nodag.yaml"
    no_dag.write_text("steps: {}\n")
    with pytest.raises(PipelineValidationError, match=r"(?s)nodag.yaml.*top-level 'dag'"):
        load_pipeline_file(no_dag, get_plugins())
    with pytest.raises(ConfigurationError, match=r"Cannot read the pipeline file .*missing.yaml"):
        load_pipeline_file(tmp_path / "missing.yaml", get_plugins())
