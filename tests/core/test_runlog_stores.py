"""The built-in run-log stores: the shared contract plus what is specific to each."""

from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from magnus.exceptions import RunLogStoreError
from magnus.internal_names import MAX_FILE_NAME_BYTES
from magnus.runlog import chunked, filesystem
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.chunks import (
    BRANCH,
    PARAMETER,
    STEP,
    SUMMARY_FILE,
    chunk_record,
    encode_chunk,
)
from magnus.runlog.files import write_json
from magnus.runlog.filesystem import FileSystemRunLogStore
from magnus.runlog.folders import FolderStorage
from magnus.runlog.journal import frame
from magnus.runlog.models import PROCESSING, SUCCESS, UNREADABLE, BranchLog, RunLog
from magnus.runlog.record_journal import JOURNAL_FILE
from magnus.testing.runlog_store import RunLogStoreContract, count_storage_calls

RUN_ID = "wobbly-hopper-0915"

FileStoreClass = type[FileSystemRunLogStore] | type[ChunkedFileSystemRunLogStore]


class TestBufferedContract(RunLogStoreContract):
    @pytest.fixture
    def run_log_store(self) -> BaseRunLogStore:
        return BufferedRunLogStore()


def _count_file_system_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many files were opened, stat'ed or listed so far."""
    counter = [0]

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", counted(builtins.open))
    for name in ("stat", "listdir", "scandir"):
        monkeypatch.setattr(os, name, counted(getattr(os, name)))
    return lambda: counter[0]


class TestFileSystemContract(RunLogStoreContract):
    @pytest.fixture
    def run_log_store(self, tmp_path: Path) -> BaseRunLogStore:
        return FileSystemRunLogStore(log_folder=str(tmp_path / "logs"))

    @pytest.fixture
    def store_reads(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
        return _count_file_system_calls(monkeypatch)


class TestChunkedContract(RunLogStoreContract):
    @pytest.fixture
    def run_log_store(self, tmp_path: Path) -> BaseRunLogStore:
        return ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "logs"))

    @pytest.fixture
    def store_reads(
        self, run_log_store: ChunkedFileSystemRunLogStore, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], int]:
        return count_storage_calls(run_log_store, monkeypatch)


# ---------------------------------------------------------------------------- helpers


def _populate(store: BaseRunLogStore) -> None:
    """The same operations, to compare what stores make of them."""
    store.create_run_log(RUN_ID, dag_hash="h", tag="t")
    store.set_run_config(RUN_ID, {"executor": {"service_name": "local"}})
    store.set_parameters(RUN_ID, {"x": 1, "xy": 2})
    composite = store.create_step_log("fan", "fan")
    composite.step_type = "map"
    store.add_step_log(composite, RUN_ID)
    for value in ("b", "a"):
        store.add_branch_log(store.create_branch_log(f"fan.{value}"), RUN_ID)
        work = store.create_step_log("work", f"fan.{value}.work")
        work.attempts.append(store.create_attempt_log())
        work.status = SUCCESS
        store.add_step_log(work, RUN_ID)
    composite = store.get_step_log("fan", RUN_ID)
    composite.status = SUCCESS
    store.add_step_log(composite, RUN_ID)
    store.add_step_log(store.create_step_log("a-1", "a-1"), RUN_ID)
    store.add_step_log(store.create_step_log("a", "a"), RUN_ID)
    store.set_parameters(RUN_ID, {"x": 3})
    store.update_run_log_status(RUN_ID, SUCCESS)


def _without_times(run_log: RunLog) -> dict[str, Any]:
    dump = run_log.model_dump()
    dump.pop("start_time")
    dump.pop("end_time")
    return dump


# ---------------------------------------------------------------------------- all stores


def test_service_names_and_flags() -> None:
    assert BufferedRunLogStore.service_name == "buffered"
    assert FileSystemRunLogStore.service_name == "file-system"
    assert ChunkedFileSystemRunLogStore.service_name == "chunked-fs"
    assert not BufferedRunLogStore.persistent
    assert FileSystemRunLogStore.persistent and ChunkedFileSystemRunLogStore.persistent
    assert FileSystemRunLogStore().log_folder == ".run_log_store"
    assert ChunkedFileSystemRunLogStore().log_folder == ".run_log_store"
    assert BufferedRunLogStore().location(RUN_ID) == "memory"


