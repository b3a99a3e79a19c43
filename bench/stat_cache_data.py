"""The files of the stat-cache workload: 100,000 small files in 100 folders.

Content is random; files are made once and reused while their count is right. Their ``mtime`` is
set two seconds back once written: the cache does not remember a file modified within
``RACY_NS`` of being hashed, and every file here must be remembered the first time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FOLDERS = 100
PER_FOLDER = 1000
COUNT = FOLDERS * PER_FOLDER
SIZE = 1024
#: the glob a catalog put matches them with (relative to the workload folder)
PATTERN = "data/**/*"
#: older than the stat cache's racy window (2 s), with a margin
_AGE_NS = 10_000_000_000


def files(folder: Path) -> list[Path]:
    """Every data file of the workload (absolute paths), in a stable order."""
    found: list[Path] = []
    for top, _folders, names in os.walk(folder.resolve() / "data"):
        found.extend(Path(top, name) for name in names)
    return sorted(found)


def prepare(work: Path) -> Path:
    """``work/stat-cache/`` with its 100,000 files in place."""
    folder = work / "stat-cache"
    data = folder / "data"
    if data.is_dir() and len(files(folder)) == COUNT:
        return folder
    old = time.time_ns() - _AGE_NS
    for index in range(FOLDERS):
        target = data / f"d{index:03d}"
        target.mkdir(parents=True, exist_ok=True)
        for number in range(PER_FOLDER):
            path = target / f"f{number:04d}.bin"
            path.write_bytes(os.urandom(SIZE))
            os.utime(path, ns=(old, old))
    return folder
