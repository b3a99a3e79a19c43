"""What the chunked-fs store reads to list runs, to fan in a composite and to read a run whole.

``runs list`` reads each run's small summary (``RunLog.summary.json``) rather than its
``RunLog.json``, whose ``run_config`` holds the pipeline's definition; a summary is believed only
while it was made from the ``RunLog.json`` on disk, so a run changed by a writer that keeps no
summaries, or a writer killed between the two files, is listed as ``RunLog.json`` says. Reads
are counted through the real storage, not timed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from magnus.exceptions import BranchLogNotFoundError
from magnus.owner import current_owner
from magnus.reports import ABANDONED, run_rows, status_of
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.chunks import RUN_FILE, SNAPSHOT_FILE, SUMMARY_FILE
from magnus.runlog.files import write_json
from magnus.runlog.folders import FolderStorage
from magnus.runlog.models import (
    FAIL,
    PROCESSING,
    SUCCESS,
    BranchLog,
    RunLog,
    StepAttempt,
    StepLog,
)

RUN_FIELDS = ("run_id", "status", "tag", "start_time", "end_time", "message", "dag_hash")


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The records read through the chunked-fs storage from now on (``<run>/<record>``)."""
    read: list[str] = []
    real_read = FolderStorage.read

    def counting_read(self: FolderStorage, run_id: str, record: str) -> Any:
        read.append(f"{run_id}/{record}")
        return real_read(self, run_id, record)

    monkeypatch.setattr(FolderStorage, "read", counting_read)
    return read


def _fields(runs: list[RunLog]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(run, name) for name in RUN_FIELDS) for run in runs]


@pytest.fixture
def store(tmp_path: Path) -> ChunkedFileSystemRunLogStore:
    """Three runs, each with a large run_config: ended, failed with a message, still running
    under an owner that is gone."""
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    large = {"dag": {"steps": {f"step{i}": {"type": "task"} for i in range(2000)}}}
    gone = {**current_owner(), "pid": 2**22 + 1}  # beyond any pid Linux gives
    for run_id, tag in (("ended", "nightly"), ("failed", ""), ("running", "")):
        store.create_run_log(run_id, dag_hash=f"hash-{run_id}", tag=tag)
        store.set_run_config(run_id, {**large, "owner": gone, "initial_parameters": {"x": 1}})
    store.update_run_log_status("ended", SUCCESS)
    store.update_run_log_status("failed", FAIL, message="step0001 failed")
    return store


