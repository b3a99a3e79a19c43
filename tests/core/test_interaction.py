"""The interaction API inside running steps, and its errors outside them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import magnus
from magnus import Pipeline, PythonTask
from magnus.exceptions import NoRunContextError

STEPS = """
import json
from pathlib import Path

from pydantic import BaseModel

import magnus


class Settings(BaseModel):
    size: int
    name: str = "x"


def inspect_parameters():
    everything = magnus.get_parameters()
    settings = magnus.get_parameter("settings", cast_as=Settings)
    count = magnus.get_parameter("count", cast_as=int)
    magnus.set_parameter(seen=sorted(everything), doubled=count * 2)
    assert magnus.get_parameter("doubled") == count * 2
    return {"settings_size": settings.size, "run": magnus.get_run_id(), "tag": magnus.get_tag()}


def objects_and_files():
    magnus.put_object({"weights": [1, 2, 3]}, "model")
    Path("out").mkdir(exist_ok=True)
    Path("out/a.txt").write_text("A")
    magnus.put_in_catalog("out/a.txt")
    magnus.track_this(accuracy=0.5)
    magnus.track_this(step=1, loss=0.9)
    magnus.track_this(step=2, loss=0.4)


def read_back():
    model = magnus.get_object("model")
    magnus.get_from_catalog("out/a.txt", destination_folder="elsewhere")
    run_log = magnus.get_run_log()
    with magnus.get_experiment_tracker_context():
        pass
    return {
        "weights": model["weights"],
        "copied": Path("elsewhere/out/a.txt").read_text(),
        "steps_so_far": list(run_log.steps),
        "secret": magnus.get_secret("anything"),
    }


def missing():
    return magnus.get_parameter("not-there")
