"""Re-running failed runs (retry / --use-cached) and the mocked executor."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

pytestmark = pytest.mark.e2e

STEPS = """
import os
import time
from pathlib import Path


def first():
    Path("data").mkdir(exist_ok=True)
    Path("data/first.txt").write_text("from the first step")
    return {"carried": 42}


def second(carried: int):
    if not Path("fixed").exists():
        raise RuntimeError("not fixed yet")
    assert Path("data/first.txt").read_text() == "from the first step"
    return {"doubled": carried * 2}


def element(item: int):
    if item == 2 and not Path("fixed").exists():
        raise RuntimeError("element 2 is broken")
    return {"value": item * 100}


def slow(item: int):
    Path("pids").mkdir(exist_ok=True)
    (Path("pids") / str(item)).write_text(str(os.getpid()))
    if item >= 2 and Path("hold").exists():
        time.sleep(120)
    return {"value": item}


def items(count: int = 4):
    return {"items": list(range(count))}
"""

LINEAR = """
dag:
  start_at: first
  steps:
    first: {type: task, command: steps.first, catalog: {put: [data/first.txt]}, next: second}
    second: {type: task, command: steps.second, catalog: {get: [data/first.txt]}, next: third}
    third: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
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
          work: {type: task, command: steps.COMMAND, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture
def rerun_project(project: Path) -> Path:
    (project / "steps.py").write_text(STEPS)
    (project / "linear.yaml").write_text(LINEAR)
    (project / "map.yaml").write_text(MAP.replace("COMMAND", "element"))
    (project / "slow.yaml").write_text(MAP.replace("COMMAND", "slow"))
    # what the steps leave behind is data, not code: ignored, as in a real project
    (project / ".gitignore").write_text("__pycache__/\ndata/\npids/\nfixed\nhold\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "steps"], cwd=project, check=True)
    return project


def test_retry_reuses_what_succeeded_and_runs_the_rest(
    rerun_project: Path, run_magnus: Any
) -> None:
    first = run_magnus(
        "execute", "-f", "linear.yaml", "--run-id", "orig", "--tag", "t", cwd=rerun_project
    )
    assert first.returncode == 1
    (rerun_project / "fixed").write_text("")
    (rerun_project / "data" / "first.txt").unlink()  # the retry must get it from the catalog
    again = run_magnus("retry", "orig", "--run-id", "again", cwd=rerun_project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reused from run orig" in again.stdout

    log = show_run("again", rerun_project)
    assert (log["use_cached"], log["original_run_id"], log["tag"]) == (True, "orig", "t")
    assert log["status"] == "SUCCESS"
    reused = log["steps"]["first"]
    assert reused["mock"] is True and reused["attempts"] == [] and reused["status"] == "SUCCESS"
    assert reused["reused_from"] == "orig"
    assert "changed_since_original" not in reused
    second = log["steps"]["second"]
    assert second["mock"] is False and second["status"] == "SUCCESS"
    assert second["attempts"][0]["parameters"] == {"carried": 42}  # carried over from the original
    assert log["steps"]["third"]["status"] == "SUCCESS"  # never reached in the original: it runs
    assert log["parameters"] == {"carried": 42, "doubled": 84}
    assert (rerun_project / ".catalog" / "again" / "data" / "first.txt").is_file()
    assert log["run_config"]["pipeline_file"] == "linear.yaml"


def test_use_cached_with_a_changed_pipeline_says_so(rerun_project: Path, run_magnus: Any) -> None:
    assert (
        run_magnus("execute", "-f", "linear.yaml", "--run-id", "o2", cwd=rerun_project).returncode
        == 1
    )
    (rerun_project / "fixed").write_text("")
    # A new put pattern changes what the step does; more attempts do not.
    changed = LINEAR.replace(
        "put: [data/first.txt]}, next: second}",
        "put: [data/*.txt]}, next: second, max_attempts: 2}",
    )
    (rerun_project / "changed.yaml").write_text(changed)
    result = run_magnus(
        "execute", "-f", "changed.yaml", "--use-cached", "o2", "--run-id", "c2", cwd=rerun_project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "definition" in result.stdout + result.stderr
    step = show_run("c2", rerun_project)["steps"]["first"]
    assert step["mock"] is True
    # Compared by fingerprint: the untracked changed.yaml makes the tree dirty, but it is not
    # code the step runs.
    assert step["changed_since_original"] == ["definition"]

    strict = run_magnus(
        "execute",
        "-f",
        "changed.yaml",
        "--use-cached",
        "o2",
        "--run-id",
        "s2",
        "--strict",
        cwd=rerun_project,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr
    step = show_run("s2", rerun_project)["steps"]["first"]
    assert step["mock"] is False and len(step["attempts"]) == 1


def test_strict_flags_only_the_steps_whose_code_changed(
    rerun_project: Path, run_magnus: Any
) -> None:
    (rerun_project / "other.py").write_text("def unrelated():\n    return 1\n")
    assert (
        run_magnus("execute", "-f", "linear.yaml", "--run-id", "k1", cwd=rerun_project).returncode
        == 1
    )
    (rerun_project / "fixed").write_text("")
    # An edit to a module no step imports: the repository changed, no step's code did.
    (rerun_project / "other.py").write_text("def unrelated():\n    return 2\n")
    kept = run_magnus("retry", "k1", "--run-id", "k2", "--strict", cwd=rerun_project)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    first = show_run("k2", rerun_project)["steps"]["first"]
    assert first["mock"] is True and "changed_since_original" not in first

    # An edit to the module of the step's function: that step runs again under --strict.
    steps = (rerun_project / "steps.py").read_text()
    (rerun_project / "steps.py").write_text(
        steps.replace('return {"carried": 42}', 'return {"carried": 43}')
    )
    redone = run_magnus("retry", "k1", "--run-id", "k3", "--strict", cwd=rerun_project)
    assert redone.returncode == 0, redone.stdout + redone.stderr
    log = show_run("k3", rerun_project)
    assert log["steps"]["first"]["mock"] is False
    assert log["parameters"]["doubled"] == 86


def test_strict_sees_code_changes_outside_git(rerun_project: Path, run_magnus: Any) -> None:
    import shutil

    shutil.rmtree(rerun_project / ".git")
    assert (
        run_magnus("execute", "-f", "linear.yaml", "--run-id", "g1", cwd=rerun_project).returncode
        == 1
    )
    (rerun_project / "fixed").write_text("")
    steps = (rerun_project / "steps.py").read_text()
    (rerun_project / "steps.py").write_text(
        steps.replace('return {"carried": 42}', 'return {"carried": 7}')
    )
    plain = run_magnus("retry", "g1", "--run-id", "g2", cwd=rerun_project)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    reused = show_run("g2", rerun_project)["steps"]["first"]
    assert reused["mock"] is True and reused["changed_since_original"] == ["code"]
    strict = run_magnus("retry", "g1", "--run-id", "g3", "--strict", cwd=rerun_project)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert show_run("g3", rerun_project)["parameters"]["doubled"] == 14
    # A retry of the retry compares with what the step last ran with (g1's), through g2.
    again = run_magnus("retry", "g2", "--run-id", "g4", "--strict", cwd=rerun_project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert show_run("g4", rerun_project)["parameters"]["doubled"] == 14


def test_a_map_is_resumed_element_by_element(rerun_project: Path, run_magnus: Any) -> None:
    assert (
        run_magnus("execute", "-f", "map.yaml", "--run-id", "m1", cwd=rerun_project).returncode == 1
    )
    (rerun_project / "fixed").write_text("")
    result = run_magnus("retry", "m1", "--run-id", "m2", cwd=rerun_project)
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("m2", rerun_project)
    branches = log["steps"]["fan"]["branches"]
    mocked = {name: b["steps"][f"{name}.work"]["mock"] for name, b in branches.items()}
    assert mocked == {"fan.0": True, "fan.1": True, "fan.2": False, "fan.3": True}
    assert log["steps"]["make"]["mock"] is True
    # reused elements carried their values over: the reduction is complete and in order
    assert log["parameters"]["value"] == [0, 100, 200, 300]


def test_a_missing_original_is_a_clear_error(rerun_project: Path, run_magnus: Any) -> None:
    result = run_magnus("retry", "never-ran", cwd=rerun_project)
    assert result.returncode == 2
    assert "Expected a run log with id: never-ran" in result.stderr


@pytest.mark.parametrize("store", ["chunked-fs", "file-system"])
def test_a_killed_parallel_map_is_resumed(rerun_project: Path, run_magnus: Any, store: str) -> None:
    (rerun_project / "c.yaml").write_text(
        "executor: {type: local, config: {enable_parallel: true, max_workers: 4}}\n"
        f"run_log_store: {{type: {store}}}\n"
    )
    (rerun_project / "hold").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "magnus",
            "execute",
            "-f",
            "slow.yaml",
            "-c",
            "c.yaml",
            "--run-id",
            "killed",
        ],
        cwd=rerun_project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        pids = rerun_project / "pids"
        while not (pids.is_dir() and len(list(pids.iterdir())) == 4):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        time.sleep(1.5)  # elements 0 and 1 finish; 2 and 3 sleep
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # parent and children, no chance to clean up
        process.wait()
    for pid_file in (rerun_project / "pids").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    killed = show_run("killed", rerun_project, "-c", "c.yaml")
    assert killed["status"] == "PROCESSING"
    (rerun_project / "hold").unlink()
    result = run_magnus("retry", "killed", "-c", "c.yaml", "--run-id", "resumed", cwd=rerun_project)
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("resumed", rerun_project, "-c", "c.yaml")
    assert log["status"] == "SUCCESS"
    assert log["parameters"]["value"] == [0, 1, 2, 3]
    branches = log["steps"]["fan"]["branches"]
    mocked = [branches[f"fan.{i}"]["steps"][f"fan.{i}.work"]["mock"] for i in range(4)]
    assert mocked[:2] == [True, True] and mocked[2:] == [False, False]


def test_mocked_executor_runs_only_patched_steps(rerun_project: Path, run_magnus: Any) -> None:
    (rerun_project / "mocked.yaml").write_text(
        "executor:\n  type: mocked\n  config:\n    patches:\n"
        "      second: {command_type: shell, command: 'echo patched', catalog: {get: [], put: []}}\n"
        "      fan.2.work: {command: steps.items}\n"
    )
    result = run_magnus(
        "execute", "-f", "linear.yaml", "-c", "mocked.yaml", "--run-id", "mk", cwd=rerun_project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("mk", rerun_project)
    assert log["steps"]["first"]["mock"] is True
    assert log["steps"]["first"]["data_catalog"] == []
    second = log["steps"]["second"]
    assert second["mock"] is False and second["status"] == "SUCCESS"
    assert "patched" in (rerun_project / ".catalog" / "mk" / "second.execution.log").read_text()
    assert log["parameters"] == {}

    (rerun_project / "fixed").unlink(missing_ok=True)
    (rerun_project / "params.yaml").write_text("items: [1, 2, 3]\n")
    result = run_magnus(
        "execute",
        "-f",
        "map.yaml",
        "-c",
        "mocked.yaml",
        "-p",
        "params.yaml",
        "--run-id",
        "mk-map",
        cwd=rerun_project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    branches = show_run("mk-map", rerun_project)["steps"]["fan"]["branches"]
    assert [branches[f"fan.{i}"]["steps"][f"fan.{i}.work"]["mock"] for i in (1, 2, 3)] == [
        True,
        False,
        True,
    ]


def test_runs_list_filters_and_step_view(rerun_project: Path, run_magnus: Any) -> None:
    assert (
        run_magnus(
            "execute", "-f", "linear.yaml", "--run-id", "bad-one", "--tag", "x", cwd=rerun_project
        ).returncode
        == 1
    )
    (rerun_project / "fixed").write_text("")
    assert (
        run_magnus(
            "execute", "-f", "linear.yaml", "--run-id", "good-one", cwd=rerun_project
        ).returncode
        == 0
    )
    failed = run_magnus("runs", "list", "--status", "fail", cwd=rerun_project)
    assert "bad-one" in failed.stdout and "good-one" not in failed.stdout
    tagged = run_magnus("runs", "list", "--tag", "x", "--since", "1h", cwd=rerun_project)
    assert "bad-one" in tagged.stdout and "good-one" not in tagged.stdout
    future = run_magnus("runs", "list", "--since", "2999-01-01", cwd=rerun_project)
    assert "bad-one" not in future.stdout and "good-one" not in future.stdout
    nonsense = run_magnus("runs", "list", "--since", "yesterday-ish", cwd=rerun_project)
    assert nonsense.returncode == 2 and "--since" in nonsense.stderr
    step = run_magnus("runs", "show", "bad-one", "--step", "second", cwd=rerun_project)
    assert step.returncode == 0 and "not fixed yet" in step.stdout
    missing = run_magnus("runs", "show", "bad-one", "--step", "nope", cwd=rerun_project)
    assert missing.returncode == 2 and "No step log 'nope'" in missing.stderr