def test_listing_reads_one_summary_per_run_and_agrees_with_run_logs(
    store: ChunkedFileSystemRunLogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _reads(monkeypatch)
    summaries = store.list_run_summaries()
    assert sorted(read) == [f"{run}/{SUMMARY_FILE}" for run in ("ended", "failed", "running")]
    listed = store.list_runs()
    assert _fields(summaries) == _fields(listed)
    assert [run.status for run in summaries] == [SUCCESS, FAIL, PROCESSING]
    # What runs list shows of a run still PROCESSING: its owner is gone, so it is abandoned.
    assert [status_of(run) for run in summaries] == [SUCCESS, FAIL, ABANDONED]
    assert all(set(run.run_config) == {"owner"} for run in summaries)
    folder = Path(store.log_folder) / "running"
    assert (folder / SUMMARY_FILE).stat().st_size * 20 < (folder / RUN_FILE).stat().st_size
    # A --param column falls back on the initial parameters, which the summary leaves out.
    (row,) = run_rows(store, summaries[:1], params=("x", "y"))
    assert row.params == {"x": 1, "y": None}


def test_a_run_changed_behind_its_summary_is_listed_as_its_run_log_says(
    store: ChunkedFileSystemRunLogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = Path(store.log_folder)
    # A writer that keeps no summaries (the layout before them) ends the running run ...
    head = json.loads((folder / "running" / RUN_FILE).read_text())
    write_json(folder / "running" / RUN_FILE, {**head, "status": SUCCESS, "end_time": "x"})
    # ... a writer killed between RunLog.json and its summary left an older summary ...
    old_summary = (folder / "ended" / SUMMARY_FILE).read_bytes()
    store.update_run_log_status("ended", FAIL, message="ended again")
    (folder / "ended" / SUMMARY_FILE).write_bytes(old_summary)
    # ... one summary is damaged and one is missing (a run of the layout before them).
    (folder / "failed" / SUMMARY_FILE).write_text("{not json")
    store.create_run_log("older", tag="old")
    os.unlink(folder / "older" / SUMMARY_FILE)
    read = _reads(monkeypatch)
    summaries = {run.run_id: run for run in store.list_run_summaries()}
    assert sorted(r for r in read if r.endswith(RUN_FILE)) == [
        f"{run}/{RUN_FILE}" for run in ("ended", "failed", "older", "running")
    ]
    assert (summaries["running"].status, summaries["running"].end_time) == (SUCCESS, "x")
    assert (summaries["ended"].status, summaries["ended"].message) == (FAIL, "ended again")
    assert summaries["failed"].status == FAIL
    assert (summaries["older"].status, summaries["older"].tag) == (PROCESSING, "old")
    assert _fields(list(summaries.values())) == _fields(store.list_runs())


def test_a_store_without_summaries_lists_its_runs_whole() -> None:
    store = BufferedRunLogStore()
    store.create_run_log("one", tag="t")
    store.set_run_config("one", {"owner": {"pid": 1}, "dag": {"start_at": "a"}})
    (run,) = store.list_run_summaries()
    assert (run.run_id, run.tag, run.run_config["dag"]) == ("one", "t", {"start_at": "a"})


def _map_run(store: ChunkedFileSystemRunLogStore | BufferedRunLogStore, elements: int) -> None:
    store.create_run_log("map")
    fan = store.create_step_log("fan", "fan")
    fan.step_type = "map"
    store.add_step_log(fan, "map")
    for index in range(elements):
        branch = store.create_branch_log(f"fan.{index}")
        branch.map_variable = {"item": index}
        branch.status = SUCCESS
        store.add_branch_log(branch, "map")
        for name in ("work", "success"):
            step = store.create_step_log(name, f"fan.{index}.{name}")
            attempt = store.create_attempt_log()
            attempt.status = SUCCESS
            step.attempts.append(attempt)
            step.code_identities.append(store.create_code_identity())
            store.add_step_log(step, "map")


def test_fan_in_reads_the_step_and_its_branches_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _map_run(store, 5)
    read = _reads(monkeypatch)
    step = store.get_step_log_with_branches("fan", "map")
    assert [record for record in read if "/steps/" in record] == ["map/steps/StepLog-fan.json"]
    assert len([record for record in read if "/branches/" in record]) == 5
    assert list(step.branches) == [f"fan.{index}" for index in range(5)]
    assert all(branch.steps == {} for branch in step.branches.values())
    whole = store.get_step_log("fan", "map", full=True)
    assert step.model_dump(exclude={"branches"}) == whole.model_dump(exclude={"branches"})
    assert [b.model_dump(exclude={"steps"}) for b in step.branches.values()] == [
        b.model_dump(exclude={"steps"}) for b in whole.branches.values()
    ]


def test_a_run_read_whole_shares_field_sets_and_its_snapshot_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FolderStorage, "keeps_snapshots", True)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _map_run(store, 3)
    store.update_run_log_status("map", SUCCESS)
    assembled = store.get_run_log_by_id("map")
    snapshot = tmp_path / "map" / SNAPSHOT_FILE
    assert snapshot.read_bytes().count(b"\n") == 0
    # Read again from the snapshot and from a store that must assemble it: the same log.
    from_snapshot = store.get_run_log_by_id("map")
    snapshot.unlink()
    fresh = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    for other in (from_snapshot, fresh.get_run_log_by_id("map")):
        assert other.model_dump() == assembled.model_dump()
        attempts = [
            step.attempts[0]
            for branch in other.steps["fan"].branches.values()
            for step in branch.steps.values()
        ]
        assert len({id(attempt.model_fields_set) for attempt in attempts}) == 1
        # Setting a field of one record changes no other's, nor the set they share.
        attempts[0].status = FAIL
        assert [attempt.status for attempt in attempts[1:]] == [SUCCESS] * 5
        assert attempts[1].model_fields_set == set(StepAttempt.model_fields)


def test_a_snapshot_written_in_parts_reads_back_as_the_run(tmp_path: Path) -> None:
    # Parameters named like the fields written last, NaN, text that is not ASCII.
    branch = BranchLog(internal_name="a.b", parameters={"branches": {}, "n": float("nan")})
    step = StepLog(name="a", internal_name="a", message="é", branches={"a.b": branch})
    run_log = RunLog(run_id="r", steps={"a": step}, parameters={"steps": {}, "x": [1, "two"]})
    path = tmp_path / SNAPSHOT_FILE
    write_json(path, run_log, indent=None)
    written = path.read_bytes()
    assert b"\n" not in written
    assert RunLog.model_validate(json.loads(written)).model_dump_json() == (
        run_log.model_dump_json()
    )


@pytest.mark.parametrize("kind", ["chunked-fs", "buffered"])
def test_a_branch_status_is_set_alone(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: ChunkedFileSystemRunLogStore | BufferedRunLogStore = (
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
        if kind == "chunked-fs"
        else BufferedRunLogStore()
    )
    _map_run(store, 3)
    for index in range(3):
        branch = store.get_branch_log(f"fan.{index}", "map", full=False)
        branch.status, branch.parameters = PROCESSING, {"y": index}
        store.add_branch_log(branch, "map")
    before = store.get_step_log("fan", "map", full=True)
    read = _reads(monkeypatch)
    store.update_branch_log_status("fan.1", "map", FAIL)
    if kind == "chunked-fs":
        assert read == ["map/branches/BranchLog-fan.1.json"]
    after = store.get_step_log("fan", "map", full=True)
    assert list(after.branches) == list(before.branches)  # its place is kept
    assert [b.status for b in after.branches.values()] == [PROCESSING, FAIL, PROCESSING]
    changed, was = after.branches["fan.1"], before.branches["fan.1"]
    assert changed.model_dump(exclude={"status"}) == was.model_dump(exclude={"status"})
    with pytest.raises(BranchLogNotFoundError):
        store.update_branch_log_status("fan.9", "map", FAIL)
    store.update_branch_log_status("", "map", SUCCESS)
    ended = store.get_run_log_by_id("map", full=False)
    assert (ended.status, bool(ended.end_time)) == (SUCCESS, True)


@pytest.mark.parametrize("elements", [5, 50])
def test_a_run_read_whole_looks_at_its_journal_a_constant_number_of_times(
    elements: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _map_run(ChunkedFileSystemRunLogStore(log_folder=str(tmp_path)), elements)
    stats: list[str] = []
    real_stat = os.stat

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("records.journal"):
            stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counted)
    # A storage of its own, as another process reading the run would have.
    reader = FolderStorage(tmp_path)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    monkeypatch.setattr(type(store), "storage", lambda self: reader)
    run_log = store.get_run_log_by_id("map", full=True)
    assert len(run_log.steps["fan"].branches) == elements
    # Once per kind of record read (parameters, steps, branches), not once per record.
    assert len(stats) <= 3, stats
