"""Records of runs as files in folders: the storage of the ``chunked-fs`` run-log store.

Each run is a folder ``<root>/<run_id>/`` holding its records as files, and ``.lock``, the lock
file its writers ``flock``. Writes go through a temporary file renamed over the record
(:func:`magnus.runlog.files.write_json`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

from magnus.exceptions import RunLogNotFoundError, RunLogStoreError
from magnus.internal_names import MAX_FILE_NAME_BYTES
from magnus.runlog.files import (
    encode_run_id,
    ensure_folder,
    exclusive_lock,
    read_json,
    write_json,
)
from magnus.runlog.storage import RecordStorage

LOCK_FILE = ".lock"
#: How many records read_shared keeps parsed (the parameters of the runs a process works on).
_KEPT_RECORDS = 1024


class FolderStorage(RecordStorage):
    """The records of each run in the folder ``<root>/<run_id>/``, writers serialised by a lock."""

    # File systems allow 255 bytes per name; a writer's temporary file adds up to 40.
    name_limit: ClassVar[int | None] = MAX_FILE_NAME_BYTES
    keeps_snapshots: ClassVar[bool] = True

    def __init__(self, root: Path) -> None:
        self.root = root
        # The folder of the run last asked for: a process works on one run, mostly.
        self._last: tuple[str, Path] | None = None
        # Records read by read_shared: path -> ((inode, size, mtime_ns), parsed record).
        self._parsed: dict[str, tuple[tuple[int, int, int], Any]] = {}

    def _folder(self, run_id: str) -> Path:
        last = self._last
        if last is not None and last[0] == run_id:
            return last[1]
        folder = self.root / encode_run_id(run_id)
        self._last = (run_id, folder)
        return folder

    def location(self, run_id: str) -> str:
        return str(self._folder(run_id))

    def where(self, run_id: str, record: str) -> str:
        return str(self._folder(run_id) / record)

    def read(self, run_id: str, record: str) -> Any:
        try:
            return read_json(self._folder(run_id) / record)
        except FileNotFoundError:
            return None

    def read_shared(self, run_id: str, record: str) -> Any:
        # A record is replaced by renaming a new file over it: a new inode, so the inode, size
        # and modification time tell whether the parsed record kept is still the record.
        path = self._folder(run_id) / record
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunLogStoreError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        key = str(path)
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        kept = self._parsed.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        data = self.read(run_id, record)
        if len(self._parsed) >= _KEPT_RECORDS:
            self._parsed.clear()
        self._parsed[key] = (version, data)
        return data

    def exists(self, run_id: str, record: str) -> bool:
        return (self._folder(run_id) / record).exists()

    def write(self, run_id: str, record: str, data: Any) -> None:
        write_json(self._folder(run_id) / record, data)

    def names(self, run_id: str, folder: str, prefix: str = "") -> list[str]:
        path = self._folder(run_id) / folder
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunLogStoreError(f"Cannot list {path}: {exc.strerror or exc}") from exc
        return [name for name in names if name.startswith(prefix)] if prefix else names

    def delete(self, run_id: str, records: Sequence[str]) -> None:
        folder = self._folder(run_id)
        for record in records:
            with suppress(FileNotFoundError):
                (folder / record).unlink()

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
        folder = self._folder(run_id)
        for name in folders:
            ensure_folder(folder / name)

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        folder = self._folder(run_id)
        # No folder, no run: the lock file can only be made inside it.
        return exclusive_lock(
            folder / LOCK_FILE, missing=lambda: RunLogNotFoundError(run_id, where=str(folder))
        )


@functools.lru_cache(maxsize=16)
def folder_storage(root: str) -> FolderStorage:
    """The storage of the folder ``root``, made once: stores ask for it on every operation."""
    return FolderStorage(Path(root))
