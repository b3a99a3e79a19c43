"""The journal of a run's records in its folder: how ``chunked-fs`` writes a record.

A record inside a folder of its run (``steps/StepLog-train.json``: every chunk of
:mod:`magnus.runlog.chunks`) is not a file of its own: it is a line appended to the run's
journal, ``<run folder>/records.journal``. Creating a file costs more than everything else a
short step does; appending a line to the journal costs an open and a write. Each line is framed by
:func:`magnus.runlog.journal.frame` (checksum, payload, newline) around the payload
``<record name>\\t<JSON on one line>``; an empty JSON removes the record. The last line for a
record is the record.

Every writer of the run appends to the one journal while it holds the run's lock (which the
chunked store takes for every write, to keep a chunk's creation stamp), so writers in several
processes, or in pods sharing a volume, never interleave, and reading a run opens one file.
A writer killed in the middle of its append leaves a last line without its newline: readers
ignore it and the next writer cuts it off.

A process keeps what it replayed of each journal and reads only the bytes appended since,
parsing a record's JSON only when it is asked for. Records of the previous layout, one file per
record, are read where the journal has no line for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

from magnus.exceptions import RunLogStoreError
from magnus.runlog.journal import complete_lines, frame

JOURNAL_FILE = "records.journal"
#: A journal appended to without being read (:meth:`RecordJournal.append_unread`) is compacted
#: once it is twice the size it had after its last compaction, and at least this size: each
#: compaction rewrites at most what was appended since the last, a constant cost per append.
COMPACT_FROM = 4 * 1024 * 1024
#: The first line of a compacted journal: a record saying how large the compacted journal was.
COMPACTED_RECORD = ".compacted"

#: The version of a record in a journal: the journal's inode and where the record's line starts.
Version = tuple[int, int]
#: What a journal says of a record: its version and JSON, or ``None`` for its removal.
Entry = tuple[Version, bytes | None]


class RecordJournal:
    """What this process has replayed of one run's journal: the last line of each record.

    Thread-safe: a step's deferred record may be written from another thread of the process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._path_text = str(path)
        self._guard = threading.Lock()
        self._inode: int | None = None
        self._offset = 0  # bytes of complete lines replayed
        # While this process holds the run's lock nobody else can append: once replayed up to
        # the end, the replay stays current without looking at the file again. A reader of many
        # records holds it the same way (FolderStorage.reading): they are read as of one moment.
        self._holds = 0
        self._current = False
        # folder -> file name -> entry: listing a folder does not walk the others' records.
        self._folders: dict[str, dict[str, Entry]] = {}
        # (inode, size) the journal had when this process's last unread append ended it.
        self._appended_end: tuple[int, int] | None = None

    # ------------------------------------------------------------------ reading

    def entry(self, record: str) -> Entry | None:
        """The journal's last word on ``record``; ``None`` when it has none."""
        folder, _, name = record.rpartition("/")
        with self._guard:
            self._catch_up()
            return self._folders.get(folder, {}).get(name)

    def folder(self, folder: str) -> dict[str, bytes | None]:
        """The records of ``folder`` the journal speaks of: name -> JSON (``None``: removed)."""
        with self._guard:
            self._catch_up()
            return {name: entry[1] for name, entry in self._folders.get(folder, {}).items()}

    def parse(self, record: str, data: bytes) -> Any:
        """The JSON of a record's line, parsed."""
        try:
            return json.loads(data)
        except ValueError as exc:
            raise RunLogStoreError(
                f"The run log record {record} in {self.path} is not valid JSON: {exc}"
            ) from exc

    def _forget(self) -> None:
        self._inode, self._offset, self._folders = None, 0, {}
        self._current = False

    def hold(self) -> None:
        """The run's lock is now held by this process (see ``_holds``), or it reads many records
        as of one moment; :meth:`release` ends it."""
        with self._guard:
            self._holds += 1
            self._current = False

    def release(self) -> None:
        """The hold :meth:`hold` began has ended."""
        with self._guard:
            self._holds -= 1
            self._current = False

    def _catch_up(self) -> None:
        """Replay what was appended since the last look (the guard is held)."""
        if self._current:
            return
        self._replay()
        self._current = self._holds > 0

    def _replay(self) -> None:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            self._forget()  # the run was removed (or never had a journal)
            return
        except OSError as exc:
            raise RunLogStoreError(f"Cannot read {self.path}: {exc.strerror or exc}") from exc
        if size == self._offset and self._inode is not None:
            return
        try:
            with open(self.path, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                if inode != self._inode or size < self._offset:
                    self._forget()  # another journal at this path: the run was made again
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            self._forget()
            return
        except OSError as exc:
            raise RunLogStoreError(f"Cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            lines, used = complete_lines(data, self._offset, str(self.path))
        except RunLogStoreError:
            if self._offset == 0:
                raise
            # Replayed from the middle of a journal that is not the one replayed before (a run
            # removed and made again, its journal given the same inode): start over once.
            self._forget()
            self._replay()
            return
        self._inode = inode
        self._apply(inode, lines)
        self._offset += used

    def _apply(self, inode: int, lines: list[tuple[int, bytes]]) -> None:
        for position, payload in lines:
            name_bytes, tab, data = payload.partition(b"\t")
            if not tab:
                raise RunLogStoreError(
                    f"The run log journal {self.path} holds a line at byte {position} that "
                    "names no record"
                )
            folder, _, name = name_bytes.decode("utf-8").rpartition("/")
            self._folders.setdefault(folder, {})[name] = ((inode, position), data or None)

    # ------------------------------------------------------------------ writing

    def append(self, changes: list[tuple[str, bytes | None]]) -> None:
        """Append a line per ``(record, JSON or None to remove it)``; the run's lock is held.

        Visible to every other process once this returns (the bytes are in the file), as a
        record's file was once renamed into place.
        """
        block = b"".join(
            frame(record.encode("utf-8") + b"\t" + (data or b"")) for record, data in changes
        )
        with self._guard:
            try:
                fd = os.open(self._path_text, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
                try:
                    inode = self._catch_up_with(fd)
                    written = 0
                    while written < len(block):
                        written += os.write(fd, block[written:])
                finally:
                    os.close(fd)
            except OSError as exc:
                self._forget()  # what is in the file is read again
                raise RunLogStoreError(
                    f"Cannot write {self.path} in the run log folder {self.path.parent}: "
                    f"{exc.strerror or exc}"
                ) from exc
            lines, used = complete_lines(block, self._offset, self._path_text)
            self._apply(inode, lines)
            self._offset += used

    def append_unread(self, changes: list[tuple[str, bytes | None]]) -> None:
        """Append a line per change without replaying the journal, under a lock of its own.

        For a journal written far more often than it is read (the fingerprint index, which
        every step of every run writes and only reused runs read): its writers hold no run's
        lock, so the journal's own ``flock`` serialises them, and what others appended is left
        for readers. A torn last line is still cut off first, and a journal twice the size it
        had after its last compaction (:data:`COMPACT_FROM` at least) is rewritten with each
        record's last line; that is looked at only when its size passes a power of two.
        """
        block = b"".join(
            frame(record.encode("utf-8") + b"\t" + (data or b"")) for record, data in changes
        )
        with self._guard:
            try:
                fd, stat = self._open_locked()
                try:
                    size = stat.st_size
                    # Ended by this process's last append, the journal has no torn line.
                    if (stat.st_ino, size) != self._appended_end:
                        size = self._cut_torn_tail(fd, size)
                    written = 0
                    while written < len(block):
                        written += os.write(fd, block[written:])
                    self._appended_end = (stat.st_ino, size + written)
                    grown = size + written
                    if (
                        grown >= COMPACT_FROM
                        and grown.bit_length() > size.bit_length()
                        and grown >= 2 * _compacted_size(fd)
                    ):
                        self._compact(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._forget()
                raise RunLogStoreError(
                    f"Cannot write {self.path} in the run log folder {self.path.parent}: "
                    f"{exc.strerror or exc}"
                ) from exc
            # What this process knew of the journal is read again when next asked for.
            self._current = False

    def _open_locked(self) -> tuple[int, os.stat_result]:
        """The journal opened for appending, its ``flock`` held, and its ``fstat``; reopened
        if it was replaced (compacted) while this process waited for the lock."""
        while True:
            fd = os.open(self._path_text, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                stat = os.fstat(fd)
                try:
                    same = os.stat(self._path_text).st_ino == stat.st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                return fd, stat
            os.close(fd)

    @staticmethod
    def _cut_torn_tail(fd: int, size: int) -> int:
        """Cut off an incomplete last line (a writer killed mid-append); the new size."""
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                os.ftruncate(fd, start + newline + 1)
                return start + newline + 1
            end = start
        os.ftruncate(fd, 0)
        return 0

    def _compact(self, fd: int) -> None:
        """Rewrite the journal with each record's last line (its lock is held through ``fd``)."""
        self._forget()
        self._catch_up_with(fd)
        live = b"".join(
            frame(f"{folder}/{name}".removeprefix("/").encode("utf-8") + b"\t" + data)
            for folder, records in self._folders.items()
            for name, (_, data) in records.items()
            if data is not None and name != COMPACTED_RECORD
        )
        header = frame(b'%s\t{"bytes": %d}' % (COMPACTED_RECORD.encode(), len(live)))
        temporary = f"{self._path_text}.{os.getpid()}.compacting"
        try:
            with open(temporary, "wb") as out:
                out.write(header + live)
            os.replace(temporary, self._path_text)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        self._forget()

    def _catch_up_with(self, fd: int) -> int:
        """Replay, through the writer's descriptor, everything before the end of the journal,
        and cut off a torn last line (the guard and the run's lock are held).

        The descriptor's size is the file's own (opening revalidates what a network file system
        cached), so no complete line of another writer is ever taken for a torn one.
        """
        stat = os.fstat(fd)
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._forget()
        if stat.st_size > self._offset:
            data = os.pread(fd, stat.st_size - self._offset, self._offset)
            try:
                lines, used = complete_lines(data, self._offset, str(self.path))
            except RunLogStoreError:
                if self._offset == 0:
                    raise
                self._forget()  # not the journal replayed before (see _catch_up): start over
                return self._catch_up_with(fd)
            self._apply(stat.st_ino, lines)
            self._offset += used
            if self._offset < stat.st_size:
                # The torn last line of a writer that was killed: nobody has read it.
                os.ftruncate(fd, self._offset)
        self._inode = stat.st_ino
        return stat.st_ino


def _compacted_size(fd: int) -> int:
    """The size a journal had when it was last compacted (its first line says), or 0."""
    first = os.pread(fd, 256, 0)
    try:
        lines, _ = complete_lines(first[: first.find(b"\n") + 1], 0, "")
    except RunLogStoreError:
        return 0  # a damaged first line: read as never compacted
    if lines:
        name, _, data = lines[0][1].partition(b"\t")
        if name == COMPACTED_RECORD.encode():
            with contextlib.suppress(ValueError, AttributeError):
                return int(json.loads(data).get("bytes", 0))
    return 0
