"""Real pipelines through the magnus command line, asserting on the run log and catalog on disk."""

from __future__ import annotations

import hashlib
import json
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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


show = show_run


def head(cwd: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_python_pipeline_end_to_end(project: Path, run_magnus: Any) -> None:
    result = run_magnus(
        "execute",
        "-f",
        "examples/python-tasks.yaml",
        "-p",
        "examples/parameters.yaml",
        "--run-id",
        "first-run",
        "--tag",
        "nightly",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "first-run" in result.stdout and "SUCCESS" in result.stdout
    assert ".run_log_store/first-run" in result.stdout
    # the console shows steps start and end, and the summary, not the whole run log
    assert "prepare" in result.stdout and '"run_config"' not in result.stdout

    log = show("first-run", project)
    assert log["status"] == "SUCCESS" and log["tag"] == "nightly"
    assert list(log["steps"]) == ["prepare", "train", "report", "success"]
    assert log["schema_version"] == "1"
    for name in ("prepare", "train", "report"):
        step = log["steps"][name]
        assert step["status"] == "SUCCESS" and step["step_type"] == "task"
        assert [a["attempt_number"] for a in step["attempts"]] == [1]
        identity = step["code_identities"][0]
        assert identity["code_identifier"] == head(project)
        assert identity["code_identifier_dependable"] is True
        assert identity["code_identifier_type"] == "git"

    # what each attempt consumed and produced
    train = log["steps"]["train"]["attempts"][0]
    assert train["parameters"] == {"rows": 5, "config": {"learning_rate": 0.1, "epochs": 3}}
    assert train["output_parameters"] == {"score": 1.5}
    assert log["steps"]["report"]["attempts"][0]["parameters"] == {"score": 1.5, "rows": 5}
    assert log["parameters"] == {
        "rows": 5,
        "config": {"learning_rate": 0.1, "epochs": 3},
        "source": "data/rows.csv",
        "score": 1.5,
        "model": "small",
    }

    # catalog entries, with hashes recomputed independently from the files on disk
    entries = {e["name"]: e for e in log["steps"]["prepare"]["data_catalog"]}
    assert set(entries) == {"prepare.execution.log", "data/rows.csv"}
    for entry in entries.values():
        stored = project / ".catalog" / entry["catalog_relative_path"]
        assert entry["data_hash"] == sha256(stored)
        assert entry["stage"] == "put" and entry["catalog_handler_location"] == ".catalog"
    assert entries["data/rows.csv"]["catalog_relative_path"] == "first-run/data/rows.csv"
    assert entries["data/rows.csv"]["data_hash"] == sha256(project / "data" / "rows.csv")
    execution_log = project / ".catalog" / "first-run" / "prepare.execution.log"
    assert "prepared 5 rows" in execution_log.read_text()

    # the configuration and the graph travel with the run
    config = log["run_config"]
    assert config["run_log_store"] == {
        "service_name": "chunked-fs",
        "service_type": "run_log_store",
        "log_folder": ".run_log_store",
    }
    assert config["catalog_handler"]["service_name"] == "file-system"
    assert config["executor"]["service_name"] == "local"
    assert config["pipeline_file"] == "examples/python-tasks.yaml"
    assert config["parameters_file"] == "examples/parameters.yaml"
    assert config["dag"]["steps"]["train"]["command"] == "examples.functions.train"
    assert config["dag_hash"] == log["dag_hash"] and len(log["dag_hash"]) == 40
    assert config["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert any(d.startswith("pydantic==") for d in config["environment"]["distributions"])

    # chunked-fs: the run's record, and one record per step and parameter in its journal
    folder = project / ".run_log_store" / "first-run"
    assert (folder / "RunLog.json").is_file()
    journal = (folder / "records.journal").read_bytes()
    assert b" parameters/Parameter-score.json\t" in journal
    assert b" steps/StepLog-train.json\t" in journal


def test_a_failing_step_fails_the_run(project: Path, run_magnus: Any) -> None:
    (project / "fails.yaml").write_text(
        "dag:\n  start_at: one\n  steps:\n"
        "    one: {type: task, command_type: shell, command: 'echo to stderr >&2; exit 4', next: two}\n"
        "    two: {type: stub, next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus("execute", "-f", "fails.yaml", "--run-id", "broken", cwd=project)
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    log = show("broken", project)
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["one", "fail"]
    assert log["steps"]["one"]["status"] == "FAIL"
    assert log["steps"]["one"]["attempts"][0]["message"] == "Command failed with exit status 4"
    assert log["steps"]["fail"]["status"] == "SUCCESS"
    # stderr is kept in the execution log (0.5 lost it)
    assert "to stderr" in (project / ".catalog" / "broken" / "one.execution.log").read_text()


def test_on_failure_and_retries(project: Path, run_magnus: Any) -> None:
    result = run_magnus(
        "execute", "-f", "examples/on-failure.yaml", "--run-id", "recovering", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = show("recovering", project)
    flaky = log["steps"]["flaky step"]
    assert [(a["attempt_number"], a["status"]) for a in flaky["attempts"]] == [
        (1, "FAIL"),
        (2, "SUCCESS"),
    ]
    assert "failing on purpose (attempt 1)" in flaky["attempts"][0]["message"]
    assert flaky["status"] == "SUCCESS"
    names = {e["name"] for e in flaky["data_catalog"]}
    assert names == {"flaky_step.execution.log", "flaky_step.attempt-2.execution.log"}
    assert log["steps"]["risky step"]["status"] == "FAIL"
    assert log["steps"]["recover"]["status"] == "SUCCESS"
    assert list(log["steps"]) == ["flaky step", "risky step", "recover", "success"]
    assert log["status"] == "SUCCESS"


def test_shell_parameters_and_catalog_get(project: Path, run_magnus: Any) -> None:
    result = run_magnus(
        "execute", "-f", "examples/shell-and-catalog.yaml", "--run-id", "words", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = show("words", project)
    assert log["parameters"] == {"language": "english", "words": 9}
    count = log["steps"]["count words"]
    assert count["attempts"][0]["parameters"] == {"language": "english"}
    assert count["attempts"][0]["output_parameters"] == {"words": 9}
    got = [e for e in count["data_catalog"] if e["stage"] == "get"]
    assert [e["name"] for e in got] == ["data/words.txt"]
    assert got[0]["data_hash"] == sha256(project / ".catalog" / "words" / "data" / "words.txt")
    # the shell environment is not dumped into the execution log as 0.5 did
    text = (project / ".catalog" / "words" / "count_words.execution.log").read_text()
    assert text == 'counting "english" words\n'


def test_a_missing_catalog_file_fails_the_step_not_the_run(project: Path, run_magnus: Any) -> None:
    (project / "missing.yaml").write_text(
        "dag:\n  start_at: seed\n  steps:\n"
        "    seed: {type: task, command_type: shell, command: 'mkdir -p d && echo 1 > d/a.txt', "
        "catalog: {put: [d/a.txt]}, next: needs}\n"
        "    needs: {type: task, command_type: shell, command: 'true', "
        "catalog: {get: [d/nothing-*.txt]}, on_failure: handled, next: success}\n"
        "    handled: {type: stub, next: fail}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus("execute", "-f", "missing.yaml", "--run-id", "nodata", cwd=project)
    assert result.returncode == 1
    log = show("nodata", project)
    needs = log["steps"]["needs"]
    assert needs["status"] == "FAIL"
    assert "d/nothing-*.txt" in needs["attempts"][0]["message"]
    assert len(needs["attempts"]) == 1
    assert list(log["steps"]) == ["seed", "needs", "handled", "fail"]
    assert log["status"] == "FAIL"


def test_a_bad_parameter_names_step_parameter_and_type(project: Path, run_magnus: Any) -> None:
    (project / "params.yaml").write_text("rows: many\nconfig: {learning_rate: 0.1, epochs: 1}\n")
    result = run_magnus(
        "execute",
        "-f",
        "examples/python-tasks.yaml",
        "-p",
        "params.yaml",
        "--run-id",
        "badparam",
        cwd=project,
    )
    assert result.returncode == 1
    log = show("badparam", project)
    message = log["steps"]["prepare"]["attempts"][0]["message"]
    assert "prepare" in message and "rows" in message and "int" in message
    assert "rows" not in log["steps"]["prepare"]["attempts"][0]["output_parameters"]
    assert log["parameters"] == {"rows": "many", "config": {"learning_rate": 0.1, "epochs": 1}}


def test_environment_parameters_override_the_file(project: Path, run_magnus: Any) -> None:
    result = run_magnus(
        "execute",
        "-f",
        "examples/python-tasks.yaml",
        "-p",
        "examples/parameters.yaml",
        "--run-id",
        "fromenv",
        cwd=project,
        env={"MAGNUS_PRM_rows": "2", "MAGNUS_PRM_Mixed": '"x"'},
    )
    assert result.returncode == 0, result.stderr
    log = show("fromenv", project)
    assert log["parameters"]["rows"] == 2 and log["parameters"]["Mixed"] == "x"


def test_file_system_store_and_runs_commands(project: Path, run_magnus: Any) -> None:
    config = ["-c", "examples/configs/file-system.yaml"]
    result = run_magnus(
        "execute", "-f", "examples/catalog-api.yaml", *config, "--run-id", "api-run", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    on_disk = json.loads((project / ".run_log_store" / "api-run.json").read_text())
    assert show("api-run", project, *config) == on_disk
    retrieve = on_disk["steps"]["retrieve content"]
    assert retrieve["attempts"][0]["output_parameters"] == {"greeting": "Hello from magnus"}
    stages = [(e["name"], e["stage"]) for e in retrieve["data_catalog"]]
    assert ("data/hello.txt", "get") in stages
    assert (project / "fetched" / "data" / "hello.txt").is_file()

    listing = run_magnus("runs", "list", *config, cwd=project)
    assert listing.returncode == 0 and "api-run" in listing.stdout and "SUCCESS" in listing.stdout
    tree = run_magnus("runs", "show", "api-run", *config, cwd=project)
    assert tree.returncode == 0
    assert "retrieve content" in tree.stdout and "data/hello.txt" in tree.stdout


def test_chunked_and_file_system_stores_record_the_same_structure(
    project: Path, run_magnus: Any
) -> None:
    args = ["execute", "-f", "examples/shell-and-catalog.yaml"]
    assert run_magnus(*args, "--run-id", "chunked", cwd=project).returncode == 0
    config = ["-c", "examples/configs/file-system.yaml"]
    assert run_magnus(*args, *config, "--run-id", "single", cwd=project).returncode == 0

    def shape(log: dict[str, Any]) -> Any:
        return {
            name: (
                s["status"],
                [a["status"] for a in s["attempts"]],
                [
                    (e["name"], e["stage"], e["data_hash"])
                    for e in s["data_catalog"]
                    if not e["name"].endswith(".execution.log")
                ],
            )
            for name, s in log["steps"].items()
        }

    chunked, single = show("chunked", project), show("single", project, *config)
    assert shape(chunked) == shape(single)
    assert chunked["parameters"] == single["parameters"]
    assert chunked["dag_hash"] == single["dag_hash"]


def test_validate_reports_problems_without_running(project: Path, run_magnus: Any) -> None:
    ok = run_magnus("validate", "-f", "examples/python-tasks.yaml", cwd=project)
    assert ok.returncode == 0 and "is valid" in ok.stdout
    (project / "bad.yaml").write_text(
        "dag:\n  start_at: a\n  steps:\n    a: {type: task, next: b}\n    success: {type: success}\n"
    )
    bad = run_magnus("validate", "-f", "bad.yaml", cwd=project)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    for fragment in (
        "bad.yaml",
        "missing required key 'command'",
        "next names 'b'",
        "exactly one fail step, found 0",
    ):
        assert fragment in bad.stderr
    assert not (project / ".run_log_store").exists()
    (project / "buffered.yaml").write_text("executor: {type: local}\ncatalog: {type: do-nothing}\n")
    warned = run_magnus(
        "validate", "-f", "examples/python-tasks.yaml", "-c", "buffered.yaml", cwd=project
    )
    assert warned.returncode == 0 and "cannot pass data between steps" in warned.stderr


def test_run_ids_are_checked(project: Path, run_magnus: Any) -> None:
    args = ["execute", "-f", "examples/on-failure.yaml"]
    assert run_magnus(*args, "--run-id", "taken", cwd=project).returncode == 0
    again = run_magnus(*args, "--run-id", "taken", cwd=project)
    assert again.returncode == 2 and "'taken' already exists" in again.stderr
    bad = run_magnus(*args, "--run-id", "no spaces please", cwd=project)
    assert bad.returncode == 2 and "no spaces please" in bad.stderr
    generated = run_magnus(*args, cwd=project)
    assert generated.returncode == 0
    import re

    assert re.search(r"Run [a-z]+-[a-z]+-\d{4} SUCCESS", generated.stdout)


def test_an_unwritable_store_is_a_clear_error(project: Path, run_magnus: Any) -> None:
    (project / "blocked").write_text("a file where a folder should be")
    (project / "c.yaml").write_text(
        "run_log_store: {type: chunked-fs, config: {log_folder: blocked/logs}}\n"
    )
    result = run_magnus("execute", "-f", "examples/on-failure.yaml", "-c", "c.yaml", cwd=project)
    assert result.returncode == 2
    assert "blocked/logs" in result.stderr and "Traceback" not in result.stderr


def test_plugins_command_lists_the_built_ins(project: Path, run_magnus: Any) -> None:
    result = run_magnus("plugins", cwd=project)
    assert result.returncode == 0
    assert "magnus.builtins" in result.stdout and "magnus-core" in result.stdout
    assert "chunked-fs" in result.stdout


def test_an_interrupted_run_leaves_a_readable_log(project: Path, run_magnus: Any) -> None:
    (project / "slow.yaml").write_text(
        "dag:\n  start_at: quick\n  steps:\n"
        "    quick: {type: task, command_type: shell, command: 'echo done', next: slow}\n"
        "    slow: {type: task, command_type: shell, command: 'sleep 60', next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "magnus.cli", "execute", "-f", "slow.yaml", "--run-id", "killed"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    journal = project / ".run_log_store" / "killed" / "records.journal"
    try:
        deadline = time.monotonic() + 60
        while not (journal.is_file() and b" steps/StepLog-slow.json\t" in journal.read_bytes()):
            assert time.monotonic() < deadline, "the slow step never started"
            assert process.poll() is None, "magnus exited early"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log = show("killed", project)
    assert log["status"] == "PROCESSING"
    assert log["steps"]["quick"]["status"] == "SUCCESS"
    assert log["steps"]["slow"]["status"] == "PROCESSING"
    assert not list((project / ".run_log_store" / "killed").glob("*.tmp*"))
