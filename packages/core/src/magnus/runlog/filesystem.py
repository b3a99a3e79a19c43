"""The ``file-system`` run-log store: one JSON file per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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
from magnus.runlog.memory import WholeRunLogStore, unreadable_run
from magnus.runlog.models import RunLog
from magnus.runlog.storage import RecordStorage


class FileSystemRunLogStore(WholeRunLogStore):
    """Each run is one indented JSON file, ``<log_folder>/<run_id>.json``, rewritten on update.

    Every read-modify-write holds an exclusive ``flock`` on ``<log_folder>/<run_id>.lock``, so
    processes writing the same run (parallel branches) never lose each other's updates. Each
    update rewrites the whole file: prefer ``chunked-fs`` for runs with many steps.

    The fingerprint index is laid out as ``chunked-fs`` lays it out, one file per key in
    ``<log_folder>/.fingerprints/``: a single index file would be rewritten whole on every step.
    """

    service_name: ClassVar[str] = "file-system"
    supports_concurrent_writers: ClassVar[bool] = True

    log_folder: str = ".run_log_store"

    def _path(self, run_id: str) -> Path:
        return Path(self.log_folder) / f"{encode_run_id(run_id)}.json"

    def _lock(self, run_id: str) -> AbstractContextManager[None]:
        return exclusive_lock(Path(self.log_folder) / f"{encode_run_id(run_id)}.lock")

    def location(self, run_id: str) -> str:
        return str(self._path(run_id))

    @staticmethod
    def _load(path: Path, run_id: str) -> RunLog:
        try:
            data = read_json(path)
        except FileNotFoundError:
            raise RunLogNotFoundError(run_id, where=str(path)) from None
        return validate(path, RunLog, data)

    def _read(self, run_id: str) -> RunLog:
        return self._load(self._path(run_id), run_id)

    @contextmanager
    def _modify(self, run_id: str) -> Iterator[RunLog]:
        path = self._path(run_id)
        # Checked before locking: the lock file cannot be made in a folder that does not exist.
        if not path.exists():
            raise RunLogNotFoundError(run_id, where=str(path))
        with self._lock(run_id):
            run_log = self._load(path, run_id)
            yield run_log
            write_json(path, run_log)

    def _create(self, run_log: RunLog) -> None:
        path = self._path(run_log.run_id)
        ensure_folder(path.parent)
        with self._lock(run_log.run_id):
            if path.exists():
                raise RunLogExistsError(run_log.run_id)
            write_json(path, run_log)

    def _replace(self, run_log: RunLog) -> None:
        path = self._path(run_log.run_id)
        ensure_folder(path.parent)
        with self._lock(run_log.run_id):
            write_json(path, run_log)

    def _stored_runs(self) -> Iterator[RunLog]:
        folder = Path(self.log_folder)
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                yield validate(path, RunLog, read_json(path))
            except FileNotFoundError:
                # Removed between listing and reading: no longer a run of this store.
                continue
            except RunLogStoreError as exc:
                yield unreadable_run(unquote(path.stem), exc)

    def index_storage(self) -> RecordStorage:
        return folder_storage(self.log_folder)
