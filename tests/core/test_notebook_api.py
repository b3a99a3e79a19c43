"""The interaction API inside notebook steps: the kernel's calls answered by the step.

Each run starts real kernels (1-2 s each): one pipeline exercises every call, concurrent map
elements and a kernel that dies; one more runs magnus 0.5's documented example.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest
from helpers import run_magnus, show_run

from magnus.catalog import file_hash
from magnus.redaction import MASK
from magnus.runlog.models import RunLog, StepLog

NOTEBOOKS = Path(__file__).parent / "notebooks"
SECRET = "tok-3f9a-never-written"

PIPELINE = """
dag:
  start_at: prepare
  steps:
    prepare:
      type: task
      command_type: shell
      command: mkdir -p data && echo hello > data/input.txt
      catalog:
        put: [data/input.txt]
      next: api
    api:
      type: task
      command_type: notebook
      command: notebooks/api.ipynb
      next: each
    each:
      type: map
      iterate_on: xs
      iterate_as: x
      next: crash
      branch:
        start_at: element
        steps:
          element:
            type: task
            command_type: notebook
            command: notebooks/api_element.ipynb
            next: success
          success:
            type: success
          fail:
            type: fail
    crash:
      type: task
      command_type: notebook
      command: notebooks/api_crash.ipynb
      on_failure: check
      next: check
    check:
      type: task
      command_type: shell
      command: echo "answer $MAGNUS_PRM_answer"
      next: success
    success:
      type: success
    fail:
      type: fail
"""

CONFIG = """
executor:
  type: local
  config: {enable_parallel: true}   # map elements run their kernels at the same time
secrets:
  type: dotenv
  config: {location: .env}
