"""What a run costs, counted rather than timed: files created per step, records read per map
element, records of the original read by ``retry``. Each count must not grow with the run.

Every run is one ``magnus`` subprocess started by a driver that counts, around the real
``chunked-fs`` store and ``file-system`` catalog, the files created (a regular file that did not
exist, opened for writing) and the run-log records read (with their bytes), then prints the
counts as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

DRIVER = """
import builtins, collections, json, os, sys

from magnus.runlog.folders import FolderStorage

created = collections.Counter()
named = collections.Counter()
reads = collections.Counter()
read_bytes = [0]
real_os_open, real_open, real_link = os.open, builtins.open, os.link
UNNAMED = getattr(os, "O_TMPFILE", 0)


def where(path):
    text = os.fspath(path)
    return "store" if ".run_log_store" in text else "catalog" if ".catalog" in text else "other"


def os_open(path, flags, *args, **kwargs):
    unnamed = UNNAMED and flags & UNNAMED == UNNAMED
    new = unnamed or (flags & os.O_CREAT and not os.path.exists(path))
    fd = real_os_open(path, flags, *args, **kwargs)
    if new:
        created[where(path)] += 1
    if new and not unnamed:
        named[where(path)] += 1
    return fd


def link(source, target, *args, **kwargs):
    real_link(source, target, *args, **kwargs)
    named[where(target)] += 1


def open_(file, mode="r", *args, **kwargs):
    new = isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wxa") and (
        not os.path.exists(file)
    )
    handle = real_open(file, mode, *args, **kwargs)
    if new:
        created[where(file)] += 1
        named[where(file)] += 1
    return handle


os.open, builtins.open, os.link = os_open, open_, link
real_read = FolderStorage.read


def read(self, run_id, record):
    reads[f"{run_id}/{record}"] += 1
    data = real_read(self, run_id, record)
    if data is not None:
        # What the record holds, as JSON, wherever it is kept (a file, a journal's line).
        read_bytes[0] += len(json.dumps(data))
    return data


FolderStorage.read = read
from magnus.cli import cli

try:
    cli.main(sys.argv[1:], standalone_mode=False)
finally:
    os.open, builtins.open, os.link = real_os_open, real_open, real_link
    print("COUNTS" + json.dumps(
        {"created": created, "named": named, "reads": reads, "read_bytes": read_bytes[0]}
    ))
"""

FUNCTIONS = """
def noop():
    pass


def fail_at(index: int, item: str = ""):
    if index < 0:
        raise ValueError("failing on purpose")
