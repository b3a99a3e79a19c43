"""Branches in separate processes: concurrency, crashing children, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import run_hooks_seen, show_run, write_run_hooks

pytestmark = pytest.mark.e2e

STEPS = """
import ctypes
import os
import signal
import time
from pathlib import Path

import magnus


def items(count: int):
    return {"items": list(range(count))}


def write(item: int):
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    (folder / f"f_{item}.txt").write_text(f"content {item}\\n" * (item + 1))
    magnus.put_in_catalog(f"data/f_{item}.txt")
    magnus.set_parameter(**{f"p{item}": item})
    return {"value": item * 10, "pid": os.getpid()}


def die(item: int, how: str):
    if item == 1:
        if how == "exit":
            os._exit(7)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segfault":
            ctypes.string_at(0)
    return {"fine": item}


def sleepy(item: int):
    Path("pids").mkdir(exist_ok=True)
    (Path("pids") / str(os.getpid())).write_text(str(item))
    time.sleep(60)
"""

MAP = """
dag:
  start_at: make
  steps:
    make: {{type: task, command: steps.items, next: fan}}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      {on_failure}
      branch:
        start_at: work
        steps:
          work: {{type: task, command: {command}, next: success}}
          success: {{type: success}}
          fail: {{type: fail}}
    recover: {{type: stub, next: fail}}
    success: {{type: success}}
    fail: {{type: fail}}
"""


def _setup(project: Path, store: str = "chunked-fs", workers: int = 8) -> None:
    (project / "steps.py").write_text(STEPS)
    (project / "parallel.yaml").write_text(
        f"executor: {{type: local, config: {{enable_parallel: true, max_workers: {workers}}}}}\n"
        f"run_log_store: {{type: {store}}}\n"
    )


@pytest.mark.parametrize("store", ["chunked-fs", "file-system"])
def test_32_concurrent_branches_lose_nothing(project: Path, run_magnus: Any, store: str) -> None:
    _setup(project, store)
    (project / "p.yaml").write_text(MAP.format(command="steps.write", on_failure=""))
    result = run_magnus(
        "execute",
        "-f",
        "p.yaml",
        "-c",
        "parallel.yaml",
        "--run-id",
        "many",
        cwd=project,
        env={"MAGNUS_PRM_count": "32"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = show_run("many", project, "-c", "parallel.yaml")
    fan = log["steps"]["fan"]
    assert len(fan["branches"]) == 32
    assert all(b["status"] == "SUCCESS" for b in fan["branches"].values())
    # every branch's parameters reached the run, reduced in element order
    assert log["parameters"]["value"] == [i * 10 for i in range(32)]
    for i in range(32):
        assert log["parameters"][f"p{i}"] == [i if j == i else None for j in range(32)]
    # branches really ran in several processes
    assert len(set(log["parameters"]["pid"])) > 1
    # every catalog file is there, with its hash recorded by its own branch
    for i in range(32):
        step = fan["branches"][f"fan.{i}"]["steps"][f"fan.{i}.work"]
        entries = {e["name"]: e for e in step["data_catalog"]}
        assert f"data/f_{i}.txt" in entries and f"work.execution.log_{i}" in entries
        stored = project / ".catalog" / "many" / "data" / f"f_{i}.txt"
        assert stored.read_text() == f"content {i}\n" * (i + 1)
    assert log["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("exit", "exited with status 7"),
        ("kill", "was killed by SIGKILL"),
        ("segfault", "was killed by SIGSEGV"),
    ],
)
def test_a_dying_branch_process_fails_its_branch(
    project: Path, run_magnus: Any, how: str, message: str
) -> None:
    _setup(project)
    (project / "p.yaml").write_text(
        MAP.format(command="steps.die", on_failure="on_failure: recover")
    )
    started = time.monotonic()
    result = run_magnus(
        "execute",
        "-f",
        "p.yaml",
        "-c",
        "parallel.yaml",
        "--run-id",
        f"dies-{how}",
        cwd=project,
        env={"MAGNUS_PRM_count": "3", "MAGNUS_PRM_how": json.dumps(how)},
        timeout=120,
    )
    assert time.monotonic() - started < 60
    assert result.returncode == 1
    log = show_run(f"dies-{how}", project)
    fan = log["steps"]["fan"]
    statuses = {name: b["status"] for name, b in fan["branches"].items()}
    assert statuses == {"fan.0": "SUCCESS", "fan.1": "FAIL", "fan.2": "SUCCESS"}
    assert message in fan["branches"]["fan.1"]["message"]
    assert fan["status"] == "FAIL" and message in fan["message"]
    assert list(log["steps"]) == ["make", "fan", "recover", "fail"]
    assert log["status"] == "FAIL"


def test_ctrl_c_stops_the_children_and_leaves_a_readable_log(project: Path) -> None:
    _setup(project, workers=3)
    (project / "p.yaml").write_text(MAP.format(command="steps.sleepy", on_failure=""))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    env["MAGNUS_PRM_count"] = "3"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "magnus",
            "execute",
            "-f",
            "p.yaml",
            "-c",
            "parallel.yaml",
            "--run-id",
            "interrupted",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids = project / "pids"
    try:
        deadline = time.monotonic() + 60
        while not (pids.is_dir() and len(list(pids.iterdir())) == 3):
            assert time.monotonic() < deadline, "the branches never started"
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    assert "Run interrupted interrupted by SIGINT: FAIL" in stderr
    assert "magnus retry interrupted -c parallel.yaml" in stderr
    assert "Traceback" not in stderr
    for pid_file in pids.iterdir():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.name), 0)
    log = show_run("interrupted", project)
    assert (log["status"], log["message"]) == ("FAIL", "interrupted by SIGINT")
    assert log["steps"]["make"]["status"] == "SUCCESS"
    fan = log["steps"]["fan"]
    assert (fan["status"], fan["message"]) == ("FAIL", "interrupted by SIGINT")
    assert len(fan["branches"]) == 3
    for branch in fan["branches"].values():
        # each child was passed the signal and ended its own branch and step
        assert (branch["status"], branch["message"]) == ("FAIL", "interrupted by SIGINT")
        for step in branch["steps"].values():
            assert step["status"] in ("SUCCESS", "FAIL")


def test_buffered_is_refused_under_enable_parallel(project: Path, run_magnus: Any) -> None:
    _setup(project, store="buffered")
    (project / "p.yaml").write_text(MAP.format(command="steps.write", on_failure=""))
    result = run_magnus("validate", "-f", "p.yaml", "-c", "parallel.yaml", cwd=project)
    assert result.returncode == 2
    assert "'buffered' run log store keeps the log in memory" in result.stderr


SDK_SCRIPT = """
from magnus import Map, Pipeline, PythonTask

