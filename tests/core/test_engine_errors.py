"""What the engine does at its edges: fan-in of incomplete fan-outs, parameters JSON cannot carry
as they are, plugins that return the wrong type, and what a failing step prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

# A project's own plugin module (enabled with MAGNUS_PLUGINS=unruly): services that misbehave the
# way third-party ones can. Each is chosen by its configuration ``type``.
UNRULY = """
import os

from magnus import hookimpl
from magnus.catalog import FileSystemCatalog
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.secrets import DotenvSecrets


class DiesAtBranchLog(ChunkedFileSystemRunLogStore):
    # The process dies as a fan-out writes its first branch log: the step log is written.
    service_name = "dies-at-branch-log"

    def add_branch_log(self, branch_log, run_id):
        os._exit(9)

    def add_branch_logs(self, branch_logs, run_id):
        os._exit(9)


class DiesRecordingElements(ChunkedFileSystemRunLogStore):
    # The process dies as a map's fan-out records its elements on the step log it stored.
    service_name = "dies-recording-elements"

    def add_step_log(self, step_log, run_id):
        if getattr(step_log, "map_values", None) is not None:
            os._exit(9)
        super().add_step_log(step_log, run_id)


class LosesABranch(ChunkedFileSystemRunLogStore):
    # A store whose listing misses a record (an eventually consistent one, say).
    service_name = "loses-a-branch"

    def get_step_log(self, internal_name, run_id, full=True):
        step_log = super().get_step_log(internal_name, run_id, full)
        step_log.branches.pop("fan.1", None)
        return step_log

    def get_step_log_with_branches(self, internal_name, run_id):
        step_log = super().get_step_log_with_branches(internal_name, run_id)
        step_log.branches.pop("fan.1", None)
        return step_log


class ParametersAsList(ChunkedFileSystemRunLogStore):
    service_name = "parameters-as-list"

    def get_parameters(self, run_id):
        return list(super().get_parameters(run_id).items())


class PutNone(FileSystemCatalog):
    service_name = "put-none"

    def put(self, name, run_id, compute_data_folder=None, synced_catalogs=None):
        super().put(name, run_id, compute_data_folder, synced_catalogs)
        return None


class IntSecrets(DotenvSecrets):
    service_name = "int-secrets"

    def _fetch(self, name):
        return 42


@hookimpl
def register_run_log_stores():
    return [DiesAtBranchLog, DiesRecordingElements, LosesABranch, ParametersAsList]


@hookimpl
def register_catalogs():
    return [PutNone]


@hookimpl
def register_secrets():
    return [IntSecrets]
"""

STEPS = """
import magnus


def items(count: int = 3):
    return {"items": list(range(count))}


def square(item: int):
    return {"value": item * item}


def nan():
    return {"x": float("nan"), "nested": {"y": [float("inf"), float("-inf")]}}


def see(x: float, nested: dict):
    print("saw", repr(x), repr(nested))
    return {"seen": repr(x)}


def big():
    return {"fine": 1, "huge": {"inside": [10 ** 5000]}}


def secret():
    return {"token": magnus.get_secret("token")}
