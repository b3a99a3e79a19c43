"""Names are deterministic, valid for Kubernetes and Argo, and unique where they must be."""

from __future__ import annotations

import re
from typing import Any

import pytest
from executor_argo.argo_helpers import Renderer, command_of, tasks_by_name, templates_by_name
from magnus_executor_argo.naming import MAX_LENGTH, dns_label, short_hash, unique_names

DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("make chunks", "make-chunks"),
        ("Train_Model", "train-model"),
        ("render all.map_variable_placeholder.render", "render-all-map-render"),
        ("  weird -- name!! ", "weird-name"),
        ("1st step", "step-1st-step"),  # depends parses task names as identifiers
        ("in", "step-in"),  # a word of the depends expression language
        ("été", "t"),
        ("...", "step"),
    ],
)
def test_dns_label(text: str, label: str) -> None:
    assert dns_label(text) == label


def test_unique_names_keep_plain_labels_when_they_do_not_collide() -> None:
    names = unique_names([("a", "alpha", "alpha"), ("b", "beta", "beta")])
    assert names == {"a": "alpha", "b": "beta"}


def test_colliding_labels_each_get_a_stable_hash() -> None:
    names = unique_names([("x", "a-b", "a b"), ("y", "a-b", "a_b"), ("z", "c", "c")])
    assert names == {"x": f"a-b-{short_hash('a b')}", "y": f"a-b-{short_hash('a_b')}", "z": "c"}
    # What else the pipeline holds does not change a hashed name.
    again = unique_names([("y", "a-b", "a_b"), ("w", "a-b", "a.b")])
    assert again["y"] == names["y"]


def test_reserved_names_are_never_taken() -> None:
    names = unique_names([("k", "fan-out", "fan out")], reserved=["fan-out"])
    assert names["k"] == f"fan-out-{short_hash('fan out')}"


def test_long_labels_are_cut_with_a_hash() -> None:
    label = "x" * 100
    name = unique_names([("k", label, "source")])["k"]
    assert len(name) == MAX_LENGTH
    assert name.endswith(f"-{short_hash('source')}")


def _stubs(*names: str) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for name, following in zip(names, [*names[1:], "success"], strict=True):
        steps[name] = {"type": "stub", "next": following}
    return {
        "start_at": names[0],
        "steps": {**steps, "success": {"type": "success"}, "fail": {"type": "fail"}},
    }


def test_steps_whose_names_collide_get_distinct_stable_names(render: Renderer) -> None:
    document = render(_stubs("Load data", "load_data", "magnus dag", "x" * 80))
    root = templates_by_name(document)["magnus-dag"]
    names = [task["name"] for task in root["dag"]["tasks"]]
    assert names[:2] == [
        f"load-data-{short_hash('Load data')}",
        f"load-data-{short_hash('load_data')}",
    ]
    # The entry point keeps its name; the step that would take it is disambiguated.
    assert names[2] == "magnus-dag"  # a task name: tasks live in their DAG only
    task = tasks_by_name(root)["magnus-dag"]
    assert task["template"] == f"magnus-dag-{short_hash('leaf magnus dag')}"
    assert len(names[3]) == MAX_LENGTH
    # The last step, named by its hash, runs the success step in its container.
    last = tasks_by_name(root)[names[3]]["template"]
    assert "--then-success" in command_of(templates_by_name(document)[last])


def test_a_parallel_branch_named_like_a_fan_task_is_disambiguated(render: Renderer) -> None:
    graph = {
        "start_at": "p",
        "steps": {
            "p": {
                "type": "parallel",
                "next": "success",
                "branches": {"fan out": _stubs("a"), "b": _stubs("a")},
            },
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    tasks = tasks_by_name(templates_by_name(render(graph))["p"])
    assert list(tasks) == ["fan-out", f"fan-out-{short_hash('fan out')}", "b", "fan-in"]


def test_every_name_is_a_dns_label(render: Renderer) -> None:
    document = render("tests/executor_argo/pipelines/nested.yaml")
    for name, template in templates_by_name(document).items():
        assert DNS_LABEL.fullmatch(name) and len(name) <= MAX_LENGTH, name
        for task in template.get("dag", {}).get("tasks", []):
            assert DNS_LABEL.fullmatch(task["name"]), task["name"]
