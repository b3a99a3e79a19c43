"""The files of the catalog workloads: one 1 GiB file, 10,000 files of 4 KiB, and the S3 put's
200 MiB file.

Content is random so that no layer (file system, page cache) can shortcut it; files are made
once and reused while their size and count are right.
"""

from __future__ import annotations

import os
from pathlib import Path

BIG_SIZE = 1024**3
#: the file the S3 catalog puts (moto keeps objects on this machine: a few rounds must fit)
S3_SIZE = 200 * 1024**2
SMALL_COUNT = 10_000
SMALL_SIZE = 4096
_BLOCK = 64 * 1024 * 1024

#: data set -> glob the catalogs put and get (relative to the cell folder). A workload is a data
#: set, with ``-absent`` when the originals are removed before the get, so that no catalog can
#: skip rewriting them.
PATTERNS = {"catalog-1g": "data/big.bin", "catalog-10k": "data/small/*"}
#: S3 workload -> the file it puts (through ``catalog_s3_driver.py``, not ``catalog_driver.py``)
S3_PATHS = {"catalog-s3-put": "data/large.bin"}


def data_set(workload: str) -> str:
    """The data set a catalog ``workload`` moves (both get modes share it)."""
    return workload.removesuffix("-absent")


def get_mode(workload: str) -> str:
    """How the catalog driver gets the files back: ``over`` the originals, or ``absent``."""
    return "absent" if workload.endswith("-absent") else "over"


def _random_file(target: Path, size: int) -> None:
    if target.is_file() and target.stat().st_size == size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        for _ in range(size // _BLOCK):
            handle.write(os.urandom(_BLOCK))
        handle.write(os.urandom(size % _BLOCK))


def _big(folder: Path) -> None:
    _random_file(folder / "data" / "big.bin", BIG_SIZE)


def _s3(folder: Path) -> None:
    _random_file(folder / S3_PATHS["catalog-s3-put"], S3_SIZE)


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
    {"catalog-1g": _big, "catalog-s3-put": _s3}.get(name, _small)(folder)
    return folder
