"""Copying and hashing local files for catalogs: chunked, atomic, and never a partial file.

Every catalog that moves local files records the SHA-256 of what it moved; these helpers compute
it while copying, give a copy its name only when it is complete (a file without a name linked in,
or a temporary file renamed into place), and skip rewriting a target that already holds the same
bytes.
"""

from __future__ import annotations

import contextlib
import errno
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

    The digest is that of the bytes written, read back from the copy. A copy killed half-way
    never leaves a truncated ``dst``: on Linux a new ``dst`` is written as a file without a name
    (``O_TMPFILE``) and linked in when complete; elsewhere, and over an existing ``dst`` (which
    stays intact until then), the copy goes to a temporary file beside ``dst`` renamed over it.
    Parent folders of ``dst`` are created and the permission bits of ``src`` are kept.

    When ``dst`` is already a regular file with the same size, permission bits and content, it
    is left untouched (its modification time too) and the source is only read: getting unchanged
    data again costs a read, and concurrent steps getting the same file never rewrite it under
    each other. Raises ``OSError`` when either side fails.
    """
    target = Path(dst)
    # Open the source first so that a missing source leaves nothing behind.
    with open(src, "rb", buffering=0) as reader:
        source = os.fstat(reader.fileno())
        try:
            existing: os.stat_result | None = os.lstat(target)
        except OSError:
            existing = None
        if existing is not None:
            digest = _hash_if_identical(reader, source, existing, target)
            if digest is not None:
                return digest
            reader.seek(0)
        mode = stat.S_IMODE(source.st_mode)
        size_hint = source.st_size + 1
        if existing is None and _UNNAMED_FILES:
            digest = _copy_unnamed_then_link(reader, mode, target, size_hint)
            if digest is not None:
                return digest
            reader.seek(0)
        target.parent.mkdir(parents=True, exist_ok=True)
        return _copy_to_temporary_then_rename(reader, mode, target, size_hint)


def _hash_if_identical(
    reader: io.FileIO, source: os.stat_result, existing: os.stat_result, target: Path
) -> str | None:
    """The source's digest when ``target`` (whose ``lstat`` is ``existing``) already holds the
    same bytes, else ``None``.

    Compares chunk by chunk and gives up at the first difference, so a changed file costs at
    most one extra partial read before it is copied.
    """
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


def _fill_and_hash(reader: io.FileIO, copy: io.FileIO, mode: int, size_hint: int) -> str:
    """Copy ``reader`` into the new file ``copy``, give it ``mode``, return the copy's hash.

    The bytes move inside the kernel, then the copy is hashed while it is still in the page
    cache: on Linux that is faster than hashing and writing from Python in one pass (user-space
    writes of a large file are throttled harder), and the digest is by construction that of the
    bytes stored, even if the source changes meanwhile.
    """
    _copy_bytes(reader, copy)
    copy.seek(0)
    digest = _hash_stream(copy, size_hint)
    # The umask may have taken bits away; keep the source's, as shutil.copy does.
    if stat.S_IMODE(os.fstat(copy.fileno()).st_mode) != mode:
        os.fchmod(copy.fileno(), mode)
    return digest


def _copy_to_temporary_then_rename(
    reader: io.FileIO, mode: int, target: Path, size_hint: int = CHUNK_SIZE
) -> str:
    """Copy into a temporary file beside ``target``, hash the copy, rename it into place."""
    with replacing(target, mode) as copy:
        return _fill_and_hash(reader, copy, mode, size_hint)


#: Whether a file can be made without a name and linked in when complete: Linux's ``O_TMPFILE``,
#: linked through ``/proc/self/fd`` (``linkat`` on the descriptor itself needs privileges).
_UNNAMED_FILES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
#: What ``open`` says on a file system that makes no unnamed files: copy through a named one.
_NO_UNNAMED_FILES = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


def _copy_unnamed_then_link(
    reader: io.FileIO, mode: int, target: Path, size_hint: int
) -> str | None:
    """Copy into a file without a name in ``target``'s folder, hash it, link it as ``target``.

    One name made per copy instead of a temporary name and a rename, and a copy killed half-way
    leaves nothing at all (a temporary name would stay behind): the kernel frees a file that has
    no name when it is closed. ``None`` when the file system makes no unnamed files (the caller
    copies through a named temporary file).
    """
    handle = _open_unnamed(target.parent, mode)
    if handle is None:
        return None
    with open(handle, "r+b", buffering=0) as copy:
        digest = _fill_and_hash(reader, copy, mode, size_hint)
        _link_unnamed(handle, target)
    return digest


def write_new_file(target: Path, data: bytes) -> None:
    """Write ``data`` as ``target`` (made like any new file: 0666 less the umask).

    Never a partial file under ``target``'s name, as for copies: on Linux the bytes go to a file
    without a name that is linked in when complete, elsewhere to a temporary file renamed over
    ``target``. Parent folders are made when missing. Raises ``OSError``.
    """
    handle = _open_unnamed(target.parent, 0o666) if _UNNAMED_FILES else None
    if handle is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target, 0o666) as writer:
            _write_all(writer, data)
        return
    with open(handle, "r+b", buffering=0) as writer:
        _write_all(writer, data)
        _link_unnamed(handle, target)


def link_identical(source: str | Path, data: bytes, target: str | Path) -> bool:
    """Give ``target`` the file ``source`` is, when that file holds exactly ``data``; whether
    it did.

    A new name for a file costs no new file: where a catalog holds the same bytes many times
    (empty execution logs, most often), that is most of what storing them costs. The file is
    compared while open and the link made to the open file itself, so a file put in
    ``source``'s place meanwhile is never linked. ``False`` (nothing done) when ``source``
    holds other bytes or went, or the file system refuses the link (too many links, no hard
    links at all): the caller writes the bytes instead. An existing ``target`` is replaced, as
    a rename over it would.
    """
    try:
        with open(source, "rb", buffering=0) as reader:
            if os.fstat(reader.fileno()).st_size != len(data):
                return False
            if data and reader.readall() != data:
                return False
            if _UNNAMED_FILES:
                # The open file itself, through /proc (see _link_unnamed for the arguments).
                opened, where = f"/proc/self/fd/{reader.fileno()}", reader.fileno()
            else:
                opened, where = os.fspath(source), None
            _link_replacing(opened, target, where)
    except OSError:
        return False
    return True


def _write_all(writer: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[writer.write(view) or 0 :]


def _open_unnamed(folder: Path, mode: int) -> int | None:
    """A descriptor of a new file without a name in ``folder`` (made when missing), or
    ``None`` when the file system makes no such files."""
    flags = os.O_TMPFILE | os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            return os.open(folder, flags, mode)
        except FileNotFoundError:
            # Folders are made when missing: a failed call, rather than a mkdir per file.
            folder.mkdir(parents=True, exist_ok=True)
            return os.open(folder, flags, mode)
    except OSError as exc:
        if exc.errno in _NO_UNNAMED_FILES:
            return None
        raise


def _link_unnamed(handle: int, target: Path) -> None:
    """Give the unnamed file open as ``handle`` the name ``target``, replacing what has it."""
    # linkat(2) follows the /proc link to the file only with AT_SYMLINK_FOLLOW, which os.link
    # passes only when given a folder descriptor; the target is absolute, so it is ignored.
    _link_replacing(f"/proc/self/fd/{handle}", target, handle)


def _link_replacing(source: str, target: str | Path, folder_fd: int | None) -> None:
    """Link ``source`` as ``target``; an existing ``target`` is replaced, as a rename over it
    would (through a new name beside it). ``folder_fd``: see :func:`_link_unnamed`."""
    try:
        os.link(source, os.path.abspath(target), dst_dir_fd=folder_fd, follow_symlinks=True)
        return
    except FileExistsError:
        pass
    while True:
        temporary = _partial_name(Path(target))
        try:
            os.link(source, temporary, dst_dir_fd=folder_fd, follow_symlinks=True)
            break
        except FileExistsError:
            continue
    try:
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _partial_name(target: Path) -> str:
    """A new name beside ``target`` that catalog reads skip (:data:`PARTIAL_SUFFIX`)."""
    return os.path.abspath(
        target.with_name(f".{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    )


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
        name = _partial_name(target)
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
