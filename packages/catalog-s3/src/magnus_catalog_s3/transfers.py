"""How the ``s3`` catalog moves bytes: listings, stored hashes, managed transfers.

* an **upload** of a file at least ``multipart_threshold_mb`` large whose hash nobody needs
  beforehand reads the file once, hashing each part as it is sent (:mod:`.hashed_upload`), and
  stores the SHA-256 beside the object once it is complete (:mod:`.hash_records`); any other file
  is hashed first and sent by boto3's transfer manager with its SHA-256 as ``x-amz-meta-sha256``.
  The hash is needed beforehand when the file must be compared: with what a step just got, or
  with an object of the same size already at its key (which is then not uploaded again);
* a **download** goes into a temporary file beside the destination, which is hashed in chunks,
  checked against the stored SHA-256 and renamed into place, so a failed or corrupt transfer
  never leaves a partial file where a step would read it;
* a **copy** between runs happens server-side; no byte passes through this process.

s3transfer is imported only inside the methods that transfer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from magnus.catalog import PARTIAL_SUFFIX, check_run_id, file_hash
from magnus.exceptions import CatalogError
from magnus_catalog_s3 import hash_records
from magnus_catalog_s3.connection import HASH_METADATA, S3Connection, error_code, remote_errors
from magnus_catalog_s3.hashed_upload import HashedUploads

if TYPE_CHECKING:
    from s3transfer.manager import TransferManager


@dataclass
class Stored:
    """One object of a run: its key and what a listing says about it."""

    key: str
    size: int
    #: whether the listing showed a hash record beside it (:mod:`.hash_records`)
    has_record: bool = False


@dataclass
class Described:
    """What a HEAD says about an object, and its SHA-256 if one is recorded and current."""

    size: int
    etag: str
    metadata: dict[str, str]
    data_hash: str | None


@dataclass
class Upload:
    """One local file to store: its catalog name, where from, where to, and what it holds.

    ``data_hash`` is ``None`` until the file is hashed, before or while it is uploaded.
    """

    name: str
    source: Path
    key: str
    size: int
    data_hash: str | None = None


def holds(target: Path, size: int, data_hash: str) -> bool:
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


class S3Transfers(S3Connection):
    """The transfers of the objects under ``<prefix>/<run_id>/`` that the ``s3`` catalog makes.

    Every failure is a ``CatalogError`` naming bucket and key.
    """

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

    def _list_run(self, run_id: str, doing: str) -> dict[str, Stored]:
        """Every object of the run (not the hash records), by path relative to the run's folder."""
        folder = self._run_key(run_id) + "/"
        found: dict[str, Stored] = {}
        records: set[str] = set()
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(folder) :]
                    if hash_records.is_hash_record(relative):
                        records.add(relative.removesuffix(hash_records.RECORD_SUFFIX))
                    # "Folder" placeholders some consoles create are not files.
                    elif relative and not relative.endswith("/"):
                        found[relative] = Stored(item["Key"], int(item["Size"]))
        except remote_errors() as exc:
            self._fail(doing, folder, exc)
        for relative in records & found.keys():
            found[relative].has_record = True
        return found

    def _stored_hash(self, key: str, doing: str, has_record: bool = True) -> str | None:
        """The SHA-256 recorded for an object; ``None`` when it is missing or has none."""
        found = self._describe(key, doing, has_record)
        return None if found is None else found.data_hash

    def _describe(self, key: str, doing: str, has_record: bool = True) -> Described | None:
        """An object's size, metadata and recorded SHA-256; ``None`` when it is missing.

        The SHA-256 is the one in its metadata, else the one in a current hash record beside it
        (asked for only when ``has_record``).
        """
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=key)
        except remote_errors() as exc:
            # HEAD has no body, so a missing key and a missing bucket both read "404"; the
            # transfer that follows tells them apart.
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._fail(doing, key, exc)
        size, etag = int(head.get("ContentLength", 0)), str(head.get("ETag", ""))
        metadata = dict(head.get("Metadata", {}))
        stored = metadata.get(HASH_METADATA)
        if not isinstance(stored, str) and has_record:
            stored = self._recorded_hash(key, etag, size, doing)
        return Described(size, etag, metadata, stored if isinstance(stored, str) else None)

    def _recorded_hash(self, key: str, etag: str, size: int, doing: str) -> str | None:
        """The SHA-256 in the hash record of ``key`` if it describes this ETag and size."""
        record = hash_records.record_key(key)
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=record)["Body"].read()
        except remote_errors() as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._fail(doing, record, exc)
        return hash_records.decode(body, etag, size)

    # ------------------------------------------------------------------ upload

    def _hash_local(self, upload: Upload, run_id: str) -> str:
        """The SHA-256 of ``upload``'s file, read now unless known (raises ``CatalogError``)."""
        if upload.data_hash is None:
            try:
                upload.data_hash = file_hash(upload.source)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot read {upload.source} to put it into the catalog of run {run_id!r} "
                    f"as {upload.name!r}: {exc}"
                ) from exc
        return upload.data_hash

    def _upload(self, uploads: list[Upload], run_id: str) -> None:
        """Store ``uploads``, skipping objects that already hold the same content.

        On return every upload has its ``data_hash``: the SHA-256 of what the object holds.
        """
        if not uploads:
            return

        def doing(upload: Upload) -> str:
            return (
                f"Cannot put {upload.name!r} from {upload.source} into the catalog of "
                f"run {run_id!r}"
            )

        # Objects of another size cannot hold the same content: only same-sized ones are asked
        # for their hash, and only their files are hashed before the upload. One file: one
        # HEAD; many: one listing of the run, then HEADs.
        if len(uploads) == 1:
            [upload] = uploads
            found = self._describe(upload.key, doing(upload))
            stored = {} if found is None else {upload.key: (found.size, found.data_hash)}
        else:
            listed = self._list_run(run_id, f"Cannot put into the catalog of run {run_id!r}")
            same_size = [
                (upload, listed[upload.name])
                for upload in uploads
                if upload.name in listed and listed[upload.name].size == upload.size
            ]
            hashes = self._map(
                lambda pair: self._stored_hash(pair[1].key, doing(pair[0]), pair[1].has_record),
                same_size,
            )
            stored = {
                upload.key: (item.size, data_hash)
                for (upload, item), data_hash in zip(same_size, hashes, strict=True)
            }
        pending = []
        for upload in uploads:
            size, data_hash = stored.get(upload.key, (None, None))
            if (
                size != upload.size
                or data_hash is None
                or self._hash_local(upload, run_id) != data_hash
            ):
                pending.append(upload)
        threshold = self.transfer_config().multipart_threshold
        streamed = [u for u in pending if u.data_hash is None and u.size >= threshold]
        self._upload_hashed_first([u for u in pending if u not in streamed], run_id, doing)
        self._upload_hashing(streamed, doing)

    def _upload_hashed_first(
        self, uploads: list[Upload], run_id: str, doing: Callable[[Upload], str]
    ) -> None:
        """Hash each file, then upload it with its SHA-256 in its metadata."""
        if not uploads:
            return
        for upload in uploads:
            self._hash_local(upload, run_id)
        with self._transfers() as manager:
            futures = [
                (
                    upload,
                    manager.upload(
                        str(upload.source),
                        self.bucket,
                        upload.key,
                        extra_args={"Metadata": {HASH_METADATA: upload.data_hash}},
                    ),
                )
                for upload in uploads
            ]
            for upload, future in futures:
                try:
                    future.result()
                except remote_errors() as exc:
                    self._fail(doing(upload), upload.key, exc)

    def _upload_hashing(self, uploads: list[Upload], doing: Callable[[Upload], str]) -> None:
        """Upload large files while hashing them; then store each SHA-256 beside its object."""
        if not uploads:
            return
        client = self.client()
        config = self.transfer_config()
        # boto3's transfer manager sends CRC32 part checksums unless the client is told not to.
        checksum = (
            "CRC32" if client.meta.config.request_checksum_calculation == "when_supported" else None
        )
        with HashedUploads(
            client, self.bucket, config.multipart_chunksize, config.max_concurrency, checksum
        ) as hashed:
            for upload in uploads:
                try:
                    hashed.send(upload.key, upload.source, upload.size)
                except remote_errors() as exc:
                    self._fail(doing(upload), upload.key, exc)
            for upload in uploads:
                try:
                    sent = hashed.complete(upload.key)
                    # A put killed here leaves an object whose record is missing or names
                    # another ETag: readers find no hash for it, never a wrong one.
                    client.put_object(
                        Bucket=self.bucket,
                        Key=hash_records.record_key(upload.key),
                        Body=hash_records.encode(sent.data_hash, sent.etag, sent.size),
                        ContentType="application/json",
                    )
                except remote_errors() as exc:
                    self._fail(doing(upload), upload.key, exc)
                upload.data_hash = sent.data_hash

    # ------------------------------------------------------------------ download

    def _download(
        self,
        matches: dict[str, Stored],
        targets: dict[str, Path],
        expected: dict[str, str | None],
        run_id: str,
        destination: Path,
    ) -> dict[str, str]:
        """Download ``matches`` to their ``targets``: the SHA-256 of each, by relative path."""
        temporaries = {
            relative: target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
            for relative, target in targets.items()
        }
        hashes: dict[str, str] = {}
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
                    hashes[relative] = self._settle(
                        relative,
                        key,
                        temporaries[relative],
                        targets[relative],
                        expected[relative],
                        run_id,
                    )
        finally:
            for temporary in temporaries.values():
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        return hashes

    def _settle(
        self,
        relative: str,
        key: str,
        temporary: Path,
        target: Path,
        expected: str | None,
        run_id: str,
    ) -> str:
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
        return data_hash

    # ------------------------------------------------------------------ copy

    def _copy(self, items: list[tuple[str, Stored]], run_id: str, doing: str) -> None:
        """Copy ``items`` (relative path, object) server-side into the folder of ``run_id``."""
        # A single-request copy keeps the object's metadata (our sha256); a multipart copy
        # starts a new object and must be given it, and so must the copy of an object whose
        # hash is recorded beside it: only those need a HEAD.
        threshold = self.transfer_config().multipart_threshold
        described = [item for _, item in items if item.size >= threshold or item.has_record]
        extras = dict(
            zip(
                [item.key for item in described],
                self._map(lambda item: self._copy_arguments(item, doing), described),
                strict=True,
            )
        )
        with self._transfers() as manager:
            futures = []
            for relative, item in items:
                extra = extras.get(item.key, {})
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

    def _copy_arguments(self, item: Stored, doing: str) -> dict[str, Any]:
        """What a copy of ``item`` must be given to carry its metadata and SHA-256."""
        found = self._describe(item.key, doing, item.has_record)
        if found is None:
            raise CatalogError(f"{doing} ({self.url(item.key)}): no such object")
        metadata = dict(found.metadata)
        if found.data_hash is not None:
            metadata[HASH_METADATA] = found.data_hash
        arguments: dict[str, Any] = {"Metadata": metadata, "MetadataDirective": "REPLACE"}
        if found.etag:
            # The hash was read for this ETag: a copy of anything else must fail, not take it.
            arguments["CopySourceIfMatch"] = found.etag
        return arguments
