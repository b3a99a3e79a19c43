"""The ``chunked-fs`` run-log store: one small JSON file per record of a run.

Layout of ``<log_folder>/<run_id>/``:

* ``RunLog.json`` -- the run-level fields and ``run_config``; ``steps`` and ``parameters`` empty;
* ``parameters/Parameter-<key>.json`` -- one parameter, record ``{"<key>": value}``;
* ``steps/StepLog-<internal name>.json`` -- one step log without its ``branches``;
* ``branches/BranchLog-<internal branch name>.json`` -- one branch log without its ``steps``;
* ``.lock`` -- the lock file of the run's writers.

One folder per kind of record: reading the parameters (which every step does) lists only the
parameters, whatever the number of steps and branches.

Names in file names are encoded by :func:`magnus.runlog.files.encode_name` and matched exactly;
a name too long for a file name keeps a readable prefix and a digest (:func:`chunk_path_name`).
Every chunk other than ``RunLog.json`` is ``{"created_ns": <int>, "record": {...}}``: the
creation time orders records on assembly and is kept when a chunk is rewritten.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

from magnus.exceptions import (
    BranchLogNotFoundError,
    RunLogExistsError,
    RunLogNotFoundError,
    RunLogStoreError,
    StepLogNotFoundError,
)
from magnus.naming import MAX_FILE_NAME_BYTES, SHORTENED_MARK, fit_file_name
from magnus.runlog.base import BaseRunLogStore, parent_branch_name, parent_step_name
from magnus.runlog.files import (
    decode_name,
    encode_name,
    encode_run_id,
    ensure_folder,
    exclusive_lock,
    read_json,
    validate,
    write_json,
)
from magnus.runlog.memory import new_run_log, set_status, sort_runs, unreadable_run
from magnus.runlog.models import PROCESSING, BranchLog, RunLog, StepLog

logger = logging.getLogger(__name__)

RUN_FILE = "RunLog.json"
PARAMETER = "Parameter"
STEP = "StepLog"
BRANCH = "BranchLog"
LOCK_FILE = ".lock"
KIND_FOLDERS = {PARAMETER: "parameters", STEP: "steps", BRANCH: "branches"}
_SUFFIX = ".json"

_stamp_guard = threading.Lock()
_last_stamp = 0


def next_stamp() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process.

    Two chunks created by one process in the same clock tick must still sort in creation order.
    """
    global _last_stamp
    with _stamp_guard:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def chunk_file_name(kind: str, name: str) -> str:
    """The file name of the chunk of ``kind`` (``StepLog``...) for ``name``."""
    return f"{kind}-{encode_name(name)}{_SUFFIX}"


def chunk_path_name(kind: str, name: str) -> str:
    """The file name of a chunk on disk: :func:`chunk_file_name`, a very long name shortened.

    Shortened names (``magnus.naming.fit_file_name``) hold ``=``, which encoded names never do;
    the record inside names its step or branch in full.
    """
    room = MAX_FILE_NAME_BYTES - len(kind) - 1 - len(_SUFFIX)
    return f"{kind}-{fit_file_name(encode_name(name), room)}{_SUFFIX}"


def chunk_kind_and_name(file_name: str) -> tuple[str, str] | None:
    """The kind and decoded name of a chunk file; ``None`` for any other file."""
    kind, dash, rest = file_name.partition("-")
    if not dash or kind not in (PARAMETER, STEP, BRANCH) or not rest.endswith(_SUFFIX):
        return None
    return kind, decode_name(rest[: -len(_SUFFIX)])


def encode_chunk(record: dict[str, Any], created_ns: int) -> dict[str, Any]:
    """The stored form of a chunk: ``{"created_ns": <int>, "record": {...}}``."""
    return {"created_ns": created_ns, "record": record}


def decode_chunk(data: Any, where: str) -> tuple[int, dict[str, Any]]:
    """``(created_ns, record)`` of a parsed chunk; else ``RunLogStoreError`` naming ``where``."""
    if not (
        isinstance(data, dict)
        and isinstance(data.get("created_ns"), int)
        and isinstance(data.get("record"), dict)
    ):
        raise RunLogStoreError(
            f"The run log record {where} is not a chunk of the form "
            '{"created_ns": <int>, "record": {...}}'
        )
    return data["created_ns"], data["record"]


