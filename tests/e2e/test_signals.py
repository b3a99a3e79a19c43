"""Runs stopped by signals end truthfully: FAIL with the reason, nothing left PROCESSING.

SIGINT and SIGTERM land at random points of sequential and parallel runs; then the run log,
the exit status, what observers heard and ``magnus retry`` are checked. A second signal aborts at
once; ``kill -9`` leaves a run that readers call abandoned without writing to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_hooks_seen, run_magnus, show_run, write_run_hooks

pytestmark = pytest.mark.e2e

STEPS = """
import os
import signal
import time
from pathlib import Path


def _mark(name):
    Path("pids").mkdir(exist_ok=True)
    (Path("pids") / f"{name}-{os.getpid()}").write_text("")


def tick(n: int = 0):
    time.sleep(0.15)
    return {"n": n + 1}


def items():
    return {"items": [0, 1, 2, 3]}


def nap(item: int):
    time.sleep(0.3)
    return {"slept": item}


def stubborn(item: int):
    # Deaf to the first signal: only the second one, and SIGKILL, end it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark("stubborn")
    time.sleep(60)


def forked():
    # A process forked by a task (as multiprocessing does) and stopped by a signal dies of it:
    # it has no run to end, whatever handlers it inherited.
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return {"child_signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1}


def blocking():
    # Sleeps while the file "block" exists, so a re-run after the test removes it goes through.
    _mark("blocking")
    print("blocked until the file 'block' is removed", flush=True)
    while Path("block").exists():
        time.sleep(0.05)
    return {"unblocked": True}
"""

PIPELINE = """
dag:
  start_at: a
  steps:
    a: {{type: task, command: steps.tick, next: b}}
    b: {{type: task, command: steps.tick, next: c}}
    c: {{type: task, command: steps.items, next: fan}}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: d
      branch:
        start_at: work
        steps:
          work: {{type: task, command: steps.{command}, next: success}}
          success: {{type: success}}
          fail: {{type: fail}}
    d: {{type: task, command: steps.tick, next: success}}
    success: {{type: success}}
    fail: {{type: fail}}
"""

BLOCKING = """
dag:
  start_at: first
  steps:
    first: {type: task, command: steps.tick, next: wait}
    wait: {type: task, command: steps.blocking, next: success}
    success: {type: success}
    fail: {type: fail}
"""

CONFIGS = {
    "sequential": "executor: {type: local}\n",
    "parallel": "executor: {type: local, config: {enable_parallel: true, max_workers: 2}}\n",
}


def _project(project: Path, command: str = "nap", pipeline: str = "") -> None:
    (project / "steps.py").write_text(STEPS)
    (project / "p.yaml").write_text(pipeline or PIPELINE.format(command=command))
    for mode, config in CONFIGS.items():
        (project / f"{mode}.yaml").write_text(config)
    write_run_hooks(project)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    env["MAGNUS_PLUGINS"] = "run_hooks"
    return env


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "magnus.cli", *args],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def _blocked(project: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``magnus *args`` on the BLOCKING pipeline; return once its step is blocked."""
    _project(project, pipeline=BLOCKING)
    (project / "block").write_text("")
    process = _start(project, *args)
    pids = project / "pids"
    try:
        _wait_for(lambda: pids.is_dir() and any(pids.iterdir()), process, "the step")
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process


def _records(log: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, step in log["steps"].items():
        yield name, step
        for branch_name, branch in step.get("branches", {}).items():
            yield branch_name, branch
            yield from _records(branch)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (killed children of an aborted process wait to be reaped)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def stop_project(project: Path) -> Path:
    _project(project)
    return project


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_a_signal_at_a_random_point_ends_the_run_fail_and_retry_completes_it(
    stop_project: Path, mode: str, signum: signal.Signals
) -> None:
    # Each case stops its run at another point (seeded by the date: the same all day long).
    project = stop_project
    run_id = f"stopped-{mode}-{signum.name}"
    seed = f"{mode}{signum}{time.strftime('%Y-%m-%d')}"
    process = _start(project, "execute", "-f", "p.yaml", "-c", f"{mode}.yaml", "--run-id", run_id)
    head = project / ".run_log_store" / run_id / "RunLog.json"
    try:
        _wait_for(head.exists, process, "the run log")
        delay = random.Random(seed).uniform(0.0, 1.0)
        print(f"{signum.name} {delay:.3f}s after the run log appeared")  # shown if it fails
        time.sleep(delay)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    log = show_run(run_id, project)
    reason = f"interrupted by {signum.name}"
    assert "Traceback" not in stderr
    if log["status"] == "SUCCESS":  # the signal came after the run's last step
        assert process.returncode in (0, 128 + signum)
    else:
        assert process.returncode == 128 + signum, stderr
        assert (log["status"], log["message"]) == ("FAIL", reason)
        assert f"Run {run_id} {reason}: FAIL" in stderr
        assert f"magnus retry {run_id} -c {mode}.yaml" in stderr
    still_open = [name for name, r in _records(log) if r["status"] not in ("SUCCESS", "FAIL")]
    assert still_open == []
    ended = [seen for seen in run_hooks_seen(project) if seen["hook"] == "after_run"]
    assert [seen["status"] for seen in ended] == [log["status"]]

    retried = run_magnus(
        "retry", run_id, "-c", f"{mode}.yaml", "--run-id", f"{run_id}-again", cwd=project
    )
    assert retried.returncode == 0, retried.stderr
    again = show_run(f"{run_id}-again", project)
    assert again["status"] == "SUCCESS"
    assert again["parameters"]["n"] == 3
    assert again["parameters"]["slept"] == [0, 1, 2, 3]


def test_a_second_ctrl_c_aborts_at_once(project: Path) -> None:
    _project(project, command="stubborn")
    process = _start(
        project, "execute", "-f", "p.yaml", "-c", "parallel.yaml", "--run-id", "aborted"
    )
    pids = project / "pids"
    try:
        _wait_for(lambda: pids.is_dir() and len(list(pids.iterdir())) == 2, process, "children")
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the children ignore it: the run waits for them
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    assert waited < 5, "the second Ctrl-C waited for the children's grace period"
    assert "Aborted by a second SIGINT" in stderr
    for pid_file in pids.iterdir():
        assert _gone(int(pid_file.name.rpartition("-")[2]))
    # Nothing was finished: the run is left as it was, and readers see its process is gone.
    listed = run_magnus("runs", "list", "--status", "ABANDONED", cwd=project)
    assert "aborted" in listed.stdout


def _assert_stopped_attempt(project: Path, run_id: str, step: dict[str, Any], reason: str) -> None:
    """The stopped step recorded the attempt it was making, and kept what it printed."""
    [attempt] = step["attempts"]
    assert (attempt["status"], attempt["message"]) == ("FAIL", reason)
    assert attempt["start_time"] <= attempt["end_time"]
    [log] = [e for e in step["data_catalog"] if ".execution.log" in e["name"]]
    printed = (project / ".catalog" / run_id / log["name"]).read_text()
    assert "blocked until the file 'block' is removed" in printed


def test_ctrl_c_records_the_attempt_it_stopped_with_its_output(project: Path) -> None:
    process = _blocked(project, "execute", "-f", "p.yaml", "--run-id", "stopped-step")
    try:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    log = show_run("stopped-step", project)
    assert (log["status"], log["message"]) == ("FAIL", "interrupted by SIGINT")
    step = log["steps"]["wait"]
    assert (step["status"], step["message"]) == ("FAIL", "interrupted by SIGINT")
    _assert_stopped_attempt(project, "stopped-step", step, "interrupted by SIGINT")
    assert len(log["steps"]["first"]["attempts"]) == 1  # the step before ended as it did


def test_kill_9_leaves_a_run_shown_abandoned_without_writing_to_it(project: Path) -> None:
    process = _blocked(project, "execute", "-f", "p.yaml", "--run-id", "killed")
    try:
        time.sleep(0.7)  # past the delay after which a running step's record is written
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    folder = project / ".run_log_store" / "killed"
    before = _folder_digest(folder)

    shown = run_magnus("runs", "show", "killed", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "ABANDONED" in shown.stdout and "magnus retry killed" in shown.stdout
    assert f"process {process.pid}" in shown.stdout
    listed = run_magnus("runs", "list", cwd=project)
    assert "killed" in listed.stdout and "ABANDONED" in listed.stdout
    assert "killed" in run_magnus("runs", "list", "--status", "ABANDONED", cwd=project).stdout
    assert "killed" not in run_magnus("runs", "list", "--status", "PROCESSING", cwd=project).stdout
    stored = show_run("killed", project)
    assert stored["status"] == "PROCESSING"  # the record itself is untouched
    assert stored["run_config"]["owner"]["pid"] == process.pid
    assert stored["steps"]["wait"]["status"] == "PROCESSING"
    assert _folder_digest(folder) == before

    (project / "block").unlink()
    retried = run_magnus("retry", "killed", "--run-id", "killed-again", cwd=project)
    assert retried.returncode == 0, retried.stderr
    assert show_run("killed-again", project)["status"] == "SUCCESS"


def test_a_running_run_is_not_called_abandoned(project: Path) -> None:
    process = _blocked(project, "execute", "-f", "p.yaml", "--run-id", "alive")
    try:
        listed = run_magnus("runs", "list", cwd=project)
        assert "alive" in listed.stdout and "PROCESSING" in listed.stdout
        assert "ABANDONED" not in listed.stdout
    finally:
        (project / "block").unlink()
        process.communicate(timeout=60)
    assert process.returncode == 0


def test_sigterm_to_an_orchestrated_step_ends_that_step_fail(project: Path) -> None:
    process = _blocked(project, "execute_single_node", "pod-stopped", "wait", "-f", "p.yaml")
    try:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    log = show_run("pod-stopped", project)
    step = log["steps"]["wait"]
    assert (step["status"], step["message"]) == ("FAIL", "interrupted by SIGTERM")
    _assert_stopped_attempt(project, "pod-stopped", step, "interrupted by SIGTERM")
    # The run goes on in the orchestrator's hands: its own end is not this container's to write.
    assert log["status"] == "PROCESSING"
    assert "owner" not in log["run_config"]
    assert json.loads(json.dumps(log))  # readable as a whole


FORKING = """
dag:
  start_at: fork
  steps:
    fork: {type: task, command: steps.forked, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def test_a_process_forked_by_a_task_does_not_take_over_the_run(project: Path) -> None:
    _project(project, pipeline=FORKING)
    result = run_magnus("execute", "-f", "p.yaml", "--run-id", "forking", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    log = show_run("forking", project)
    assert log["status"] == "SUCCESS"
    assert log["parameters"]["child_signal"] == signal.SIGTERM