"""


def entries(step: StepLog, stage: str) -> dict[str, str]:
    """``{name: hash}`` of what the step moved through the catalog at ``stage``."""
    return {entry.name: entry.data_hash for entry in step.data_catalog if entry.stage == stage}


def stored_hash(run_id: str, name: str) -> str:
    return file_hash(Path(".catalog") / run_id / name)


def test_every_interaction_call_works_in_a_notebook_step(
    project: Path, request: pytest.FixtureRequest
) -> None:
    shutil.copytree(NOTEBOOKS, project / "notebooks")
    (project / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    (project / "config.yaml").write_text(textwrap.dedent(CONFIG))
    (project / ".env").write_text(f"API_TOKEN={SECRET}\n")
    (project / "params.yaml").write_text("count: 3\nxs: [1, 2]\neggs: {ham: boiled, spam: 2}\n")
    # The run's temporary directory, short enough to hold the channel's socket (a long one is
    # replaced by /tmp, see test_kernel_channel.py), to find what the run leaves there.
    scratch = Path(tempfile.mkdtemp(prefix="nb-api-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))

    result = run_magnus(
        *("execute", "-f", "p.yaml", "-c", "config.yaml", "-p", "params.yaml"),
        *("--run-id", "api", "--tag", "nb-tag"),
        cwd=project,
        env={"TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_log = RunLog.model_validate(show_run("api", project))

    api = run_log.steps["api"]
    assert api.status == "SUCCESS", api.message
    (attempt,) = api.attempts
    # set_parameter (a pydantic model among them), then the output cell, as for a python task.
    assert attempt.output_parameters == {
        "answer": 42,
        "eggs": {"ham": "changed", "spam": 3},
        "from_output_cell": True,
    }
    # track_this: one value at step 0, a series over steps 1 and 2.
    assert api.user_defined_metrics == {"accuracy": 0.9, "loss": {"1": 0.5, "2": 0.25}}
    # get_from_catalog, put_in_catalog, put_object and get_object recorded with their hashes.
    got, put = entries(api, "get"), entries(api, "put")
    assert got["data/input.txt"] == stored_hash("api", "data/input.txt")
    assert put["data/output.txt"] == stored_hash("api", "data/output.txt")
    assert (Path(".catalog") / "api" / "data/output.txt").read_text() == "HELLO\n"
    assert put["rows.pickle"] == got["rows.pickle"] == stored_hash("api", "rows.pickle")
    stored = pickle.loads((Path(".catalog") / "api" / "rows.pickle").read_bytes())
    assert stored == {"rows": [1, 2, 3]}

    log_name = next(name for name in put if name.endswith(".execution.log"))
    log = (Path(".catalog") / "api" / log_name).read_text()
    assert "eggs boiled 2 count 3\n" in log  # get_parameter(cast_as=...) and get_parameters
    assert "answer now 42 ham='changed' spam=3\n" in log  # set_parameter read back at once
    assert "run api tag nb-tag\n" in log  # get_run_id, get_tag
    assert "steps so far ['api', 'prepare']\n" in log  # get_run_log, PROCESSING step included
    assert f"token {MASK}\n" in log  # get_secret: served, and masked in the execution log
    assert "missing secret: SecretNotFoundError\n" in log  # errors keep their magnus type
    assert "object {'rows': [1, 2, 3]}\n" in log
    assert "tracker context None\n" in log  # do-nothing tracker: an empty context
    executed = (Path(".catalog") / "api" / "notebooks/api_out.ipynb").read_text()
    assert f"token {MASK}" in executed

    # Concurrent elements, each with its own kernel and channel; the map collects their output.
    elements = run_log.steps["each"].branches
    for x in (1, 2):
        step = elements[f"each.{x}"].steps[f"each.{x}.element"]
        assert step.attempts[0].output_parameters == {"doubled": 2 * x, "seen": 3}
        assert step.user_defined_metrics == {"x": x}
        name = f"data/element_{x}.txt"
        assert entries(step, "put")[name] == stored_hash("api", name)

    # A kernel that dies fails its step; what it set before dying is not merged.
    crash = run_log.steps["crash"]
    assert crash.status == "FAIL"
    assert "DeadKernelError" in crash.message
    assert crash.attempts[0].output_parameters == {}
    check = run_log.steps["check"].attempts[0].parameters
    assert check["answer"] == 42 and check["doubled"] == [2, 4] and "crashed" not in check

    # Nothing left listening, and the secret written nowhere.
    assert list(scratch.glob("magnus-kernel-*")) == []
    assert SECRET not in result.stdout + result.stderr
    for path in project.rglob("*"):
        if path.is_file() and path.name != ".env" and ".git" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_05_notebook_api_example_runs_through_the_cli(project: Path) -> None:
    result = run_magnus(
        "execute", "-f", "examples/notebook-api.yaml", "--run-id", "eggs", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # No warning for a notebook that reads its parameters through the API, not a cell.
    assert "does not contain a cell with tag" not in result.stdout + result.stderr
    run_log = show_run("eggs", project)

    notebook = run_log["steps"]["notebook"]["attempts"][0]
    assert notebook["parameters"] == {"spam": "Hello", "eggs": {"ham": "Yes, please!!"}}
    assert notebook["output_parameters"] == {"spam": "Hi there", "eggs": {"ham": "No, Thank you!!"}}
    assert run_log["parameters"] == {"spam": "Hi there", "eggs": {"ham": "No, Thank you!!"}}
    assert 'spam: "Hi there", eggs: {"ham": "No, Thank you!!"}' in result.stdout
    # What the notebook printed: the parameters cast into pydantic models.
    log = (Path(".catalog") / "eggs" / "notebook.execution.log").read_text()
    assert log == ("ham='Yes, please!!'\nHello\nspam='Hello' eggs=EggsModel(ham='Yes, please!!')\n")
    executed = json.loads(Path("examples/notebooks/notebook_api_parameters_out.ipynb").read_text())
    # The parameters in scope were injected at the top, the notebook having no parameters cell.
    assert executed["cells"][0]["metadata"]["tags"] == ["injected-parameters"]
    outputs = [output for cell in executed["cells"] for output in cell.get("outputs", [])]
    assert "".join(outputs[0]["text"]).startswith("ham='Yes, please!!'\n")
