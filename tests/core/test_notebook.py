"""Notebook tasks: papermill runs real ipykernel kernels (slow to start, so few runs here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from magnus import Pipeline, Task, entrypoints
from magnus.building import graph_from_dump, load_pipeline_file
from magnus.catalog import file_hash
from magnus.exceptions import PipelineValidationError, TaskError
from magnus.notebook import (
    INSTALL_HINT,
    NotebookTaskType,
    default_output_path,
    output_path_in_map,
)
from magnus.plugins import get_plugins
from magnus.runlog.models import DataCatalog, RunLog, StepLog
from magnus.tasks import TaskInput

NOTEBOOKS = Path(__file__).parent / "notebooks"


def run_yaml(project: Path, text: str, run_id: str) -> RunLog:
    (project / "p.yaml").write_text(textwrap.dedent(text))
    return run_file("p.yaml", run_id)


def run_file(pipeline_file: str, run_id: str) -> RunLog:
    prepared = entrypoints.prepare_run(pipeline_file=pipeline_file, run_id=run_id)
    return entrypoints.execute(prepared)


def with_test_notebooks(project: Path) -> Path:
    shutil.copytree(NOTEBOOKS, project / "notebooks")
    return project / "notebooks"


def catalogued(step: StepLog, name: str, run_id: str) -> DataCatalog:
    """The step's record of ``name``, checked against the file the catalog holds."""
    entries = [entry for entry in step.data_catalog if entry.name == name]
    assert len(entries) == 1, [entry.name for entry in step.data_catalog]
    stored = Path(".catalog") / run_id / name
    assert file_hash(stored) == entries[0].data_hash
    return entries[0]


def execution_log(step: StepLog, run_id: str) -> str:
    (log,) = [entry.name for entry in step.data_catalog if ".execution.log" in entry.name]
    return (Path(".catalog") / run_id / log).read_text()


def one_step(**fields: Any) -> str:
    """A pipeline of one notebook step named ``nb`` with the given fields."""
    step = {"type": "task", "command_type": "notebook", **fields, "next": "success"}
    steps = {"nb": step, "success": {"type": "success"}, "fail": {"type": "fail"}}
    return yaml.safe_dump({"dag": {"start_at": "nb", "steps": steps}})


# ------------------------------------------------------------------------ definitions (no kernel)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("greet.ipynb", "greet_out.ipynb"),
        ("./x.ipynb", "./x_out.ipynb"),  # 0.5 made this /x_out.ipynb
        ("a.b/x.ipynb", "a.b/x_out.ipynb"),  # 0.5 made this ab/x_out.ipynb
        ("nb.v2.ipynb", "nb.v2_out.ipynb"),
    ],
)
def test_default_output_path_replaces_only_the_extension(command: str, expected: str) -> None:
    assert default_output_path(command) == expected
    assert NotebookTaskType(command=command).notebook_output_path == expected


def test_map_values_go_before_the_extension_as_branch_names() -> None:
    task = NotebookTaskType(command="nb.ipynb", notebook_output_path="out/nb.ipynb")
    assert task.output_path({}) == "out/nb.ipynb"
    assert task.output_path({"i": 3}) == "out/nb_3.ipynb"
    assert output_path_in_map("a/nb_out.ipynb", {"i": 3, "j": "x y"}) == "a/nb_out_3_x~20y.ipynb"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "analysis.py"}, "command must be the path of a notebook ending in .ipynb"),
        (
            {"command": "nb.ipynb", "notebook_output_path": "out.txt"},
            "notebook_output_path must be the path of a notebook ending in .ipynb",
        ),
        (
            {"command": "nb.ipynb", "optional_ploomber_args": {"kernal_name": "python3"}},
            "unsupported optional_ploomber_args kernal_name",
        ),
        ({"command": "nb.ipynb", "output_cell_tag": " "}, "output_cell_tag must not be empty"),
    ],
)
def test_invalid_fields_are_validation_errors_naming_the_step(
    tmp_path: Path, fields: dict[str, Any], expected: str
) -> None:
    (tmp_path / "p.yaml").write_text(one_step(**fields))
    with pytest.raises(PipelineValidationError) as caught:
        load_pipeline_file(tmp_path / "p.yaml", get_plugins())
    assert "'nb'" in str(caught.value) or "nb:" in str(caught.value)
    assert expected in str(caught.value)


