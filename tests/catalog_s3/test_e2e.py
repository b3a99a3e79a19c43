"""Pipelines through the magnus command line with the S3 catalog and the chunked-s3 store."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.s3_server import MotoServer, s3_client
from helpers import show_run

pytestmark = pytest.mark.e2e


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_config(
    project: Path, bucket: str, catalog_endpoint: str, store_endpoint: str, name: str = "s3.yaml"
) -> list[str]:
    (project / name).write_text(
        f"""\
run_log_store:
  type: chunked-s3
  config:
    bucket: {bucket}
    prefix: run-logs
    endpoint_url: {store_endpoint}
    region: us-east-1
    max_attempts: 2
catalog:
  type: s3
  config:
    bucket: {bucket}
    prefix: catalog
    endpoint_url: {catalog_endpoint}
    region: us-east-1
    max_attempts: 2
"""
    )
    return ["-c", name]


def test_python_pipeline_on_s3(
    project: Path,
    run_magnus: Any,
    s3_server: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto takes any credentials: distinctive ones show whether they leak into the run log.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAVISIBLEIFLEAKED0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value-that-must-not-leak")
    config = write_config(project, s3_bucket, s3_server, s3_server)

    result = run_magnus(
        "execute", "-f", "examples/python-tasks.yaml", *config, "--run-id", "s3-run", cwd=project
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"s3://{s3_bucket}/run-logs/s3-run/" in result.stdout
    log = show_run("s3-run", project, *config)
    assert log["status"] == "SUCCESS"
    assert list(log["steps"]) == ["prepare", "train", "report", "success"]
    assert (
        log["parameters"]["score"]
        == log["steps"]["train"]["attempts"][0]["output_parameters"]["score"]
    )
    client = s3_client(s3_server)
    entries = {e["name"]: e for e in log["steps"]["prepare"]["data_catalog"]}
    assert set(entries) == {"prepare.execution.log", "data/rows.csv"}
    for entry in entries.values():
        assert entry["stage"] == "put"
        assert entry["catalog_handler_location"] == f"s3://{s3_bucket}/catalog"
        stored = client.get_object(
            Bucket=s3_bucket, Key=f"catalog/{entry['catalog_relative_path']}"
        )["Body"].read()
        assert entry["data_hash"] == sha256(stored)
    assert entries["data/rows.csv"]["catalog_relative_path"] == "s3-run/data/rows.csv"
    assert entries["data/rows.csv"]["data_hash"] == sha256(
        (project / "data" / "rows.csv").read_bytes()
    )

    # What run_config records of both services: settings, never credentials.
    run_config = log["run_config"]
    assert run_config["run_log_store"]["service_name"] == "chunked-s3"
    assert run_config["run_log_store"]["bucket"] == s3_bucket
    assert run_config["catalog_handler"]["service_name"] == "s3"
    assert run_config["catalog_handler"]["endpoint_url"] == s3_server
    text = json.dumps(log)
    assert "AKIAVISIBLEIFLEAKED0" not in text and "secret-value-that-must-not-leak" not in text
    for service in (run_config["run_log_store"], run_config["catalog_handler"]):
        assert not {key for key in service if "key" in key or "secret" in key or "token" in key}

    # The run log really is in the bucket, in the chunked layout.
    listed = {
        item["Key"]
        for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="run-logs/s3-run/")["Contents"]
    }
    assert "run-logs/s3-run/RunLog.json" in listed
    assert "run-logs/s3-run/steps/StepLog-prepare.json" in listed
    assert "run-logs/s3-run/parameters/Parameter-score.json" in listed
    listing = run_magnus("runs", "list", *config, cwd=project)
    assert listing.returncode == 0 and "s3-run" in listing.stdout


def test_catalog_get_through_s3(
    project: Path, run_magnus: Any, s3_server: str, s3_bucket: str
) -> None:
    config = write_config(project, s3_bucket, s3_server, s3_server)

    result = run_magnus(
        "execute",
        "-f",
        "examples/shell-and-catalog.yaml",
        *config,
        "--run-id",
        "words",
        cwd=project,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("words", project, *config)
    assert log["parameters"] == {"language": "english", "words": 9}
    got = [e for e in log["steps"]["count words"]["data_catalog"] if e["stage"] == "get"]
    assert [e["name"] for e in got] == ["data/words.txt"]
    stored = (
        s3_client(s3_server)
        .get_object(Bucket=s3_bucket, Key="catalog/words/data/words.txt")["Body"]
        .read()
    )
    assert got[0]["data_hash"] == sha256(stored)
    assert got[0]["catalog_handler_location"] == f"s3://{s3_bucket}/catalog"


STEPS = """
import os
from pathlib import Path

import magnus


def items(count: int = 8):
    return {"items": list(range(count))}


def write(item: int):
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    (folder / f"f_{item}.txt").write_text(f"content {item}\\n" * (item + 1))
    magnus.put_in_catalog(f"data/f_{item}.txt")
    return {"value": item * 10, "pid": os.getpid()}


