"""The ``chunked-s3`` run-log store: the ``chunked-fs`` layout, one S3 object per record.

Objects of a run live under ``s3://<bucket>/<prefix>/<run_id>/``, named exactly as
``chunked-fs`` names its files (:mod:`magnus.runlog.chunks`); the store itself is
:class:`magnus.runlog.chunked.ChunkedRunLogStore` over :class:`S3RecordStorage`.

There is no lock: S3 replaces an object atomically, and parallel branches write different
objects. The one record several writers change is ``RunLog.json`` (status and ``run_config``);
it is changed by read-modify-write made safe with conditional requests: the write carries
``If-Match: <ETag read>`` and is retried from a fresh read when another writer got there first.
A run is created with ``If-None-Match: *``, so two creators of one id cannot both succeed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NoReturn, TypeVar
from urllib.parse import unquote

from pydantic_core import to_jsonable_python

from magnus.exceptions import RunLogStoreError
from magnus.runlog.chunked import ChunkedRunLogStore
from magnus.runlog.files import encode_run_id
from magnus.runlog.storage import RecordStorage
from magnus_catalog_s3.connection import S3Connection, error_code, remote_errors

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# Another writer changed the object between our read and our conditional write (412), or is
# writing it right now (409, real S3 only).
_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Read-modify-write attempts on one record before giving up; each conflict means another
# writer succeeded, so the run as a whole always progresses.
_UPDATE_ATTEMPTS = 100


class _Conflict(Exception):
    """A conditional write lost against another writer."""


class S3RecordStorage(RecordStorage):
    """The records of each run as objects under ``<prefix>/<run_id>/`` in the bucket.

    Reading many records runs up to ``max_concurrency`` requests at once.
    """

    name_limit: ClassVar[int | None] = None  # keys may be 1024 bytes long: names are kept whole

    def __init__(self, connection: S3Connection) -> None:
        self.connection = connection

    # ------------------------------------------------------------------ keys

    def _run_folder(self, run_id: str) -> str:
        return self.connection.key(encode_run_id(run_id)) + "/"

    def _key(self, run_id: str, record: str) -> str:
        return self._run_folder(run_id) + record

    def location(self, run_id: str) -> str:
        """``s3://bucket/prefix/run_id/``."""
        return self.connection.url(self._run_folder(run_id))

    def where(self, run_id: str, record: str) -> str:
        return self.connection.url(self._key(run_id, record))

    # ------------------------------------------------------------------ requests

    def _fail(self, doing: str, key: str, error: BaseException) -> NoReturn:
        raise RunLogStoreError(
            f"Cannot {doing} {self.connection.url(key)}: {self.connection.explain(error)}"
        ) from error

    def _get(self, key: str) -> tuple[Any, str] | None:
        """The object's parsed content and ETag; ``None`` if there is no such object."""
        try:
            response = self.connection.client().get_object(Bucket=self.connection.bucket, Key=key)
            content, etag = response["Body"].read(), response.get("ETag", "")
        except remote_errors() as exc:
            if error_code(exc) in _MISSING_CODES:
                return None
            self._fail("read the run log record", key, exc)
        try:
            return json.loads(content), etag
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunLogStoreError(
                f"The run log record {self.connection.url(key)} is not valid JSON: {exc}"
            ) from exc

    def _put(self, key: str, data: Any, **conditions: str) -> None:
        """Write ``data`` (pydantic models allowed) as indented JSON, as chunked-fs does."""
        try:
            body = json.dumps(to_jsonable_python(data), indent=4).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise RunLogStoreError(
                f"Cannot write {self.connection.url(key)}: a value is not JSON serialisable: {exc}"
            ) from exc
        try:
            self.connection.client().put_object(
                Bucket=self.connection.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                **conditions,
            )
        except remote_errors() as exc:
            if conditions and error_code(exc) in _CONFLICT_CODES:
                raise _Conflict(key) from exc
            self._fail("write the run log record", key, exc)

    def read(self, run_id: str, record: str) -> Any:
        found = self._get(self._key(run_id, record))
        return None if found is None else found[0]

    def exists(self, run_id: str, record: str) -> bool:
        key = self._key(run_id, record)
        try:
            self.connection.client().head_object(Bucket=self.connection.bucket, Key=key)
        except remote_errors() as exc:
            if error_code(exc) in _MISSING_CODES:
                return False
            self._fail("look for the run log record", key, exc)
        return True

    def write(self, run_id: str, record: str, data: Any) -> None:
        self._put(self._key(run_id, record), data)

    def _list(self, prefix: str, doing: str, delimiter: str = "") -> list[str]:
        """Keys starting with ``prefix`` (with ``delimiter``: the folders), every page."""
        found: list[str] = []
        options = {"Delimiter": delimiter} if delimiter else {}
        try:
            pages = self.connection.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.connection.bucket, Prefix=prefix, **options):
                if delimiter:
                    found.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
                else:
                    found.extend(item["Key"] for item in page.get("Contents", []))
        except remote_errors() as exc:
            self._fail(doing, prefix, exc)
        return found

    def names(self, run_id: str, folder: str, prefix: str = "") -> list[str]:
        listed = self._key(run_id, folder) + "/"
        keys = self._list(listed + prefix, "list the run log records under")
        return [key[len(listed) :] for key in keys]

    def delete(self, run_id: str, records: Sequence[str]) -> None:
        keys = [self._key(run_id, record) for record in records]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            try:
                response = self.connection.client().delete_objects(
                    Bucket=self.connection.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except remote_errors() as exc:
                self._fail("delete stale run log records such as", batch[0], exc)
            for error in response.get("Errors", []):
                raise RunLogStoreError(
                    "Cannot delete the stale run log record "
                    f"{self.connection.url(error.get('Key', ''))}: "
                    f"{error.get('Code')}: {error.get('Message')}"
                )

    def run_ids(self) -> list[str]:
        root = self.connection.key() + "/" if self.connection.prefix else ""
        folders = self._list(root, "list the runs under", delimiter="/")
        # Folder names are percent-encoded run ids.
        return [unquote(folder[len(root) :].rstrip("/")) for folder in folders]

    def create(self, run_id: str, record: str, data: Any) -> bool:
        # The HEAD answers for S3-compatible servers that ignore If-None-Match; the condition
        # settles a race between two creators on those that honour it.
        if self.exists(run_id, record):
            return False
        try:
            self._put(self._key(run_id, record), data, IfNoneMatch="*")
        except _Conflict:
            return False
        return True

    def update(self, run_id: str, record: str, change: Callable[[Any], Any]) -> None:
        key = self._key(run_id, record)
        for attempt in range(_UPDATE_ATTEMPTS):
            found = self._get(key)
            data, etag = (None, "") if found is None else found
            changed = change(data)
            try:
                if found is None:
                    self._put(key, changed, IfNoneMatch="*")
                else:
                    self._put(key, changed, IfMatch=etag)
                return
            except _Conflict:
                # Random, growing pauses keep colliding writers from colliding again.
                time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
        raise RunLogStoreError(
            f"Cannot update {self.connection.url(key)}: other writers kept changing it "
            f"({_UPDATE_ATTEMPTS} attempts)"
        )

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT]) -> list[ResultT]:
        """``function`` over ``items``, up to ``max_concurrency`` requests at a time."""
        if len(items) <= 1:
            return [function(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        workers = min(self.connection.max_concurrency, len(items))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, items))


class ChunkedS3RunLogStore(S3Connection, ChunkedRunLogStore):
    """A run-log store in S3 with the chunked layout: O(1) requests per step, branch or parameter.

    Processes writing the same run at once (parallel branches) lose nothing. Reading a whole run
    lists the chunks (pages of 1000 keys) and fetches them ``max_concurrency`` at a time.
    """

    service_name: ClassVar[str] = "chunked-s3"
    supports_concurrent_writers: ClassVar[bool] = True

    def storage(self) -> RecordStorage:
        return S3RecordStorage(self)
