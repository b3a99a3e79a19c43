"""Put files into a file-system catalog and get them back, timing only the transfer.

``python catalog_driver.py TOOL PATTERN RUN_ID`` from a folder holding ``data/``; TOOL is
``ours``, ``0.5.1`` or ``floor``. Every side hashes each file with SHA-256 on the way in and on
the way out (that is what the catalogs record) and copies it to ``.catalog/<run id>/<path>`` and
back over the original. Prints ``{"seconds": ...}``: the time of put + get, without interpreter
start-up or imports, so that what is compared is hashing and copying alone.

The catalogs are driven through their own classes rather than a two-step pipeline: a pipeline
would add its fixed start-up (already measured by the other workloads) to both sides and blur the
1.3x target, which is about the copy. Standard library plus the tool's own magnus only.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

CATALOG = ".catalog"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def floor(pattern: str, run_id: str) -> Callable[[], None]:
    """hashlib.sha256 + shutil.copyfile: the least any catalog can do."""

    def transfer() -> None:
        files = [name for name in glob.glob(pattern) if Path(name).is_file()]
        for name in files:
            _sha256(name)
            target = Path(CATALOG, run_id, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(name, target)
        for name in files:
            source = Path(CATALOG, run_id, name)
            _sha256(str(source))
            shutil.copyfile(source, name)

    return transfer


def ours(pattern: str, run_id: str) -> Callable[[], None]:
    from magnus.catalog import FileSystemCatalog

    catalog = FileSystemCatalog(catalog_location=CATALOG)

    def transfer() -> None:
        catalog.put(pattern, run_id)
        catalog.get(pattern, run_id)

    return transfer


def old(pattern: str, run_id: str) -> Callable[[], None]:
    """magnus 0.5.1's catalog, given the one thing it reads from its run context."""
    import types

    from magnus.datastore import BufferRunLogstore
    from magnus.extensions.catalog.file_system.implementation import FileSystemCatalog

    import magnus.context

    # 0.5.1 makes its data-catalog records through the run's store; an in-memory one is enough.
    magnus.context.run_context = types.SimpleNamespace(run_log_store=BufferRunLogstore())
    catalog = FileSystemCatalog(catalog_location=CATALOG)

    def transfer() -> None:
        catalog.put(pattern, run_id)
        catalog.get(pattern, run_id)

    return transfer


def main(tool: str, pattern: str, run_id: str) -> None:
    transfer = {"ours": ours, "0.5.1": old, "floor": floor}[tool](pattern, run_id)
    start = time.perf_counter()
    transfer()
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
