"""Parameters handed to tasks through the environment (``MAGNUS_PRM_*``), kept within a run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from magnus import Pipeline, PythonTask, ShellTask
from magnus.tasks.environment import (
    environment_without_exports,
    exports_kept,
    task_environment,
)

LIST = "MAGNUS_PRM_items"
COUNT = "MAGNUS_PRM_count"
NEW = "MAGNUS_PRM_new"
LOSS = "MAGNUS_TRACK_loss"


def _task(variables: dict[str, str], body: Any = None) -> tuple[dict[str, str], list[str]]:
    """Run ``body`` as a task given ``variables``: what it set (parameters) and its metrics."""
    with task_environment(variables) as environment:
        try:
            if body is not None:
                body()
        finally:
            environment.collect()
    return environment.parameters, environment.metric_names


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("MAGNUS_PRM_", "MAGNUS_TRACK_", "MAGNUS_MAP_")):
            monkeypatch.delenv(name)


@pytest.mark.skipif(not os.supports_bytes_environ, reason="identity of the environment's bytes")
def test_a_text_left_alone_is_not_set_again_within_a_run(clean_environment: None) -> None:
    items = json.dumps(list(range(1000)))
    with exports_kept():
        _task({LIST: items, COUNT: "1"})
        held = os.environb[LIST.encode()]
        for count in range(2, 5):
            changed, _ = _task({LIST: items, COUNT: str(count)})
            assert changed == {}
            # The very object the first task left: nobody set the list again.
            assert os.environb[LIST.encode()] is held
            assert os.environ[COUNT] == str(count)
    assert LIST not in os.environ and COUNT not in os.environ


def test_what_a_task_sets_is_told_and_taken_out(clean_environment: None) -> None:
    def body() -> None:
        os.environ[COUNT] = "2"  # changed
        os.environ[NEW] = '"made"'  # new
        os.environ[LOSS] = "0.5"  # a metric
        del os.environ[LIST]  # removed: not a parameter change

    with exports_kept():
        changed, metrics = _task({LIST: "[1, 2]", COUNT: "1"}, body)
        assert changed == {COUNT: "2", NEW: '"made"'}
        assert metrics == [LOSS]
        assert COUNT not in os.environ and NEW not in os.environ
        # The next task is given the list again, and the count it is handed.
        changed, _ = _task({LIST: "[1, 2]", COUNT: "2"})
        assert changed == {}
        assert os.environ[LIST] == "[1, 2]" and os.environ[COUNT] == "2"
    os.environ.pop(LOSS)


def test_the_environment_is_put_back_when_the_run_ends(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(COUNT, "7")  # given from the shell that started magnus
    with exports_kept():
        _task({COUNT: "8", "MAGNUS_MAP_VARIABLE": '{"item": 1}'})
        assert os.environ[COUNT] == "8"
        # A process started between tasks sees the environment as magnus found it.
        between = environment_without_exports()
        assert between[COUNT] == "7" and "MAGNUS_MAP_VARIABLE" not in between
        # A task that is not given the map variable does not see it.
        _task({COUNT: "8"})
        assert "MAGNUS_MAP_VARIABLE" not in os.environ
    assert os.environ[COUNT] == "7"


def test_outside_a_run_each_task_puts_the_environment_back(clean_environment: None) -> None:
    _task({COUNT: "1"}, lambda: os.environ.__setitem__("MAGNUS_PRM_other", "2"))
    assert COUNT not in os.environ and "MAGNUS_PRM_other" not in os.environ


def test_a_shell_step_after_a_map_sees_neither_the_map_variable_nor_stale_values(
    project: Path, user_module: Any
) -> None:
    user_module(
        "env_steps",
        "import json, os\n"
        "def remember(item):\n"
        "    return {'last': item, 'seen': json.loads(os.environ['MAGNUS_PRM_items'])}\n"
        "def change():\n"
        "    os.environ['MAGNUS_PRM_items'] = json.dumps([9])\n",
    )
    from magnus import Map

    element = Pipeline(steps=[PythonTask(name="remember", function="env_steps.remember")])
    pipeline = Pipeline(
        steps=[
            Map(name="fan", branch=element, iterate_on="items", iterate_as="item"),
            PythonTask(name="change", function="env_steps.change"),
            ShellTask(
                name="look",
                command='echo "map=${MAGNUS_MAP_VARIABLE-unset} items=$MAGNUS_PRM_items" > seen.txt',
            ),
        ]
    )
    (project / "parameters.yaml").write_text("items: [1, 2, 3]\n")
    run_log = pipeline.execute(parameters_file="parameters.yaml", run_id="env-run")
    assert run_log is not None and run_log.status == "SUCCESS", run_log
    assert (project / "seen.txt").read_text().strip() == "map=unset items=[9]"
    assert run_log.parameters["items"] == [9]
    assert run_log.parameters["seen"] == [[1, 2, 3]] * 3  # each element saw the list
    assert run_log.parameters["last"] == [1, 2, 3]
    assert "MAGNUS_PRM_items" not in os.environ and "MAGNUS_MAP_VARIABLE" not in os.environ
