"""How the ``s3`` catalog moves bytes: listings, stored hashes, managed transfers.

* an **upload** hashes the local file first (one chunked read; the SHA-256 must be known before
  the upload because it is stored with the object as ``x-amz-meta-sha256``, and because an object
  that already holds the same content is not uploaded again), then uploads it with a managed,
  multipart, bounded-concurrency transfer;
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from magnus.catalog import PARTIAL_SUFFIX, check_run_id, file_hash
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog
from magnus_catalog_s3.connection import HASH_METADATA, S3Connection, error_code, remote_errors

if TYPE_CHECKING:
    from s3transfer.manager import TransferManager


@dataclass
class Stored:
    """One object of a run: its key and what a listing says about it."""

    key: str
    size: int


@dataclass
class Upload:
    """One local file to store: where from, where to, and what it holds."""

    record: DataCatalog
    source: Path
    key: str
    size: int


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
        """Every object of the run, by path relative to the run's folder."""
        folder = self._run_key(run_id) + "/"
        found: dict[str, Stored] = {}
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(folder) :]
                    # "Folder" placeholders some consoles create are not files.
                    if relative and not relative.endswith("/"):
                        found[relative] = Stored(item["Key"], int(item["Size"]))
        except remote_errors() as exc:
            self._fail(doing, folder, exc)
        return found

    def _stored_hash(self, key: str, doing: str) -> str | None:
        """The SHA-256 recorded with an object; ``None`` when it is missing or has none."""
        found = self._head(key, doing)
        return None if found is None else found[1]

    def _head(self, key: str, doing: str) -> tuple[int, str | None] | None:
        """An object's size and recorded SHA-256; ``None`` when it is missing."""
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=key)
        except remote_errors() as exc:
            # HEAD has no body, so a missing key and a missing bucket both read "404"; the
            # transfer that follows tells them apart.
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            self._fail(doing, key, exc)
        stored = head.get("Metadata", {}).get(HASH_METADATA)
        return int(head.get("ContentLength", 0)), stored if isinstance(stored, str) else None

    def _metadata(self, item: Stored) -> dict[str, str]:
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=item.key)
        except remote_errors() as exc:
            self._fail("Cannot read the metadata of a catalog object", item.key, exc)
        return dict(head.get("Metadata", {}))

    # ------------------------------------------------------------------ upload

    def _upload(self, uploads: list[Upload], run_id: str) -> None:
        """Store ``uploads``, skipping objects that already hold the same content."""
        if not uploads:
            return

        def doing(upload: Upload) -> str:
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