"""

MAP = """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.items, next: fan}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: work
        steps:
          work: {type: task, command: steps.square, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture
def unruly(project: Path) -> Path:
    (project / "unruly.py").write_text(UNRULY)
    (project / "steps.py").write_text(STEPS)
    (project / "map.yaml").write_text(MAP)
    return project


PLUGINS = {"MAGNUS_PLUGINS": "unruly"}


def _config(project: Path, name: str, text: str) -> str:
    (project / name).write_text(text)
    return name


# ------------------------------------------------------------------------------ fan-in


def test_a_fan_out_that_died_after_its_step_log_fails_at_fan_in(
    unruly: Path, run_magnus: Any
) -> None:
    dies = _config(unruly, "dies.yaml", "run_log_store: {type: dies-at-branch-log}\n")

    def call(*args: str) -> Any:
        return run_magnus(*args, "--file", "map.yaml", cwd=unruly, env=PLUGINS)

    assert call("execute_single_node", "crashed", "make").returncode == 0
    out = call("fan", "crashed", "fan", "--mode", "out", "--config-file", dies)
    assert out.returncode == 9  # killed as it wrote the first branch log
    recorded = show_run("crashed", unruly)["steps"]["fan"]
    assert recorded["status"] == "PROCESSING" and recorded["branches"] == {}
    assert recorded["map_values"] == [0, 1, 2]

    fanned_in = call("fan", "crashed", "fan", "--mode", "in")
    assert fanned_in.returncode == 1, fanned_in.stdout + fanned_in.stderr
    log = show_run("crashed", unruly)
    fan = log["steps"]["fan"]
    assert fan["status"] == "FAIL"
    assert "3 of 3 branches have no branch log (fan.0, fan.1, fan.2)" in fan["message"]
    assert log["status"] == "FAIL"  # the failure led to the pipeline's fail step


def test_a_map_fan_out_that_died_before_recording_its_elements_fails(
    unruly: Path, run_magnus: Any
) -> None:
    dies = _config(unruly, "dies.yaml", "run_log_store: {type: dies-recording-elements}\n")

    def call(*args: str) -> Any:
        return run_magnus(*args, "--file", "map.yaml", cwd=unruly, env=PLUGINS)

    assert call("execute_single_node", "early", "make").returncode == 0
    assert call("fan", "early", "fan", "--mode", "out", "--config-file", dies).returncode == 9
    assert "map_values" not in show_run("early", unruly)["steps"]["fan"]

    assert call("fan", "early", "fan", "--mode", "in").returncode == 1
    fan = show_run("early", unruly)["steps"]["fan"]
    assert fan["status"] == "FAIL"
    assert "no recorded elements (map_values): its fan-out did not complete" in fan["message"]


def test_execute_fails_a_map_whose_branch_record_is_missing(unruly: Path, run_magnus: Any) -> None:
    lossy = _config(unruly, "lossy.yaml", "run_log_store: {type: loses-a-branch}\n")
    result = run_magnus(
        "execute", "-f", "map.yaml", "-c", lossy, "--run-id", "lossy", cwd=unruly, env=PLUGINS
    )
    assert result.returncode == 1, result.stdout + result.stderr
    fan = show_run("lossy", unruly)["steps"]["fan"]
    assert fan["status"] == "FAIL"
    assert "1 of 3 branches have no branch log (fan.1)" in fan["message"]
    assert "value" not in show_run("lossy", unruly)["parameters"]


def test_a_parallel_fan_in_names_the_missing_declared_branch(unruly: Path, run_magnus: Any) -> None:
    (unruly / "par.yaml").write_text(
        """
dag:
  start_at: fan
  steps:
    fan:
      type: parallel
      next: success
      branches:
        "0": {start_at: s, steps: {s: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
        "1": {start_at: s, steps: {s: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
    success: {type: success}
    fail: {type: fail}
"""
    )
    lossy = _config(unruly, "lossy.yaml", "run_log_store: {type: loses-a-branch}\n")
    result = run_magnus(
        "execute", "-f", "par.yaml", "-c", lossy, "--run-id", "par", cwd=unruly, env=PLUGINS
    )
    assert result.returncode == 1
    assert (
        "1 of 2 branches have no branch log (fan.1)"
        in show_run("par", unruly)["steps"]["fan"]["message"]
    )


# ------------------------------------------------------------------------------ parameters


def test_non_finite_floats_are_recorded_as_the_next_steps_see_them(
    unruly: Path, run_magnus: Any
) -> None:
    (unruly / "nan.yaml").write_text(
        """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.nan, next: see}
    see: {type: task, command: steps.see, next: shell}
    shell: {type: task, command_type: shell, command: 'echo "shell $MAGNUS_PRM_x $MAGNUS_PRM_nested"', next: success}
    success: {type: success}
    fail: {type: fail}
"""
    )
    result = run_magnus("execute", "-f", "nan.yaml", "--run-id", "nan", cwd=unruly)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "saw nan {'y': [inf, -inf]}" in result.stdout
    assert 'shell NaN {"y": [Infinity, -Infinity]}' in result.stdout
    log = show_run("nan", unruly)  # json.loads reads the NaN/Infinity tokens back
    assert json.dumps(log["parameters"]["nested"]) == '{"y": [Infinity, -Infinity]}'
    assert json.dumps(log["parameters"]["x"]) == "NaN"
    produced = log["steps"]["make"]["attempts"][0]["output_parameters"]
    consumed = log["steps"]["see"]["attempts"][0]["parameters"]
    expected = '{"nested": {"y": [Infinity, -Infinity]}, "x": NaN}'
    assert json.dumps(produced, sort_keys=True) == expected
    assert json.dumps(consumed, sort_keys=True) == expected


@pytest.mark.parametrize(
    "command",
    [
        "{type: task, command: steps.big, next: success}",
        # exported by a shell step: kept as a number, so refused rather than turned into text
        "{type: task, command_type: shell, command: 'export MAGNUS_PRM_huge=1$(printf %05000d 0)', next: success}",
    ],
)
def test_an_integer_json_text_cannot_carry_fails_its_step_naming_it(
    unruly: Path, run_magnus: Any, command: str
) -> None:
    (unruly / "big.yaml").write_text(
        f"dag:\n  start_at: make\n  steps:\n    make: {command}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus("execute", "-f", "big.yaml", "--run-id", "big", cwd=unruly)
    assert result.returncode == 1, result.stdout + result.stderr
    log = show_run("big", unruly)
    assert log["status"] == "FAIL"
    make = log["steps"]["make"]
    assert make["status"] == "FAIL"
    assert "parameter 'huge' holding an integer of about 5001 digits" in make["message"]
    assert "pass it as a string" in make["message"]
    assert "huge" not in log["parameters"] and "fine" not in log["parameters"]


def test_integers_too_long_for_json_text_are_refused_wherever_they_are_produced() -> None:
    from pydantic import BaseModel

    from magnus.exceptions import ParameterError
    from magnus.parameters import from_environment, returned_parameters, to_environment

    class Model(BaseModel):
        n: int

    longest = 10**4299  # 4300 digits: what Python reads back from text
    assert returned_parameters({"n": [longest]}) == {"n": [longest]}
    assert from_environment(to_environment({"n": longest})) == {"n": longest}
    with pytest.raises(ParameterError, match="'n' holding an integer of about 4301 digits"):
        returned_parameters(Model(n=longest * 10), "make")
    with pytest.raises(ParameterError, match="'m' holding an integer"):
        to_environment({"m": {"deep": [1, -(longest * 10)]}})  # set_parameter's way out
    with pytest.raises(ParameterError, match="'x' holding an integer"):
        from_environment({"MAGNUS_PRM_x": "9" * 4301})  # a shell step's export


# ------------------------------------------------------------------------------ plugins


def test_the_contract_check_accepts_what_the_annotations_say() -> None:
    from magnus.contracts import conforms
    from magnus.runlog.models import BranchLog, DataCatalog, RunLog

    assert conforms([DataCatalog(name="x")], list[DataCatalog])
    assert not conforms(None, list[DataCatalog])
    assert not conforms([{"name": "x"}], list[DataCatalog])
    assert conforms(RunLog(run_id="r"), BranchLog | RunLog)
    assert not conforms({"run_id": "r"}, RunLog)
    assert conforms({"a": 1}, dict[str, Any]) and not conforms({1: 1}, dict[str, Any])
    assert conforms(3, float) and not conforms(True, float) and not conforms("3", int)


def _guest_run(project: Path, run_magnus: Any, config: str, run_id: str) -> Any:
    (project / "guest.yaml").write_text(
        """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.secret, catalog: {put: [steps.py]}, next: success}
    success: {type: success}
    fail: {type: fail}
"""
    )
    (project / ".env").write_text("token=abc\n")
    _config(project, "guest-config.yaml", config)
    return run_magnus(
        "execute",
        "-f",
        "guest.yaml",
        "-c",
        "guest-config.yaml",
        "--run-id",
        run_id,
        cwd=project,
        env=PLUGINS,
    )


@pytest.mark.parametrize(
    ("config", "blame"),
    [
        (
            "catalog: {type: put-none}\n",
            "unruly (MAGNUS_PLUGINS): PutNone.put() returned None, but its contract says "
            "list[DataCatalog]",
        ),
        (
            "secrets: {type: int-secrets}\n",
            "unruly (MAGNUS_PLUGINS): IntSecrets._fetch() returned an int, but its contract says "
            "str",
        ),
    ],
)
def test_a_service_returning_the_wrong_type_fails_its_step_naming_it(
    unruly: Path, run_magnus: Any, config: str, blame: str
) -> None:
    result = _guest_run(unruly, run_magnus, config, "guest")
    assert result.returncode == 1, result.stdout + result.stderr
    log = show_run("guest", unruly)
    assert log["status"] == "FAIL"
    assert blame in log["steps"]["make"]["message"]
    assert "Traceback" not in result.stderr


def test_a_run_log_store_returning_the_wrong_type_ends_the_run_fail(
    unruly: Path, run_magnus: Any
) -> None:
    config = "run_log_store: {type: parameters-as-list}\n"
    result = _guest_run(unruly, run_magnus, config, "listed")
    assert result.returncode == 1, result.stdout + result.stderr
    blame = (
        "unruly (MAGNUS_PLUGINS): ParametersAsList.get_parameters() returned a list, but its "
        "contract says dict[str, Any]"
    )
    assert blame in result.stdout + result.stderr
    log = show_run("listed", unruly)  # the records are readable with a well-behaved store
    assert log["status"] == "FAIL"
    assert blame in log["message"]


# ------------------------------------------------------------------------------ the console


def test_a_failing_step_shows_its_frames_in_user_code_and_where_to_read_more(
    unruly: Path, run_magnus: Any
) -> None:
    (unruly / "deep.py").write_text(
        "def inner(n):\n    return 1 / n\n\n\ndef outer():\n    return {'x': inner(0)}\n"
    )
    (unruly / "deep.yaml").write_text(
        "dag:\n  start_at: divide\n  steps:\n"
        "    divide: {type: task, command: deep.outer, next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus("execute", "-f", "deep.yaml", "--run-id", "deep", cwd=unruly)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("[1/1] ✘ divide"))
    assert "ZeroDivisionError: division by zero" in lines[start]
    deep = str(unruly / "deep.py")
    assert lines[start + 1 : start + 5] == [
        f'  File "{deep}", line 6, in outer',
        "    return {'x': inner(0)}",
        f'  File "{deep}", line 2, in inner',
        "    return 1 / n",
    ]
    assert "magnus" not in "\n".join(lines[start + 1 : start + 5])
    assert lines[start + 5] == "  whole output: cat .catalog/deep/divide.execution.log"
    assert lines[start + 6] == "  step record: magnus runs show deep --step divide"
    whole = (unruly / ".catalog" / "deep" / "divide.execution.log").read_text()
    assert "ZeroDivisionError" in whole and "Traceback" in whole
    shown = run_magnus("runs", "show", "deep", "--step", "divide", cwd=unruly)
    assert shown.returncode == 0 and "ZeroDivisionError" in shown.stdout


def test_debug_logging_traces_each_phase_of_a_step(unruly: Path, run_magnus: Any) -> None:
    (unruly / "phases.yaml").write_text(
        "dag:\n  start_at: make\n  steps:\n"
        "    make: {type: task, command: steps.items, catalog: {get: [], put: [steps.py]}, "
        "next: success}\n    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus(
        "execute", "-f", "phases.yaml", "--run-id", "phases", "--log-level", "debug", cwd=unruly
    )
    assert result.returncode == 0, result.stderr
    traced = [
        line.split(": ", 1)[1]
        for line in result.stderr.splitlines()
        if line.startswith("DEBUG magnus.executors.leaf: make:")
    ]
    assert traced == [
        "make: parameters read: none",
        "make: task started (attempt 1)",
        "make: task ended (attempt 1) succeeded",
        "make: catalog put ['steps.py']",
        "make: record stored, SUCCESS",
    ]
