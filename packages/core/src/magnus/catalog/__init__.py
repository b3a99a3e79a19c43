"""Catalogs: the contract, the built-in ``do-nothing`` and ``file-system`` catalogs, and helpers.

``base`` holds the contract (``BaseCatalog``); ``paths`` the checks every catalog makes on names,
patterns and destinations (``safe_relative``, ``glob_files``, ...); ``copying`` the chunked,
atomic copy and hash of local files; ``do_nothing`` and ``filesystem`` the built-in catalogs. The
names below are what plugins import from ``magnus.catalog``.
"""

from magnus.catalog.base import BaseCatalog
from magnus.catalog.copying import CHUNK_SIZE, PARTIAL_SUFFIX, copy_with_hash, file_hash
from magnus.catalog.do_nothing import DoNothingCatalog
from magnus.catalog.filesystem import FileSystemCatalog
from magnus.catalog.paths import (
    check_destination,
    check_run_id,
    glob_files,
    is_execution_log,
    safe_relative,
)

__all__ = [
    "CHUNK_SIZE",
    "PARTIAL_SUFFIX",
    "BaseCatalog",
    "DoNothingCatalog",
    "FileSystemCatalog",
    "check_destination",
    "check_run_id",
    "copy_with_hash",
    "file_hash",
    "glob_files",
    "is_execution_log",
    "safe_relative",
]