def test_the_dag_records_the_output_path_and_rebuilds(project: Path) -> None:
    graph = load_pipeline_file("examples/notebook.yaml", get_plugins())
    step = graph.dump()["steps"]["greet"]
    assert step["notebook_output_path"] == "examples/notebooks/greet_out.ipynb"
    assert step["output_cell_tag"] == "magnus_output"
    assert graph_from_dump(graph.dump(), get_plugins()).dump() == graph.dump()


def test_without_the_extra_the_pipeline_validates_and_the_step_fails_with_a_hint(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "papermill", None)  # what an environment without it sees
    load_pipeline_file("examples/notebook.yaml", get_plugins())
    run_log = run_yaml(project, one_step(command="examples/notebooks/greet.ipynb"), "no-extra")
    assert run_log.status == "FAIL"
    assert run_log.steps["nb"].message == INSTALL_HINT


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "missing.ipynb"}, "Notebook missing.ipynb does not exist in "),
        (
            {"command": "nb.ipynb", "notebook_output_path": "./nb.ipynb"},
            "notebook_output_path is the notebook itself",
        ),
    ],
)
def test_checks_before_a_kernel_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(NOTEBOOKS / "bad_output.ipynb", "nb.ipynb")
    task_input = TaskInput(step_name="nb", parameters={"a": 1, "items": [2]}, iterated={"items"})
    with pytest.raises(TaskError, match=expected):
        NotebookTaskType(**fields).execute(task_input)
    assert task_input.consumed == {"a": 1}  # recorded on the failed attempt too
    assert Path("nb.ipynb").read_bytes() == (NOTEBOOKS / "bad_output.ipynb").read_bytes()


