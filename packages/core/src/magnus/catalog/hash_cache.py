"""A catalog's stat cache of file hashes: an unchanged file is never read twice.

Entries map a file's absolute path to its ``(size, mtime_ns, ctime_ns, inode)`` when hashed and
its SHA-256; a file whose ``stat`` still gives the same four is taken to hold the same bytes.
The cache of a catalog lives in one JSON file where the catalog keeps its data, replaced
atomically; a cache that cannot be read is ignored (and rebuilt), one that cannot be written is
skipped: the cache only saves reads, it never decides a hash.

A file modified within :data:`RACY_NS` of being hashed is not remembered: a second write in the
same timestamp tick, of the same size, would leave its ``stat`` unchanged (git's "racily clean"
entries). Concurrent writers of one cache lose each other's new entries, never correctness.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from magnus.catalog.copying import file_hash, replacing

logger = logging.getLogger(__name__)

#: The cache file, in the catalog's folder.
CACHE_FILE = ".hash-cache.json"
#: How recent a modification makes a file's ``stat`` untrustworthy: the coarsest timestamps
#: (FAT, some network file systems) tick every two seconds.
RACY_NS = 2_000_000_000

_Entry = tuple[int, int, int, int, str]  # size, mtime_ns, ctime_ns, inode, sha256


def _signature(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino


class HashCache:
    """The SHA-256 of files, remembered against their ``stat`` in the file ``path``.

    Loaded on first use and written by :meth:`save` when something was added.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, _Entry] | None = None
        self._changed = False
        # the cache file's stat when it was read or written here: another writer changes it
        self._file: tuple[int, int, int, int] | None = None

    def is_current(self) -> bool:
        """Whether what is loaded is what the file holds (no other process replaced it since),
        so that one instance can serve many transfers without reading the file again."""
        if self._entries is None:
            return True
        try:
            return _signature(os.stat(self.path)) == self._file
        except OSError:
            return self._file is None

    def _load(self) -> dict[str, _Entry]:
        if self._entries is None:
            self._entries = {}
            try:
                self._file = _signature(os.stat(self.path))
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
                self._entries = {
                    key: (size, mtime, ctime, inode, digest)
                    for key, (size, mtime, ctime, inode, digest) in data.items()
                }
            except FileNotFoundError:
                pass
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                logger.debug("Ignoring the unreadable hash cache %s: %s", self.path, exc)
        return self._entries

    def lookup(self, path: Path, status: os.stat_result) -> str | None:
        """The remembered hash of ``path`` if its ``status`` is the one it was hashed with."""
        entry = self._load().get(str(path))
        if entry is None or entry[:4] != _signature(status):
            return None
        return entry[4]

    def remember(self, path: Path, status: os.stat_result, digest: str) -> None:
        """Record ``digest`` as the hash of ``path`` as it was when ``status`` was taken."""
        if status.st_mtime_ns > time.time_ns() - RACY_NS:
            return
        entries = self._load()
        entry = (*_signature(status), digest)
        if entries.get(str(path)) != entry:
            entries[str(path)] = entry
            self._changed = True

    def file_hash(self, path: Path) -> str:
        """The SHA-256 of ``path``: remembered if it has not changed, else read and remembered."""
        status = os.stat(path)
        digest = self.lookup(path, status)
        if digest is None:
            # Taken before reading: a change while reading moves mtime, so the entry misses.
            digest = file_hash(path)
            self.remember(path, status, digest)
        return digest

    def save(self) -> None:
        """Write the cache, atomically, if it gained entries; a failure only costs reads later."""
        if not self._changed or self._entries is None:
            return
        try:
            with replacing(self.path, 0o666) as writer:
                writer.write(json.dumps(self._entries, separators=(",", ":")).encode("utf-8"))
            self._file = _signature(os.stat(self.path))
        except OSError as exc:
            logger.debug("Cannot write the hash cache %s: %s", self.path, exc)
            return
        self._changed = False