"""


def test_the_api_inside_steps(project: Path, user_module: Any) -> None:
    user_module("api_steps", STEPS)
    (project / "params.yaml").write_text("settings: {size: 4}\ncount: '21'\n")
    run_log = Pipeline(
        steps=[
            PythonTask(name="inspect", function="api_steps.inspect_parameters"),
            PythonTask(name="objects", function="api_steps.objects_and_files"),
            PythonTask(name="read", function="api_steps.read_back"),
        ]
    ).execute(run_id="api", tag="t1", parameters_file="params.yaml")
    assert run_log is not None
    assert run_log.status == "SUCCESS", {k: s.message for k, s in run_log.steps.items()}
    parameters = run_log.parameters
    assert parameters["doubled"] == 42 and parameters["settings_size"] == 4
    assert parameters["seen"] == ["count", "settings"]
    assert (parameters["run"], parameters["tag"]) == ("api", "t1")
    assert parameters["weights"] == [1, 2, 3] and parameters["copied"] == "A"
    assert parameters["steps_so_far"] == ["inspect", "objects", "read"]
    assert parameters["secret"] == ""

    objects = run_log.steps["objects"]
    assert objects.user_defined_metrics == {"accuracy": 0.5, "loss": {"1": 0.9, "2": 0.4}}
    put = {e.name: e for e in objects.data_catalog if e.stage == "put"}
    assert set(put) >= {"model.pickle", "out/a.txt"}
    stored = project / ".catalog" / "api" / "out" / "a.txt"
    assert put["out/a.txt"].data_hash == hashlib.sha256(stored.read_bytes()).hexdigest()
    got = [e.name for e in run_log.steps["read"].data_catalog if e.stage == "get"]
    assert got == ["model.pickle", "out/a.txt"]


def test_a_missing_parameter_fails_the_step_with_its_name(project: Path, user_module: Any) -> None:
    user_module("api_steps", STEPS)
    run_log = Pipeline(steps=[PythonTask(name="m", function="api_steps.missing")]).execute(
        run_id="missing-param"
    )
    assert run_log is not None and run_log.status == "FAIL"
    assert run_log.steps["m"].attempts[0].message == "Parameter 'not-there' is not set before"


@pytest.mark.parametrize(
    "call",
    [
        lambda: magnus.get_parameter("x"),
        lambda: magnus.set_parameter(x=1),
        magnus.get_run_id,
        lambda: magnus.put_in_catalog("x"),
        lambda: magnus.track_this(a=1),
        lambda: magnus.get_secret("s"),
    ],
    ids=[
        "get_parameter",
        "set_parameter",
        "get_run_id",
        "put_in_catalog",
        "track_this",
        "get_secret",
    ],
)
def test_outside_a_run_the_api_says_so(call: Any) -> None:
    with pytest.raises(NoRunContextError, match="inside a running pipeline step"):
        call()


def test_importing_magnus_stays_light() -> None:
    heavy = ["boto3", "hvac", "mlflow", "git", "papermill", "pydantic", "yaml", "rich"]
    code = (
        "import sys, json\n"
        "import magnus\n"
        "from magnus.cli import cli\n"
        "try:\n"
        "    cli(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_sys_exit_in_a_task_ends_the_task_not_the_run(project: Path, user_module: Any) -> None:
    user_module(
        "exiting",
        "import sys\ndef bad():\n    sys.exit(3)\ndef fine():\n    sys.exit(0)\n",
    )
    run_log = Pipeline(
        steps=[
            PythonTask(name="fine", function="exiting.fine"),
            PythonTask(name="bad", function="exiting.bad"),
        ]
    ).execute(run_id="exits")
    assert run_log is not None and run_log.status == "FAIL"
    assert run_log.steps["fine"].status == "SUCCESS"
    assert run_log.steps["bad"].attempts[0].message == "exiting.bad called sys.exit(3)"


class _Lines:
    """A third-party serializer: one repr per line."""

    service_name = "lines"
    suffix = "txt"

    def dump(self, obj: Any, path: Path) -> None:
        path.write_text("\n".join(map(str, obj)))

    def load(self, path: Path) -> Any:
        return path.read_text().splitlines()


class _SerializerPlugin:
    @magnus.hookimpl
    def register_object_serializers(self) -> list[type]:
        return [_Lines]


def test_objects_through_pluggable_serializers(project: Path, user_module: Any) -> None:
    from magnus.plugins import get_plugins

    user_module(
        "objects_steps",
        "import magnus\n"
        "def put():\n"
        "    magnus.put_object({'a': [1, 2]}, 'model')\n"
        "    magnus.put_object({'b': 3}, 'config', serializer='json')\n"
        "    magnus.put_object([1, 2], 'listing', serializer='lines')\n"
        "def get():\n"
        "    return {'model': magnus.get_object('model'),\n"
        "            'config': magnus.get_object('config', serializer='json'),\n"
        "            'listing': magnus.get_object('listing', serializer='lines')}\n"
        "def unknown():\n"
        "    magnus.put_object(1, 'x', serializer='yaml')\n",
    )
    get_plugins().register(_SerializerPlugin(), "lines-serializer")
    try:
        run_log = Pipeline(
            steps=[
                PythonTask(name="put", function="objects_steps.put"),
                PythonTask(name="get", function="objects_steps.get"),
                PythonTask(name="unknown", function="objects_steps.unknown"),
            ]
        ).execute(run_id="objects")
    finally:
        get_plugins().unregister("lines-serializer")
    assert run_log is not None
    assert run_log.parameters == {"model": {"a": [1, 2]}, "config": {"b": 3}, "listing": ["1", "2"]}
    stored = project / ".catalog" / "objects" / "config.json"
    assert json.loads(stored.read_text()) == {"b": 3}
    put = {e.name: e.data_hash for e in run_log.steps["put"].data_catalog}
    assert put["config.json"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert {"model.pickle", "listing.txt"} <= set(put)
    message = run_log.steps["unknown"].attempts[0].message
    assert "No object_serializer service of type 'yaml'" in message and "json" in message