def test_stores_reject_unknown_config_keys() -> None:
    from magnus.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="log_folder"):
        BufferedRunLogStore.from_config({"log_folder": "x"})
    with pytest.raises(ConfigurationError, match="folder"):
        ChunkedFileSystemRunLogStore.from_config({"folder": "x"})


def test_all_stores_assemble_the_same_run_log(tmp_path: Path) -> None:
    stores: list[BaseRunLogStore] = [
        BufferedRunLogStore(),
        FileSystemRunLogStore(log_folder=str(tmp_path / "fs")),
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "chunked")),
    ]
    dumps = []
    for store in stores:
        _populate(store)
        dumps.append(_without_times(store.get_run_log_by_id(RUN_ID)))
    assert dumps[0] == dumps[1] == dumps[2]
    # Insertion order is part of what must agree, and dict equality ignores it.
    assert [json.dumps(dump) for dump in dumps[1:]] == [json.dumps(dumps[0])] * 2
    assert list(dumps[0]["steps"]) == ["fan", "a-1", "a"]
    assert list(dumps[0]["steps"]["fan"]["branches"]) == ["fan.b", "fan.a"]
    assert dumps[0]["parameters"] == {"x": 3, "xy": 2}


@pytest.mark.parametrize("store_class", [FileSystemRunLogStore, ChunkedFileSystemRunLogStore])
def test_uncreatable_log_folder_names_the_folder(
    tmp_path: Path, store_class: FileStoreClass
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "logs"
    store = store_class(log_folder=str(folder))
    with pytest.raises(RunLogStoreError, match=str(folder)):
        store.create_run_log(RUN_ID)
    with pytest.raises(RunLogStoreError, match=str(folder)):
        store.put_run_log(RunLog(run_id=RUN_ID))


@pytest.mark.parametrize("store_class", [FileSystemRunLogStore, ChunkedFileSystemRunLogStore])
def test_log_folder_that_is_a_file(tmp_path: Path, store_class: FileStoreClass) -> None:
    folder = tmp_path / "logs"
    folder.write_text("")
    with pytest.raises(RunLogStoreError, match=str(folder)):
        store_class(log_folder=str(folder)).create_run_log(RUN_ID)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
@pytest.mark.parametrize("store_class", [FileSystemRunLogStore, ChunkedFileSystemRunLogStore])
def test_unwritable_log_folder_names_the_folder(
    tmp_path: Path, store_class: FileStoreClass
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunLogStoreError, match=str(folder)):
            store_class(log_folder=str(folder)).create_run_log(RUN_ID)
    finally:
        folder.chmod(0o700)


def test_reading_a_missing_folder_is_not_an_error(tmp_path: Path) -> None:
    for store in (
        FileSystemRunLogStore(log_folder=str(tmp_path / "none")),
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "none")),
    ):
        assert store.list_runs() == []
        assert not store.run_exists(RUN_ID)
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------- file-system