pipeline = Pipeline(steps=[
    PythonTask(name="make", function="steps.items"),
    Map(name="fan", iterate_on="items", iterate_as="item",
        branch=Pipeline(steps=[PythonTask(name="work", function="steps.write")])),
])

if __name__ == "__main__":
    log = pipeline.execute(configuration_file="parallel.yaml", run_id="sdk-parallel")
    print("STATUS", log.status)
"""


def test_sdk_pipelines_run_in_parallel_from_the_recorded_graph(project: Path) -> None:
    _setup(project)
    (project / "sdk_run.py").write_text(SDK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    env["MAGNUS_PRM_count"] = "4"
    result = subprocess.run(
        [sys.executable, "sdk_run.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "STATUS SUCCESS" in result.stdout, result.stdout + result.stderr
    log = show_run("sdk-parallel", project)
    assert log["parameters"]["value"] == [0, 10, 20, 30]
    assert log["run_config"]["pipeline_file"] == ""


def test_entry_points_an_orchestrator_calls(project: Path, run_magnus: Any) -> None:
    """Run a pipeline step by step through the CLI, as Argo's containers would."""
    _setup(project)
    (project / "p.yaml").write_text(MAP.format(command="steps.write", on_failure=""))
    write_run_hooks(project)
    common = ["--file", "p.yaml"]
    env = {"MAGNUS_PRM_count": "2", "MAGNUS_PLUGINS": "run_hooks"}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_magnus(*args, cwd=project, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    call("execute_single_node", "steps-run", "make", *common)
    call("fan", "steps-run", "fan", "--mode", "out", *common)
    for item in (0, 1):
        call(
            "execute-single-node",
            "steps-run",
            "fan.map_variable_placeholder.work",
            "--map-variable",
            json.dumps({"item": item}),
            *common,
        )
        call(
            "execute_single_node",
            "steps-run",
            "fan.map_variable_placeholder.success",
            "--map-variable",
            json.dumps({"item": item}),
            *common,
        )
    call("fan", "steps-run", "fan", "--mode", "in", *common)
    call("execute_single_node", "steps-run", "success", *common)
    log = show_run("steps-run", project)
    assert log["status"] == "SUCCESS"
    assert log["parameters"]["value"] == [0, 10]
    assert [b["status"] for b in log["steps"]["fan"]["branches"].values()] == ["SUCCESS"] * 2
    # Observers hear of the run once: started by the first container, ended by the last one.
    assert run_hooks_seen(project) == [
        {"hook": "before_run", "status": "PROCESSING", "steps": []},
        {"hook": "after_run", "status": "SUCCESS", "steps": ["fan", "make", "success"]},
    ]


def test_an_orchestrated_map_that_fails_ends_the_run_at_its_fan_in(
    project: Path, run_magnus: Any
) -> None:
    (project / "steps.py").write_text(
        STEPS + "\n\ndef odd_fails(item: int):\n    if item % 2:\n        raise ValueError(item)\n"
    )
    (project / "p.yaml").write_text(MAP.format(command="steps.odd_fails", on_failure=""))
    write_run_hooks(project)
    env = {"MAGNUS_PRM_count": "2", "MAGNUS_PLUGINS": "run_hooks"}

    def call(*args: str) -> int:
        result = run_magnus(*args, "--file", "p.yaml", cwd=project, env=env)
        return result.returncode

    assert call("execute_single_node", "odd-run", "make") == 0
    assert call("fan", "odd-run", "fan", "--mode", "out") == 0
    for item in (0, 1):
        variable = json.dumps({"item": item})
        work = call("execute_single_node", "odd-run", "fan.x.work", "--map-variable", variable)
        assert work == item  # the odd element fails, and runs its branch's fail step
        if item == 0:
            call("execute_single_node", "odd-run", "fan.x.success", "--map-variable", variable)
    call("fan", "odd-run", "fan", "--mode", "in")
    log = show_run("odd-run", project)
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["make", "fan", "fail"]
    # A branch's fail step does not end the run; the pipeline's own, run at fan-in, does.
    assert run_hooks_seen(project) == [
        {"hook": "before_run", "status": "PROCESSING", "steps": []},
        {"hook": "after_run", "status": "FAIL", "steps": ["fail", "fan", "make"]},
    ]


def test_a_failing_single_node_runs_its_fail_step(project: Path, run_magnus: Any) -> None:
    (project / "p.yaml").write_text(
        "dag:\n  start_at: bad\n  steps:\n"
        "    bad: {type: task, command_type: shell, command: 'exit 2', next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    write_run_hooks(project)
    result = run_magnus(
        "execute_single_node", "one-node", "bad", "--file", "p.yaml",
        cwd=project, env={"MAGNUS_PLUGINS": "run_hooks"},
    )  # fmt: skip
    assert result.returncode == 1
    log = show_run("one-node", project)
    assert list(log["steps"]) == ["bad", "fail"]
    assert log["status"] == "FAIL"
    assert run_hooks_seen(project) == [
        {"hook": "before_run", "status": "PROCESSING", "steps": []},
        {"hook": "after_run", "status": "FAIL", "steps": ["bad", "fail"]},
    ]


def test_orchestrators_pass_map_indices_and_retry_attempts(project: Path, run_magnus: Any) -> None:
    """Argo's protocol: indices for map elements, one container per attempt."""
    (project / "steps.py").write_text(
        STEPS
        + """

def flaky_element(item: str):
    marker = Path(f"tried-{item}")
    if item == "b" and not marker.exists():
        marker.write_text("")
        raise RuntimeError("first attempt of b fails")
    return {"got": item}
"""
    )
    (project / "p.yaml").write_text(
        "dag:\n  start_at: fan\n  steps:\n"
        "    fan:\n      type: map\n      iterate_on: items\n      iterate_as: item\n"
        "      next: success\n      branch:\n        start_at: work\n        steps:\n"
        "          work: {type: task, command: steps.flaky_element, max_attempts: 2, next: success}\n"
        "          success: {type: success}\n          fail: {type: fail}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    (project / "params.yaml").write_text("items: [a, b.c, b]\n")
    indices = project / "indices.json"
    base = ["--file", "p.yaml", "-p", "params.yaml"]

    def call(*args: str, code: int = 0, **env: str) -> None:
        result = run_magnus(*args, *base, cwd=project, env={"MAGNUS_MAP_INDICES": "1", **env})
        assert result.returncode == code, result.stdout + result.stderr

    call("fan", "idx", "fan", "--mode", "out", MAGNUS_MAP_INDICES_FILE=str(indices))
    assert json.loads(indices.read_text()) == [0, 1, 2]
    for index in (0, 1, 2):
        variable = json.dumps({"item": index})
        if index == 2:  # element "b" fails once: attempt 1 must not route to the fail step
            call(
                "execute_single_node",
                "idx",
                "fan.map_variable_placeholder.work",
                "--map-variable",
                variable,
                code=1,
                MAGNUS_STEP_ATTEMPT="1",
            )
        call(
            "execute_single_node",
            "idx",
            "fan.map_variable_placeholder.work",
            "--map-variable",
            variable,
            MAGNUS_STEP_ATTEMPT="2" if index == 2 else "1",
        )
        call(
            "execute_single_node",
            "idx",
            "fan.map_variable_placeholder.success",
            "--map-variable",
            variable,
        )
    call("fan", "idx", "fan", "--mode", "in")
    call("execute_single_node", "idx", "success")
    log = show_run("idx", project)
    branches = log["steps"]["fan"]["branches"]
    assert list(branches) == ["fan.a", "fan.b~2ec", "fan.b"]  # the same names as a local run
    work = branches["fan.b"]["steps"]["fan.b.work"]
    assert [(a["attempt_number"], a["status"]) for a in work["attempts"]] == [
        (1, "FAIL"),
        (2, "SUCCESS"),
    ]
    assert list(branches["fan.b"]["steps"]) == ["fan.b.work", "fan.b.success"]
    assert log["parameters"]["got"] == ["a", "b.c", "b"]
    assert log["status"] == "SUCCESS"

    bad = run_magnus(
        "execute_single_node",
        "idx",
        "fan.map_variable_placeholder.work",
        "--map-variable",
        json.dumps({"item": 7}),
        *base,
        cwd=project,
        env={"MAGNUS_MAP_INDICES": "1"},
    )
    assert bad.returncode == 2 and "index 7 is out of range (3 elements)" in bad.stderr


def test_a_failed_composite_fanned_in_reaches_the_fail_step(project: Path, run_magnus: Any) -> None:
    _setup(project)
    (project / "p.yaml").write_text(MAP.format(command="steps.die", on_failure=""))
    env = {"MAGNUS_PRM_items": "[1]", "MAGNUS_PRM_how": '"exit"'}
    base = ["--file", "p.yaml"]
    assert (
        run_magnus("fan", "cf", "fan", "--mode", "out", *base, cwd=project, env=env).returncode == 0
    )
    # element 1 "dies": its container exits non-zero and never ends its branch
    run_magnus(
        "execute_single_node",
        "cf",
        "fan.map_variable_placeholder.work",
        "--map-variable",
        '{"item": 1}',
        *base,
        cwd=project,
        env=env,
    )
    result = run_magnus("fan", "cf", "fan", "--mode", "in", *base, cwd=project, env=env)
    assert result.returncode == 1
    log = show_run("cf", project)
    assert log["steps"]["fan"]["status"] == "FAIL"
    assert "fail" in log["steps"] and log["status"] == "FAIL"
