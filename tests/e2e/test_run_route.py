"""One route per kind of run: a re-run reads the run it re-runs once, whatever asks for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_magnus

pytestmark = pytest.mark.e2e

# A chunked-fs store that counts the run-level reads of each run (its head: fields, parameters,
# run_config) into reads.jsonl; step and branch records are not counted.
COUNTING_STORE = """
import json
from typing import ClassVar

from magnus import hookimpl
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore


def _count(what, run_id):
    with open("reads.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps([what, run_id]) + "\\n")


class CountingStore(ChunkedFileSystemRunLogStore):
    service_name: ClassVar[str] = "counting-fs"

    def get_run_log_by_id(self, run_id, full=True):
        _count("get_run_log_by_id", run_id)
        return super().get_run_log_by_id(run_id, full=full)

    def get_run_config(self, run_id):
        _count("get_run_config", run_id)
        return super().get_run_config(run_id)

    def get_parameters(self, run_id):
        _count("get_parameters", run_id)
        return super().get_parameters(run_id)


@hookimpl
def register_run_log_stores():
    return [CountingStore]
"""

STEPS = """
from pathlib import Path


def first():
    return {"x": 1}


def second(x: int):
    if Path("broken").exists():
        raise ValueError("broken")
    return {"y": x + 1}
"""

PIPELINE = """
dag:
  start_at: first
  steps:
    first: {type: task, command: steps.first, next: second}
    second: {type: task, command: steps.second, next: success}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.parametrize("how", ["retry", "execute --use-cached"])
def test_a_re_run_reads_the_original_run_once(project: Path, how: str) -> None:
    (project / "counting_store.py").write_text(COUNTING_STORE)
    (project / "steps.py").write_text(STEPS)
    (project / "p.yaml").write_text(PIPELINE)
    (project / "c.yaml").write_text("run_log_store: {type: counting-fs}\n")
    (project / "broken").write_text("")
    env = {"MAGNUS_PLUGINS": "counting_store"}
    first = run_magnus(
        "execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "original", cwd=project, env=env
    )
    assert first.returncode == 1, first.stdout + first.stderr
    (project / "broken").unlink()
    (project / "reads.jsonl").unlink()

    if how == "retry":
        args = ["retry", "original"]
    else:
        args = ["execute", "-f", "p.yaml", "--use-cached", "original"]
    again = run_magnus(*args, "-c", "c.yaml", "--run-id", "again", cwd=project, env=env)

    assert again.returncode == 0, again.stdout + again.stderr
    reads = [json.loads(line) for line in (project / "reads.jsonl").read_text().splitlines()]
    of_original = [what for what, run_id in reads if run_id == "original"]
    assert of_original == ["get_run_log_by_id"]