def test_file_system_layout(tmp_path: Path) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    path = tmp_path / f"{RUN_ID}.json"
    assert store.location(RUN_ID) == str(path)
    text = path.read_text()
    assert text.startswith("{\n    ")  # indented, for people
    data = json.loads(text)
    assert data["run_id"] == RUN_ID
    assert list(data["steps"]) == ["fan", "a-1", "a"]
    assert data["steps"]["fan"]["branches"]["fan.b"]["steps"]["fan.b.work"]["status"] == SUCCESS
    assert data["parameters"] == {"x": 3, "xy": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{RUN_ID}.json", f"{RUN_ID}.lock"]


def test_file_system_corrupt_file_names_the_file(tmp_path: Path) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    path = tmp_path / f"{RUN_ID}.json"
    path.write_text('{"run_id": "half')
    for call in (
        lambda: store.get_run_log_by_id(RUN_ID),
        lambda: store.set_parameters(RUN_ID, {"a": 1}),
    ):
        with pytest.raises(RunLogStoreError, match=str(path)):
            call()
    path.write_text('{"no_run_id": 1}')
    with pytest.raises(RunLogStoreError, match=str(path)):
        store.get_run_log_by_id(RUN_ID)


def _forget_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the files as a process that never read the run would (no replayed state)."""
    monkeypatch.setattr(filesystem, "_replayed", OrderedDict())


def test_file_system_journal_holds_changes_until_the_run_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    for index in range(3):
        store.add_step_log(store.create_step_log(f"s{index}", f"s{index}"), RUN_ID)
    store.set_parameters(RUN_ID, {"x": 1})
    path, journal = tmp_path / f"{RUN_ID}.json", tmp_path / f"{RUN_ID}.journal"
    # The file is the run as created; the changes are appended beside it, one line each.
    assert json.loads(path.read_text())["steps"] == {}
    assert len(journal.read_bytes().splitlines()) == 4
    _forget_replayed(monkeypatch)
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["s0", "s1", "s2"]
    store.update_run_log_status(RUN_ID, SUCCESS)
    assert not journal.exists()
    on_disk = json.loads(path.read_text())
    assert list(on_disk["steps"]) == ["s0", "s1", "s2"] and on_disk["status"] == SUCCESS
    assert on_disk["parameters"] == {"x": 1}


def test_file_system_torn_journal_tail_is_ignored_then_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.add_step_log(store.create_step_log("a", "a"), RUN_ID)
    journal = tmp_path / f"{RUN_ID}.journal"
    whole = journal.read_bytes()
    # What a writer killed in the middle of its append leaves: a line without its end.
    with open(journal, "ab") as handle:
        handle.write(whole[: len(whole) // 2].replace(b'"a"', b'"b"'))
    _forget_replayed(monkeypatch)
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["a"]
    store.add_step_log(store.create_step_log("c", "c"), RUN_ID)
    _forget_replayed(monkeypatch)
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["a", "c"]
    assert journal.read_bytes().count(b"\n") == 2 and journal.read_bytes().endswith(b"\n")


def test_file_system_damaged_journal_line_names_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.add_step_log(store.create_step_log("a", "a"), RUN_ID)
    journal = tmp_path / f"{RUN_ID}.journal"
    journal.write_bytes(journal.read_bytes().replace(b'"a"', b'"b"'))
    _forget_replayed(monkeypatch)
    with pytest.raises(RunLogStoreError, match=f"{journal} is damaged at byte 0"):
        store.get_run_log_by_id(RUN_ID)


def test_file_system_fold_interrupted_before_the_journal_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.set_parameters(RUN_ID, {"x": 1})
    store.add_step_log(store.create_step_log("a", "a"), RUN_ID)
    store.add_step_log(store.create_step_log("b", "b"), RUN_ID)
    store.set_parameters(RUN_ID, {"x": 2})
    journal = tmp_path / f"{RUN_ID}.journal"
    pending = journal.read_bytes()
    store.update_run_log_status(RUN_ID, SUCCESS)
    folded = store.get_run_log_by_id(RUN_ID)
    # A kill between writing the whole run and removing the journal: both are there.
    journal.write_bytes(pending)
    _forget_replayed(monkeypatch)
    assert store.get_run_log_by_id(RUN_ID) == folded
    assert folded.parameters == {"x": 2} and list(folded.steps) == ["a", "b"]


def test_file_system_reads_a_log_written_without_a_journal(tmp_path: Path) -> None:
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    old = RunLog(run_id="old", status=PROCESSING, parameters={"x": 1})
    old.steps["a"] = store.create_step_log("a", "a")
    (tmp_path / "old.json").write_text(json.dumps(old.model_dump(), indent=4))
    assert store.get_run_log_by_id("old") == old
    assert [run.run_id for run in store.list_runs()] == ["old"]
    store.add_step_log(store.create_step_log("b", "b"), "old")
    store.update_run_log_status("old", SUCCESS)
    assert list(json.loads((tmp_path / "old.json").read_text())["steps"]) == ["a", "b"]


def test_file_system_log_survives_kill_at_any_moment(tmp_path: Path) -> None:
    """A writer killed at random moments: every read gives the steps it had completed."""
    script = (
        "import sys\n"
        "from magnus.runlog.filesystem import FileSystemRunLogStore\n"
        "store = FileSystemRunLogStore(log_folder=sys.argv[1])\n"
        "start = int(sys.argv[2])\n"
        "print('ready', flush=True)\n"
        "for index in range(start, start + 100000):\n"
        "    store.add_step_log(store.create_step_log(f's{index}', f's{index}'), 'r')\n"
        "    store.set_parameters('r', {'last': index})\n"
    )
    store = FileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log("r")
    seen = 0
    for delay in (0.05, 0.11, 0.23):
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(seen)], stdout=subprocess.PIPE
        )
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        run_log = store.get_run_log_by_id("r")
        steps = list(run_log.steps)
        # Every step up to the last one recorded, in order, and the parameter at most one behind.
        assert steps == [f"s{index}" for index in range(len(steps))]
        assert len(steps) > seen
        assert run_log.parameters["last"] in (len(steps) - 1, len(steps) - 2)
        seen = len(steps)
    store.update_run_log_status("r", SUCCESS)
    assert len(json.loads((tmp_path / "r.json").read_text())["steps"]) == seen


def test_run_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    for store in (
        FileSystemRunLogStore(log_folder=str(tmp_path / "fs" / "logs")),
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "chunked" / "logs")),
    ):
        store.create_run_log("../escape")
        assert store.get_run_log_by_id("../escape").run_id == "../escape"
        assert [run.run_id for run in store.list_runs()] == ["../escape"]
        for bad in ("", ".", ".."):
            with pytest.raises(RunLogStoreError):
                store.create_run_log(bad)
    # Nothing was written next to the log folders.
    assert sorted(p.name for p in (tmp_path / "fs").iterdir()) == ["logs"]
    assert sorted(p.name for p in (tmp_path / "chunked").iterdir()) == ["logs"]


def test_values_that_are_not_json_are_refused(tmp_path: Path) -> None:
    for store in (
        FileSystemRunLogStore(log_folder=str(tmp_path / "fs")),
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path / "chunked")),
    ):
        store.create_run_log(RUN_ID)
        with pytest.raises(RunLogStoreError, match="JSON"):
            store.set_parameters(RUN_ID, {"bad": object()})
        assert store.get_parameters(RUN_ID) == {}


# ---------------------------------------------------------------------------- chunked-fs


def _journal_records(folder: Path) -> dict[str, Any]:
    """The records of a run's journal, by name, as its last line for each gives them."""
    records: dict[str, Any] = {}
    for line in (folder / JOURNAL_FILE).read_bytes().splitlines():
        name, _, data = line.partition(b" ")[2].partition(b"\t")
        records[name.decode()] = json.loads(data) if data else None
    return records


def test_chunked_layout_has_exact_file_names(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    store.add_step_log(store.create_step_log("a/b c", "a/b c"), RUN_ID)
    store.add_step_log(store.create_step_log("Big", "Big"), RUN_ID)
    store.set_parameters(RUN_ID, {"ü": 1, "Foo": 2, "foo": 3})
    folder = tmp_path / RUN_ID
    assert store.location(RUN_ID) == str(folder)
    # The run-level record is a file; every other record is a line of the run's journal.
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "RunLog.json",
        SUMMARY_FILE,
        JOURNAL_FILE,
    ]
    records = _journal_records(folder)
    # one folder per kind of record, so reading parameters never walks the steps
    assert sorted(records) == sorted(
        [
            "parameters/Parameter-x.json",
            "parameters/Parameter-xy.json",
            "parameters/Parameter-%C3%BC.json",
            "parameters/Parameter-foo.json",
            # A capital gets a mask suffix, so Foo and foo differ on case-blind file systems.
            "parameters/Parameter-Foo^1.json",
            "steps/StepLog-fan.json",
            "steps/StepLog-fan.a.work.json",
            "steps/StepLog-fan.b.work.json",
            "steps/StepLog-a.json",
            "steps/StepLog-a-1.json",
            "steps/StepLog-a%2Fb c.json",
            "steps/StepLog-Big^1.json",
            "branches/BranchLog-fan.a.json",
            "branches/BranchLog-fan.b.json",
        ]
    )
    head = json.loads((folder / "RunLog.json").read_text())
    assert head["run_id"] == RUN_ID
    assert head["steps"] == {}
    assert head["parameters"] == {}
    assert head["run_config"] == {"executor": {"service_name": "local"}}
    assert head["status"] == SUCCESS
    x, xy = records["parameters/Parameter-x.json"], records["parameters/Parameter-xy.json"]
    assert x["record"] == {"x": 3}
    assert xy["record"] == {"xy": 2}
    # Rewriting x kept its creation stamp, so it still sorts before xy.
    assert isinstance(x["created_ns"], int)
    assert x["created_ns"] < xy["created_ns"]
    fan = records["steps/StepLog-fan.json"]
    assert fan["record"]["status"] == SUCCESS
    assert "branches" not in fan["record"]
    assert "steps" not in records["branches/BranchLog-fan.b.json"]["record"]


def test_chunked_fs_keeps_no_snapshot(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)  # ends SUCCESS
    assembled = store.get_run_log_by_id(RUN_ID)
    assert assembled.status == SUCCESS and assembled.steps
    assert not (tmp_path / RUN_ID / "RunLog.snapshot.json").exists()


def test_chunked_ended_run_is_read_whole_from_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A storage may keep snapshots (one read for a run of many records); chunked-fs keeps
    # none, but shows how a storage that does behaves.
    monkeypatch.setattr(FolderStorage, "keeps_snapshots", True)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)  # ends SUCCESS
    snapshot = tmp_path / RUN_ID / "RunLog.snapshot.json"
    assert not snapshot.exists()
    assembled = store.get_run_log_by_id(RUN_ID)
    assert snapshot.is_file()
    calls = count_storage_calls(store, monkeypatch)
    assert store.get_run_log_by_id(RUN_ID) == assembled
    assert calls() == 1  # the snapshot alone
    # Any change removes it, and the next whole read has the change.
    late = store.create_step_log("late", "late")
    store.add_step_log(late, RUN_ID)
    assert not snapshot.exists()
    assert list(store.get_run_log_by_id(RUN_ID).steps)[-1] == "late"
    # A snapshot that cannot be read is only a shortcut missed: the records are read.
    snapshot.write_text("{not json")
    assert "late" in store.get_run_log_by_id(RUN_ID).steps


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The records read through the chunked-fs storage from now on, in order."""
    read: list[str] = []
    real_read = FolderStorage.read

    def spying_read(self: FolderStorage, run_id: str, record: str) -> Any:
        read.append(record)
        return real_read(self, run_id, record)

    monkeypatch.setattr(FolderStorage, "read", spying_read)
    return read


def test_chunked_full_false_reads_no_step_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    read = _record_reads(monkeypatch)
    summary = store.get_run_log_by_id(RUN_ID, full=False)
    assert summary.steps == {}
    assert summary.parameters == {"x": 3, "xy": 2}
    assert sorted(read) == [
        "RunLog.json",
        "parameters/Parameter-x.json",
        "parameters/Parameter-xy.json",
    ]


def _record_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spying_os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    monkeypatch.setattr(os, "open", spying_os_open)
    return opened


def _forbid_listing_and_replacing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a step write listed the run folder or replaced a file")

    for name in ("listdir", "scandir", "replace", "rename"):
        monkeypatch.setattr(os, name, refuse)


def test_chunked_step_writes_append_only_that_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.add_step_log(store.create_step_log("par", "par"), RUN_ID)
    store.add_branch_log(store.create_branch_log("par.a"), RUN_ID)
    for i in range(500):
        store.add_step_log(store.create_step_log(f"s{i}", f"s{i}"), RUN_ID)
        store.add_step_log(store.create_step_log(f"x{i}", f"par.a.x{i}"), RUN_ID)
    folder = tmp_path / RUN_ID
    journal = folder / JOURNAL_FILE
    lines_before = journal.read_bytes().count(b"\n")
    opened = _record_opens(monkeypatch)
    _forbid_listing_and_replacing(monkeypatch)

    # A new step, a replaced early step, a step in a branch, a branch, a parameter.
    new_step = store.create_step_log("new", "new")
    store.add_step_log(new_step, RUN_ID)
    early = store.create_step_log("s0", "s0")
    early.status = SUCCESS
    store.add_step_log(early, RUN_ID)
    store.add_step_log(store.create_step_log("x7", "par.a.x7"), RUN_ID)
    store.add_branch_log(store.create_branch_log("par.b"), RUN_ID)
    store.set_parameters(RUN_ID, {"p": 1})
    store.add_step_log(store.create_step_log("par", "par"), RUN_ID)

    monkeypatch.undo()
    # Each write appended one line, of its own record, and nothing else was written: no file
    # was created or replaced, only the journal (and the run's lock) opened.
    appended = journal.read_bytes().splitlines()[lines_before:]
    assert [line.partition(b" ")[2].partition(b"\t")[0].decode() for line in appended] == [
        "steps/StepLog-new.json",
        "steps/StepLog-s0.json",
        "steps/StepLog-par.a.x7.json",
        "branches/BranchLog-par.b.json",
        "parameters/Parameter-p.json",
        "steps/StepLog-par.json",
    ]
    assert {Path(p).name for p in opened} == {JOURNAL_FILE, ".lock"}
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "RunLog.json",
        SUMMARY_FILE,
        JOURNAL_FILE,
    ]
    full = store.get_run_log_by_id(RUN_ID)
    assert len(full.steps) == 502
    assert list(full.steps)[:2] == ["par", "s0"]
    assert list(full.steps)[-1] == "new"
    assert full.steps["s0"].status == SUCCESS
    assert list(full.steps["par"].branches) == ["par.a", "par.b"]
    assert len(full.steps["par"].branches["par.a"].steps) == 500


def _fresh_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every operation from now on reads as a process that never read the run would."""
    monkeypatch.setattr(chunked, "folder_storage", lambda root: FolderStorage(Path(root)))


