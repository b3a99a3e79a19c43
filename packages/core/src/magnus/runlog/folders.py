"""Records of runs in folders: the storage of the ``chunked-fs`` run-log store.

Each run is a folder ``<root>/<run_id>/`` holding ``.lock``, the lock file its writers
``flock``; its records inside a folder of the run (the chunks: ``steps/StepLog-train.json``...)
as lines of the run's journal (:mod:`magnus.runlog.record_journal`); and the few records at the
top of the run (``RunLog.json``, its summary) as files, written through a temporary file renamed
over the record (:func:`magnus.runlog.files.write_json`). The fingerprint index
(:data:`magnus.runlog.fingerprint_index.INDEX_RUN`) is a journal too, ``<root>/.fingerprints/
records.journal``, appended to under its own lock. A record the journal has no line for is read
from its file: the layout before journals.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

from magnus.exceptions import RunLogNotFoundError, RunLogStoreError
from magnus.internal_names import MAX_FILE_NAME_BYTES
from magnus.runlog.chunks import SNAPSHOT_FILE
from magnus.runlog.files import (
    ExclusiveLock,
    encode_json,
    encode_run_id,
    ensure_folder,
    exclusive_lock,
    read_json,
    write_json,
)
from magnus.runlog.fingerprint_index import INDEX_RUN
from magnus.runlog.record_journal import JOURNAL_FILE, RecordJournal
from magnus.runlog.storage import RecordStorage

LOCK_FILE = ".lock"
#: How many records read_shared keeps parsed (the parameters of the runs a process works on).
_KEPT_RECORDS = 1024
#: Runs whose journal a process keeps replayed (a process works on one run, mostly).
_KEPT_JOURNALS = 8


def _journaled(run_id: str, record: str) -> bool:
    """Whether ``record`` lives in its run's journal: every record inside a folder of the run,
    and every record of the fingerprint index."""
    return "/" in record or run_id == INDEX_RUN


class FolderStorage(RecordStorage):
    """The records of each run in the folder ``<root>/<run_id>/``, writers serialised by a lock."""

    # File systems allow 255 bytes per name; a writer's temporary file adds up to 40.
    name_limit: ClassVar[int | None] = MAX_FILE_NAME_BYTES
    # A run's records are one journal, read in one go: assembling them costs less than
    # reading a snapshot of the whole run would (0.6 s against 0.85 s for 10,000 steps).
    keeps_snapshots: ClassVar[bool] = False
    keeps_summaries: ClassVar[bool] = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        # The folders of the runs last asked for, as text (a process works on one run, mostly,
        # and the fingerprint index).
        self._folder_texts: dict[str, str] = {}
        # Records read by read_shared: root, run id and record -> (version, parsed record); the
        # version is (inode, size, mtime_ns) of a file, or (inode, offset) of a journal line.
        self._parsed: dict[str, tuple[tuple[int, ...], Any]] = {}
        self._journals: dict[str, RecordJournal] = {}
        self._journals_guard = threading.Lock()
        # (run id, folder) -> whether that folder of the run is on disk: it holds records of
        # the layout before journals, which nothing writes any more, so once per run suffices.
        self._file_folders: dict[tuple[str, str], bool] = {}

    def _folder(self, run_id: str) -> Path:
        return Path(self.location(run_id))

    def _journal(self, run_id: str) -> RecordJournal:
        with self._journals_guard:
            journal = self._journals.get(run_id)
            if journal is None:
                if len(self._journals) >= _KEPT_JOURNALS:
                    self._journals.clear()
                    self._file_folders.clear()
                journal = RecordJournal(self._folder(run_id) / JOURNAL_FILE)
                self._journals[run_id] = journal
            return journal

    def location(self, run_id: str) -> str:
        return self._top_path(run_id, "")[:-1]

    def where(self, run_id: str, record: str) -> str:
        return self._top_path(run_id, record)

    def _top_path(self, run_id: str, record: str) -> str:
        """The file of ``record`` in the run's folder: text, not a Path, which would cost
        ``runs list`` as much as reading the record (a new one per run), and a step's record
        a third of its write."""
        folder = self._folder_texts.get(run_id)
        if folder is None:
            if len(self._folder_texts) >= _KEPT_JOURNALS:
                self._folder_texts.clear()
            folder = self._folder_texts[run_id] = f"{self._root_text}/{encode_run_id(run_id)}"
        return f"{folder}/{record}"

    def _has_files(self, run_id: str, record: str) -> bool:
        """Whether ``record`` (of a folder of the run) may be a file of the layout before
        journals: whether the run's folder of that name is on disk."""
        key = (run_id, record.rpartition("/")[0])
        if not key[1]:
            return True  # at the top of the run (the fingerprint index): opening it tells
        found = self._file_folders.get(key)
        if found is None:
            found = self._file_folders[key] = os.path.isdir(self._folder(run_id) / key[1])
        return found

    def read(self, run_id: str, record: str) -> Any:
        if _journaled(run_id, record):
            journal = self._journal(run_id)
            entry = journal.entry(record)
            if entry is not None:
                data = entry[1]
                return None if data is None else journal.parse(record, data)
            if not self._has_files(run_id, record):
                return None
            path = str(self._folder(run_id) / record)
        else:
            path = self._top_path(run_id, record)
        try:
            return read_json(path)
        except FileNotFoundError:
            return None

    def read_shared(self, run_id: str, record: str) -> Any:
        key = f"{self.root}\0{run_id}\0{record}"
        if _journaled(run_id, record):
            journal = self._journal(run_id)
            entry = journal.entry(record)
            if entry is not None:
                version, data = entry
                if data is None:
                    return None
                kept = self._parsed.get(key)
                if kept is not None and kept[0] == version:
                    return kept[1]
                return self._keep_parsed(key, version, journal.parse(record, data))
            if not self._has_files(run_id, record):
                return None
        path = self._top_path(run_id, record)
        # A record file is replaced by renaming a new file over it: a new inode, so the inode,
        # size and modification time tell whether the parsed record kept is still the record.
        file_version = _file_version(path)
        if file_version is None:
            return None
        kept = self._parsed.get(key)
        if kept is not None and kept[0] == file_version:
            return kept[1]
        try:
            data = read_json(path)
        except FileNotFoundError:
            return None
        return self._keep_parsed(key, file_version, data)

    def _keep_parsed(self, key: str, version: tuple[int, ...], data: Any) -> Any:
        if len(self._parsed) >= _KEPT_RECORDS:
            self._parsed.clear()
        self._parsed[key] = (version, data)
        return data

    def version(self, run_id: str, record: str) -> str | None:
        """The inode, size and modification time of a record at the top of the run (a file).

        Such a record of the run is replaced by renaming a new file over it, made while
        the old one was still there: a new inode each time, whoever writes it.
        """
        found = _file_version(self._top_path(run_id, record))
        return None if found is None else ":".join(map(str, found))

    def exists(self, run_id: str, record: str) -> bool:
        if _journaled(run_id, record):
            entry = self._journal(run_id).entry(record)
            if entry is not None:
                return entry[1] is not None
            if not self._has_files(run_id, record):
                return False
            return (self._folder(run_id) / record).exists()
        return os.path.exists(self._top_path(run_id, record))

    def write(self, run_id: str, record: str, data: Any) -> None:
        """Replace the record: a line of the run's journal (the caller holds the run's lock)
        for a record in a folder of the run, a file for one at its top."""
        if _journaled(run_id, record):
            where = self._top_path(run_id, record)
            self._append(run_id, [(record, encode_json(data, where, indent=None))])
        else:
            # The snapshot, read by stores only, on one line: indented, a whole run's JSON is
            # about twice the size, and so is the memory its writer needs.
            indent = None if record == SNAPSHOT_FILE else 4
            write_json(self._folder(run_id) / record, data, indent)

    def _append(self, run_id: str, changes: list[tuple[str, bytes | None]]) -> None:
        journal = self._journal(run_id)
        if run_id == INDEX_RUN:
            # Written by every step, read only by runs that reuse: appended without replaying
            # the index, under the index journal's own lock (its writers hold no run's lock).
            journal.append_unread(changes)
        else:
            journal.append(changes)

    def write_many(self, run_id: str, records: list[tuple[str, Any]]) -> None:
        """The records of the run's folders as one append to its journal (the caller holds the
        run's lock): a composite's fan-out writes a record per branch."""
        journaled: list[tuple[str, bytes | None]] = [
            (record, encode_json(data, self._top_path(run_id, record), indent=None))
            for record, data in records
            if _journaled(run_id, record)
        ]
        if journaled:
            self._append(run_id, journaled)
        for record, data in records:
            if not _journaled(run_id, record):
                self.write(run_id, record, data)

    def names(self, run_id: str, folder: str, prefix: str = "") -> list[str]:
        files: list[str] = []
        if self._has_files(run_id, f"{folder}/"):
            path = self._folder(run_id) / folder
            try:
                files = os.listdir(path)  # records of the layout before journals
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise RunLogStoreError(f"Cannot list {path}: {exc.strerror or exc}") from exc
        journaled = self._journal(run_id).folder(folder)
        names = [name for name in files if name not in journaled]
        names.extend(name for name, data in journaled.items() if data is not None)
        return [name for name in names if name.startswith(prefix)] if prefix else names

    def delete(self, run_id: str, records: Sequence[str]) -> None:
        """Remove the records (the caller holds the run's lock): files are unlinked, and a
        record the journal holds gets a line that removes it."""
        removals: list[tuple[str, bytes | None]] = []
        for record in records:
            if not _journaled(run_id, record) or self._has_files(run_id, record):
                with suppress(FileNotFoundError):
                    os.unlink(self._top_path(run_id, record))
            if _journaled(run_id, record):
                entry = self._journal(run_id).entry(record)
                if entry is not None and entry[1] is not None:
                    removals.append((record, None))
        if removals:
            self._append(run_id, removals)

    def run_ids(self) -> list[str]:
        try:
            with os.scandir(self.root) as entries:
                # Folder names are percent-encoded run ids.
                return sorted(unquote(entry.name) for entry in entries if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise RunLogStoreError(f"Cannot list {self.root}: {exc.strerror or exc}") from exc

    def make_run(self, run_id: str, folders: Iterable[str]) -> None:
        # The records of the run's folders are lines of its journal: only the run's folder is
        # made (the folders themselves only hold records of the layout before journals).
        ensure_folder(self._folder(run_id))

    def reading(self, run_id: str) -> AbstractContextManager[None]:
        # The journal is replayed once, at the first record read: not a stat per record.
        return _Steady(self._journal(run_id))

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        # No folder, no run: the lock file can only be made inside it. Once it is held nobody
        # else appends to the run's journal: its replay need not look at the file again.
        return _RunLock(
            exclusive_lock(
                self._top_path(run_id, LOCK_FILE),
                missing=lambda: RunLogNotFoundError(run_id, where=self.location(run_id)),
            ),
            _Steady(self._journal(run_id)),
        )


class _Steady:
    """A run's journal looked at once for a ``with`` block (see ``RecordStorage.reading``)."""

    __slots__ = ("_journal",)

    def __init__(self, journal: RecordJournal) -> None:
        self._journal = journal

    def __enter__(self) -> None:
        self._journal.hold()

    def __exit__(self, *exc_info: object) -> None:
        self._journal.release()


class _RunLock:
    """A run's lock held, and its journal steady meanwhile (nobody else can append), for a
    ``with`` block."""

    __slots__ = ("_lock", "_steady")

    def __init__(self, lock: ExclusiveLock, steady: _Steady) -> None:
        self._lock = lock
        self._steady = steady

    def __enter__(self) -> None:
        self._lock.__enter__()
        self._steady.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._steady.__exit__(*exc_info)
        finally:
            self._lock.__exit__(*exc_info)


def _file_version(path: str) -> tuple[int, int, int] | None:
    """The inode, size and modification time of the file ``path``; ``None`` when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunLogStoreError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=16)
def folder_storage(root: str) -> FolderStorage:
    """The storage of the folder ``root``, made once: stores ask for it on every operation."""
    return FolderStorage(Path(root))