def total(value: list):
    return {"total": sum(value)}
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
      next: total
      branch:
        start_at: work
        steps:
          work: {type: task, command: steps.write, next: success}
          success: {type: success}
          fail: {type: fail}
    total: {type: task, command: steps.total, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def test_map_branches_in_parallel_processes_on_s3(
    project: Path, run_magnus: Any, s3_server: str, s3_bucket: str
) -> None:
    config = write_config(project, s3_bucket, s3_server, s3_server)
    with open(project / "s3.yaml", "a") as handle:
        handle.write("executor: {type: local, config: {enable_parallel: true, max_workers: 4}}\n")
    (project / "steps.py").write_text(STEPS)
    (project / "map.yaml").write_text(MAP)

    result = run_magnus(
        "execute", "-f", "map.yaml", *config, "--run-id", "fan-out", cwd=project, timeout=300
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = show_run("fan-out", project, *config)
    assert log["status"] == "SUCCESS"
    fan = log["steps"]["fan"]
    assert list(fan["branches"]) == [f"fan.{i}" for i in range(8)]
    assert all(branch["status"] == "SUCCESS" for branch in fan["branches"].values())
    assert log["parameters"]["value"] == [i * 10 for i in range(8)]
    assert log["parameters"]["total"] == 280
    assert len(set(log["parameters"]["pid"])) > 1  # the branches ran in several processes
    client = s3_client(s3_server)
    for i in range(8):
        step = fan["branches"][f"fan.{i}"]["steps"][f"fan.{i}.work"]
        [entry] = [e for e in step["data_catalog"] if e["name"] == f"data/f_{i}.txt"]
        stored = client.get_object(Bucket=s3_bucket, Key=f"catalog/fan-out/data/f_{i}.txt")
        assert entry["data_hash"] == sha256(stored["Body"].read())


RETRY_STEPS = """
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
"""

LINEAR = """
dag:
  start_at: first
  steps:
    first: {type: task, command: steps.first, catalog: {put: [data/first.txt]}, next: second}
    second: {type: task, command: steps.second, catalog: {get: [data/first.txt]}, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def test_retry_of_a_failed_run_stored_in_s3(
    project: Path, run_magnus: Any, s3_server: str, s3_bucket: str
) -> None:
    config = write_config(project, s3_bucket, s3_server, s3_server)
    (project / "steps.py").write_text(RETRY_STEPS)
    (project / "linear.yaml").write_text(LINEAR)
    (project / ".gitignore").write_text("__pycache__/\ndata/\nfixed\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "steps"], cwd=project, check=True)

    first = run_magnus("execute", "-f", "linear.yaml", *config, "--run-id", "orig", cwd=project)
    assert first.returncode == 1, first.stdout + first.stderr
    (project / "fixed").write_text("")
    (project / "data" / "first.txt").unlink()  # the retry must get it from the S3 catalog
    again = run_magnus("retry", "orig", *config, "--run-id", "again", cwd=project)

    assert again.returncode == 0, again.stdout + again.stderr
    log = show_run("again", project, *config)
    assert (log["status"], log["original_run_id"]) == ("SUCCESS", "orig")
    assert log["steps"]["first"]["mock"] is True  # reused, not run again
    second = log["steps"]["second"]
    assert second["status"] == "SUCCESS"
    [got] = [e for e in second["data_catalog"] if e["stage"] == "get"]
    assert got["catalog_relative_path"] == "again/data/first.txt"
    client = s3_client(s3_server)
    copied = client.get_object(Bucket=s3_bucket, Key="catalog/again/data/first.txt")
    assert got["data_hash"] == sha256(copied["Body"].read())
    assert copied["Metadata"]["sha256"] == got["data_hash"]  # kept by the server-side copy
    again_keys = {
        item["Key"]
        for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="catalog/again/")["Contents"]
    }
    # the original's execution logs stay with the original
    assert "catalog/again/first.execution.log" not in again_keys
    assert log["parameters"] == {"carried": 42, "doubled": 84}


def test_a_catalog_server_that_dies_fails_the_step_and_keeps_the_run_log(
    project: Path,
    run_magnus: Any,
    s3_server: str,
    s3_bucket: str,
    moto_server_factory: Callable[..., MotoServer],
) -> None:
    doomed = moto_server_factory()
    s3_client(doomed.url).create_bucket(Bucket=s3_bucket)
    config = write_config(project, s3_bucket, doomed.url, s3_server)
    # The step makes its data, then the catalog's server dies before the data is put.
    (project / "dies.yaml").write_text(
        f"""\
dag:
  start_at: produce
  steps:
    produce:
      type: task
      command_type: shell
      command: mkdir -p data && head -c 3000000 /dev/urandom > data/big.bin && kill -9 {doomed.process.pid}
      catalog:
        put: [data/big.bin]
      next: success
    success:
      type: success
    fail:
      type: fail
"""
    )

    result = run_magnus("execute", "-f", "dies.yaml", *config, "--run-id", "dies", cwd=project)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    doomed.process.wait(10)
    log = show_run("dies", project, *config)
    assert log["status"] == "FAIL"
    produce = log["steps"]["produce"]
    assert produce["status"] == "FAIL"
    message = produce["attempts"][-1]["message"]
    assert f"s3://{s3_bucket}/catalog/dies/data/big.bin" in message
    assert "cannot reach the S3 endpoint" in message
    assert list(log["steps"]) == ["produce", "fail"]