def test_chunked_damaged_records_name_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    journal = tmp_path / RUN_ID / JOURNAL_FILE
    intact = journal.read_bytes()
    # A line whose checksum no longer matches its content.
    journal.write_bytes(intact.replace(b'"x":3', b'"x":4'))
    _fresh_reader(monkeypatch)
    with pytest.raises(RunLogStoreError, match=f"{journal} is damaged at byte"):
        ChunkedFileSystemRunLogStore(log_folder=str(tmp_path)).get_run_log_by_id(RUN_ID)
    # Intact lines whose record is not JSON, not a chunk, not a step log.
    for record, message in (
        (b"{ not json", "not valid JSON"),
        (b'{"a": 1}', "not a chunk"),
        (b'{"created_ns": 1, "record": {"status": "x"}}', "not a valid StepLog"),
    ):
        journal.write_bytes(intact + frame(b"steps/StepLog-a.json\t" + record))
        _fresh_reader(monkeypatch)
        reader = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
        for read in (reader.get_run_log_by_id, partial(reader.get_step_log, "a")):
            with pytest.raises(RunLogStoreError, match=message) as raised:
                read(RUN_ID)
            assert "StepLog-a.json" in str(raised.value)
            assert str(tmp_path / RUN_ID) in str(raised.value)
    head = tmp_path / RUN_ID / "RunLog.json"
    head.write_text("[")
    with pytest.raises(RunLogStoreError, match=str(head)):
        store.get_run_log_by_id(RUN_ID, full=False)


