"""Put files into a file-system catalog and get them back, timing only the transfer.

``python catalog_driver.py TOOL PATTERN RUN_ID [over|absent]`` from a folder holding ``data/``;
TOOL is ``ours``, ``0.5.1`` or ``floor``. Every side hashes each file with SHA-256 on the way in
and on the way out (that is what the catalogs record) and copies it to
``.catalog/<run id>/<path>`` and back. ``over`` (the default) gets it back over the original;
``absent`` removes the originals between put and get (untimed), so that the get must write every
byte. Prints ``{"seconds": ...}``: the time of put + get, without interpreter start-up or
imports, so that what is compared is hashing and copying alone.

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


Transfer = tuple[Callable[[], None], Callable[[], None]]


def floor(pattern: str, run_id: str) -> Transfer:
    """hashlib.sha256 + shutil.copyfile: the least any catalog can do."""
    files = [name for name in glob.glob(pattern) if Path(name).is_file()]

    def put() -> None:
        for name in files:
            _sha256(name)
            target = Path(CATALOG, run_id, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(name, target)

    def get() -> None:
        for name in files:
            source = Path(CATALOG, run_id, name)
            _sha256(str(source))
            shutil.copyfile(source, name)

    return put, get


def ours(pattern: str, run_id: str) -> Transfer:
    from magnus.catalog import FileSystemCatalog

    catalog = FileSystemCatalog(catalog_location=CATALOG)
    return (lambda: catalog.put(pattern, run_id)), (lambda: catalog.get(pattern, run_id))


def old(pattern: str, run_id: str) -> Transfer:
    """magnus 0.5.1's catalog, given the one thing it reads from its run context."""
    import types

    from magnus.datastore import BufferRunLogstore
    from magnus.extensions.catalog.file_system.implementation import FileSystemCatalog

    import magnus.context

    # 0.5.1 makes its data-catalog records through the run's store; an in-memory one is enough.
    magnus.context.run_context = types.SimpleNamespace(run_log_store=BufferRunLogstore())
    catalog = FileSystemCatalog(catalog_location=CATALOG)
    return (lambda: catalog.put(pattern, run_id)), (lambda: catalog.get(pattern, run_id))


def main(tool: str, pattern: str, run_id: str, mode: str = "over") -> None:
    put, get = {"ours": ours, "0.5.1": old, "floor": floor}[tool](pattern, run_id)
    originals = [name for name in glob.glob(pattern) if Path(name).is_file()]
    start = time.perf_counter()
    put()
    seconds = time.perf_counter() - start
    if mode == "absent":
        for name in originals:
            Path(name).unlink()
    start = time.perf_counter()
    get()
    seconds += time.perf_counter() - start
    missing = [name for name in originals if not Path(name).is_file()]
    if missing:
        raise SystemExit(f"{tool} did not get back {len(missing)} file(s), e.g. {missing[0]}")
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main(*sys.argv[1:])
