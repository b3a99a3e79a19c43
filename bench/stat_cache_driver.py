"""Hash the stat-cache workload's files, the first time or as a no-change check; timed here.

``python stat_cache_driver.py MODE`` from the folder holding ``data/`` (see stat_cache_data.py):

- ``first``: every file hashed through the catalog's stat cache
  (:class:`magnus.catalog.hash_cache.HashCache`, ``.catalog/.hash-cache.json``), which reads
  every byte because the cache is empty, and the cache saved;
- ``check``: the same calls again with the cache filled by ``first``, from a new cache object
  (its file loaded, as a new process would): the no-change check of the cache alone;
- ``check-put``: the catalog put a step makes of ``data/**/*`` when the run already holds the
  same files (``synced_catalogs``, as after a sync between runs): globbing, a ``stat`` and a cache
  lookup per file, nothing copied;
- ``floor-first``: ``hashlib.sha256`` of every file; ``floor-check``: ``os.stat`` of every file.

``check`` and ``check-put`` fill the cache first (untimed) when it is missing, and fail when any
file was read: the point is that none is. Prints ``{"seconds": ..., ...}`` last.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stat_cache_data import COUNT, PATTERN, files

CATALOG = Path(".catalog")
RUN_ID = "bench-stat-cache"


def _floor_first(paths: list[Path]) -> None:
    for path in paths:
        hashlib.sha256(path.read_bytes()).hexdigest()


def _floor_check(paths: list[Path]) -> None:
    for path in paths:
        os.stat(path)


def _first(paths: list[Path]) -> dict[str, str]:
    from magnus.catalog.hash_cache import CACHE_FILE, HashCache

    cache = HashCache((CATALOG / CACHE_FILE).resolve())
    digests = {str(path): cache.file_hash(path) for path in paths}
    cache.save()
    return digests


def _counting_reads() -> list[Path]:
    """Count the files the stat cache reads to hash them (none, in a no-change check)."""
    import magnus.catalog.hash_cache as hash_cache

    read: list[Path] = []
    original = hash_cache.file_hash

    def counted(path: str | os.PathLike[str]) -> str:
        read.append(Path(path))
        return original(path)

    hash_cache.file_hash = counted
    return read


def _put_unchanged(paths: list[Path]) -> float:
    """``check-put``: the synced records are built (untimed) from the cache, then the put timed."""
    from magnus.catalog import FileSystemCatalog
    from magnus.catalog.hash_cache import CACHE_FILE, HashCache

    catalog = FileSystemCatalog(catalog_location=str(CATALOG))
    cache = HashCache((CATALOG / CACHE_FILE).resolve())
    root = Path(".").resolve()
    synced = []
    for path in paths:
        digest = cache.lookup(path, os.stat(path))
        if digest is None:
            raise SystemExit(f"{path} is not in the cache")
        synced.append(catalog.catalog_record(str(path.relative_to(root)), RUN_ID, digest, "put"))
    start = time.perf_counter()
    records = catalog.put(PATTERN, RUN_ID, synced_catalogs=synced)
    seconds = time.perf_counter() - start
    if len(records) != len(paths):
        raise SystemExit(f"the put recorded {len(records)} of {len(paths)} files")
    return seconds


def _timed(function: Callable[[list[Path]], object], paths: list[Path]) -> float:
    start = time.perf_counter()
    function(paths)
    return time.perf_counter() - start


MODES: dict[str, Callable[[list[Path]], float]] = {
    "first": lambda paths: _timed(_first, paths),
    "check": lambda paths: _timed(_first, paths),
    "check-put": _put_unchanged,
    "floor-first": lambda paths: _timed(_floor_first, paths),
    "floor-check": lambda paths: _timed(_floor_check, paths),
}


def main(mode: str) -> None:
    from magnus.catalog.hash_cache import CACHE_FILE

    paths = files(Path("."))
    if len(paths) != COUNT:
        raise SystemExit(f"expected {COUNT} files under data/, found {len(paths)}")
    CATALOG.mkdir(exist_ok=True)
    cache_file = CATALOG / CACHE_FILE
    if mode.startswith("check") and not cache_file.is_file():
        _first(paths)
    read = _counting_reads()
    seconds = MODES[mode](paths)
    if mode.startswith("check") and read:
        raise SystemExit(f"the no-change check read {len(read)} file(s), e.g. {read[0]}")
    if mode == "first":
        remembered = len(json.loads(cache_file.read_text()))
        if remembered != COUNT:
            raise SystemExit(f"the cache remembered {remembered} of {COUNT} files")
    size = cache_file.stat().st_size if cache_file.is_file() else 0
    print(json.dumps({"seconds": seconds, "files_read": len(read), "cache_bytes": size}))


if __name__ == "__main__":
    main(*sys.argv[1:])
