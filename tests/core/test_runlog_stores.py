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
from pathlib import Path
from typing import Any

import pytest

from magnus.exceptions import RunLogStoreError
from magnus.runlog import filesystem
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.filesystem import FileSystemRunLogStore
from magnus.runlog.models import PROCESSING, SUCCESS, UNREADABLE, BranchLog, RunLog
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


def test_chunked_layout_has_exact_file_names(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    store.add_step_log(store.create_step_log("a/b c", "a/b c"), RUN_ID)
    store.add_step_log(store.create_step_log("Big", "Big"), RUN_ID)
    store.set_parameters(RUN_ID, {"ü": 1, "Foo": 2, "foo": 3})
    folder = tmp_path / RUN_ID
    assert store.location(RUN_ID) == str(folder)
    # one folder per kind of record, so reading parameters never lists the steps
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == sorted(
        [
            ".lock",
            "RunLog.json",
            "parameters",
            "steps",
            "branches",
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
    x = json.loads((folder / "parameters" / "Parameter-x.json").read_text())
    xy = json.loads((folder / "parameters" / "Parameter-xy.json").read_text())
    assert x["record"] == {"x": 3}
    assert xy["record"] == {"xy": 2}
    # Rewriting x kept its creation stamp, so it still sorts before xy.
    assert isinstance(x["created_ns"], int)
    assert x["created_ns"] < xy["created_ns"]
    fan = json.loads((folder / "steps" / "StepLog-fan.json").read_text())
    assert fan["record"]["status"] == SUCCESS
    assert "branches" not in fan["record"]
    branch = json.loads((folder / "branches" / "BranchLog-fan.b.json").read_text())
    assert "steps" not in branch["record"]


def test_chunked_ended_run_is_read_whole_from_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_chunked_full_false_reads_no_step_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    opened = _record_opens(monkeypatch)
    summary = store.get_run_log_by_id(RUN_ID, full=False)
    assert summary.steps == {}
    assert summary.parameters == {"x": 3, "xy": 2}
    assert {Path(p).name for p in opened} == {
        "RunLog.json",
        "Parameter-x.json",
        "Parameter-xy.json",
    }


def _record_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import builtins

    opened: list[str] = []
    real_open = builtins.open

    def spying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    return opened


def _record_replaces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    replaced: list[str] = []
    real_replace = os.replace

    def spying_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        replaced.append(str(dst))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spying_replace)
    return replaced


def _forbid_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a step write listed the run folder")

    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(os, "scandir", refuse)


def test_chunked_step_writes_touch_only_that_step(
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
    opened = _record_opens(monkeypatch)
    replaced = _record_replaces(monkeypatch)
    _forbid_listing(monkeypatch)

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

    expected = [
        "StepLog-new.json",
        "StepLog-s0.json",
        "StepLog-par.a.x7.json",
        "BranchLog-par.b.json",
        "Parameter-p.json",
        "StepLog-par.json",
    ]
    assert [Path(p).name for p in replaced] == expected
    assert all(Path(p).parent.parent == folder for p in replaced)
    # Reading is limited to the chunk being replaced (for its creation stamp).
    assert {Path(p).name for p in opened} <= set(expected)
    monkeypatch.undo()
    full = store.get_run_log_by_id(RUN_ID)
    assert len(full.steps) == 502
    assert list(full.steps)[:2] == ["par", "s0"]
    assert list(full.steps)[-1] == "new"
    assert full.steps["s0"].status == SUCCESS
    assert list(full.steps["par"].branches) == ["par.a", "par.b"]
    assert len(full.steps["par"].branches["par.a"].steps) == 500


def test_chunked_corrupt_chunk_names_the_file(tmp_path: Path) -> None:
    store = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    _populate(store)
    step_file = tmp_path / RUN_ID / "steps" / "StepLog-a.json"
    step_file.write_text("{ not json")
    with pytest.raises(RunLogStoreError, match=str(step_file)):
        store.get_run_log_by_id(RUN_ID)
    with pytest.raises(RunLogStoreError, match=str(step_file)):
        store.get_step_log("a", RUN_ID)
    step_file.write_text('{"a": 1}')  # valid JSON, but not a chunk
    with pytest.raises(RunLogStoreError, match=str(step_file)):
        store.get_step_log("a", RUN_ID)
    step_file.write_text('{"created_ns": 1, "record": {"status": "x"}}')  # not a step log
    with pytest.raises(RunLogStoreError, match=str(step_file)):
        store.get_step_log("a", RUN_ID)
    head = tmp_path / RUN_ID / "RunLog.json"
    head.write_text("[")
    with pytest.raises(RunLogStoreError, match=str(head)):
        store.get_run_log_by_id(RUN_ID, full=False)


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
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(str(path)) or real_listdir(path))

    assert store.get_parameters(RUN_ID) == {"p": 1}
    assert [Path(p).name for p in listed] == ["parameters"]
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
