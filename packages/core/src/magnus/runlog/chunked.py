"""Chunked run-log stores: one small JSON record per parameter, step log and branch log.

:class:`ChunkedRunLogStore` implements the whole store contract over a
:class:`magnus.runlog.storage.RecordStorage`, in the layout of :mod:`magnus.runlog.chunks`;
``chunked-fs`` (:class:`ChunkedFileSystemRunLogStore`, here) and ``chunked-s3`` (in
magnus-catalog-s3) differ only in their settings and their storage.

Adding or replacing a step, branch or parameter reads its one record (to keep its creation
stamp) and writes it; nothing else of the run is read or rewritten. Replacing a step (or branch)
log rewrites its own record; the branches (or steps) stored under it stay, as in every built-in
store.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from magnus.exceptions import (
    BranchLogNotFoundError,
    RunLogExistsError,
    RunLogNotFoundError,
    RunLogStoreError,
    StepLogNotFoundError,
)
from magnus.internal_names import SHORTENED_MARK
from magnus.runlog.base import BaseRunLogStore, parent_branch_name, parent_step_name
from magnus.runlog.chunks import (
    BRANCH,
    KIND_FOLDERS,
    PARAMETER,
    RUN_FILE,
    SNAPSHOT_FILE,
    STEP,
    SUMMARY_FILE,
    attach_descendants,
    chunk_file_name,
    chunk_kind_and_name,
    chunk_parts,
    chunk_path_name,
    chunk_record,
    decode_chunk,
    encode_chunk,
    next_stamp,
    not_a_chunk,
    run_summary,
    summarised_run,
)
from magnus.runlog.files import encode_name
from magnus.runlog.fingerprint_index import INDEX_RUN
from magnus.runlog.folders import folder_storage
from magnus.runlog.memory import new_run_log, set_status, sort_runs, unreadable_run
from magnus.runlog.models import (
    PROCESSING,
    TERMINAL_STATUSES,
    BranchLog,
    RunLog,
    StepLog,
    share_field_sets,
)
from magnus.runlog.storage import RecordStorage

__all__ = [
    "ChunkedFileSystemRunLogStore",
    "ChunkedRunLogStore",
    "attach_descendants",
    "chunk_file_name",
    "chunk_path_name",
    "decode_chunk",
    "encode_chunk",
]

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
LogT = TypeVar("LogT", StepLog, BranchLog)

_Chunk = tuple[int, str, Any]  # created_ns, file name (breaks ties), record (or its log)


class ChunkedRunLogStore(BaseRunLogStore):
    """A run-log store keeping each record of a run apart, over a storage given by subclasses.

    Each update costs O(1) storage operations whatever the size of the run; reading a whole run
    lists each kind of record once and reads the records (at once, where the storage can).
    """

    @abstractmethod
    def storage(self) -> RecordStorage:
        """Where this store's records live (cheap to make: called once per operation)."""

    def location(self, run_id: str) -> str:
        return self.storage().location(run_id)

    # ------------------------------------------------------------------ records

    @staticmethod
    def _validate(
        storage: RecordStorage, run_id: str, record: str, model: type[ModelT], data: Any
    ) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RunLogStoreError(
                f"The run log record {storage.where(run_id, record)} is not a valid "
                f"{model.__name__}: {exc}"
            ) from exc

    def _read_head(self, storage: RecordStorage, run_id: str) -> RunLog:
        data = storage.read(run_id, RUN_FILE)
        if data is None:
            raise RunLogNotFoundError(run_id, where=storage.location(run_id))
        return self._validate(storage, run_id, RUN_FILE, RunLog, data)

    @staticmethod
    def _head(run_log: RunLog) -> RunLog:
        """What ``RunLog.json`` holds: the run without its steps and parameters."""
        return run_log.model_copy(update={"steps": {}, "parameters": {}})

    def _change_head(
        self, storage: RecordStorage, run_id: str, change: Callable[[RunLog], None]
    ) -> None:
        """Read ``RunLog.json``, ``change`` it and write it back, losing no other writer's."""

        def changed(data: Any) -> RunLog:
            if data is None:
                raise RunLogNotFoundError(run_id, where=storage.location(run_id))
            run_log = self._validate(storage, run_id, RUN_FILE, RunLog, data)
            change(run_log)
            self._drop_snapshot(storage, run_id)
            return self._head(run_log)

        if storage.keeps_summaries:
            with storage.lock(run_id):
                head = changed(storage.read(run_id, RUN_FILE))
                storage.write(run_id, RUN_FILE, head)
                self._write_summary(storage, run_id, head)
            return
        storage.update(run_id, RUN_FILE, changed)

    @staticmethod
    def _write_summary(storage: RecordStorage, run_id: str, head: RunLog) -> None:
        """Keep the summary of the ``RunLog.json`` just written (the run's lock is held)."""
        if not storage.keeps_summaries:
            return
        try:
            version = storage.version(run_id, RUN_FILE)
            if version is not None:
                storage.write(run_id, SUMMARY_FILE, run_summary(head, version))
        except RunLogStoreError as exc:
            # Only a shortcut: while the summary is out of date, listing reads RunLog.json.
            logger.debug("No summary of run %s: %s", run_id, exc)

    @staticmethod
    def _require_run(storage: RecordStorage, run_id: str) -> None:
        if not storage.exists(run_id, RUN_FILE):
            raise RunLogNotFoundError(run_id, where=storage.location(run_id))

    @staticmethod
    def _read_chunk(
        storage: RecordStorage, run_id: str, record: str, shared: bool = False
    ) -> tuple[int, dict[str, Any]] | None:
        """``(created_ns, record)`` of a chunk; ``None`` if there is no such record.

        ``shared``: the record may be one read before (:meth:`RecordStorage.read_shared`).
        """
        data = storage.read_shared(run_id, record) if shared else storage.read(run_id, record)
        if data is None:
            return None
        parts = chunk_parts(data)
        if parts is None:
            raise not_a_chunk(storage.where(run_id, record))
        return parts

    def _write_chunk(
        self,
        storage: RecordStorage,
        run_id: str,
        record: str,
        data: dict[str, Any],
        check_new: Callable[[], None] | None = None,
    ) -> None:
        """Write a chunk, keeping the stamp of the one it replaces; ``check_new`` vets a new one.

        The caller holds the run's lock, so reading the old stamp and writing are one step.
        """
        chunk = self._stamped(storage, run_id, record, data, check_new)
        self._drop_snapshot(storage, run_id)
        storage.write(run_id, record, chunk)

    def _stamped(
        self,
        storage: RecordStorage,
        run_id: str,
        record: str,
        data: dict[str, Any],
        check_new: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The chunk of ``data`` as ``record``, with the stamp of the one it replaces or a new
        one (``check_new`` vets a new one); the caller holds the run's lock."""
        existing = self._read_chunk(storage, run_id, record)
        if existing is not None:
            return encode_chunk(data, existing[0])
        if check_new is not None:
            check_new()
        return encode_chunk(data, next_stamp())

    @staticmethod
    def _drop_snapshot(storage: RecordStorage, run_id: str) -> None:
        """Remove the run's snapshot before a change (the run's lock is held): it would be stale."""
        if storage.keeps_snapshots:
            storage.delete(run_id, [SNAPSHOT_FILE])

    def _read_snapshot(self, storage: RecordStorage, run_id: str) -> RunLog | None:
        """The whole run from its snapshot, if it has one that can be read."""
        if not storage.keeps_snapshots:
            return None
        try:
            data = storage.read(run_id, SNAPSHOT_FILE)
            if data is None:
                return None
            run_log = RunLog.model_validate(data)
            share_field_sets(run_log)
            return run_log
        except (RunLogStoreError, ValidationError):
            # Only a shortcut: the records themselves are read instead.
            return None

    def _assemble_and_snapshot(self, storage: RecordStorage, run_id: str) -> RunLog | None:
        """The whole run assembled from its records under its lock, kept as its snapshot.

        Only for a run that has ended, so that ``runs show`` (and ``retry``, reports) read one
        file rather than one per step; ``None`` when the snapshot cannot be made (a read-only
        store, say): the caller reads the records as usual.
        """
        try:
            with storage.lock(run_id):
                run_log = self._read_head(storage, run_id)
                run_log.parameters = self._read_parameters(storage, run_id)
                self._attach_descendants(storage, run_id, run_log)
                storage.write(run_id, SNAPSHOT_FILE, run_log)
        except (RunLogStoreError, OSError) as exc:
            logger.debug("No snapshot of run %s: %s", run_id, exc)
            return None
        return run_log

    def _check_new_step(self, storage: RecordStorage, run_id: str, internal_name: str) -> None:
        """A new step log needs its run and its parent branch (a stored one implies them)."""
        self._require_run(storage, run_id)
        parent = parent_branch_name(internal_name)
        if parent and not storage.exists(run_id, chunk_record(BRANCH, parent, storage.name_limit)):
            raise BranchLogNotFoundError(run_id, parent)

    def _check_new_branch(self, storage: RecordStorage, run_id: str, internal_name: str) -> None:
        """A new branch log needs its run and its parent step (a stored one implies them)."""
        self._require_run(storage, run_id)
        parent = parent_step_name(internal_name)
        if not storage.exists(run_id, chunk_record(STEP, parent, storage.name_limit)):
            raise StepLogNotFoundError(run_id, parent)

    def _chunk_names(
        self, storage: RecordStorage, run_id: str, kind: str, under: str | None
    ) -> list[str]:
        """The file names of the chunks of ``kind``; with ``under``, of those that may be below
        it (a shortened name is not the whole name: its record says where it belongs)."""
        prefix = f"{kind}-"
        if under is not None and storage.name_limit is None:
            # Percent-encoding works character by character, so the encoded "under." (without
            # the case mask that follows a whole name) prefixes every name below it. Where
            # names are bounded, a shortened one may keep less than that: no narrowing.
            prefix += encode_name(under + ".").partition("^")[0]
        names = []
        for name in storage.names(run_id, KIND_FOLDERS[kind], prefix):
            parsed = chunk_kind_and_name(name)
            if parsed is None or parsed[0] != kind:
                continue
            if (
                under is not None
                and SHORTENED_MARK not in name
                and not parsed[1].startswith(under + ".")
            ):
                continue
            names.append(name)
        return names

    def _read_chunks(
        self,
        storage: RecordStorage,
        run_id: str,
        kind: str,
        under: str | None = None,
        shared: bool = False,
        convert: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> list[_Chunk]:
        """The chunks of ``kind`` in creation order; with ``under``, only those named below it.

        ``convert`` (record name, record) makes each record into what is kept, as soon as it
        is read: a whole run is then never held twice, as parsed JSON and as its logs.
        """
        folder = KIND_FOLDERS[kind]

        def read(name: str) -> _Chunk | None:
            record = f"{folder}/{name}"
            chunk = self._read_chunk(storage, run_id, record, shared)
            if chunk is None:  # removed since the listing (put_run_log dropping it)
                return None
            if (
                under is not None
                and SHORTENED_MARK in name
                and not str(chunk[1].get("internal_name", "")).startswith(under + ".")
            ):
                return None
            return chunk[0], name, chunk[1] if convert is None else convert(record, chunk[1])

        with storage.reading(run_id):
            found = storage.map(read, self._chunk_names(storage, run_id, kind, under))
        chunks = [chunk for chunk in found if chunk is not None]
        chunks.sort(key=lambda chunk: chunk[:2])
        return chunks

    def _read_logs(
        self, storage: RecordStorage, run_id: str, kind: str, model: type[LogT], under: str | None
    ) -> list[LogT]:
        """The step (or branch) logs of ``kind`` in creation order (:meth:`_read_chunks`), each
        made lean as it is read (:func:`magnus.runlog.models.share_field_sets`)."""

        def log(record: str, data: dict[str, Any]) -> LogT:
            made = self._validate(storage, run_id, record, model, data)
            share_field_sets(made)
            return made

        return [made for _, _, made in self._read_chunks(storage, run_id, kind, under, False, log)]

    def _attach_descendants(
        self, storage: RecordStorage, run_id: str, root: RunLog | StepLog | BranchLog
    ) -> None:
        """Rebuild under ``root`` every step and branch log below it from their chunks."""
        under = None if isinstance(root, RunLog) else root.internal_name
        steps = self._read_logs(storage, run_id, STEP, StepLog, under)
        branches = self._read_logs(storage, run_id, BRANCH, BranchLog, under)
        attach_descendants(run_id, root, steps, branches)

    def _read_parameters(
        self, storage: RecordStorage, run_id: str, shared: bool = False
    ) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for _, _, record in self._read_chunks(storage, run_id, PARAMETER, shared=shared):
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
        storage = self.storage()
        storage.make_run(run_id, KIND_FOLDERS.values())
        if not storage.keeps_summaries:
            if not storage.create(run_id, RUN_FILE, self._head(run_log)):
                raise RunLogExistsError(run_id)
            return run_log
        with storage.lock(run_id):
            if storage.exists(run_id, RUN_FILE):
                raise RunLogExistsError(run_id)
            storage.write(run_id, RUN_FILE, self._head(run_log))
            self._write_summary(storage, run_id, run_log)
        return run_log

    def get_run_log_by_id(self, run_id: str, full: bool = True) -> RunLog:
        storage = self.storage()
        if full:
            kept = self._read_snapshot(storage, run_id)
            if kept is not None:
                return kept
        run_log = self._read_head(storage, run_id)
        if full and storage.keeps_snapshots and run_log.status in TERMINAL_STATUSES:
            assembled = self._assemble_and_snapshot(storage, run_id)
            if assembled is not None:
                return assembled
        run_log.parameters = self._read_parameters(storage, run_id)
        if full:
            self._attach_descendants(storage, run_id, run_log)
        return run_log

    def put_run_log(self, run_log: RunLog) -> None:
        run_id = run_log.run_id
        storage = self.storage()
        limit = storage.name_limit
        storage.make_run(run_id, KIND_FOLDERS.values())
        with storage.lock(run_id):
            self._drop_snapshot(storage, run_id)
            before = {
                f"{folder}/{name}"
                for kind, folder in KIND_FOLDERS.items()
                for name in storage.names(run_id, folder, f"{kind}-")
                if (chunk_kind_and_name(name) or ("", ""))[0] == kind
            }
            storage.write(run_id, RUN_FILE, self._head(run_log))
            self._write_summary(storage, run_id, run_log)
            writes: list[tuple[str, dict[str, Any], int]] = [
                (chunk_record(PARAMETER, key, limit), {key: value}, next_stamp())
                for key, value in run_log.parameters.items()
            ]
            # Depth first, stamping in dict order: each parent's children get increasing
            # stamps, which is all that assembly needs to restore their order.
            pending: list[StepLog | BranchLog] = list(reversed(run_log.steps.values()))
            while pending:
                item = pending.pop()
                if isinstance(item, StepLog):
                    record = chunk_record(STEP, item.internal_name, limit)
                    data = item.model_dump(exclude={"branches"})
                    children: list[StepLog | BranchLog] = list(item.branches.values())
                else:
                    record = chunk_record(BRANCH, item.internal_name, limit)
                    data = item.model_dump(exclude={"steps"})
                    children = list(item.steps.values())
                writes.append((record, data, next_stamp()))
                pending.extend(reversed(children))
            storage.map(
                lambda write: storage.write(run_id, write[0], encode_chunk(write[1], write[2])),
                writes,
            )
            # The put log replaces the stored one entirely: records it does not have go.
            storage.delete(run_id, sorted(before - {record for record, _, _ in writes}))

    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        self._change_head(
            self.storage(), run_id, lambda run_log: set_status(run_log, status, self.now(), message)
        )

    def list_runs(self) -> list[RunLog]:
        """Every run of the storage: the run-level fields of ``RunLog.json`` only.

        Parameters are left out: they would cost a listing and a read per parameter for every
        run. Folders without a ``RunLog.json`` (a catalog's, say) are skipped; a run whose
        ``RunLog.json`` cannot be read is listed as unreadable.
        """
        storage = self.storage()
        run_ids = [run_id for run_id in storage.run_ids() if run_id != INDEX_RUN]
        listed = storage.map(lambda run_id: self._listed_head(storage, run_id), run_ids)
        return sort_runs(run for run in listed if run is not None)

    def _listed_head(self, storage: RecordStorage, run_id: str) -> RunLog | None:
        """The run's ``RunLog.json``; ``None`` without one, an unreadable run if it is damaged."""
        try:
            data = storage.read(run_id, RUN_FILE)
            if data is None:
                return None
            return self._validate(storage, run_id, RUN_FILE, RunLog, data)
        except RunLogStoreError as exc:
            return unreadable_run(run_id, exc)

    def _read_summary(self, storage: RecordStorage, run_id: str) -> RunLog | None:
        """The run from its summary, if it has one made from its ``RunLog.json`` as it is."""
        try:
            data = storage.read(run_id, SUMMARY_FILE)
            run = summarised_run(data, None if data is None else storage.version(run_id, RUN_FILE))
            return None if run is None else RunLog.model_validate(run)
        except (RunLogStoreError, ValidationError):
            # Only a shortcut: RunLog.json itself is read instead.
            return None

    def list_run_summaries(self) -> list[RunLog]:
        """Every run of the storage from its summary, where it has one that is up to date.

        A summary costs a small read and a look at ``RunLog.json`` (:meth:`RecordStorage.version`)
        rather than reading it whole; a run without one (written before summaries, or by a
        writer killed between the two files) is read from its ``RunLog.json``.
        """
        storage = self.storage()
        if not storage.keeps_summaries:
            return self.list_runs()

        def summary(run_id: str) -> RunLog | None:
            return self._read_summary(storage, run_id) or self._listed_head(storage, run_id)

        run_ids = [run_id for run_id in storage.run_ids() if run_id != INDEX_RUN]
        return sort_runs(run for run in storage.map(summary, run_ids) if run is not None)

    # ------------------------------------------------------------------ parameters and config

    def get_parameters(self, run_id: str) -> dict[str, Any]:
        storage = self.storage()
        self._require_run(storage, run_id)
        return self._read_parameters(storage, run_id)

    def read_parameters_shared(self, run_id: str) -> dict[str, Any]:
        if not self._reads_parameters_as(ChunkedRunLogStore):
            return self.get_parameters(run_id)
        storage = self.storage()
        self._require_run(storage, run_id)
        return self._read_parameters(storage, run_id, shared=True)

    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        storage = self.storage()
        self._require_run(storage, run_id)
        with storage.lock(run_id):
            storage.map(
                lambda item: self._write_chunk(
                    storage,
                    run_id,
                    chunk_record(PARAMETER, item[0], storage.name_limit),
                    {item[0]: item[1]},
                ),
                list(parameters.items()),
            )

    def get_run_config(self, run_id: str) -> dict[str, Any]:
        return self._read_head(self.storage(), run_id).run_config

    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        self._change_head(
            self.storage(), run_id, lambda run_log: run_log.run_config.update(run_config)
        )

    # ------------------------------------------------------------------ steps and branches

    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        storage = self.storage()
        record = chunk_record(STEP, internal_name, storage.name_limit)
        chunk = self._read_chunk(storage, run_id, record)
        if chunk is None:
            self._require_run(storage, run_id)
            raise StepLogNotFoundError(run_id, internal_name)
        step_log = self._validate(storage, run_id, record, StepLog, chunk[1])
        if full:
            self._attach_descendants(storage, run_id, step_log)
        return step_log

    def get_step_log_with_branches(self, internal_name: str, run_id: str) -> StepLog:
        """The step's record and those of its own branches; the steps below are not read (a map
        of 10,000 elements: 10,000 records, not every record of every element)."""
        step_log = self.get_step_log(internal_name, run_id, full=False)
        storage = self.storage()
        for branch_log in self._read_logs(storage, run_id, BRANCH, BranchLog, internal_name):
            if parent_step_name(branch_log.internal_name) == internal_name:
                step_log.branches[branch_log.internal_name] = branch_log
        return step_log

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        storage = self.storage()
        name = step_log.internal_name
        with storage.lock(run_id):
            self._write_chunk(
                storage,
                run_id,
                chunk_record(STEP, name, storage.name_limit),
                step_log.model_dump(exclude={"branches"}),
                lambda: self._check_new_step(storage, run_id, name),
            )

    def add_step_log_and_parameters(
        self, step_log: StepLog, run_id: str, parameters: dict[str, Any]
    ) -> None:
        """The parameters' records and the step's, written at once under one hold of the lock."""
        storage = self.storage()
        limit = storage.name_limit
        name = step_log.internal_name

        def require_run() -> None:
            self._require_run(storage, run_id)

        def check_new_step() -> None:
            self._check_new_step(storage, run_id, name)

        with storage.lock(run_id):
            records: list[tuple[str, Any]] = []
            for key, value in parameters.items():
                record = chunk_record(PARAMETER, key, limit)
                records.append(
                    (record, self._stamped(storage, run_id, record, {key: value}, require_run))
                )
            record = chunk_record(STEP, name, limit)
            data = step_log.model_dump(exclude={"branches"})
            records.append((record, self._stamped(storage, run_id, record, data, check_new_step)))
            self._drop_snapshot(storage, run_id)
            storage.write_many(run_id, records)

    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        if not internal_branch_name:
            return self.get_run_log_by_id(run_id, full=full)
        storage = self.storage()
        record = chunk_record(BRANCH, internal_branch_name, storage.name_limit)
        chunk = self._read_chunk(storage, run_id, record)
        if chunk is None:
            self._require_run(storage, run_id)
            raise BranchLogNotFoundError(run_id, internal_branch_name)
        branch_log = self._validate(storage, run_id, record, BranchLog, chunk[1])
        if full:
            self._attach_descendants(storage, run_id, branch_log)
        return branch_log

    def update_branch_log_status(self, internal_branch_name: str, run_id: str, status: str) -> None:
        """The branch's one record read and written back with its status, under the run's lock:
        no log is made of it, and no other writer's change is lost in between."""
        if not internal_branch_name:
            self.update_run_log_status(run_id, status)
            return
        storage = self.storage()
        record = chunk_record(BRANCH, internal_branch_name, storage.name_limit)
        with storage.lock(run_id):
            chunk = self._read_chunk(storage, run_id, record)
            if chunk is None:
                self._require_run(storage, run_id)
                raise BranchLogNotFoundError(run_id, internal_branch_name)
            self._drop_snapshot(storage, run_id)
            storage.write(run_id, record, encode_chunk({**chunk[1], "status": status}, chunk[0]))

    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        if isinstance(branch_log, RunLog):
            self.put_run_log(branch_log)
            return
        storage = self.storage()
        name = branch_log.internal_name
        with storage.lock(run_id):
            self._write_chunk(
                storage,
                run_id,
                chunk_record(BRANCH, name, storage.name_limit),
                branch_log.model_dump(exclude={"steps"}),
                lambda: self._check_new_branch(storage, run_id, name),
            )

    def add_branch_logs(self, branch_logs: list[BranchLog], run_id: str) -> None:
        if not branch_logs:
            return
        storage = self.storage()
        limit = storage.name_limit
        with storage.lock(run_id):
            checked: set[str] = set()
            records: list[tuple[str, Any]] = []

            def check_new(name: str) -> None:
                # The branches of one fan-out share their step: it is looked up once.
                if parent_step_name(name) not in checked:
                    self._check_new_branch(storage, run_id, name)
                    checked.add(parent_step_name(name))

            for branch_log in branch_logs:
                name = branch_log.internal_name
                record = chunk_record(BRANCH, name, limit)
                data = branch_log.model_dump(exclude={"steps"})
                chunk = self._stamped(storage, run_id, record, data, partial(check_new, name))
                records.append((record, chunk))
            self._drop_snapshot(storage, run_id)
            storage.write_many(run_id, records)

    # ------------------------------------------------------------------ fingerprint index

    def index_storage(self) -> RecordStorage:
        """One record per key, beside the runs (:mod:`magnus.runlog.fingerprint_index`)."""
        return self.storage()


class ChunkedFileSystemRunLogStore(ChunkedRunLogStore):
    """Each run is a folder: its run-level record, and a journal of its parameters, step logs
    and branch logs.

    The default store: ``<log_folder>/<run_id>/`` holds ``RunLog.json``, ``.lock`` and
    ``records.journal``, to which each record of :mod:`magnus.runlog.chunks` is appended
    (:mod:`magnus.runlog.record_journal`: a step costs an append, not a file creation). Writers
    of one run (parallel branches in several processes) serialise on a ``flock`` of ``.lock``,
    so nothing is lost; runs written with one file per record are read as they are. Beside
    ``RunLog.json``, ``RunLog.summary.json`` holds what ``runs list`` shows
    (:mod:`magnus.runlog.chunks`). A run read whole replays its journal: no snapshot is kept,
    which would cost more to read than the journal does.
    """

    service_name: ClassVar[str] = "chunked-fs"
    supports_concurrent_writers: ClassVar[bool] = True

    log_folder: str = ".run_log_store"

    def storage(self) -> RecordStorage:
        return folder_storage(self.log_folder)
