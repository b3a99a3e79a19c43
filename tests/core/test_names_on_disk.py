"""Names magnus puts on disk stay under the file systems' 255-byte limit, the same everywhere."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helpers import run_magnus, show_run

from magnus.executors.leaf import execution_log_name
from magnus.internal_names import MAX_FILE_NAME_BYTES, fit_file_name
from magnus.nodes import StubNode
from magnus.notebook import output_path_in_map
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore, chunk_file_name, chunk_path_name
from magnus.runlog.folders import folder_storage

RUN_ID = "long-names"


def _names_on_disk(folder: Path) -> list[str]:
    return [name for _, dirs, files in os.walk(folder) for name in [*dirs, *files]]


def test_short_names_are_kept_as_they_are() -> None:
    for name in ("train", "fan.a~20b.fit", "é" * 100, "x" * MAX_FILE_NAME_BYTES):
        assert fit_file_name(name) == name
    assert chunk_path_name("StepLog", "make data") == chunk_file_name("StepLog", "make data")


def test_long_names_keep_a_prefix_and_a_digest_of_the_whole() -> None:
    long = "v" * 300
    fitted = fit_file_name(long)
    digest = hashlib.sha256(long.encode()).hexdigest()[:20]
    assert fitted == "v" * (MAX_FILE_NAME_BYTES - 21) + "=" + digest
    assert len(fitted.encode()) == MAX_FILE_NAME_BYTES
    # distinct names sharing their first 200 bytes stay distinct
    assert fit_file_name(long + "a") != fit_file_name(long + "b")
    # a multi-byte character is never cut in half
    accented = fit_file_name("é" * 300)
    assert len(accented.encode()) <= MAX_FILE_NAME_BYTES
    assert accented.split("=")[0] == "é" * len(accented.split("=")[0])


def test_execution_log_and_notebook_names_are_bounded() -> None:
    node = StubNode(name="s" * 300, internal_name="s" * 300, next="success")
    name = execution_log_name(node, {"x": "v" * 300, "y": 1}, 2)
    assert len(name.encode()) <= MAX_FILE_NAME_BYTES
    assert ".execution.log_" in name
    short = StubNode(name="train it", internal_name="train it", next="success")
    assert execution_log_name(short, {"x": "a b"}, 1) == "train_it.execution.log_a~20b"
    path = output_path_in_map("out/nb_out.ipynb", {"x": "w" * 400})
    assert path.startswith("out/nb_out_www") and path.endswith(".ipynb")
    assert len(Path(path).name.encode()) <= MAX_FILE_NAME_BYTES
    assert output_path_in_map("out/nb_out.ipynb", {"x": 3}) == "out/nb_out_3.ipynb"


def test_chunked_store_reads_back_long_names(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    outer = "m" * 240
    branch = f"{outer}.{'b' * 240}"
    store.add_step_log(store.create_step_log(outer, outer), RUN_ID)
    store.add_branch_log(store.create_branch_log(branch), RUN_ID)
    inner = f"{branch}.{'s' * 240}"
    store.add_step_log(store.create_step_log("s" * 240, inner), RUN_ID)
    store.add_step_log(store.create_step_log("short", "short"), RUN_ID)
    store.set_parameters(RUN_ID, {"p" * 300: 1})

    assert all(len(n.encode()) <= 255 for n in _names_on_disk(tmp_path))
    assert store.get_step_log(inner, RUN_ID).internal_name == inner
    step = store.get_step_log(outer, RUN_ID, full=True)
    assert list(step.branches) == [branch]
    assert list(step.branches[branch].steps) == [inner]
    assert list(store.get_branch_log(branch, RUN_ID, full=True).steps) == [inner]  # type: ignore[union-attr]
    run_log = store.get_run_log_by_id(RUN_ID)
    assert list(run_log.steps) == [outer, "short"]
    assert run_log.parameters == {"p" * 300: 1}

    # replacing the whole log drops the long-named records it no longer has
    run_log.steps.pop(outer)
    store.put_run_log(run_log)
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["short"]
    assert len(folder_storage(str(tmp_path)).names(RUN_ID, "steps")) == 1


LONG_STEP = "a-step-with-a-very-long-name-" + "x" * 230

PIPELINE = f"""
dag:
  start_at: fan
  steps:
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: {LONG_STEP}
        steps:
          {LONG_STEP}:
            type: task
            command_type: shell
            command: |
              echo "got $MAGNUS_MAP_VARIABLE"
              case "$MAGNUS_MAP_VARIABLE" in *v*) test -f pass ;; esac
            next: success
          success: {{type: success}}
          fail: {{type: fail}}
    success: {{type: success}}
    fail: {{type: fail}}
"""


@pytest.mark.e2e
@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "enable_parallel"])
def test_long_map_values_and_step_names_run_and_retry(tmp_path: Path, parallel: bool) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    items = ["é" * 150, "w" * 300, "w" * 299 + "v"]
    (tmp_path / "params.yaml").write_text(f"items: {items!r}\n")
    config = []
    if parallel:
        (tmp_path / "c.yaml").write_text(
            "executor: {type: local, config: {enable_parallel: true, max_workers: 2}}\n"
        )
        config = ["-c", "c.yaml"]
    args = ["execute", "-f", "p.yaml", "-p", "params.yaml", "--run-id", RUN_ID, *config]
    result = run_magnus(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # the element with a "v"
    log = show_run(RUN_ID, tmp_path, *config)
    assert log["status"] == "FAIL"
    assert len(log["steps"]["fan"]["branches"]) == 3
    statuses = []
    for branch in log["steps"]["fan"]["branches"].values():
        (step,) = [s for s in branch["steps"].values() if s["step_type"] == "task"]
        statuses.append(step["status"])
        (execution_log,) = [d for d in step["data_catalog"] if ".execution.log" in d["name"]]
        assert (tmp_path / ".catalog" / execution_log["catalog_relative_path"]).is_file()
    assert statuses == ["SUCCESS", "SUCCESS", "FAIL"]
    for folder in (".run_log_store", ".catalog"):
        assert all(len(n.encode()) <= 255 for n in _names_on_disk(tmp_path / folder))

    # the retry finds each element's records again: the two that succeeded are reused
    (tmp_path / "pass").touch()
    retry = run_magnus("retry", RUN_ID, "--run-id", "again", *config, cwd=tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    again = show_run("again", tmp_path, *config)
    steps = [
        step
        for branch in again["steps"]["fan"]["branches"].values()
        for step in branch["steps"].values()
        if step["step_type"] == "task"
    ]
    assert [step["mock"] for step in steps] == [True, True, False]
    assert again["status"] == "SUCCESS"
