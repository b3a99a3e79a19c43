"""The ``file-system`` run-log store: one JSON file per run, and a journal of its changes."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from magnus.exceptions import RunLogExistsError, RunLogNotFoundError, RunLogStoreError
from magnus.runlog.files import (
    encode_run_id,
    ensure_folder,
    exclusive_lock,
    read_json,
    validate,
    write_json,
)
from magnus.runlog.folders import folder_storage
from magnus.runlog.journal import encode_change, read_changes
from magnus.runlog.memory import (
    STATUS_CHANGE,
    ResultT,
    RunChange,
    WholeRunLogStore,
    apply_change,
    unreadable_run,
    without_steps,
)
from magnus.runlog.models import TERMINAL_STATUSES, RunLog
from magnus.runlog.storage import RecordStorage

#: A journal is folded into its run's file once it is larger than the file and than this: the
#: file is rewritten O(log N) times over a run, so every change still costs O(1) on average.
COMPACT_AT_BYTES = 1 << 20
#: Runs whose replayed state a process keeps (a process works on one run, mostly).
_KEPT_RUNS = 4

_FileKey = tuple[int, int, int]  # inode, size, modification time (ns): which file was read


@dataclass
class _Replayed:
    """A run as its file and the first ``offset`` bytes of its journal make it."""

    file: _FileKey
    journal: int | None  # inode of the journal replayed, None: none yet
    offset: int
    run_log: RunLog
    file_size: int


def _file_key(path: Path) -> _FileKey | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class FileSystemRunLogStore(WholeRunLogStore):
    """Each run is one indented JSON file, ``<log_folder>/<run_id>.json``.

    While the run goes on, each change (a step log, parameters, a status) is appended to the
    journal ``<run_id>.journal`` beside it rather than rewriting the file: a change costs what it
    holds, whatever the size of the run. The journal is folded into the JSON file when the run
    ends (SUCCESS or FAIL) and whenever it outgrows the file. Readers take the file and replay
    the journal, so a run killed at any moment reads as far as its last complete change; a file
    without a journal (every finished run, and every run written before journals) is the whole
    log. A process keeps the runs it replayed and reads only what was appended since.

    Every change holds an exclusive ``flock`` on ``<log_folder>/<run_id>.lock``, so processes
    writing the same run (parallel branches) never lose each other's changes.

    The fingerprint index is laid out as ``chunked-fs`` lays it out, a journal of records in
    ``<log_folder>/.fingerprints/`` (:mod:`magnus.runlog.folders`).
    """

    service_name: ClassVar[str] = "file-system"
    supports_concurrent_writers: ClassVar[bool] = True

    log_folder: str = ".run_log_store"

    def _path(self, run_id: str) -> Path:
        return Path(self.log_folder) / f"{encode_run_id(run_id)}.json"

    @staticmethod
    def _journal(path: Path) -> Path:
        return path.with_suffix(".journal")

    def _lock(self, run_id: str) -> AbstractContextManager[None]:
        return exclusive_lock(Path(self.log_folder) / f"{encode_run_id(run_id)}.lock")

    def location(self, run_id: str) -> str:
        return str(self._path(run_id))

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _load(path: Path, run_id: str) -> RunLog:
        try:
            data = read_json(path)
        except FileNotFoundError:
            raise RunLogNotFoundError(run_id, where=str(path)) from None
        return validate(path, RunLog, data)

    def _replay(self, path: Path, run_id: str) -> _Replayed:
        """The run at ``path`` with every complete change of its journal made.

        Starts from what this process replayed before when the file is still the one it read,
        reading only the journal's new bytes. Lock-free: a writer folding the journal in
        replaces the file first, which the second look at the file sees, and then the run is
        read again; changes replayed twice leave the run as it was (:func:`apply_change`).
        """
        while True:
            key = _file_key(path)
            if key is None:
                raise RunLogNotFoundError(run_id, where=str(path))
            state = _replayed.get(str(path))
            if state is None or state.file != key:
                state = _Replayed(key, None, 0, self._load(path, run_id), key[1])
            journal = self._journal(path)
            try:
                with open(journal, "rb") as handle:
                    stat = os.fstat(handle.fileno())
                    if state.journal not in (None, stat.st_ino) or stat.st_size < state.offset:
                        _replayed.pop(str(path), None)
                        continue
                    handle.seek(state.offset)
                    data = handle.read()
                    state.journal = stat.st_ino
            except FileNotFoundError:
                if state.journal is not None:  # folded in since: the file is new
                    _replayed.pop(str(path), None)
                    continue
                data = b""
            changes, used = read_changes(data, state.offset, str(journal))
            for change in changes:
                apply_change(state.run_log, change, keep=True)
            state.offset += used
            if _file_key(path) != key:
                _replayed.pop(str(path), None)
                continue
            _keep(str(path), state)
            return state

    def _view(self, run_id: str, use: Callable[[RunLog], ResultT]) -> ResultT:
        with _guard:
            return use(self._replay(self._path(run_id), run_id).run_log)

    # ------------------------------------------------------------------ changing

    def _change(self, run_id: str, change: RunChange) -> None:
        path = self._path(run_id)
        journal = self._journal(path)
        line, replayed_change = encode_change(change, str(journal))
        # Checked before locking: the lock file cannot be made in a folder that does not exist.
        if not path.exists():
            raise RunLogNotFoundError(run_id, where=str(path))
        with _guard, self._lock(run_id):
            state = self._replay(path, run_id)
            try:
                apply_change(state.run_log, replayed_change, keep=True)
                self._append(journal, state, line)
                ended = change.kind == STATUS_CHANGE and change.value["status"] in TERMINAL_STATUSES
                if ended or state.offset > max(state.file_size, COMPACT_AT_BYTES):
                    self._fold(path, state)
            except BaseException:
                # The replayed run may hold a change that is not stored: read it again.
                _replayed.pop(str(path), None)
                raise

    @staticmethod
    def _append(journal: Path, state: _Replayed, line: bytes) -> None:
        try:
            fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                stat = os.fstat(fd)
                if stat.st_size > state.offset and state.journal in (None, stat.st_ino):
                    # The torn last line of a writer that was killed: nobody has read it.
                    os.ftruncate(fd, state.offset)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise RunLogStoreError(
                f"Cannot write {journal} in the run log folder {journal.parent}: "
                f"{exc.strerror or exc}"
            ) from exc
        state.journal = stat.st_ino
        state.offset += len(line)

    def _fold(self, path: Path, state: _Replayed) -> None:
        """Write the whole run into its file, then drop the journal (the run's lock is held).

        A kill between the two leaves a journal whose changes the file already has: replaying
        them again changes nothing.
        """
        write_json(path, state.run_log)
        with suppress(FileNotFoundError):
            os.unlink(self._journal(path))
        key = _file_key(path)
        if key is None:  # cannot be while the lock is held, but never keep a wrong state
            _replayed.pop(str(path), None)
            return
        state.file, state.journal, state.offset, state.file_size = key, None, 0, key[1]

    def _create(self, run_log: RunLog) -> None:
        path = self._path(run_log.run_id)
        ensure_folder(path.parent)
        with _guard, self._lock(run_log.run_id):
            if path.exists():
                raise RunLogExistsError(run_log.run_id)
            # A journal without its file (the file deleted by hand) belongs to no run.
            with suppress(FileNotFoundError):
                os.unlink(self._journal(path))
            write_json(path, run_log)

    def _replace(self, run_log: RunLog) -> None:
        path = self._path(run_log.run_id)
        ensure_folder(path.parent)
        with _guard, self._lock(run_log.run_id):
            write_json(path, run_log)
            with suppress(FileNotFoundError):
                os.unlink(self._journal(path))
            _replayed.pop(str(path), None)

    # ------------------------------------------------------------------ listing

    def _stored_runs(self) -> Iterator[RunLog]:
        folder = Path(self.log_folder)
        if not folder.is_dir():
            return
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries if entry.name.endswith(".json"))
        for name in names:
            path = folder / name
            run_id = unquote(path.stem)
            try:
                run = self._listed_run(path, run_id)
            except (FileNotFoundError, RunLogNotFoundError):
                # Removed between listing and reading: no longer a run of this store.
                continue
            except RunLogStoreError as exc:
                run = unreadable_run(run_id, exc)
            yield run

    def _listed_run(self, path: Path, run_id: str) -> RunLog:
        """The run at ``path``, its steps left out where that saves reading them."""
        if self._journal(path).exists():
            with _guard:
                return without_steps(self._replay(path, run_id).run_log)
        data = read_json(path)
        if isinstance(data, dict):
            # Only the run's own fields are listed: validating its steps would be wasted.
            data = {**data, "steps": {}}
        return validate(path, RunLog, data)

    def index_storage(self) -> RecordStorage:
        return folder_storage(self.log_folder)


# The runs this process replayed, by path, most recent last; shared by every store object, since
# a run is replayed from its files whoever asks. ``_guard`` serialises threads of one process
# (a step's deferred PROCESSING record is written from a timer thread).
_replayed: OrderedDict[str, _Replayed] = OrderedDict()
_guard = threading.RLock()


def _keep(path: str, state: _Replayed) -> None:
    _replayed[path] = state
    _replayed.move_to_end(path)
    while len(_replayed) > _KEPT_RUNS:
        _replayed.popitem(last=False)