def test_validating_a_notebook_pipeline_does_not_import_papermill(project: Path) -> None:
    code = (
        "import sys\n"
        "from magnus.building import load_pipeline_file\n"
        "from magnus.plugins import get_plugins\n"
        "load_pipeline_file('examples/notebook.yaml', get_plugins())\n"
        "print('papermill' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------ executions (kernels)


def test_notebooks_in_a_pipeline_and_a_map(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # examples/notebook.yaml: greet.ipynb once, then once per name in a map (three kernels).
    run_log = run_file("examples/notebook.yaml", "notebooks")
    assert run_log.status == "SUCCESS", {n: s.message for n, s in run_log.steps.items()}

    greet = run_log.steps["greet"]
    (attempt,) = greet.attempts
    # Injected after the parameters cell: 'greeting' overrides the notebook's default.
    assert attempt.output_parameters == {"message": "Hi, world!", "length": 10}
    assert attempt.parameters == {"greeting": "Hi", "names": ["Ada", "Grace"]}
    catalogued(greet, "examples/notebooks/greet_out.ipynb", "notebooks")
    assert Path("examples/notebooks/greet_out.ipynb").is_file()  # also kept where it was written
    assert execution_log(greet, "notebooks") == "Hi, world!\n{'length': 10}\n"
    assert "Hi, world!" in capsys.readouterr().out

    executed = json.loads(Path("examples/notebooks/greet_out.ipynb").read_text())
    tags = [cell["metadata"].get("tags", []) for cell in executed["cells"]]
    assert ["injected-parameters"] in tags

    branches = run_log.steps["greet everyone"].branches
    assert list(branches) == ["greet everyone.Ada", "greet everyone.Grace"]
    for name, length in [("Ada", 8), ("Grace", 10)]:
        step = branches[f"greet everyone.{name}"].steps[f"greet everyone.{name}.greet one"]
        (attempt,) = step.attempts
        # The element arrives as the iterate_as variable; the list iterated on is not consumed.
        consumed = {"greeting": "Hi", "message": "Hi, world!", "length": 10, "name": name}
        assert attempt.parameters == consumed
        assert attempt.output_parameters == {"message": f"Hi, {name}!", "length": length}
        catalogued(step, f"examples/notebooks/greet_each_{name}.ipynb", "notebooks")
        assert execution_log(step, "notebooks").startswith(f"Hi, {name}!\n")

    show = run_log.steps["show"].attempts[0].parameters
    assert show["message"] == ["Hi, Ada!", "Hi, Grace!"]


def test_a_failing_cell_fails_the_step_and_keeps_the_partial_notebook(project: Path) -> None:
    with_test_notebooks(project)
    pipeline = one_step(command="notebooks/fail.ipynb")
    (project / "params.yaml").write_text("x: 3\n")
    (project / "p.yaml").write_text(pipeline)
    prepared = entrypoints.prepare_run(
        pipeline_file="p.yaml", parameters_file="params.yaml", run_id="fails"
    )
    run_log = entrypoints.execute(prepared)

    assert run_log.status == "FAIL"
    step = run_log.steps["nb"]
    assert step.status == "FAIL"
    # Cells are counted as the notebook ran, the injected parameters cell included.
    assert step.message == (
        "Notebook notebooks/fail.ipynb failed in cell 4 (In [4]): ValueError: bad value 3; "
        "the executed notebook is notebooks/fail_out.ipynb (also in the catalog)"
    )
    catalogued(step, "notebooks/fail_out.ipynb", "fails")
    partial = json.loads((Path(".catalog") / "fails" / "notebooks/fail_out.ipynb").read_text())
    assert partial["cells"][-1]["outputs"] == []  # the cell after the error never ran
    log = execution_log(step, "fails")
    assert log.startswith("before the error\n")
    assert "ValueError" in log and "\x1b[" not in log


def test_an_output_cell_that_is_not_a_dict_is_a_clear_error(project: Path) -> None:
    with_test_notebooks(project)
    run_log = run_yaml(project, one_step(command="notebooks/bad_output.ipynb"), "bad-output")
    step = run_log.steps["nb"]
    assert step.status == "FAIL"
    assert step.message == (
        "cell 2 of notebook notebooks/bad_output.ipynb (tagged 'magnus_output') showed "
        "'[1, 2]', a list, not a dict; an output cell must show a dict"
    )
    # The notebook itself ran: its executed copy is in the catalog all the same.
    catalogued(step, "notebooks/bad_output_out.ipynb", "bad-output")


def test_the_05_sdk_task_with_notebook_fields(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with_test_notebooks(project)
    monkeypatch.setenv("MAGNUS_PRM_config", json.dumps({"size": 4, "name": "small"}))
    step = Task(
        name="env",
        command_type="notebook",
        command="notebooks/env.ipynb",
        notebook_output_path="executed/env.ipynb",
        output_cell_tag="out",
        optional_ploomber_args={"kernel_name": "python3", "timeout": 120, "log_output": True},
        terminate_with_success=True,
    )
    run_log: Any = Pipeline(steps=[step]).execute(run_id="sdk-notebook")
    assert run_log is not None and run_log.status == "SUCCESS", run_log.steps["env"].message
    attempt = run_log.steps["env"].attempts[0]
    # Two dicts printed in one cell; the nested parameter arrived as a dict and in the
    # environment; the kernel sees MAGNUS_RUN_ID. The magnus_output cell is not an output cell.
    assert attempt.output_parameters == {"run_id": "sdk-notebook", "size": 4, "size_from_env": 4}
    assert attempt.parameters == {"config": {"size": 4, "name": "small"}}
    catalogued(run_log.steps["env"], "executed/env.ipynb", "sdk-notebook")
    assert "log_output have no papermill equivalent and are ignored" in caplog.text