def attach_descendants(
    run_id: str,
    root: RunLog | StepLog | BranchLog,
    step_logs: Iterable[StepLog],
    branch_logs: Iterable[BranchLog],
) -> None:
    """Attach the step and branch logs below ``root`` to their parents, under ``root``.

    Every store that keeps one record per step and branch rebuilds a run's tree this way. The
    logs come in creation order, so every parent gets its children in that order; a log whose
    parent is missing is left out with a warning naming ``run_id``.
    """
    steps: dict[str, StepLog] = {}
    containers: dict[str, RunLog | BranchLog] = {}
    if isinstance(root, StepLog):
        steps[root.internal_name] = root
    else:
        containers["" if isinstance(root, RunLog) else root.internal_name] = root
    for step in step_logs:
        steps.setdefault(step.internal_name, step)
    for branch in branch_logs:
        containers.setdefault(branch.internal_name, branch)
    for name, container in containers.items():
        if container is root or not isinstance(container, BranchLog):
            continue
        parent = steps.get(parent_step_name(name))
        if parent is None:
            logger.warning("Run %s: branch log %r has no parent step", run_id, name)
        else:
            parent.branches[name] = container
    for name, step in steps.items():
        if step is root:
            continue
        owner = containers.get(parent_branch_name(name))
        if owner is None:
            logger.warning("Run %s: step log %r has no parent branch", run_id, name)
        else:
            owner.steps[name] = step


_Chunk = tuple[int, str, dict[str, Any]]  # created_ns, file name (breaks ties), record


