"""Copying and hashing local files for catalogs: chunked, atomic, and never a partial file.

Every catalog that moves local files records the SHA-256 of what it moved; these helpers compute
it while copying, write through a temporary file renamed into place, and skip rewriting a target
that already holds the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

#: Read size when hashing or copying; large enough to amortise system calls, small enough that a
#: multi-gigabyte file never sits in memory.
CHUNK_SIZE = 1024 * 1024

#: Suffix of the temporary file a copy (or a catalog's download) writes before renaming it into
#: place. Catalog reads skip such files, so the leftovers of a killed copy never reach a step.
PARTIAL_SUFFIX = ".magnus-partial"


def file_hash(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file's content, read in :data:`CHUNK_SIZE` chunks.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb", buffering=0) as reader:
        return _hash_stream(reader, os.fstat(reader.fileno()).st_size + 1)


def copy_with_hash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Copy ``src`` to ``dst`` and return the SHA-256 hex digest of the content.

    The digest is that of the bytes written, read back from the copy. The copy is written to a
    temporary file beside ``dst`` and renamed over it, so a copy killed half-way never leaves a
    truncated ``dst`` (an existing ``dst`` stays intact until the rename). Parent folders of
    ``dst`` are created and the permission bits of ``src`` are kept.

    When ``dst`` is already a regular file with the same size, permission bits and content, it
    is left untouched (its modification time too) and the source is only read: getting unchanged
    data again costs a read, and concurrent steps getting the same file never rewrite it under
    each other. Raises ``OSError`` when either side fails.
    """
    target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Open the source first so that a missing source leaves no temporary file behind.
    with open(src, "rb", buffering=0) as reader:
        source = os.fstat(reader.fileno())
        digest = _hash_if_identical(reader, source, target)
        if digest is not None:
            return digest
        reader.seek(0)
        mode = stat.S_IMODE(source.st_mode)
        return _copy_to_temporary_then_rename(reader, mode, target, source.st_size + 1)


def _hash_if_identical(reader: io.FileIO, source: os.stat_result, target: Path) -> str | None:
    """The source's digest when ``target`` already holds the same bytes, else ``None``.

    Compares chunk by chunk and gives up at the first difference, so a changed file costs at
    most one extra partial read before it is copied.
    """
    try:
        existing = os.lstat(target)
    except OSError:
        return None
    if not stat.S_ISREG(existing.st_mode) or existing.st_size != source.st_size:
        return None
    if stat.S_IMODE(existing.st_mode) != stat.S_IMODE(source.st_mode):
        return None
    if (existing.st_dev, existing.st_ino) == (source.st_dev, source.st_ino):
        return _hash_stream(reader, source.st_size + 1)
    digest = hashlib.sha256()
    # Small files are the common case: don't allocate (and fault in) two full chunks for them.
    length = min(CHUNK_SIZE, source.st_size + 1)
    ours, theirs = bytearray(length), bytearray(length)
    view = memoryview(ours)
    with open(target, "rb", buffering=0) as other:
        while size := _read_full(reader, ours):
            if _read_full(other, theirs) != size:
                return None
            # bytearray equality is a memcmp; comparing memoryviews goes element by element.
            same = ours == theirs if size == length else ours[:size] == theirs[:size]
            if not same:
                return None
            digest.update(view[:size])
        if other.read(1):
            return None
    return digest.hexdigest()


def _copy_to_temporary_then_rename(
    reader: io.FileIO, mode: int, target: Path, size_hint: int = CHUNK_SIZE
) -> str:
    """Copy into a temporary file beside ``target``, hash the copy, rename it into place.

    The bytes move inside the kernel, then the copy is hashed while it is still in the page
    cache: on Linux that is faster than hashing and writing from Python in one pass (user-space
    writes of a large file are throttled harder), and the digest is by construction that of the
    bytes stored, even if the source changes meanwhile.
    """
    with replacing(target, mode) as copy:
        _copy_bytes(reader, copy)
        copy.seek(0)
        digest = _hash_stream(copy, size_hint)
        # The umask may have taken bits away; keep the source's, as shutil.copy does.
        if stat.S_IMODE(os.fstat(copy.fileno()).st_mode) != mode:
            os.fchmod(copy.fileno(), mode)
    return digest


#: Whether ``os.sendfile`` copies between regular files here (Linux; macOS only sends to sockets).
_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile")
_SENDFILE_BLOCK = 1024**3


def _copy_bytes(reader: io.FileIO, writer: io.FileIO) -> None:
    """Every byte of ``reader`` (from its start) appended to ``writer``."""
    if _SENDFILE:
        offset = 0
        try:
            while sent := os.sendfile(writer.fileno(), reader.fileno(), offset, _SENDFILE_BLOCK):
                offset += sent
            return
        except OSError:
            # Some file systems refuse sendfile; start over in user space if nothing was sent.
            if offset:
                raise
    reader.seek(0)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    while size := reader.readinto(buffer):
        writer.write(view[:size])


@contextlib.contextmanager
def replacing(target: Path, mode: int) -> Iterator[io.FileIO]:
    """A new file beside ``target``, open for reading and writing, renamed over it on success.

    Created exclusively with ``mode`` at once (less the umask), which saves the ``chmod`` that
    ``tempfile.mkstemp``'s 0600 would need. If the block raises, the file is removed and
    ``target`` is left as it was: never a partial file under its name.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"))
        try:
            handle = os.open(name, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with open(handle, "r+b", buffering=0) as temporary:
            yield temporary
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _read_full(reader: io.FileIO, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``reader`` unless the end comes first; return the bytes read."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        size = reader.readinto(view[filled:])
        if not size:
            break
        filled += size
    return filled


def _hash_stream(reader: io.FileIO, size_hint: int = CHUNK_SIZE) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(max(1, min(CHUNK_SIZE, size_hint)))
    view = memoryview(buffer)
    # Unbuffered reads into one reused buffer: no per-chunk allocation, no double copy.
    while size := reader.readinto(buffer):
        digest.update(view[:size])
    return digest.hexdigest()
