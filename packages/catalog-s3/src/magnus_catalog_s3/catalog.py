"""The ``s3`` catalog: run data in ``s3://<bucket>/<prefix>/<run_id>/<path>``.

It keeps the file-system catalog's semantics (``magnus.catalog.FileSystemCatalog``): glob patterns
relative to the compute data folder, patterns that climb out refused, execution logs never handed
back by ``get``, files a step just got and did not change not copied again. What differs is how
bytes move:

* **put** hashes the local file first (one chunked read; the SHA-256 must be known before the
  upload because it is stored with the object as ``x-amz-meta-sha256``, and because an object
  that already holds the same content is not uploaded again), then uploads it with a managed,
  multipart, bounded-concurrency transfer;
* **get** downloads into a temporary file beside the destination, hashes that file in chunks,
  checks it against the stored SHA-256 and renames it into place, so a failed or corrupt
  transfer never leaves a partial file where a step would read it;
* **sync_between_runs** copies objects server-side; no byte passes through this process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from magnus.catalog import (
    PARTIAL_SUFFIX,
    BaseCatalog,
    check_destination,
    check_run_id,
    file_hash,
    glob_files,
    is_execution_log,
    safe_relative,
)
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog
from magnus_catalog_s3.connection import HASH_METADATA, S3Connection, error_code, remote_errors

if TYPE_CHECKING:
    from s3transfer.manager import TransferManager

# Python 3.13 made a trailing "**" match the files below it too; before, it named folders only.
# Keys are matched the way Path.glob matches files on the running Python, so a pattern means the
# same for this catalog as for the file-system one.
_TRAILING_RECURSION_MATCHES_FILES = sys.version_info >= (3, 13)


@dataclass
class _Stored:
    """One object of a run: its key and what a listing says about it."""

    key: str
    size: int


@dataclass
class _Upload:
    """One local file to store: where from, where to, and what it holds."""

    record: DataCatalog
    source: Path
    key: str
    size: int


def _pattern_segments(pattern: str, run_id: str, where: str) -> list[str]:
    """``pattern`` made relative and safe (as the file-system catalog does), split in segments."""
    segments = safe_relative(pattern, "pattern", run_id).split("/")
    if not _TRAILING_RECURSION_MATCHES_FILES:
        for segment in segments:
            if "**" in segment and segment != "**":
                # Path.glob refuses it the same way before 3.13.
                raise CatalogError(
                    f"Cannot glob pattern {pattern!r} in {where}: '**' can only be an entire "
                    "path component"
                )
    return segments


def _glob_matches(name: str, segments: list[str]) -> bool:
    """Whether the POSIX path ``name`` is a file ``Path.glob`` would find for ``segments``.

    ``*``, ``?`` and ``[...]`` stay inside one segment; ``**`` is zero or more whole segments.
    """
    parts = name.split("/")

    @functools.cache
    def match(part: int, segment: int) -> bool:
        if segment == len(segments):
            return part == len(parts)
        wanted = segments[segment]
        if wanted == "**":
            if segment == len(segments) - 1:
                return _TRAILING_RECURSION_MATCHES_FILES and part < len(parts)
            return any(match(start, segment + 1) for start in range(part, len(parts)))
        return (
            part < len(parts) and fnmatchcase(parts[part], wanted) and match(part + 1, segment + 1)
        )

    return match(0, 0)


def _holds(target: Path, size: int, data_hash: str) -> bool:
    """Whether ``target`` is a regular file (not a link) with this size and SHA-256."""
    try:
        info = os.lstat(target)
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        return file_hash(target) == data_hash
    except OSError:
        return False


@functools.cache
def _size_subscriber_class() -> type:
    """A transfer subscriber that hands s3transfer a size we already know.

    Without it s3transfer sends a HEAD request per download or copy to learn the size that the
    listing (or our own HEAD) already gave.
    """
    from s3transfer.subscribers import BaseSubscriber

    class KnownSize(BaseSubscriber):
        def __init__(self, size: int) -> None:
            self._size = size

        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(self._size)

    return KnownSize


def _known_size(size: int) -> Any:
    return _size_subscriber_class()(size)


class S3Catalog(S3Connection, BaseCatalog):
    """A catalog in an S3 bucket (or any S3-compatible store): ``s3://bucket/prefix/run_id/path``.

    ``catalog_handler_location`` records ``s3://bucket/prefix`` and ``data_hash`` the SHA-256 of
    the content, which is also stored with each object as ``x-amz-meta-sha256``. Credentials come
    from boto3's default chain only. Every failure is a ``CatalogError`` naming bucket and key.
    """

    service_name: ClassVar[str] = "s3"

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``: what ``catalog_handler_location`` records."""
        return self.url(self.prefix)

    # ------------------------------------------------------------------ helpers

    def _run_key(self, run_id: str, name: str = "") -> str:
        check_run_id(run_id)
        return self.key(run_id, name)

    def _fail(self, doing: str, key: str, error: BaseException) -> NoReturn:
        raise CatalogError(f"{doing} ({self.url(key)}): {self.explain(error)}") from error

    @contextlib.contextmanager
    def _transfers(self) -> Iterator[TransferManager]:
        """A transfer manager for one operation: its threads live only as long as the call."""
        from s3transfer.manager import TransferManager

        # Leaving the block on an error cancels the transfers still queued or running.
        with TransferManager(self.client(), self.transfer_config()) as manager:
            yield manager

    def _map(self, function: Any, items: list[Any]) -> list[Any]:
        """``function`` over ``items``, up to ``max_concurrency`` at a time (requests wait)."""
        if len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(function, items))

    def _list_run(self, run_id: str, doing: str) -> dict[str, _Stored]:
        """Every object of the run, by path relative to the run's folder."""
        folder = self._run_key(run_id) + "/"
        found: dict[str, _Stored] = {}
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(folder) :]
                    # "Folder" placeholders some consoles create are not files.
                    if relative and not relative.endswith("/"):
                        found[relative] = _Stored(item["Key"], int(item["Size"]))
        except remote_errors() as exc:
            self._fail(doing, folder, exc)
        return found

    def _stored_hash(self, key: str, doing: str) -> str | None:
        """The SHA-256 recorded with an object; ``None`` when it is missing or has none."""
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=key)
        except remote_errors() as exc:
            # HEAD has no body, so a missing key and a missing bucket both read "404"; the
            # transfer that follows tells them apart.
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._fail(doing, key, exc)
        stored = head.get("Metadata", {}).get(HASH_METADATA)
        return stored if isinstance(stored, str) else None

    # ------------------------------------------------------------------ put

    def _upload(self, uploads: list[_Upload], run_id: str) -> None:
        """Store ``uploads``, skipping objects that already hold the same content."""
        if not uploads:
            return

        def doing(upload: _Upload) -> str:
            return (
                f"Cannot put {upload.record.name!r} from {upload.source} into the catalog of "
                f"run {run_id!r}"
            )

        # Objects of another size cannot hold the same content: only same-sized ones are asked
        # for their hash. One file: one HEAD; many: one listing of the run, then HEADs.
        if len(uploads) == 1:
            candidates = uploads
        else:
            stored = self._list_run(run_id, f"Cannot put into the catalog of run {run_id!r}")
            candidates = [
                upload
                for upload in uploads
                if upload.record.name in stored and stored[upload.record.name].size == upload.size
            ]
        hashes = self._map(lambda upload: self._stored_hash(upload.key, doing(upload)), candidates)
        unchanged = {
            upload.key
            for upload, stored_hash in zip(candidates, hashes, strict=True)
            if stored_hash == upload.record.data_hash
        }
        pending = [upload for upload in uploads if upload.key not in unchanged]
        if not pending:
            return
        with self._transfers() as manager:
            futures = [
                (
                    upload,
                    manager.upload(
                        str(upload.source),
                        self.bucket,
                        upload.key,
                        extra_args={"Metadata": {HASH_METADATA: upload.record.data_hash}},
                    ),
                )
                for upload in pending
            ]
            for upload, future in futures:
                try:
                    future.result()
                except remote_errors() as exc:
                    self._fail(doing(upload), upload.key, exc)

    def _prepare_upload(self, source: Path, name: str, run_id: str) -> _Upload:
        try:
            size = source.stat().st_size
            data_hash = file_hash(source)
        except OSError as exc:
            raise CatalogError(
                f"Cannot read {source} to put it into the catalog of run {run_id!r} as "
                f"{name!r}: {exc}"
            ) from exc
        return _Upload(
            self.catalog_record(name, run_id, data_hash, "put"),
            source,
            self._run_key(run_id, name),
            size,
        )

    def put(
        self,
        name: str,
        run_id: str,
        compute_data_folder: str | None = None,
        synced_catalogs: list[DataCatalog] | None = None,
    ) -> list[DataCatalog]:
        """Upload the compute folder's files matching ``name`` into the run's catalog.

        A file recorded in ``synced_catalogs`` with the same path and hash is recorded without
        any request; one whose object already carries its hash is recorded without an upload.
        """
        source_root = Path(compute_data_folder or self.compute_data_folder).resolve()
        if not source_root.is_dir():
            raise CatalogError(
                f"The compute data folder {source_root} does not exist (putting {name!r} for "
                f"run {run_id!r}); magnus does not create it for you"
            )
        check_run_id(run_id)
        matches = glob_files(source_root, name, run_id)
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in {source_root} (run {run_id!r})"
            )
        synced = {
            (entry.name, entry.catalog_relative_path, entry.data_hash)
            for entry in synced_catalogs or []
        }
        uploads = [
            self._prepare_upload(source, relative, run_id) for relative, source in matches.items()
        ]
        self._upload(
            [
                upload
                for upload in uploads
                if (
                    upload.record.name,
                    upload.record.catalog_relative_path,
                    upload.record.data_hash,
                )
                not in synced
            ],
            run_id,
        )
        return [upload.record for upload in uploads]

    def put_file(self, path: Path, catalog_name: str, run_id: str) -> DataCatalog:
        """Upload one file from anywhere to ``<run_id>/<catalog_name>`` (execution logs...)."""
        relative = safe_relative(catalog_name, "catalog name", run_id)
        check_run_id(run_id)
        source = Path(path)
        if not source.is_file():
            raise CatalogError(
                f"Cannot put {source} into the catalog of run {run_id!r} as {catalog_name!r}: "
                "it is not a file"
            )
        upload = self._prepare_upload(source, relative, run_id)
        self._upload([upload], run_id)
        return upload.record

    def put_data(self, data: bytes, catalog_name: str, run_id: str) -> DataCatalog:
        """Upload ``data`` as ``<run_id>/<catalog_name>`` in one request, its hash attached."""
        import hashlib

        relative = safe_relative(catalog_name, "catalog name", run_id)
        check_run_id(run_id)
        record = self.catalog_record(relative, run_id, hashlib.sha256(data).hexdigest(), "put")
        key = self._run_key(run_id, relative)
        try:
            self.client().put_object(
                Bucket=self.bucket, Key=key, Body=data, Metadata={HASH_METADATA: record.data_hash}
            )
        except remote_errors() as exc:
            self._fail(f"Cannot put {catalog_name!r} into the catalog of run {run_id!r}", key, exc)
        return record

    # ------------------------------------------------------------------ get

    def get(
        self, name: str, run_id: str, compute_data_folder: str | None = None
    ) -> list[DataCatalog]:
        """Download the run's objects matching ``name`` into the compute (or given) folder.

        Each object arrives in a temporary file, is hashed, checked against its stored SHA-256
        and renamed over the destination. A destination that already has the object's size and
        SHA-256 is left as it is, without a download. Execution logs are never matched.
        """
        folder = self._run_key(run_id) + "/"
        doing = f"Cannot get {name!r} from the catalog of run {run_id!r}"
        segments = _pattern_segments(name, run_id, self.url(folder))
        stored = self._list_run(run_id, doing)
        if not stored:
            raise CatalogError(
                f"No data in the catalog for run {run_id!r} at {self.url(folder)}: "
                "put something in the catalog before getting from it"
            )
        matches = {
            relative: item
            for relative, item in sorted(stored.items())
            if not is_execution_log(relative) and _glob_matches(relative, segments)
        }
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in the catalog of run {run_id!r} "
                f"at {self.url(folder)}"
            )
        destination = Path(compute_data_folder or self.compute_data_folder).resolve()
        try:
            destination.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"Cannot create {destination} to get {name!r} of run {run_id!r}: {exc}"
            ) from exc
        targets: dict[str, Path] = {}
        for relative in matches:
            target = destination / relative
            check_destination(target, destination, f"getting {name!r}", run_id)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot get {relative!r} of run {run_id!r} into {destination}: {exc}"
                ) from exc
            targets[relative] = target
        hashes = self._map(lambda item: self._stored_hash(item.key, doing), list(matches.values()))
        expected = dict(zip(matches, hashes, strict=True))
        # A destination that already holds the object is not downloaded again (re-runs, and
        # parallel steps getting the same data, would otherwise rewrite it under each other).
        records = {
            relative: self.catalog_record(relative, run_id, stored_hash, "get")
            for relative, stored_hash in expected.items()
            if stored_hash is not None
            and _holds(targets[relative], matches[relative].size, stored_hash)
        }
        missing = {relative: item for relative, item in matches.items() if relative not in records}
        if missing:
            for record in self._download(missing, targets, expected, run_id, destination):
                records[record.name] = record
        return [records[relative] for relative in matches]

    def _download(
        self,
        matches: dict[str, _Stored],
        targets: dict[str, Path],
        expected: dict[str, str | None],
        run_id: str,
        destination: Path,
    ) -> list[DataCatalog]:
        temporaries = {
            relative: target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
            for relative, target in targets.items()
        }
        records = []
        try:
            with self._transfers() as manager:
                futures = {
                    relative: manager.download(
                        self.bucket,
                        item.key,
                        str(temporaries[relative]),
                        subscribers=[_known_size(item.size)],
                    )
                    for relative, item in matches.items()
                }
                # Hash each file as soon as it is complete, while later ones still transfer.
                for relative, future in futures.items():
                    key = matches[relative].key
                    try:
                        future.result()
                    except remote_errors() as exc:
                        self._fail(
                            f"Cannot get {relative!r} of run {run_id!r} into {destination}",
                            key,
                            exc,
                        )
                    records.append(
                        self._settle(
                            relative,
                            key,
                            temporaries[relative],
                            targets[relative],
                            expected[relative],
                            run_id,
                        )
                    )
        finally:
            for temporary in temporaries.values():
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        return records

    def _settle(
        self,
        relative: str,
        key: str,
        temporary: Path,
        target: Path,
        expected: str | None,
        run_id: str,
    ) -> DataCatalog:
        """Hash a downloaded file, check it against the stored hash, rename it into place."""
        try:
            # s3transfer leaves no file behind for an empty object.
            if not temporary.exists():
                temporary.touch()
            data_hash = file_hash(temporary)
            if expected is not None and data_hash != expected:
                raise CatalogError(
                    f"Cannot get {relative!r} of run {run_id!r} ({self.url(key)}): the "
                    f"downloaded content has SHA-256 {data_hash}, the object records {expected}"
                )
            os.replace(temporary, target)
        except OSError as exc:
            raise CatalogError(
                f"Cannot get {relative!r} of run {run_id!r} ({self.url(key)}) into "
                f"{target.parent}: {exc}"
            ) from exc
        return self.catalog_record(relative, run_id, data_hash, "get")

    # ------------------------------------------------------------------ re-runs

    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Copy the previous run's objects (not its execution logs) server-side into this run.

        An original with no objects syncs nothing.
        """
        doing = f"Cannot sync the catalog of run {previous_run_id!r} into run {run_id!r}"
        check_run_id(run_id)
        stored = self._list_run(previous_run_id, doing)
        if not stored or previous_run_id == run_id:
            return
        items = [
            (relative, item) for relative, item in stored.items() if not is_execution_log(relative)
        ]
        # A single-request copy keeps the object's metadata (our sha256); a multipart copy
        # starts a new object and must be given it, so only large objects need a HEAD.
        threshold = self.transfer_config().multipart_threshold
        large = [item for _, item in items if item.size >= threshold]
        metadata = dict(
            zip([item.key for item in large], self._map(self._metadata, large), strict=True)
        )
        with self._transfers() as manager:
            futures = []
            for relative, item in items:
                extra: dict[str, Any] = {}
                if item.key in metadata:
                    extra = {"Metadata": metadata[item.key], "MetadataDirective": "REPLACE"}
                target = self._run_key(run_id, relative)
                future = manager.copy(
                    {"Bucket": self.bucket, "Key": item.key},
                    self.bucket,
                    target,
                    extra_args=extra,
                    subscribers=[_known_size(item.size)],
                )
                futures.append((relative, target, future))
            for relative, target, future in futures:
                try:
                    future.result()
                except remote_errors() as exc:
                    self._fail(f"{doing}: copying {relative!r}", target, exc)

    def _metadata(self, item: _Stored) -> dict[str, str]:
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=item.key)
        except remote_errors() as exc:
            self._fail("Cannot read the metadata of a catalog object", item.key, exc)
        return dict(head.get("Metadata", {}))
