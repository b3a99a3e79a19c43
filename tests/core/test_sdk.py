"""The Python SDK: building pipelines from steps, and running them like YAML pipelines."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from magnus import Catalog, Fail, Pipeline, PythonTask, ShellTask, Stub, Success, Task, entrypoints
from magnus.building import build_graph, load_pipeline_file
from magnus.exceptions import ConfigurationError, PipelineValidationError
from magnus.graph import dag_hash
from magnus.plugins import get_plugins


def _steps(definition: dict[str, Any]) -> dict[str, Any]:
    return {name: step.get("next") for name, step in definition["steps"].items()}


def test_list_order_gives_next_and_the_last_step_ends_in_success() -> None:
    pipeline = Pipeline(steps=[Stub(name="a"), ShellTask(name="b", command="true"), Stub(name="c")])
    definition = pipeline.definition()
    assert definition["start_at"] == "a"
    assert _steps(definition) == {"a": "b", "b": "c", "c": "success", "success": None, "fail": None}


def test_explicit_links_win_over_list_order() -> None:
    a, b, c = Stub(name="a"), Stub(name="b"), Stub(name="c", terminate_with_failure=True)
    assert (a >> c) is c
    assert (a << b) is b  # as in 0.5: `a << b` means b runs before a
    definition = Pipeline(steps=[a, b, c], start_at=b).definition()
    assert definition["start_at"] == "b"
    assert _steps(definition)["a"] == "c"
    assert _steps(definition)["b"] == "a"
    assert _steps(definition)["c"] == "fail"


def test_depends_on_and_double_links() -> None:
    first, second = Stub(name="first"), Stub(name="second")
    assert second.depends_on(first) is second
    assert first.next_node == "second"
    with pytest.raises(ConfigurationError, match="'first' already has a next node"):
        first >> Stub(name="third")
    with pytest.raises(ValueError, match="mutually exclusive"):
        Stub(name="x", terminate_with_success=True, terminate_with_failure=True)


def test_custom_terminal_nodes_and_task_alias() -> None:
    pipeline = Pipeline(
        steps=[
            Task(name="shell", command="echo hi", command_type="shell", on_failure="sad"),
            Stub(name="sad", terminate_with_failure=True),
            Success(name="done"),
            Fail(name="sad end"),
        ],
    )
    graph = build_graph(pipeline.definition(), get_plugins())
    assert graph.success_node.name == "done" and graph.fail_node.name == "sad end"
    assert graph.nodes["shell"].dump()["command_type"] == "shell"
    assert graph.nodes["sad"].dump()["next"] == "sad end"


def test_problems_are_reported_like_yaml() -> None:
    pipeline = Pipeline(steps=[Stub(name="a", next="nowhere")])
    with pytest.raises(PipelineValidationError, match="next names 'nowhere'"):
        build_graph(pipeline.definition(), get_plugins())


def _closure() -> Any:
    def inner() -> None:
        return None

    return inner


class _Holder:
    def method(self) -> None:
        return None


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        (lambda: None, "no lambdas"),
        (_closure(), "no lambdas, closures or nested functions"),
        (_Holder().method, "is a method"),
    ],
)
def test_functions_must_be_importable_by_name(function: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        PythonTask(name="x", function=function)


def test_a_function_becomes_its_dotted_path() -> None:
    from magnus.sdk import function_path

    assert PythonTask(name="x", function=function_path).function == "magnus.sdk.function_path"
    assert PythonTask(name="x", function="pkg.mod.f").function == "pkg.mod.f"


def _normalised(run_log: Any) -> dict[str, Any]:
    data = copy.deepcopy(run_log.to_json_dict())
    run_id = data.pop("run_id")
    for key in ("start_time", "end_time"):
        data.pop(key)
    config = data["run_config"]
    for key in ("run_id", "pipeline_file"):
        config.pop(key)
    for step in data["steps"].values():
        for attempt in step["attempts"]:
            for key in ("start_time", "end_time", "duration"):
                attempt.pop(key)
        for entry in step["data_catalog"]:
            entry["catalog_relative_path"] = entry["catalog_relative_path"].replace(run_id, "RUN")
            if entry["name"].endswith(".execution.log"):
                entry.pop("data_hash")  # the example prints the run id
    return data


def test_a_yaml_pipeline_and_its_sdk_twin_record_the_same_run(project: Path) -> None:
    from examples.functions import prepare, report, train

    plugins = get_plugins()
    yaml_graph = load_pipeline_file("examples/python-tasks.yaml", plugins)
    prepared = entrypoints.prepare_run(
        pipeline_file="examples/python-tasks.yaml", parameters_file="examples/parameters.yaml"
    )
    from_yaml = entrypoints.execute(prepared)
    import shutil

    shutil.rmtree(project / "data")  # left by the first run: it would make the tree dirty

    pipeline = Pipeline(
        description="Parameters flow from step to step",
        steps=[
            PythonTask(name="prepare", function=prepare, catalog=Catalog(put=["data/rows.csv"])),
            PythonTask(name="train", function=train),
            PythonTask(name="report", function=report),
        ],
    )
    from_sdk = pipeline.execute(parameters_file="examples/parameters.yaml")
    assert from_sdk is not None
    assert dag_hash(build_graph(pipeline.definition(), plugins)) == dag_hash(yaml_graph)
    assert from_sdk.dag_hash == from_yaml.dag_hash != ""
    assert from_yaml.run_config["pipeline_file"] == "examples/python-tasks.yaml"
    assert from_sdk.run_config["pipeline_file"] == ""
    assert _normalised(from_sdk) == _normalised(from_yaml)


def test_sdk_execute_honours_the_configuration_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "fs.yaml").write_text(yaml.safe_dump({"run_log_store": {"type": "file-system"}}))
    monkeypatch.setenv("MAGNUS_CONFIGURATION_FILE", "fs.yaml")
    run_log = Pipeline(steps=[Stub(name="only")]).execute(
        configuration_file="ignored.yaml", run_id="from-env"
    )
    assert run_log is not None and run_log.status == "SUCCESS"
    assert (project / ".run_log_store" / "from-env.json").is_file()
    assert run_log.run_config["configuration_file"] == "fs.yaml"


def test_a_failed_sdk_run_returns_the_log(project: Path) -> None:
    run_log = Pipeline(steps=[ShellTask(name="boom", command="exit 1")]).execute(run_id="sdk-fail")
    assert run_log is not None
    assert run_log.status == "FAIL"
    assert list(run_log.steps) == ["boom", "fail"]


def test_ten_thousand_steps_run_without_recursion(project: Path) -> None:
    (project / "buffered.yaml").write_text(
        "run_log_store: {type: buffered}\ncatalog: {type: do-nothing}\n"
    )
    steps = [Stub(name=f"s{i}") for i in range(10_000)]
    run_log = Pipeline(steps=steps).execute(configuration_file="buffered.yaml", run_id="long")
    assert run_log is not None and run_log.status == "SUCCESS"
    assert len(run_log.steps) == 10_001


def test_notebook_task_is_a_notebook_step() -> None:
    from magnus import NotebookTask

    definition = Pipeline(
        steps=[NotebookTask(name="nb", notebook="notebooks/a.ipynb", output_cell_tag="out")]
    ).definition()
    step = build_graph(definition, get_plugins()).nodes["nb"].dump()
    assert step["command_type"] == "notebook" and step["command"] == "notebooks/a.ipynb"
    assert step["output_cell_tag"] == "out"
    assert step["notebook_output_path"] == "notebooks/a_out.ipynb"