def test_chunked_torn_journal_tail_is_ignored_then_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.add_step_log(store.create_step_log("a", "a"), RUN_ID)
    journal = tmp_path / RUN_ID / JOURNAL_FILE
    whole = journal.read_bytes()
    # What a writer killed in the middle of its append leaves: a line without its end.
    with open(journal, "ab") as handle:
        handle.write(whole[: len(whole) // 2].replace(b"StepLog-a", b"StepLog-b"))
    _fresh_reader(monkeypatch)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["a"]
    store.add_step_log(store.create_step_log("c", "c"), RUN_ID)
    _fresh_reader(monkeypatch)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["a", "c"]
    assert journal.read_bytes().count(b"\n") == 2 and journal.read_bytes().endswith(b"\n")


def test_chunked_log_survives_kill_at_any_moment(tmp_path: Path) -> None:
    """A writer killed at random moments: another process reads the steps it had completed,
    and the next writer carries on."""
    script = (
        "import sys\n"
        "from magnus.runlog.chunked import ChunkedFileSystemRunLogStore\n"
        "store = ChunkedFileSystemRunLogStore(log_folder=sys.argv[1])\n"
        "start = int(sys.argv[2])\n"
        "print('ready', flush=True)\n"
        "for index in range(start, start + 100000):\n"
        "    store.add_step_log(store.create_step_log(f's{index}', f's{index}'), 'r')\n"
        "    store.set_parameters('r', {'last': index})\n"
    )
    reader = (
        "import json, sys\n"
        "from magnus.runlog.chunked import ChunkedFileSystemRunLogStore\n"
        "run_log = ChunkedFileSystemRunLogStore(log_folder=sys.argv[1]).get_run_log_by_id('r')\n"
        "print(json.dumps([list(run_log.steps), run_log.parameters.get('last')]))\n"
    )
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log("r")
    seen = 0
    for delay in (0.05, 0.11, 0.23):
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(seen)], stdout=subprocess.PIPE
        )
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Read by a process that never saw the run, and by this one, which read it before.
        shown = subprocess.run(
            [sys.executable, "-c", reader, str(tmp_path)], capture_output=True, check=True
        )
        steps, last = json.loads(shown.stdout)
        run_log = store.get_run_log_by_id("r")
        assert list(run_log.steps) == steps and run_log.parameters.get("last") == last
        # Every step up to the last one recorded, in order, and the parameter at most one behind.
        assert steps == [f"s{index}" for index in range(len(steps))]
        assert len(steps) > seen
        assert last in (len(steps) - 1, len(steps) - 2)
        seen = len(steps)
    store.add_step_log(store.create_step_log("after", "after"), "r")
    store.update_run_log_status("r", SUCCESS)
    assert list(store.get_run_log_by_id("r").steps)[seen:] == ["after"]
    assert (tmp_path / "r" / JOURNAL_FILE).read_bytes().endswith(b"\n")


