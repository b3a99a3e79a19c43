"""The files of the catalog workloads: one 1 GiB file, and 10,000 files of 4 KiB.

Content is random so that no layer (file system, page cache) can shortcut it; files are made
once and reused while their size and count are right.
"""

from __future__ import annotations

import os
from pathlib import Path

BIG_SIZE = 1024**3
SMALL_COUNT = 10_000
SMALL_SIZE = 4096
_BLOCK = 64 * 1024 * 1024

#: data set -> glob the catalogs put and get (relative to the cell folder). A workload is a data
#: set, with ``-absent`` when the originals are removed before the get, so that no catalog can
#: skip rewriting them.
PATTERNS = {"catalog-1g": "data/big.bin", "catalog-10k": "data/small/*"}


def data_set(workload: str) -> str:
    """The data set a catalog ``workload`` moves (both get modes share it)."""
    return workload.removesuffix("-absent")


def get_mode(workload: str) -> str:
    """How the catalog driver gets the files back: ``over`` the originals, or ``absent``."""
    return "absent" if workload.endswith("-absent") else "over"


def _big(folder: Path) -> None:
    target = folder / "data" / "big.bin"
    if target.is_file() and target.stat().st_size == BIG_SIZE:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        for _ in range(BIG_SIZE // _BLOCK):
            handle.write(os.urandom(_BLOCK))


def _small(folder: Path) -> None:
    target = folder / "data" / "small"
    if target.is_dir() and sum(1 for _ in target.iterdir()) == SMALL_COUNT:
        return
    target.mkdir(parents=True, exist_ok=True)
    for index in range(SMALL_COUNT):
        (target / f"part-{index:05d}.bin").write_bytes(os.urandom(SMALL_SIZE))


def prepare(work: Path, workload: str) -> Path:
    """The folder of a catalog ``workload`` with its data in place (shared by both get modes)."""
    name = data_set(workload)
    folder = work / name
    (_big if name == "catalog-1g" else _small)(folder)
    return folder
