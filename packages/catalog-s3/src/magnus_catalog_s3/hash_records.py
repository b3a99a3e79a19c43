"""The SHA-256 of an object stored beside it, for objects whose hash was known only at the end.

S3 takes an object's metadata when an upload starts. A large file is hashed *while* it is
uploaded (read once), so its hash is known only after the last part has been sent; it is then
written to a small JSON object beside the data, ``<key>`` + :data:`RECORD_SUFFIX`, that names the
object's ETag and size as returned when the upload completed. A reader trusts the record only
when both still match the object: if anything replaced the object after the record was written
(or a put was killed between completing the upload and writing the record), the record describes
another object and the hash counts as missing, never as wrong.
"""

from __future__ import annotations

import json

#: Suffix of the hash record of ``<key>``; the catalog never lists such keys as data.
RECORD_SUFFIX = ".magnus-sha256"


def is_hash_record(key: str) -> bool:
    """Whether ``key`` names a hash record rather than data."""
    return key.endswith(RECORD_SUFFIX)


def record_key(key: str) -> str:
    """The key of the hash record of the object ``key``."""
    return key + RECORD_SUFFIX


def encode(data_hash: str, etag: str, size: int) -> bytes:
    """The record of an object with this SHA-256, ETag and size."""
    return json.dumps({"sha256": data_hash, "etag": etag, "size": size}).encode("utf-8")


def decode(body: bytes, etag: str, size: int) -> str | None:
    """The SHA-256 a record holds if it describes the object with this ETag and size.

    ``None`` for a record of another object (stale) and for one that cannot be parsed.
    """
    try:
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("etag") != etag or record.get("size") != size:
        return None
    data_hash = record.get("sha256")
    if not isinstance(data_hash, str) or len(data_hash) != 64 or set(data_hash) - _HEX:
        return None
    return data_hash


_HEX = frozenset("0123456789abcdef")