"""


def _steps_pipeline(count: int, fail_last: bool = False) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for index in range(count):
        name = f"step{index:03d}"
        last = index == count - 1
        steps[name] = {
            "type": "task",
            "command": "functions.fail_at" if last and fail_last else "functions.noop",
            "next": "success" if last else f"step{index + 1:03d}",
        }
    steps["success"] = {"type": "success"}
    steps["fail"] = {"type": "fail"}
    return {"dag": {"start_at": "step000", "steps": steps}}


def _map_pipeline() -> dict[str, Any]:
    element = {
        "start_at": "work",
        "steps": {
            "work": {"type": "task", "command": "functions.noop", "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    steps = {
        "fan": {
            "type": "map",
            "iterate_on": "items",
            "iterate_as": "item",
            "branch": element,
            "next": "success",
        },
        "success": {"type": "success"},
        "fail": {"type": "fail"},
    }
    return {"dag": {"start_at": "fan", "steps": steps}}


def _run(folder: Path, *args: str) -> dict[str, Any]:
    """Run the magnus command line under the counting driver in ``folder``; its counts."""
    result = subprocess.run(
        [sys.executable, str(folder / "driver.py"), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [text for text in result.stdout.splitlines() if text.startswith("COUNTS")]
    assert line, result.stdout + result.stderr
    counts: dict[str, Any] = json.loads(line[-1].removeprefix("COUNTS"))
    counts["returncode"] = result.returncode
    return counts


def _project(folder: Path, pipeline: dict[str, Any], parameters: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "driver.py").write_text(textwrap.dedent(DRIVER))
    (folder / "functions.py").write_text(FUNCTIONS)
    (folder / "pipeline.yaml").write_text(json.dumps(pipeline))
    (folder / "parameters.yaml").write_text(json.dumps(parameters))
    return folder


def _execute(folder: Path, run_id: str) -> dict[str, Any]:
    return _run(
        folder, "execute", "-f", "pipeline.yaml", "-p", "parameters.yaml", "--run-id", run_id
    )


@pytest.fixture(scope="module")
def step_counts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    counts = {}
    for size in (4, 8, 16):
        folder = _project(tmp_path_factory.mktemp("steps") / "p", _steps_pipeline(size), {})
        counts[size] = _execute(folder, "steps")
        assert counts[size]["returncode"] == 0
    return counts


def test_files_created_per_step_do_not_grow_with_the_run(
    step_counts: dict[int, dict[str, Any]],
) -> None:
    # store: no file and no name (the step log is a line of the run's journal, made once per
    # run; the steps share one fingerprint, indexed once per run); catalog: one name, the
    # execution log, but no new file: the steps print nothing, and every empty log is a link
    # to the first.
    expected = {("store", "created"): 0, ("store", "named"): 0}
    expected |= {("catalog", "created"): 0, ("catalog", "named"): 1}
    for (where, what), count in expected.items():
        made = {size: step_counts[size][what].get(where, 0) for size in step_counts}
        per_step = (made[16] - made[8]) / 8
        # The same number per step, whatever the number of steps before it.
        assert per_step == (made[8] - made[4]) / 4, (where, what, made)
        assert per_step == count, (where, what, made)


def test_records_read_per_step_do_not_grow_with_the_run(
    step_counts: dict[int, dict[str, Any]],
) -> None:
    reads = {size: sum(step_counts[size]["reads"].values()) for size in step_counts}
    assert reads[16] - reads[8] == 2 * (reads[8] - reads[4]), reads


def test_execute_does_not_read_the_run_back_at_its_end(
    step_counts: dict[int, dict[str, Any]],
) -> None:
    # Writing a step's record reads it first (to keep its creation stamp); after the last step
    # nothing reads the steps back: the command line needs only the run's status, and no
    # after_run implementation asks for the log.
    for size, counts in step_counts.items():
        step_reads = {r: n for r, n in counts["reads"].items() if "/steps/" in r}
        assert len(step_reads) == size + 1, step_reads  # and the success step
        assert set(step_reads.values()) == {1}, step_reads


@pytest.fixture(scope="module")
def map_counts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    counts = {}
    for size in (5, 10, 20):
        # Long elements, so that reading the iterated list per element would show in the bytes.
        items = [f"{index:04d}" + "x" * 400 for index in range(size)]
        folder = _project(tmp_path_factory.mktemp("map") / "p", _map_pipeline(), {"items": items})
        counts[size] = _execute(folder, "mapped")
        assert counts[size]["returncode"] == 0
    return counts


def test_records_read_per_map_element_do_not_grow_with_the_list(
    map_counts: dict[int, dict[str, Any]],
) -> None:
    reads = {size: sum(map_counts[size]["reads"].values()) for size in map_counts}
    per_element = [(reads[10] - reads[5]) / 5, (reads[20] - reads[10]) / 10]
    assert per_element[0] == per_element[1], reads
    # The iterated list's record is read as often (by the run's start, fan-out and end) however
    # many elements there are: no element reads it (it is checked for change, not read).
    items_reads = {
        size: sum(n for record, n in counts["reads"].items() if "Parameter-items" in record)
        for size, counts in map_counts.items()
    }
    assert items_reads[5] == items_reads[10] == items_reads[20], items_reads


def test_a_map_element_makes_no_file_in_the_store(map_counts: dict[int, dict[str, Any]]) -> None:
    # Each element has a fingerprint of its own: its hit is a line of the index's journal.
    for what in ("created", "named"):
        made = {size: map_counts[size][what].get("store", 0) for size in map_counts}
        assert made[5] == made[10] == made[20], (what, made)


def test_bytes_read_per_map_element_do_not_grow_with_the_list(
    map_counts: dict[int, dict[str, Any]],
) -> None:
    # Reading the whole list per element would make the bytes grow with the square of its length.
    read = {size: map_counts[size]["read_bytes"] for size in map_counts}
    per_element = [(read[10] - read[5]) / 5, (read[20] - read[10]) / 10]
    assert per_element[1] <= per_element[0] * 1.1, read


def test_retry_reads_each_record_of_the_original_once(tmp_path: Path) -> None:
    folder = _project(tmp_path / "p", _steps_pipeline(12, fail_last=True), {"index": -1})
    assert _execute(folder, "original")["returncode"] == 1
    counts = _run(folder, "retry", "original", "-p", "parameters.yaml", "--run-id", "again")
    original = {
        record: n for record, n in counts["reads"].items() if record.startswith("original/")
    }
    # Every step of the original is looked at (eleven reused, the last run again) ...
    assert sum(1 for record in original if "/steps/" in record) == 12, original
    # ... and nothing of it is read twice.
    assert max(original.values()) == 1, {r: n for r, n in original.items() if n > 1}


def test_a_fan_out_writes_its_branch_records_in_one_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
    from magnus.runlog.models import PROCESSING, BranchLog, StepLog
    from magnus.runlog.record_journal import RecordJournal

    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "logs"))
    store.create_run_log("run")
    store.add_step_log(StepLog(name="fan", internal_name="fan", status=PROCESSING), "run")
    appends: list[int] = []
    real = RecordJournal.append

    def append(journal: RecordJournal, changes: list[tuple[str, bytes | None]]) -> None:
        appends.append(len(changes))
        real(journal, changes)

    monkeypatch.setattr(RecordJournal, "append", append)
    store.add_branch_logs(
        [BranchLog(internal_name=f"fan.{n}", status=PROCESSING) for n in range(300)], "run"
    )
    # One append of 300 lines, not 300 appends (each a hold of the run's lock).
    assert appends == [300]
    assert len(store.get_step_log("fan", "run").branches) == 300


def test_a_step_that_sets_a_parameter_is_recorded_in_one_append(
    project: Path, user_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magnus import Pipeline, PythonTask
    from magnus.runlog.record_journal import RecordJournal

    user_module("counting_steps", "def inc(x: int):\n    return {'x': x + 1}\n")
    appends: list[list[str]] = []
    real = RecordJournal.append

    def append(journal: RecordJournal, changes: list[tuple[str, bytes | None]]) -> None:
        appends.append([record for record, _ in changes])
        real(journal, changes)

    monkeypatch.setattr(RecordJournal, "append", append)
    (project / "start.yaml").write_text("x: 0\n")
    for size in (3, 6):
        appends.clear()
        steps = [PythonTask(name=f"s{n}", function="counting_steps.inc") for n in range(size)]
        run_log = Pipeline(steps=steps).execute(parameters_file="start.yaml", run_id=f"inc{size}")
        assert run_log is not None and run_log.parameters["x"] == size
        names = {f"steps/StepLog-s{n}.json" for n in range(size)}
        ends = [records for records in appends if names.intersection(records)]
        # Each step's record is written once, in the same append as the parameter it set.
        assert len(ends) == size, appends
        assert all(any("Parameter-x" in r for r in records) for records in ends), ends
