"""The fingerprint index on a file system: one journal appended to by every step of every run."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import PrivateAttr

from magnus.runlog import record_journal
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.fingerprint_index import INDEX_RUN, index_record
from magnus.runlog.folders import FolderStorage
from magnus.runlog.record_journal import COMPACTED_RECORD, JOURNAL_FILE


def _store(root: Path) -> ChunkedFileSystemRunLogStore:
    return ChunkedFileSystemRunLogStore(log_folder=str(root))


class _Unshared(ChunkedFileSystemRunLogStore):
    """The store as another process sees it: a storage of its own, which has read nothing."""

    _own: FolderStorage | None = PrivateAttr(default=None)

    def storage(self) -> FolderStorage:
        if self._own is None:
            self._own = FolderStorage(Path(self.log_folder))
        return self._own


def _fresh(root: Path) -> ChunkedFileSystemRunLogStore:
    return _Unshared(log_folder=str(root))


def _journal(root: Path) -> Path:
    return root / INDEX_RUN / JOURNAL_FILE


def test_hits_are_lines_of_one_journal_not_files(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for number in range(20):
        store.record_fingerprint(f"key-{number}", f"run-{number}", "train")
    assert sorted(os.listdir(tmp_path / INDEX_RUN)) == [JOURNAL_FILE]
    assert len(_journal(tmp_path).read_bytes().splitlines()) == 20
    reader = _fresh(tmp_path)
    found = reader.find_fingerprint("key-7")
    assert found is not None and (found.run_id, found.internal_name) == ("run-7", "train")
    assert reader.find_fingerprint("key-20") is None
    # The latest writer wins, for a reader that had already read the journal too.
    _fresh(tmp_path).record_fingerprint("key-7", "later", "train")
    found = reader.find_fingerprint("key-7")
    assert found is not None and found.run_id == "later"


def test_a_hit_of_the_layout_before_journals_is_still_found(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.record_fingerprint("new", "run-new", "train")
    old = {"key": "old", "run_id": "run-old", "internal_name": "fit", "recorded_at": "t"}
    (tmp_path / INDEX_RUN / index_record("old")).write_text(json.dumps(old))
    found = _fresh(tmp_path).find_fingerprint("old")
    assert found is not None and (found.run_id, found.internal_name) == ("run-old", "fit")


def test_a_torn_last_line_is_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.record_fingerprint("first", "run-1", "train")
    with _journal(tmp_path).open("ab") as journal:
        journal.write(b"0badc0de half a line, the writer was kil")
    # A reader ignores the torn line; the next writer cuts it off before appending, also the
    # one whose own append the journal ended with before the torn line was added.
    assert _fresh(tmp_path).find_fingerprint("first") is not None
    store.record_fingerprint("second", "run-2", "train")
    text = _journal(tmp_path).read_bytes()
    assert b"half a line" not in text and text.endswith(b"\n")
    reader = _fresh(tmp_path)
    assert reader.find_fingerprint("first") is not None
    assert reader.find_fingerprint("second") is not None


def test_the_journal_is_compacted_when_it_doubles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_journal, "COMPACT_FROM", 4096)
    store = _store(tmp_path)
    early = _fresh(tmp_path)
    early.record_fingerprint("kept", "run-0", "train")
    assert early.find_fingerprint("kept") is not None  # replayed before the compaction
    sizes = []
    for number in range(400):  # the same ten keys over and over: most lines are superseded
        store.record_fingerprint(f"key-{number % 10}", f"run-{number}", "train")
        sizes.append(_journal(tmp_path).stat().st_size)
    shrunk = [after for before, after in itertools.pairwise(sizes) if after < before]
    assert shrunk, "never compacted"
    assert max(sizes) < 3 * 4096 * 2  # bounded by twice what it holds after a compaction
    first = _journal(tmp_path).read_bytes().split(b"\n")[0]
    assert COMPACTED_RECORD.encode() in first
    for reader in (early, _fresh(tmp_path)):
        kept = reader.find_fingerprint("kept")
        assert kept is not None and kept.run_id == "run-0"
        for key in range(10):
            hit = reader.find_fingerprint(f"key-{key}")
            assert hit is not None and hit.run_id == f"run-{390 + key}"


def test_writers_in_several_processes_lose_nothing_through_compactions(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        import sys
        from magnus.runlog import record_journal
        from magnus.runlog.chunked import ChunkedFileSystemRunLogStore

        record_journal.COMPACT_FROM = 8192
        store = ChunkedFileSystemRunLogStore(log_folder={str(tmp_path)!r})
        name = sys.argv[1]
        for number in range(300):
            store.record_fingerprint(f"{{name}}-{{number % 150}}", f"{{name}}-{{number}}", "t")
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", writer, name]) for name in ("a", "b", "c")]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    reader = _fresh(tmp_path)
    for name in ("a", "b", "c"):
        for key in range(150):
            hit = reader.find_fingerprint(f"{name}-{key}")
            assert hit is not None and hit.run_id == f"{name}-{150 + key}", (name, key)
    assert COMPACTED_RECORD.encode() in _journal(tmp_path).read_bytes().split(b"\n")[0]