class ChunkedFileSystemRunLogStore(BaseRunLogStore):
    """Each run is a folder with one JSON file per parameter, step log and branch log.

    The default store. Adding or replacing a step, branch or parameter writes only its own file,
    whatever the size of the run, and writers of one run (parallel branches in several
    processes) serialise on a ``flock`` of the run's ``.lock`` file, so nothing is lost.
    Replacing a step (or branch) log rewrites its own record; the branches (or steps) stored
    under it stay, as in every built-in store.
    """

    service_name: ClassVar[str] = "chunked-fs"
    supports_concurrent_writers: ClassVar[bool] = True

    log_folder: str = ".run_log_store"

    # ------------------------------------------------------------------ paths and records

    def _folder(self, run_id: str) -> Path:
        return Path(self.log_folder) / encode_run_id(run_id)

    def _chunk(self, run_id: str, kind: str, name: str) -> Path:
        return self._folder(run_id) / KIND_FOLDERS[kind] / chunk_path_name(kind, name)

    def _make_folders(self, folder: Path) -> None:
        for kind_folder in KIND_FOLDERS.values():
            ensure_folder(folder / kind_folder)

    def location(self, run_id: str) -> str:
        return str(self._folder(run_id))

    def _require_run(self, run_id: str) -> Path:
        """The run's folder; ``RunLogNotFoundError`` if the run was never created."""
        folder = self._folder(run_id)
        if not (folder / RUN_FILE).exists():
            raise RunLogNotFoundError(run_id, where=str(folder))
        return folder

    def _lock(self, folder: Path) -> AbstractContextManager[None]:
        return exclusive_lock(folder / LOCK_FILE)

    def _read_head(self, run_id: str) -> RunLog:
        path = self._folder(run_id) / RUN_FILE
        try:
            data = read_json(path)
        except FileNotFoundError:
            raise RunLogNotFoundError(run_id, where=str(path.parent)) from None
        return validate(path, RunLog, data)

    def _write_head(self, run_log: RunLog) -> None:
        head = run_log.model_copy(update={"steps": {}, "parameters": {}})
        write_json(self._folder(run_log.run_id) / RUN_FILE, head)

    @staticmethod
    def _read_chunk(path: Path) -> tuple[int, dict[str, Any]]:
        """``(created_ns, record)`` of a chunk; ``FileNotFoundError`` passes through."""
        return decode_chunk(read_json(path), str(path))

    @classmethod
    def _write_chunk(
        cls, path: Path, record: dict[str, Any], created_ns: int | None = None
    ) -> None:
        """Write a chunk; without ``created_ns`` it keeps the stamp of the chunk it replaces.

        The caller holds the run's lock, so reading the old stamp and writing are one step.
        """
        if created_ns is None:
            try:
                created_ns = cls._read_chunk(path)[0]
            except FileNotFoundError:
                created_ns = next_stamp()
        write_json(path, encode_chunk(record, created_ns))

    def _list_folder(self, run_id: str, kind: str) -> list[str]:
        folder = self._folder(run_id) / KIND_FOLDERS[kind]
        try:
            return os.listdir(folder)
        except FileNotFoundError:
            raise RunLogNotFoundError(run_id, where=str(folder)) from None
        except OSError as exc:
            raise RunLogStoreError(f"Cannot list {folder}: {exc.strerror or exc}") from exc

    def _chunk_paths(self, run_id: str, kind: str) -> list[Path]:
        """The chunk files of ``kind`` (missing folder: none)."""
        try:
            file_names = self._list_folder(run_id, kind)
        except RunLogNotFoundError:
            return []
        folder = self._folder(run_id) / KIND_FOLDERS[kind]
        return [
            folder / name
            for name in file_names
            if (chunk_kind_and_name(name) or ("", ""))[0] == kind
        ]

    def _read_chunks(self, run_id: str, kind: str, under: str | None = None) -> list[_Chunk]:
        """The chunks of ``kind`` in creation order.

        With ``under``, only those named inside that step or branch (``under.``...).
        """
        folder = self._folder(run_id) / KIND_FOLDERS[kind]
        chunks = []
        for file_name in self._list_folder(run_id, kind):
            parsed = chunk_kind_and_name(file_name)
            if parsed is None or parsed[0] != kind:
                continue
            # A shortened name is not the whole name: its record says where it belongs.
            shortened = SHORTENED_MARK in file_name
            if under is not None and not shortened and not parsed[1].startswith(under + "."):
                continue
            try:
                created_ns, record = self._read_chunk(folder / file_name)
            except FileNotFoundError:
                # Removed since the listing (put_run_log dropping a stale record).
                continue
            if (
                under is not None
                and shortened
                and not str(record.get("internal_name", "")).startswith(under + ".")
            ):
                continue
            chunks.append((created_ns, file_name, record))
        chunks.sort(key=lambda chunk: chunk[:2])
        return chunks

    def _attach_descendants(self, run_id: str, root: RunLog | StepLog | BranchLog) -> None:
        """Rebuild under ``root`` every step and branch below it from their chunks."""
        under = None if isinstance(root, RunLog) else root.internal_name
        folder = self._folder(run_id)
        steps = (
            validate(folder / KIND_FOLDERS[STEP] / file_name, StepLog, record)
            for _, file_name, record in self._read_chunks(run_id, STEP, under)
        )
        branches = (
            validate(folder / KIND_FOLDERS[BRANCH] / file_name, BranchLog, record)
            for _, file_name, record in self._read_chunks(run_id, BRANCH, under)
        )
        attach_descendants(run_id, root, steps, branches)

    def _read_parameters(self, run_id: str) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for _, _, record in self._read_chunks(run_id, PARAMETER):
            parameters.update(record)
        return parameters

    # ------------------------------------------------------------------ runs

    def create_run_log(
        self,
        run_id: str,
        dag_hash: str = "",
        use_cached: bool = False,
        tag: str = "",
        original_run_id: str = "",
        status: str = PROCESSING,
    ) -> RunLog:
        run_log = new_run_log(
            run_id, dag_hash, use_cached, tag, original_run_id, status, self.now()
        )
        folder = self._folder(run_id)
        ensure_folder(folder)
        with self._lock(folder):
            if (folder / RUN_FILE).exists():
                raise RunLogExistsError(run_id)
            self._make_folders(folder)
            self._write_head(run_log)
        return run_log

    def get_run_log_by_id(self, run_id: str, full: bool = True) -> RunLog:
        run_log = self._read_head(run_id)
        run_log.parameters = self._read_parameters(run_id)
        if full:
            self._attach_descendants(run_id, run_log)
        return run_log

    def put_run_log(self, run_log: RunLog) -> None:
        run_id = run_log.run_id
        folder = self._folder(run_id)
        ensure_folder(folder)
        with self._lock(folder):
            self._make_folders(folder)
            before = [path for kind in KIND_FOLDERS for path in self._chunk_paths(run_id, kind)]
            self._write_head(run_log)
            written = set()
            for key, value in run_log.parameters.items():
                path = self._chunk(run_id, PARAMETER, key)
                self._write_chunk(path, {key: value}, next_stamp())
                written.add(path)
            # Depth first, stamping as we go: each step's branches and each branch's steps
            # get increasing stamps in their dict order, which is all assembly needs.
            pending: list[StepLog | BranchLog] = list(reversed(run_log.steps.values()))
            while pending:
                item = pending.pop()
                if isinstance(item, StepLog):
                    path = self._chunk(run_id, STEP, item.internal_name)
                    record = item.model_dump(exclude={"branches"})
                    children: list[StepLog | BranchLog] = list(item.branches.values())
                else:
                    path = self._chunk(run_id, BRANCH, item.internal_name)
                    record = item.model_dump(exclude={"steps"})
                    children = list(item.steps.values())
                self._write_chunk(path, record, next_stamp())
                written.add(path)
                pending.extend(reversed(children))
            # The put log replaces the stored one entirely: records it does not have go.
            for path in before:
                if path not in written:
                    with suppress(FileNotFoundError):
                        path.unlink()

    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        with self._lock(self._require_run(run_id)):
            run_log = self._read_head(run_id)
            set_status(run_log, status, self.now(), message)
            self._write_head(run_log)

    def list_runs(self) -> list[RunLog]:
        root = Path(self.log_folder)
        if not root.is_dir():
            return []
        runs = []
        for entry in sorted(os.listdir(root)):
            if not (root / entry / RUN_FILE).is_file():
                continue
            # Folder names are percent-encoded run ids.
            try:
                runs.append(self.get_run_log_by_id(unquote(entry), full=False))
            except RunLogNotFoundError:
                continue
            except RunLogStoreError as exc:
                runs.append(unreadable_run(unquote(entry), exc))
        return sort_runs(runs)

    # ------------------------------------------------------------------ parameters and config

    def get_parameters(self, run_id: str) -> dict[str, Any]:
        self._require_run(run_id)
        return self._read_parameters(run_id)

    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        folder = self._require_run(run_id)
        with self._lock(folder):
            for key, value in parameters.items():
                self._write_chunk(self._chunk(run_id, PARAMETER, key), {key: value})

    def get_run_config(self, run_id: str) -> dict[str, Any]:
        return self._read_head(run_id).run_config

    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        with self._lock(self._require_run(run_id)):
            run_log = self._read_head(run_id)
            run_log.run_config.update(run_config)
            self._write_head(run_log)

    # ------------------------------------------------------------------ steps and branches

    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        path = self._chunk(run_id, STEP, internal_name)
        try:
            _, record = self._read_chunk(path)
        except FileNotFoundError:
            self._require_run(run_id)
            raise StepLogNotFoundError(run_id, internal_name) from None
        step_log = validate(path, StepLog, record)
        if full:
            self._attach_descendants(run_id, step_log)
        return step_log

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        folder = self._require_run(run_id)
        parent = parent_branch_name(step_log.internal_name)
        with self._lock(folder):
            if parent and not self._chunk(run_id, BRANCH, parent).exists():
                raise BranchLogNotFoundError(run_id, parent)
            record = step_log.model_dump(exclude={"branches"})
            self._write_chunk(self._chunk(run_id, STEP, step_log.internal_name), record)

    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        if not internal_branch_name:
            return self.get_run_log_by_id(run_id, full=full)
        path = self._chunk(run_id, BRANCH, internal_branch_name)
        try:
            _, record = self._read_chunk(path)
        except FileNotFoundError:
            self._require_run(run_id)
            raise BranchLogNotFoundError(run_id, internal_branch_name) from None
        branch_log = validate(path, BranchLog, record)
        if full:
            self._attach_descendants(run_id, branch_log)
        return branch_log

    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        if isinstance(branch_log, RunLog):
            self.put_run_log(branch_log)
            return
        folder = self._require_run(run_id)
        parent = parent_step_name(branch_log.internal_name)
        with self._lock(folder):
            if not self._chunk(run_id, STEP, parent).exists():
                raise StepLogNotFoundError(run_id, parent)
            record = branch_log.model_dump(exclude={"steps"})
            self._write_chunk(self._chunk(run_id, BRANCH, branch_log.internal_name), record)
