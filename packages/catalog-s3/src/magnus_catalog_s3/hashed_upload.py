"""Multipart uploads that hash each file as they read it: one pass over the bytes, not two.

The file is read once, in order, one part at a time; each part goes to the SHA-256 and then to a
worker that sends it, up to ``concurrency`` parts at once (as boto3's transfer manager does, with
its part size and its default CRC32 part checksums). What is hashed is exactly what is sent, even
if the file changes meanwhile. At most ``concurrency + 1`` parts are held in memory.

Several files may be sent before any is completed, so that small multipart files overlap. Leaving
the ``with`` block with uploads not completed (an error, an interrupt) waits for the parts in
flight and aborts those uploads: S3 keeps nothing of them, and the objects are as they were.

s3transfer is imported inside the methods that need it, like boto3.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass
class Uploaded:
    """A completed upload: the SHA-256 and size of what was sent, the ETag S3 gave the object."""

    data_hash: str
    etag: str
    size: int


@dataclass
class _Started:
    upload_id: str
    data_hash: str = ""
    size: int = 0
    parts: list[Future[dict[str, Any]]] = field(default_factory=list)
    #: the error of the first part that failed, if one did
    failure: BaseException | None = None

    def note(self, part: Future[dict[str, Any]]) -> None:
        """Keep the error of a finished part (a done callback)."""
        if self.failure is None and not part.cancelled():
            self.failure = part.exception()


class HashedUploads:
    """Multipart uploads into ``bucket`` that hash what they send (see the module).

    ``send`` each file, then ``complete`` each key; use it as a context manager.
    """

    def __init__(
        self, client: Any, bucket: str, part_size: int, concurrency: int, checksum: str | None
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._part_size = part_size
        self._checksum = checksum
        self._pool = ThreadPoolExecutor(max_workers=concurrency)
        # One part more than the workers: the next part is read while every worker sends.
        self._slots = threading.BoundedSemaphore(concurrency + 1)
        self._started: dict[str, _Started] = {}

    def __enter__(self) -> HashedUploads:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # Parts still in flight could land after an abort: let them finish (or fail) first.
        self._pool.shutdown(wait=True, cancel_futures=True)
        for key, started in self._started.items():
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=started.upload_id
                )

    def send(self, key: str, source: Path, size: int) -> None:
        """Start the upload of ``source`` (about ``size`` bytes) to ``key`` and send its parts.

        Returns when the last part is read and handed to a worker; raises what the requests or
        the read raise (``OSError`` for the file) as soon as one of this file's parts failed.
        """
        from s3transfer.utils import ChunksizeAdjuster

        part_size = ChunksizeAdjuster().adjust_chunksize(self._part_size, size)
        extra = {"ChecksumAlgorithm": self._checksum} if self._checksum else {}
        created = self._client.create_multipart_upload(Bucket=self._bucket, Key=key, **extra)
        started = self._started[key] = _Started(created["UploadId"])
        digest = hashlib.sha256()
        with open(source, "rb") as reader:
            for number in range(1, 10_001):
                self._slots.acquire()
                try:
                    if started.failure is not None:
                        raise started.failure
                    body = reader.read(part_size)
                except BaseException:
                    self._slots.release()
                    raise
                if not body and number > 1:
                    self._slots.release()
                    break
                part = self._pool.submit(self._send_part, key, started.upload_id, number, body)
                part.add_done_callback(started.note)
                started.parts.append(part)
                # Hashed while it is sent: hashlib releases the GIL on large buffers.
                digest.update(body)
                started.size += len(body)
                if len(body) < part_size:
                    break
            else:
                # Every part S3 allows is full: the file grew since its size chose the part size.
                if reader.read(1):
                    raise OSError(f"{source} grew past {started.size} bytes while it was read")
        started.data_hash = digest.hexdigest()

    def _send_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        try:
            extra = {"ChecksumAlgorithm": self._checksum} if self._checksum else {}
            response = self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                **extra,
            )
        finally:
            self._slots.release()
        part = {"ETag": response["ETag"], "PartNumber": number}
        checksum = f"Checksum{self._checksum}"
        if self._checksum and checksum in response:
            part[checksum] = response[checksum]
        return part

    def complete(self, key: str) -> Uploaded:
        """Wait for the parts of ``key`` and complete its upload; raises what a request raised."""
        started = self._started[key]
        parts = [part.result() for part in started.parts]
        response = self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=key,
            UploadId=started.upload_id,
            MultipartUpload={"Parts": parts},
        )
        del self._started[key]
        return Uploaded(started.data_hash, str(response["ETag"]), started.size)