def _write_previous_layout(folder: Path, run_log: RunLog) -> None:
    """What chunked-fs wrote before journals: one file per record, each with its stamp."""
    limit = MAX_FILE_NAME_BYTES
    folder.mkdir(parents=True)
    write_json(folder / "RunLog.json", run_log.model_copy(update={"steps": {}, "parameters": {}}))
    records = [
        (chunk_record(PARAMETER, key, limit), {key: value})
        for key, value in run_log.parameters.items()
    ]
    pending: list[Any] = list(reversed(run_log.steps.values()))
    while pending:
        item = pending.pop()
        if isinstance(item, BranchLog):
            records.append(
                (
                    chunk_record(BRANCH, item.internal_name, limit),
                    item.model_dump(exclude={"steps"}),
                )
            )
            pending.extend(reversed(item.steps.values()))
        else:
            records.append(
                (
                    chunk_record(STEP, item.internal_name, limit),
                    item.model_dump(exclude={"branches"}),
                )
            )
            pending.extend(reversed(item.branches.values()))
    for stamp, (record, data) in enumerate(records, start=1):
        (folder / record).parent.mkdir(parents=True, exist_ok=True)
        write_json(folder / record, encode_chunk(data, stamp))


def test_chunked_reads_and_carries_on_a_run_of_the_layout_before_journals(
    tmp_path: Path,
) -> None:
    written = BufferedRunLogStore()
    _populate(written)
    old = written.get_run_log_by_id(RUN_ID)
    old.status = PROCESSING
    _write_previous_layout(tmp_path / RUN_ID, old)
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    assert store.get_run_log_by_id(RUN_ID) == old
    assert [run.run_id for run in store.list_runs()] == [RUN_ID]
    assert store.get_step_log("fan.b.work", RUN_ID).status == SUCCESS
    # Carried on: a replaced record (its stamp kept), a new one, a new parameter.
    replaced = store.get_step_log("a-1", RUN_ID, full=False)
    replaced.status = SUCCESS
    store.add_step_log(replaced, RUN_ID)
    store.add_step_log(store.create_step_log("b", "b"), RUN_ID)
    store.set_parameters(RUN_ID, {"y": 1})
    store.update_run_log_status(RUN_ID, SUCCESS)
    again = store.get_run_log_by_id(RUN_ID)
    assert list(again.steps) == ["fan", "a-1", "a", "b"]
    assert again.steps["a-1"].status == SUCCESS
    assert list(again.parameters) == ["x", "xy", "y"]
    assert again.steps["fan"] == old.steps["fan"]
    # A whole put drops the records of the old files too.
    again.steps.pop("a")
    store.put_run_log(again)
    assert list(store.get_run_log_by_id(RUN_ID).steps) == ["fan", "a-1", "b"]
    assert not (tmp_path / RUN_ID / "steps" / "StepLog-a.json").exists()


