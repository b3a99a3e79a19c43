"""The ``chunked-s3`` run-log store: the ``chunked-fs`` layout, one S3 object per record.

Objects of a run, under ``s3://<bucket>/<prefix>/<run_id>/`` (names exactly as ``chunked-fs``
writes them, see :mod:`magnus.runlog.chunked`):

* ``RunLog.json`` -- the run-level fields and ``run_config``;
* ``parameters/Parameter-<key>.json``, ``steps/StepLog-<internal name>.json``,
  ``branches/BranchLog-<internal branch name>.json`` -- one chunk per record, each
  ``{"created_ns": <int>, "record": {...}}``.

There is no lock file: S3 replaces an object atomically, and parallel branches write different
objects. The one record several writers change is ``RunLog.json`` (status and ``run_config``);
it is changed by read-modify-write made safe with conditional requests: the write carries
``If-Match: <ETag read>`` and is retried from a fresh read when another writer got there first.
A run is created with ``If-None-Match: *``, so two creators of one id cannot both succeed.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, TypeVar
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from magnus.exceptions import (
    BranchLogNotFoundError,
    RunLogExistsError,
    RunLogNotFoundError,
    RunLogStoreError,
    StepLogNotFoundError,
)
from magnus.runlog.base import BaseRunLogStore, parent_branch_name, parent_step_name
from magnus.runlog.chunked import (
    BRANCH,
    KIND_FOLDERS,
    PARAMETER,
    RUN_FILE,
    STEP,
    attach_descendants,
    chunk_file_name,
    chunk_kind_and_name,
    decode_chunk,
    encode_chunk,
    next_stamp,
)
from magnus.runlog.files import encode_name, encode_run_id
from magnus.runlog.memory import new_run_log, set_status, sort_runs, unreadable_run
from magnus.runlog.models import PROCESSING, BranchLog, RunLog, StepLog
from magnus_catalog_s3.connection import S3Connection, error_code, remote_errors

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

# Another writer changed the object between our read and our conditional write (412), or is
# writing it right now (409, real S3 only).
_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Read-modify-write attempts on RunLog.json before giving up; each conflict means another
# writer succeeded, so the run as a whole always progresses.
_HEAD_ATTEMPTS = 100

_Chunk = tuple[int, str, dict[str, Any]]  # created_ns, key (breaks ties), record


class _Conflict(Exception):
    """A conditional write lost against another writer."""


class ChunkedS3RunLogStore(S3Connection, BaseRunLogStore):
    """A run-log store in S3 with the chunked layout: O(1) requests per step, branch or parameter.

    Adding or replacing a step, branch or parameter reads its one object (to keep its creation
    stamp) and writes it; nothing else of the run is read or rewritten. Processes writing the
    same run at once (parallel branches) lose nothing. Reading a whole run lists the chunks
    (pages of 1000 keys) and fetches them ``max_concurrency`` at a time.
    """

    service_name: ClassVar[str] = "chunked-s3"
    supports_concurrent_writers: ClassVar[bool] = True

    # ------------------------------------------------------------------ keys

    def _run_folder(self, run_id: str) -> str:
        return self.key(encode_run_id(run_id)) + "/"

    def _head_key(self, run_id: str) -> str:
        return self._run_folder(run_id) + RUN_FILE

    def _kind_folder(self, run_id: str, kind: str) -> str:
        return f"{self._run_folder(run_id)}{KIND_FOLDERS[kind]}/"

    def _chunk_key(self, run_id: str, kind: str, name: str) -> str:
        return self._kind_folder(run_id, kind) + chunk_file_name(kind, name)

    def location(self, run_id: str) -> str:
        """``s3://bucket/prefix/run_id/``."""
        return self.url(self._run_folder(run_id))

    # ------------------------------------------------------------------ requests

    def _fail(self, doing: str, key: str, error: BaseException) -> NoReturn:
        raise RunLogStoreError(f"Cannot {doing} {self.url(key)}: {self.explain(error)}") from error

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """The object's content and ETag; ``None`` if there is no such object."""
        try:
            response = self.client().get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read(), response.get("ETag", "")
        except remote_errors() as exc:
            if error_code(exc) in _MISSING_CODES:
                return None
            self._fail("read the run log record", key, exc)

    def _exists(self, key: str) -> bool:
        try:
            self.client().head_object(Bucket=self.bucket, Key=key)
        except remote_errors() as exc:
            if error_code(exc) in _MISSING_CODES:
                return False
            self._fail("look for the run log record", key, exc)
        return True

    def _put(self, key: str, data: Any, **conditions: str) -> None:
        """Write ``data`` (pydantic models allowed) as indented JSON, as chunked-fs does."""
        try:
            body = json.dumps(to_jsonable_python(data), indent=4).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise RunLogStoreError(
                f"Cannot write {self.url(key)}: a value is not JSON serialisable: {exc}"
            ) from exc
        try:
            self.client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                **conditions,
            )
        except remote_errors() as exc:
            if conditions and error_code(exc) in _CONFLICT_CODES:
                raise _Conflict(key) from exc
            self._fail("write the run log record", key, exc)

    def _list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, through as many pages as there are."""
        keys: list[str] = []
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except remote_errors() as exc:
            self._fail("list the run log records under", prefix, exc)
        return keys

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            try:
                response = self.client().delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except remote_errors() as exc:
                self._fail("delete stale run log records such as", batch[0], exc)
            for error in response.get("Errors", []):
                raise RunLogStoreError(
                    f"Cannot delete the stale run log record {self.url(error.get('Key', ''))}: "
                    f"{error.get('Code')}: {error.get('Message')}"
                )

    def _map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``function`` over ``items``, up to ``max_concurrency`` requests at a time."""
        if len(items) <= 1:
            return [function(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(function, items))

    # ------------------------------------------------------------------ records

    def _validate(self, key: str, model: type[ModelT], data: Any) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RunLogStoreError(
                f"The run log record {self.url(key)} is not a valid {model.__name__}: {exc}"
            ) from exc

    def _parse(self, key: str, content: bytes) -> Any:
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunLogStoreError(
                f"The run log record {self.url(key)} is not valid JSON: {exc}"
            ) from exc

    def _read_head(self, run_id: str) -> tuple[RunLog, str]:
        """The run-level record and its ETag; ``RunLogNotFoundError`` if the run is unknown."""
        key = self._head_key(run_id)
        found = self._get(key)
        if found is None:
            raise RunLogNotFoundError(run_id, where=self.location(run_id))
        return self._validate(key, RunLog, self._parse(key, found[0])), found[1]

    def _write_head(self, run_log: RunLog, **conditions: str) -> None:
        head = run_log.model_copy(update={"steps": {}, "parameters": {}})
        self._put(self._head_key(run_log.run_id), head, **conditions)

    def _change_head(self, run_id: str, change: Callable[[RunLog], None]) -> None:
        """Read ``RunLog.json``, ``change`` it and write it back unless someone else did first."""
        for attempt in range(_HEAD_ATTEMPTS):
            run_log, etag = self._read_head(run_id)
            change(run_log)
            try:
                self._write_head(run_log, IfMatch=etag)
                return
            except _Conflict:
                # Random, growing pauses keep colliding writers from colliding again.
                time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
        raise RunLogStoreError(
            f"Cannot update {self.url(self._head_key(run_id))}: other writers kept changing it "
            f"({_HEAD_ATTEMPTS} attempts)"
        )

    def _require_run(self, run_id: str) -> None:
        if not self._exists(self._head_key(run_id)):
            raise RunLogNotFoundError(run_id, where=self.location(run_id))

    def _read_chunk(self, key: str) -> tuple[int, dict[str, Any]] | None:
        """``(created_ns, record)`` of a chunk; ``None`` if there is no such object."""
        found = self._get(key)
        if found is None:
            return None
        return decode_chunk(self._parse(key, found[0]), self.url(key))

    def _write_chunk(self, key: str, record: dict[str, Any], created_ns: int) -> None:
        self._put(key, encode_chunk(record, created_ns))

    def _stamp_of(self, key: str) -> int | None:
        """The creation stamp of an existing chunk (kept when it is replaced); ``None``: new."""
        existing = self._read_chunk(key)
        return None if existing is None else existing[0]

    def _read_chunks(self, run_id: str, kind: str, under: str | None = None) -> list[_Chunk]:
        """The chunks of ``kind`` in creation order; with ``under``, only those named below it."""
        folder = self._kind_folder(run_id, kind)
        listed = f"{folder}{kind}-"
        if under is not None:
            # Percent-encoding works character by character, so the encoded "under." (without
            # the case mask that follows a whole name) prefixes every name below it.
            listed += encode_name(under + ".").partition("^")[0]
        keys = []
        for key in self._list(listed):
            parsed = chunk_kind_and_name(key[len(folder) :])
            if parsed is None or parsed[0] != kind:
                continue
            if under is not None and not parsed[1].startswith(under + "."):
                continue
            keys.append(key)
        chunks = []
        for key, chunk in zip(keys, self._map(self._read_chunk, keys), strict=True):
            if chunk is not None:  # removed since the listing (put_run_log dropping it)
                chunks.append((chunk[0], key, chunk[1]))
        chunks.sort(key=lambda chunk: chunk[:2])
        return chunks

    def _read_parameters(self, run_id: str) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for _, _, record in self._read_chunks(run_id, PARAMETER):
            parameters.update(record)
        return parameters

    def _attach_descendants(self, run_id: str, root: RunLog | StepLog | BranchLog) -> None:
        """Rebuild under ``root`` every step and branch log below it from their chunks."""
        under = None if isinstance(root, RunLog) else root.internal_name
        steps = (
            self._validate(key, StepLog, record)
            for _, key, record in self._read_chunks(run_id, STEP, under)
        )
        branches = (
            self._validate(key, BranchLog, record)
            for _, key, record in self._read_chunks(run_id, BRANCH, under)
        )
        attach_descendants(run_id, root, steps, branches)

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
        # The HEAD answers for S3-compatible servers that ignore If-None-Match; the condition
        # settles a race between two creators on those that honour it.
        if self._exists(self._head_key(run_id)):
            raise RunLogExistsError(run_id)
        try:
            self._write_head(run_log, IfNoneMatch="*")
        except _Conflict:
            raise RunLogExistsError(run_id) from None
        return run_log

    def get_run_log_by_id(self, run_id: str, full: bool = True) -> RunLog:
        run_log, _ = self._read_head(run_id)
        run_log.parameters = self._read_parameters(run_id)
        if full:
            self._attach_descendants(run_id, run_log)
        return run_log

    def put_run_log(self, run_log: RunLog) -> None:
        run_id = run_log.run_id
        before = {
            key for kind in KIND_FOLDERS for key in self._list(self._kind_folder(run_id, kind))
        }
        self._write_head(run_log)
        writes: list[tuple[str, dict[str, Any], int]] = []
        for name, value in run_log.parameters.items():
            writes.append((self._chunk_key(run_id, PARAMETER, name), {name: value}, next_stamp()))
        # Depth first, stamping in dict order: each parent's children get increasing stamps,
        # which is all that assembly needs to restore their order.
        pending: list[StepLog | BranchLog] = list(reversed(run_log.steps.values()))
        while pending:
            item = pending.pop()
            if isinstance(item, StepLog):
                key = self._chunk_key(run_id, STEP, item.internal_name)
                record = item.model_dump(exclude={"branches"})
                children: list[StepLog | BranchLog] = list(item.branches.values())
            else:
                key = self._chunk_key(run_id, BRANCH, item.internal_name)
                record = item.model_dump(exclude={"steps"})
                children = list(item.steps.values())
            writes.append((key, record, next_stamp()))
            pending.extend(reversed(children))
        self._map(lambda write: self._write_chunk(*write), writes)
        # The put log replaces the stored one entirely: records it does not have go.
        self._delete(sorted(before - {key for key, _, _ in writes}))

    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        self._change_head(run_id, lambda run_log: set_status(run_log, status, self.now(), message))

    def list_runs(self) -> list[RunLog]:
        """Every run under the prefix: the run-level fields of ``RunLog.json`` only.

        Parameters are left out: they would cost a listing and a request per parameter for every
        run. Folders without a ``RunLog.json`` (a catalog's, say) are skipped.
        """
        root = self.key() + "/" if self.prefix else ""
        folders: list[str] = []
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=root, Delimiter="/"):
                folders.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        except remote_errors() as exc:
            self._fail("list the runs under", root, exc)

        def head(folder: str) -> RunLog | None:
            key = folder + RUN_FILE
            found = self._get(key)
            if found is None:
                return None
            try:
                return self._validate(key, RunLog, self._parse(key, found[0]))
            except RunLogStoreError as exc:
                return unreadable_run(unquote(folder[len(root) :].rstrip("/")), exc)

        return sort_runs(run for run in self._map(head, folders) if run is not None)

    # ------------------------------------------------------------------ parameters and config

    def get_parameters(self, run_id: str) -> dict[str, Any]:
        self._require_run(run_id)
        return self._read_parameters(run_id)

    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        self._require_run(run_id)

        def write(item: tuple[str, Any]) -> None:
            key = self._chunk_key(run_id, PARAMETER, item[0])
            stamp = self._stamp_of(key)
            self._write_chunk(key, {item[0]: item[1]}, next_stamp() if stamp is None else stamp)

        self._map(write, list(parameters.items()))

    def get_run_config(self, run_id: str) -> dict[str, Any]:
        return self._read_head(run_id)[0].run_config

    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        self._change_head(run_id, lambda run_log: run_log.run_config.update(run_config))

    # ------------------------------------------------------------------ steps and branches

    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        key = self._chunk_key(run_id, STEP, internal_name)
        chunk = self._read_chunk(key)
        if chunk is None:
            self._require_run(run_id)
            raise StepLogNotFoundError(run_id, internal_name)
        step_log = self._validate(key, StepLog, chunk[1])
        if full:
            self._attach_descendants(run_id, step_log)
        return step_log

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        key = self._chunk_key(run_id, STEP, step_log.internal_name)
        stamp = self._stamp_of(key)
        if stamp is None:
            # A stored step implies its run and parent branch; only a new one is checked.
            self._require_run(run_id)
            parent = parent_branch_name(step_log.internal_name)
            if parent and not self._exists(self._chunk_key(run_id, BRANCH, parent)):
                raise BranchLogNotFoundError(run_id, parent)
            stamp = next_stamp()
        self._write_chunk(key, step_log.model_dump(exclude={"branches"}), stamp)

    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        if not internal_branch_name:
            return self.get_run_log_by_id(run_id, full=full)
        key = self._chunk_key(run_id, BRANCH, internal_branch_name)
        chunk = self._read_chunk(key)
        if chunk is None:
            self._require_run(run_id)
            raise BranchLogNotFoundError(run_id, internal_branch_name)
        branch_log = self._validate(key, BranchLog, chunk[1])
        if full:
            self._attach_descendants(run_id, branch_log)
        return branch_log

    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        if isinstance(branch_log, RunLog):
            self.put_run_log(branch_log)
            return
        key = self._chunk_key(run_id, BRANCH, branch_log.internal_name)
        stamp = self._stamp_of(key)
        if stamp is None:
            self._require_run(run_id)
            parent = parent_step_name(branch_log.internal_name)
            if not self._exists(self._chunk_key(run_id, STEP, parent)):
                raise StepLogNotFoundError(run_id, parent)
            stamp = next_stamp()
        self._write_chunk(key, branch_log.model_dump(exclude={"steps"}), stamp)