def test_chunked_corrupt_record_file_of_the_layout_before_journals_names_the_file(
    tmp_path: Path,
) -> None:
    written = BufferedRunLogStore()
    _populate(written)
    _write_previous_layout(tmp_path / RUN_ID, written.get_run_log_by_id(RUN_ID))
    step_file = tmp_path / RUN_ID / "steps" / "StepLog-a.json"
    step_file.write_text("{ not json")
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    for call in (
        lambda: store.get_run_log_by_id(RUN_ID),
        lambda: store.get_step_log("a", RUN_ID),
    ):
        with pytest.raises(RunLogStoreError, match=str(step_file)):
            call()


def test_chunked_leftover_temp_files_are_ignored(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    expected = store.get_run_log_by_id(RUN_ID).model_dump()
    # What a writer killed between creating and renaming its temporary file leaves behind.
    (tmp_path / RUN_ID / ".StepLog-a.json.0123.tmp").write_text('{"half')
    assert store.get_run_log_by_id(RUN_ID).model_dump() == expected


def test_chunked_list_runs_skips_folders_without_a_run(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log("b-run")
    store.create_run_log("a run")
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray-file.json").write_text("{}")
    assert sorted(run.run_id for run in store.list_runs()) == ["a run", "b-run"]
    assert store.list_runs()[0].run_id == "b-run"  # oldest first


def test_chunked_per_step_reads_do_not_grow_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the engine reads on every step: parameters and shallow step/branch logs."""
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    store.create_run_log(RUN_ID)
    store.add_step_log(store.create_step_log("par", "par"), RUN_ID)
    branch = store.create_branch_log("par.a")
    branch.parameters = {"inner": 1}
    store.add_branch_log(branch, RUN_ID)
    for i in range(300):
        store.add_step_log(store.create_step_log(f"x{i}", f"par.a.x{i}"), RUN_ID)
    store.set_parameters(RUN_ID, {"p": 1})
    listed: list[str] = []
    real_names = FolderStorage.names

    def spying_names(self: FolderStorage, run_id: str, folder: str, prefix: str = "") -> list[str]:
        listed.append(folder)
        return real_names(self, run_id, folder, prefix)

    monkeypatch.setattr(FolderStorage, "names", spying_names)
    _forbid_listing_and_replacing(monkeypatch)  # the records are lines of the journal

    assert store.get_parameters(RUN_ID) == {"p": 1}
    assert listed == ["parameters"]
    listed.clear()
    shallow = store.get_branch_log("par.a", RUN_ID, full=False)
    assert isinstance(shallow, BranchLog) and shallow.parameters == {"inner": 1}
    assert shallow.steps == {}
    assert store.get_step_log("par", RUN_ID, full=False).branches == {}
    assert listed == []
    assert len(store.get_step_log("par", RUN_ID).branches["par.a"].steps) == 300


@pytest.mark.parametrize("kind", ["file-system", "chunked-fs"])
def test_a_corrupt_run_is_listed_unreadable_beside_the_others(tmp_path: Path, kind: str) -> None:
    store = (
        FileSystemRunLogStore(log_folder=str(tmp_path))
        if kind == "file-system"
        else ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    )
    for run_id in ("before", "broken", "after"):
        store.create_run_log(run_id)
    head = tmp_path / ("broken.json" if kind == "file-system" else "broken/RunLog.json")
    head.write_bytes(b"\x00\xff not json")
    listed = {run.run_id: run for run in store.list_runs()}
    assert set(listed) == {"before", "broken", "after"}
    assert listed["broken"].status == UNREADABLE
    assert str(head) in listed["broken"].message
    assert listed["before"].status == listed["after"].status == PROCESSING
